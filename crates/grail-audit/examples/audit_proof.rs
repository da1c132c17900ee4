//! The proof soundness audit (run by `cargo xtask audit-proof`): honest drift and forgery
//! acceptance of the native sketch rule and the two reference rules on a real model.
//!
//! `audit_proof --model DIR [--positions N] [--max-new N] [--out FILE]`

use std::time::Instant;

use grail_audit::{self as audit, Corpus, Native, Reference, SketchRule};
use grail_env::template::ChatTemplate;
use grail_infer::ModelDir;
use grail_proto::SketchCoefficients;
use rand_chacha::rand_core::SeedableRng;
use tch::{Device, Kind};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = arg(&args, "--model").ok_or("--model DIR is required")?;
    let target: usize = arg(&args, "--positions").map_or(Ok(100_000), |v| v.parse())?;
    let max_new: usize = arg(&args, "--max-new").map_or(Ok(256), |v| v.parse())?;
    let started = Instant::now();
    let files = ModelDir::open(dir.as_ref())?;
    let model = files.load_model(Kind::Float, Device::Cpu, &mut grail_infer::no_progress)?;
    let sampler = files.load_model(Kind::BFloat16, Device::Cpu, &mut grail_infer::no_progress)?;
    let template = ChatTemplate::from_tokenizer_config(
        &files.tokenizer_config.to_string(),
        ChatTemplate::ChatMl,
    )?;
    let envs = [
        grail_env::by_name("sat", None)?,
        grail_env::by_name("math", None)?,
    ];
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(2026);
    let mut corpus = Corpus {
        sequences: Vec::new(),
        prompt_lens: Vec::new(),
    };
    let mut prompt_id = 0u64;
    while corpus.positions() < target {
        let env = &envs[(prompt_id % 2) as usize];
        let problem = env.problem(prompt_id * 7919)?;
        let prompt = files.tokenizer.encode(&env.render(&problem, &template)?)?;
        let part = Corpus::sample(
            &sampler,
            &[prompt],
            4,
            max_new,
            &files.eos_ids,
            &mut rng,
            &mut grail_infer::no_progress,
        )?;
        corpus.sequences.extend(part.sequences);
        corpus.prompt_lens.extend(part.prompt_lens);
        prompt_id += 1;
        eprint!(
            "\rsampling corpus: {} / {target} positions",
            corpus.positions()
        );
    }
    eprintln!();
    drop(sampler);
    let hidden = model.config().hidden_size;
    let window_randomness = [0x5au8; 32];
    let hex = "5a".repeat(32);
    let native = Native(SketchCoefficients::derive(&window_randomness, hidden));
    let v5 = Reference::grail_v5(&hex);
    let v7 = Reference::reliquary_v7(&hex);
    let rules: [&dyn SketchRule; 3] = [&native, &v5, &v7];
    let load =
        |kind: Kind, device: Device| files.load_model(kind, device, &mut grail_infer::no_progress);
    let report = audit::run(&model, &load, &corpus, &rules, &mut |step: &str| {
        eprintln!("[{:>5.0} s] {step}", started.elapsed().as_secs_f64());
    })?;
    let completion: usize = corpus
        .sequences
        .iter()
        .zip(&corpus.prompt_lens)
        .map(|(s, p)| s.len() - p)
        .sum();
    let header = format!(
        "Model: `{}` ({} layers, hidden {}), CPU, {} threads. Corpus: {} sequences ({} prompts × 4 sampled completions of ≤ {max_new} tokens; SAT and math prompts rendered with the model's chat template), {} positions, {} of them completion positions. Run time {:.0} s.\n\n",
        files.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        model.config().num_hidden_layers,
        hidden,
        tch::get_num_threads(),
        corpus.sequences.len(),
        prompt_id,
        corpus.positions(),
        completion,
        started.elapsed().as_secs_f64()
    );
    let text = header + &report.markdown();
    println!("{text}");
    if let Some(out) = arg(&args, "--out") {
        std::fs::write(&out, &text)?;
        eprintln!("written to {out}");
    }
    Ok(())
}
