//! Small process and path helpers.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

/// Prints a step header.
pub fn step(name: &str) {
    eprintln!("\n==> {name}");
}

/// Runs a command to completion, inheriting stdio; an error names the command.
pub fn run(cmd: &mut Command) -> Result<(), String> {
    let shown = show(cmd);
    let status = cmd
        .status()
        .map_err(|e| format!("cannot start `{shown}`: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{shown}` failed ({status})"))
    }
}

/// Runs a command and prints how long it took.
pub fn run_timed(name: &str, cmd: &mut Command) -> Result<(), String> {
    step(name);
    let start = Instant::now();
    let result = run(cmd);
    eprintln!("    {name}: {:.1} s", start.elapsed().as_secs_f64());
    result
}

/// Runs a command and returns its trimmed stdout when it succeeds.
pub fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn show(cmd: &Command) -> String {
    let mut parts = vec![cmd.get_program().to_string_lossy().into_owned()];
    parts.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    parts.join(" ")
}

/// The checkout's root folder (the parent of `xtask/`).
pub fn project_root() -> PathBuf {
    // `cargo run` (the `xtask` alias) sets it at run time; the compile-time value could
    // name another checkout when the build is reused from a shared target folder.
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest
        .parent()
        .expect("xtask lives one level below the project root")
        .to_path_buf()
}

/// The cargo the user invoked us with.
pub fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(project_root());
    // `cargo run` gave xtask its own CARGO_MANIFEST_DIR; build scripts that watch it
    // (ring's) would otherwise see it change between `cargo xtask …` and a plain `cargo`
    // in a shell and rebuild ring and everything above it each time.
    cmd.env_remove("CARGO_MANIFEST_DIR");
    cmd
}
