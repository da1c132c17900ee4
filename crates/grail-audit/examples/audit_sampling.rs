//! The sampling soundness audit (run by `cargo xtask audit-sampling`): honest drift of the
//! sampled tokens' gaps, choice positions, bf16 sampling and off-policy acceptance under
//! the protocol's public-noise (Gumbel-max) check.
//!
//! `audit_sampling (--model DIR | --tiny | --from-raw FILE) [--positions N]
//! [--attack-prompts N] [--max-new N] [--margin M] [--no-bf16] [--core] [--raw FILE]
//! [--out FILE]`
//!
//! `--core` skips the honest conditions that vary only the validator's batching (4 rows)
//! and thread count (for long runs). `--raw FILE` keeps every measured gap; `--from-raw FILE` renders the
//! tables from such a file at another `--margin` (or after a change of the check's rules)
//! in seconds instead of measuring again.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use grail_audit::sampling::{self, Corpus, Plan, Report, Setup};
use grail_env::template::ChatTemplate;
use grail_infer::tiny::{write_tiny_model, TinySpec};
use grail_infer::{InferError, ModelDir};
use grail_proto::params::SAMPLING_MARGIN;
use grail_proto::Hotkey;
use tch::{Device, Kind};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// Today's date (UTC) as YYYY-MM-DD, from the days since 1970 (civil-from-days).
fn today() -> String {
    let days = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400) as i64;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// The command line as typed (the folders xtask adds left out).
fn command_line(args: &[String]) -> String {
    let mut shown = vec!["cargo xtask audit-sampling"];
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if matches!(a.as_str(), "--model" | "--out" | "--raw") {
            it.next();
        } else {
            shown.push(a);
        }
    }
    shown.join(" ")
}

/// Samples the corpus and runs every measurement; returns the header that describes the
/// run and the report.
fn measure(args: &[String]) -> Result<(String, Report), Box<dyn std::error::Error>> {
    let tiny = args.iter().any(|a| a == "--tiny");
    let target: usize = arg(args, "--positions").map_or(Ok(100_000), |v| v.parse())?;
    let attack_prompts: usize = arg(args, "--attack-prompts").map_or(Ok(16), |v| v.parse())?;
    let max_new: usize = arg(args, "--max-new").map_or(Ok(256), |v| v.parse())?;
    let bf16 = !args.iter().any(|a| a == "--no-bf16");
    let started = Instant::now();
    let tmp = tempfile::tempdir()?;
    let dir = if tiny {
        let dir = tmp.path().join("tiny");
        write_tiny_model(&TinySpec::default(), &dir)?;
        dir
    } else {
        arg(args, "--model")
            .ok_or("--model DIR, --tiny or --from-raw FILE is required")?
            .into()
    };
    let files = ModelDir::open(&dir)?;
    let model = files.load_model(Kind::Float, Device::Cpu, &mut grail_infer::no_progress)?;
    let template = ChatTemplate::from_tokenizer_config(
        &files.tokenizer_config.to_string(),
        ChatTemplate::ChatMl,
    )?;
    let envs = [
        grail_env::by_name("sat", None)?,
        grail_env::by_name("math", None)?,
    ];
    let setup = Setup {
        window_randomness: [0x5a; 32],
        hotkey: Hotkey([0x17; 32]),
        rollouts_per_prompt: 4,
        max_new_tokens: max_new,
        eos: files.eos_ids.clone(),
    };
    let log = |step: &str| eprintln!("[{:>5.0} s] {step}", started.elapsed().as_secs_f64());
    log("sampling the honest corpus (fp32, public noise, prefill + KV-cache decode)");
    let corpus = Corpus::sample(
        &model,
        &setup,
        target,
        &mut |i| {
            let env = &envs[i % 2];
            let problem = env
                .problem(i as u64 * 7919)
                .map_err(|e| InferError::Input(e.to_string()))?;
            let text = env
                .render(&problem, &template)
                .map_err(|e| InferError::Input(e.to_string()))?;
            files.tokenizer.encode(&text)
        },
        &mut |n| eprint!("\r  {n} / {target} completion positions"),
    )?;
    eprintln!();
    let plan = Plan {
        setup: setup.clone(),
        attack_slots: attack_prompts * setup.rollouts_per_prompt,
        best_of: 4,
        seed: 7,
        batch: 16,
        bf16,
        all_conditions: !args.iter().any(|a| a == "--core"),
    };
    let load =
        |kind: Kind, device: Device| files.load_model(kind, device, &mut grail_infer::no_progress);
    let report = sampling::run(&model, &load, &corpus, &plan, &mut |step: &str| log(step))?;
    let prompt_positions: usize = corpus.prompts.iter().map(Vec::len).sum();
    let attack_prompts = attack_prompts.min(corpus.prompts.len());
    let header = format!(
        "Command: `{}` — {}, machine: {}-core CPU, fp32 (libtorch {} threads).\n\nModel: `{}` ({} layers, hidden {}, vocabulary {}). Honest corpus: {} prompts (SAT and math, the model's chat template) × {} rollouts sampled with the public noise at T = 1 (prompt prefill + KV-cache decode, ≤ {max_new} tokens), {} completion positions ({} prompt positions). bf16 and off-policy strategies: the first {} prompts ({} rollout slots). Run time {:.0} s.\n\n",
        command_line(args),
        today(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        tch::get_num_threads(),
        if tiny {
            "tiny (TinySpec::default())".to_string()
        } else {
            files
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        },
        model.config().num_hidden_layers,
        model.config().hidden_size,
        model.config().vocab_size,
        corpus.prompts.len(),
        setup.rollouts_per_prompt,
        corpus.positions(),
        prompt_positions,
        attack_prompts,
        attack_prompts * setup.rollouts_per_prompt,
        started.elapsed().as_secs_f64(),
    );
    Ok((header, report))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let margin: f64 = arg(&args, "--margin").map_or(Ok(SAMPLING_MARGIN), |v| v.parse())?;
    let (header, report) = match arg(&args, "--from-raw") {
        Some(path) => {
            // Raw file: u64le header length, the header, then the report's measurements.
            let bytes = std::fs::read(&path)?;
            let n = bytes
                .get(..8)
                .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()) as usize)
                .filter(|&n| n <= bytes.len() - 8)
                .ok_or("raw file too short")?;
            let header = String::from_utf8(bytes[8..8 + n].to_vec())?;
            let report = Report::read_raw(&bytes[8 + n..])?;
            let note = format!(
                "Tables rendered from the measurements of that run by `{}`.\n\n",
                command_line(&args)
            );
            (header + &note, report)
        }
        None => {
            let (header, report) = measure(&args)?;
            if let Some(path) = arg(&args, "--raw") {
                let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
                bytes.extend_from_slice(header.as_bytes());
                report.write_raw(&mut bytes);
                std::fs::write(&path, bytes)?;
                eprintln!("measurements written to {path}");
            }
            (header, report)
        }
    };
    let largest = report.largest_honest_drift();
    let recommended = sampling::recommended_margin(largest, 10.0);
    let mut sweep = vec![1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2];
    for m in [margin, recommended] {
        if !sweep.iter().any(|&s| (s - m).abs() <= m * 1e-9) {
            sweep.push(m);
        }
    }
    sweep.sort_unstable_by(f64::total_cmp);
    let text = format!(
        "{header}Largest honest drift (gap shift or excess, any condition): {largest:.2e}; 10× that, rounded up: {recommended:.0e}. Tables at margin {margin:e}.\n\n{}",
        report.markdown(margin, &sweep)
    );
    println!("{text}");
    if let Some(out) = arg(&args, "--out") {
        std::fs::write(&out, &text)?;
        eprintln!("written to {out}");
    }
    Ok(())
}
