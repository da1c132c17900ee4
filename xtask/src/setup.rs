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
//! - `venv-tools/` — `moto[server]` (the S3 API server the grail-store tests start) and
//!   pandas/pyarrow (to read exported Parquet back).
//! - `target/` — the cargo target folder `ci` uses.
//!
//! In the checkout, `.venv` and `.libtorch` (both git-ignored) link to these; the
//! `.cargo/config.toml` `[env]` points `LIBTORCH` at `.libtorch` for plain `cargo` runs.

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

/// Runs setup. Options: `--no-deny` skips installing cargo-deny.
pub fn run(args: &[String]) -> Result<TorchEnv, String> {
    let mut want_deny = true;
    for arg in args {
        match arg.as_str() {
            "--no-deny" => want_deny = false,
            other => return Err(format!("setup: unknown option `{other}`")),
        }
    }
    let mut env = libtorch()?;
    if let Some(server) = moto_server() {
        let python = server.with_file_name("python");
        env.vars
            .push(("GRAIL_MOTO_SERVER".into(), server.display().to_string()));
        env.vars
            .push(("GRAIL_TOOLS_PYTHON".into(), python.display().to_string()));
    }
    if want_deny {
        cargo_deny()?;
    }
    Ok(env)
}

/// `cargo xtask env`: shell `export` lines for the variables the other commands set.
pub fn print_env(args: &[String]) -> Result<(), String> {
    let env = run(args)?;
    for (key, value) in env.vars {
        println!("export {key}={value}");
    }
    Ok(())
}

fn libtorch() -> Result<TorchEnv, String> {
    let root = util::project_root();
    let cache = cache_dir();
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| cache.join("target"));
    let mut vars = vec![("CARGO_TARGET_DIR".to_string(), target.display().to_string())];

    if std::env::var("LIBTORCH_USE_PYTORCH").is_ok_and(|v| !v.is_empty()) {
        eprintln!("setup: LIBTORCH_USE_PYTORCH is set: tch uses the torch of `python3`");
        return Ok(TorchEnv {
            libtorch: PathBuf::from("(python torch)"),
            vars,
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
        vars.push(("LIBTORCH".into(), dir.display().to_string()));
        return Ok(TorchEnv {
            libtorch: dir,
            vars,
        });
    }

    fs::create_dir_all(&cache).map_err(|e| format!("cannot create {}: {e}", cache.display()))?;
    let venv = cache.join("venv");
    let torch = ensure_torch(&venv)?;
    let libtorch = cache.join(format!("libtorch-{TORCH_VERSION}"));
    link_libtorch(&torch, &libtorch)?;
    relink(&root.join(".venv"), &venv)?;
    relink(&root.join(".libtorch"), &libtorch)?;
    vars.push(("LIBTORCH".into(), libtorch.display().to_string()));
    // Searched after libtorch's includes; stable so that tch's C++ part is not rebuilt.
    vars.push((
        "CPLUS_INCLUDE_PATH".into(),
        libtorch.join("include").display().to_string(),
    ));
    eprintln!("setup: libtorch {TORCH_VERSION} at {}", libtorch.display());
    Ok(TorchEnv { libtorch, vars })
}

/// Makes sure `venv` has torch==TORCH_VERSION; returns the torch package folder.
fn ensure_torch(venv: &Path) -> Result<PathBuf, String> {
    let python = venv.join("bin/python");
    if !python.exists() {
        util::step(&format!("creating virtual environment {}", venv.display()));
        util::run(Command::new("python3").args(["-m", "venv"]).arg(venv))
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

fn pip(venv: &Path) -> Command {
    let mut cmd = Command::new(venv.join("bin/python"));
    cmd.args(["-m", "pip", "--disable-pip-version-check"]);
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
            util::run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
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

fn cargo_deny() -> Result<(), String> {
    if util::output(util::cargo().args(["deny", "--version"])).is_some() {
        return Ok(());
    }
    util::step("installing cargo-deny from crates.io (once per machine, a few minutes)");
    util::run(util::cargo().args(["install", "cargo-deny", "--locked"]))
}

#[cfg(test)]
mod tests {
    use super::*;

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
