//! GGUF import on a file written here from the tiny model: llama.cpp's tensor names and
//! Q/K row permutation, F32 and Q8_0/Q4_1 storage, and the tokenizer rebuilt from the
//! GGUF vocabulary must give back the same model and the same token ids.

use std::collections::HashMap;

use grail_infer::gguf::{quantize, TensorType};
use grail_infer::import::import_gguf;
use grail_infer::tiny::{tiny_config, tiny_tokenizer, tiny_weights, TinySpec, CHATML_TEMPLATE};
use grail_infer::{no_progress, ModelDir, Tokenizer};
use tch::{Device, Kind, Tensor};

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

enum Meta {
    U32(u32),
    F32(f32),
    Str(String),
    Strs(Vec<String>),
    I32s(Vec<i32>),
}

fn put_meta(out: &mut Vec<u8>, key: &str, value: &Meta) {
    put_str(out, key);
    match value {
        Meta::U32(v) => {
            out.extend(4u32.to_le_bytes());
            out.extend(v.to_le_bytes());
        }
        Meta::F32(v) => {
            out.extend(6u32.to_le_bytes());
            out.extend(v.to_le_bytes());
        }
        Meta::Str(s) => {
            out.extend(8u32.to_le_bytes());
            put_str(out, s);
        }
        Meta::Strs(items) => {
            out.extend(9u32.to_le_bytes());
            out.extend(8u32.to_le_bytes());
            out.extend((items.len() as u64).to_le_bytes());
            items.iter().for_each(|s| put_str(out, s));
        }
        Meta::I32s(items) => {
            out.extend(9u32.to_le_bytes());
            out.extend(5u32.to_le_bytes());
            out.extend((items.len() as u64).to_le_bytes());
            items.iter().for_each(|v| out.extend(v.to_le_bytes()));
        }
    }
}

/// llama.cpp's `permute` of q/k rows (what its converter writes).
fn permute(w: &Tensor, heads: i64) -> Tensor {
    let (rows, cols) = w.size2().unwrap();
    w.reshape([heads, 2, rows / heads / 2, cols])
        .transpose(1, 2)
        .reshape([rows, cols])
}

fn gguf_name(hf: &str) -> String {
    let fixed = [
        ("model.embed_tokens.weight", "token_embd.weight"),
        ("model.norm.weight", "output_norm.weight"),
        ("lm_head.weight", "output.weight"),
    ];
    if let Some((_, g)) = fixed.iter().find(|(h, _)| *h == hf) {
        return g.to_string();
    }
    let rest = hf.strip_prefix("model.layers.").unwrap();
    let (layer, part) = rest.split_once('.').unwrap();
    let map = [
        ("input_layernorm", "attn_norm"),
        ("post_attention_layernorm", "ffn_norm"),
        ("self_attn.q_proj", "attn_q"),
        ("self_attn.k_proj", "attn_k"),
        ("self_attn.v_proj", "attn_v"),
        ("self_attn.o_proj", "attn_output"),
        ("mlp.gate_proj", "ffn_gate"),
        ("mlp.up_proj", "ffn_up"),
        ("mlp.down_proj", "ffn_down"),
    ];
    let (module, kind) = part.rsplit_once('.').unwrap();
    let g = map.iter().find(|(h, _)| *h == module).unwrap().1;
    format!("blk.{layer}.{g}.{kind}")
}

/// Storage for each tensor: norms and embeddings F32, projections quantized.
fn storage(hf: &str) -> TensorType {
    if hf.contains("norm") || hf.contains("embed") {
        TensorType::F32
    } else if hf.contains("mlp") {
        TensorType::Q4_1
    } else {
        TensorType::Q8_0
    }
}

#[test]
fn gguf_import_recovers_weights_and_tokenizer() {
    let spec = TinySpec::default();
    let (tokenizer_json, vocab_size) = tiny_tokenizer(spec.merges);
    let config = tiny_config(&spec, vocab_size);
    let weights = tiny_weights(&config, spec.seed);
    let model = &tokenizer_json["model"];
    let mut vocab = vec![String::new(); vocab_size];
    for (token, id) in model["vocab"].as_object().unwrap() {
        vocab[id.as_u64().unwrap() as usize] = token.clone();
    }
    let merges: Vec<String> = model["merges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| format!("{} {}", m[0].as_str().unwrap(), m[1].as_str().unwrap()))
        .collect();
    let types: Vec<i32> = (0..vocab_size).map(|i| if i < 3 { 3 } else { 1 }).collect();

    let meta: Vec<(&str, Meta)> = vec![
        ("general.architecture", Meta::Str("llama".into())),
        (
            "llama.block_count",
            Meta::U32(config.num_hidden_layers as u32),
        ),
        ("llama.context_length", Meta::U32(2048)),
        (
            "llama.embedding_length",
            Meta::U32(config.hidden_size as u32),
        ),
        (
            "llama.feed_forward_length",
            Meta::U32(config.intermediate_size as u32),
        ),
        (
            "llama.attention.head_count",
            Meta::U32(config.num_attention_heads as u32),
        ),
        (
            "llama.attention.head_count_kv",
            Meta::U32(config.kv_heads() as u32),
        ),
        ("llama.attention.layer_norm_rms_epsilon", Meta::F32(1e-5)),
        ("llama.rope.freq_base", Meta::F32(10_000.0)),
        ("general.alignment", Meta::U32(32)),
        ("tokenizer.ggml.model", Meta::Str("gpt2".into())),
        ("tokenizer.ggml.pre", Meta::Str("smollm".into())),
        ("tokenizer.ggml.tokens", Meta::Strs(vocab)),
        ("tokenizer.ggml.token_type", Meta::I32s(types)),
        ("tokenizer.ggml.merges", Meta::Strs(merges)),
        ("tokenizer.ggml.bos_token_id", Meta::U32(1)),
        ("tokenizer.ggml.eos_token_id", Meta::U32(2)),
        ("tokenizer.chat_template", Meta::Str(CHATML_TEMPLATE.into())),
    ];
    let heads = config.num_attention_heads as i64;
    let kv = config.kv_heads() as i64;
    let mut blobs = Vec::new();
    for (name, tensor) in &weights {
        let stored = if name.ends_with("q_proj.weight") {
            permute(tensor, heads)
        } else if name.ends_with("k_proj.weight") {
            permute(tensor, kv)
        } else {
            tensor.shallow_clone()
        };
        let values = Vec::<f32>::try_from(stored.contiguous().view([-1])).unwrap();
        let dims: Vec<u64> = tensor.size().iter().rev().map(|&d| d as u64).collect();
        blobs.push((
            gguf_name(name),
            dims,
            storage(name),
            quantize(storage(name), &values),
        ));
    }
    let mut file = b"GGUF".to_vec();
    file.extend(3u32.to_le_bytes());
    file.extend((blobs.len() as u64).to_le_bytes());
    file.extend((meta.len() as u64).to_le_bytes());
    for (k, v) in &meta {
        put_meta(&mut file, k, v);
    }
    let mut offset = 0u64;
    for (name, dims, kind, data) in &blobs {
        put_str(&mut file, name);
        file.extend((dims.len() as u32).to_le_bytes());
        dims.iter().for_each(|d| file.extend(d.to_le_bytes()));
        let code: u32 = match kind {
            TensorType::F32 => 0,
            TensorType::Q4_1 => 3,
            TensorType::Q8_0 => 8,
            _ => unreachable!(),
        };
        file.extend(code.to_le_bytes());
        file.extend(offset.to_le_bytes());
        offset += (data.len() as u64).div_ceil(32) * 32;
    }
    file.resize(file.len().div_ceil(32) * 32, 0);
    for (_, _, _, data) in &blobs {
        file.extend(data);
        file.resize(file.len().div_ceil(32) * 32, 0);
    }

    let dir = tempfile::tempdir().unwrap();
    let gguf = dir.path().join("tiny.gguf");
    std::fs::write(&gguf, &file).unwrap();
    let out = dir.path().join("imported");
    import_gguf(&gguf, &out, &mut no_progress).unwrap();

    // Weights: F32 tensors exact, quantized ones within one quantization step.
    let imported: HashMap<String, Tensor> = Tensor::read_safetensors(out.join("model.safetensors"))
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(imported.len(), weights.len());
    for (name, original) in &weights {
        let got = &imported[name];
        assert_eq!(got.size(), original.size(), "{name}");
        let err = f64::try_from((got - original).abs().max()).unwrap();
        let range = f64::try_from(original.abs().max()).unwrap();
        let bound = match storage(name) {
            TensorType::F32 => 0.0,
            TensorType::Q8_0 => range / 127.0,
            _ => 2.0 * range / 15.0,
        };
        assert!(err <= bound + 1e-6, "{name}: error {err} > {bound}");
    }

    // The model runs, and agrees with the original on the same tokens (up to quantization).
    let files = ModelDir::open(&out).unwrap();
    assert_eq!(files.eos_ids, vec![2]);
    assert_eq!(files.chat_template(), Some(CHATML_TEMPLATE));
    let model = files
        .load_model(Kind::Float, Device::Cpu, &mut no_progress)
        .unwrap();
    assert_eq!(model.config().vocab_size, vocab_size);
    assert!(model.config().tie_word_embeddings);

    // The tokenizer rebuilt from GGUF tokenizes like the original tokenizer.json.
    let original = Tokenizer::from_json(&tokenizer_json.to_string()).unwrap();
    for text in [
        "<|im_start|>user\nWhat is 12 + 30?<|im_end|>\n<|im_start|>assistant\n",
        "The answer is 42. SOLUTION: x1=T x2=F",
        "café 中文 🙂 \t\n  spaces   and 007 digits",
    ] {
        assert_eq!(
            files.tokenizer.encode(text).unwrap(),
            original.encode(text).unwrap(),
            "{text:?}"
        );
    }

    // A truncated file is an error naming the file, not a panic.
    std::fs::write(&gguf, &file[..file.len() / 2]).unwrap();
    let err = import_gguf(&gguf, &dir.path().join("bad"), &mut no_progress).unwrap_err();
    assert!(err.to_string().contains("tiny.gguf"), "{err}");
    assert!(
        !dir.path().join("bad").exists(),
        "nothing is written for a bad file"
    );
}
