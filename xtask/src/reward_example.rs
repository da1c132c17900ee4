//! `cargo xtask reward-example`: builds the example job reward crate
//! (`examples/rewards/whole-answer`) for wasm32 and checks that the committed module is
//! byte for byte what its source compiles to (`--write` replaces it instead).
//!
//! The project's toolchain has no wasm32 standard library and none can be downloaded, so
//! the module is built with a pinned compiler that ships one: Debian bookworm's rustc 1.63
//! with `libstd-rust-dev-wasm32` and its lld, fetched as packages (`apt-get download`,
//! about 100 MB) and unpacked into the cache, never installed on the system. Its output is
//! deterministic and independent of the checkout's path (`--remap-path-prefix`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{setup, util};

/// The Debian packages of the compiler, at the versions the committed module was built
/// with. Changing them changes the module's bytes: rebuild with `--write`.
const PACKAGES: &[&str] = &[
    "rustc=1.63.0+dfsg1-2",
    "libstd-rust-1.63=1.63.0+dfsg1-2",
    "libstd-rust-dev-wasm32=1.63.0+dfsg1-2",
    "libllvm14=1:14.0.6-12",
    "lld-14=1:14.0.6-12",
];

const CRATE: &str = "examples/rewards/whole-answer";
const MODULE: &str = "whole_answer.wasm";

/// Runs the command: `--write` replaces the committed module.
pub fn run(args: &[String]) -> Result<(), String> {
    let write = match args.first().map(String::as_str) {
        None => false,
        Some("--write") => true,
        Some(other) => return Err(format!("reward-example: unknown option `{other}`")),
    };
    let compiler = compiler()?;
    let built = build(&compiler)?;
    let committed = util::project_root().join(CRATE).join(MODULE);
    if write {
        fs::write(&committed, &built).map_err(|e| format!("{}: {e}", committed.display()))?;
        eprintln!(
            "reward-example: wrote {} ({} bytes)",
            committed.display(),
            built.len()
        );
        return Ok(());
    }
    let old = fs::read(&committed).map_err(|e| format!("{}: {e}", committed.display()))?;
    if old != built {
        return Err(format!(
            "{} is not what {CRATE}/src/lib.rs compiles to ({} bytes committed, {} built); \
             run `cargo xtask reward-example --write` and commit it",
            committed.display(),
            old.len(),
            built.len()
        ));
    }
    eprintln!(
        "reward-example: {CRATE}/{MODULE} is its source's build ({} bytes)",
        built.len()
    );
    Ok(())
}

/// CI's check: the committed module is its source's build. A compiler that cannot be
/// fetched (no Debian, no network) is a warning, not a failure; a different module is.
pub fn ci_check() -> Result<(), String> {
    match compiler() {
        Ok(_) => run(&[]),
        Err(e) => {
            eprintln!("ci: warning: cannot fetch the wasm32 compiler ({e}); the reward example's module was not rebuilt");
            Ok(())
        }
    }
}

/// The unpacked compiler's root (its `usr/`), fetched once into the cache.
pub fn compiler() -> Result<PathBuf, String> {
    let root = setup::cache_dir().join("wasm-rustc-1.63");
    let stamp = root.join("packages");
    let wanted = PACKAGES.join(" ");
    if fs::read_to_string(&stamp).ok() == Some(wanted.clone()) {
        return Ok(root.join("usr"));
    }
    let debs = root.join("debs");
    let _ = fs::remove_dir_all(&root);
    fs::create_dir_all(&debs).map_err(|e| format!("{}: {e}", debs.display()))?;
    util::step("fetching Debian's rustc 1.63 with its wasm32 standard library (~100 MB, once)");
    let download = || {
        Command::new("apt-get")
            .arg("download")
            .args(PACKAGES)
            .current_dir(&debs)
            .output()
    };
    let mut out = download().map_err(|e| format!("cannot run apt-get ({e}); it needs Debian"))?;
    if !out.status.success() {
        // A fresh machine may have no package lists yet.
        let _ = Command::new("apt-get").args(["update", "-qq"]).status();
        out = download().map_err(|e| format!("cannot run apt-get: {e}"))?;
    }
    if !out.status.success() {
        return Err(format!(
            "apt-get download {} failed: {}",
            PACKAGES.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    for entry in fs::read_dir(&debs).map_err(|e| e.to_string())? {
        let deb = entry.map_err(|e| e.to_string())?.path();
        util::run(Command::new("dpkg").arg("-x").arg(&deb).arg(&root))?;
    }
    fs::write(&stamp, &wanted).map_err(|e| format!("{}: {e}", stamp.display()))?;
    Ok(root.join("usr"))
}

/// Compiles the crate with the compiler under `usr`; returns the module's bytes.
fn build(usr: &Path) -> Result<Vec<u8>, String> {
    let dir = util::project_root().join(CRATE);
    let out = tempfile_path("whole_answer.wasm");
    let path = format!(
        "{}:{}",
        usr.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    util::run(
        Command::new(usr.join("bin/rustc"))
            .current_dir(&dir)
            .env("LD_LIBRARY_PATH", usr.join("lib/x86_64-linux-gnu"))
            .env("PATH", path)
            .arg("--sysroot")
            .arg(usr)
            .args(["--edition", "2021", "--target", "wasm32-unknown-unknown"])
            .args(["--crate-type", "cdylib", "--crate-name", "whole_answer"])
            .args([
                "-C",
                "opt-level=s",
                "-C",
                "panic=abort",
                "-C",
                "strip=symbols",
            ])
            .arg(format!(
                "--remap-path-prefix={}=whole-answer",
                dir.display()
            ))
            .arg("src/lib.rs")
            .arg("-o")
            .arg(&out),
    )?;
    let bytes = fs::read(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let _ = fs::remove_file(&out);
    Ok(bytes)
}

fn tempfile_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("grail-{}-{name}", std::process::id()))
}
