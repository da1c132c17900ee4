//! `cargo xtask`: the project's automation.
//!
//! - `setup`    — install what the build needs (libtorch from PyPI torch, cargo-deny) into
//!   a cache outside the checkout, so fresh clones reuse it; idempotent and fast when done.
//! - `ci`       — everything CI checks: fmt, clippy, tests, docs, cargo-deny.
//! - `localnet` — run the whole network on the embedded default.
//!
//! It has no dependencies so that it builds in seconds on a fresh clone.

mod ci;
mod setup;
mod util;

use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <command> [options]

commands:
  setup       install libtorch (PyPI torch==2.11.0) and cargo-deny into the cache; link .libtorch
  ci          fmt check, clippy -D warnings, tests, docs -D warnings, cargo deny
  localnet    run a whole local network (chain, beacon, store, miners, validator, trainer)
  env         print the environment variables the other commands give cargo (for your shell)

environment:
  GRAIL_CACHE       cache folder (default: $XDG_CACHE_HOME/grail-rs or ~/.cache/grail-rs)
  CARGO_TARGET_DIR  cargo's target folder (default for ci: $GRAIL_CACHE/target)
  LIBTORCH          use this libtorch instead of installing one
  LIBTORCH_USE_PYTORCH=1  use the torch of the python on PATH
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(command) = args.first() else {
        eprint!("{USAGE}");
        return ExitCode::from(2);
    };
    let rest = &args[1..];
    let result = match command.as_str() {
        "setup" => setup::run(rest).map(|_| ()),
        "ci" => ci::run(rest),
        "localnet" => localnet(rest),
        "env" => setup::print_env(rest),
        "help" | "-h" | "--help" => {
            print!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown command `{other}`\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// `cargo xtask localnet`: set up, then run the local network.
fn localnet(args: &[String]) -> Result<(), String> {
    if let Some(unknown) = args.iter().find(|a| a.starts_with('-')) {
        return Err(format!("localnet: unknown option `{unknown}`"));
    }
    let env = setup::run(&[])?;
    util::step("localnet");
    eprintln!(
        "libtorch is ready at {}.\n\
         Not built yet: the role loops (grail-node: miner, validator, trainer) and the\n\
         SmolLM2 import. This command will start the local chain, beacon, store and the\n\
         roles once they land; see the open issues for grail-node and grail-infer.",
        env.libtorch.display()
    );
    Ok(())
}
