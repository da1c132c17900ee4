//! `cargo xtask localnet --job DIR`: a client job on the local network. Once the roles
//! run, `grail-client` submits the folder's job to the validator's gateway and follows its
//! verified rollouts into `<network>/job-rollouts.ndjson`; at the end the summary says
//! what the client received.
//!
//! A job folder holds `prompts.jsonl` (the client's prompts) and `submit.args` (the other
//! `grail-client submit` flags, one per line, e.g. `--reward` / `numeric:0`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The following client of a submitted job.
pub struct JobClient {
    id: String,
    follower: Child,
    out: PathBuf,
}

fn client(bin: &Path, gateway: &str, root: &Path) -> Command {
    let mut cmd = Command::new(bin);
    cmd.args(["--gateway", gateway, "--key-file"])
        .arg(root.join("api-key"));
    cmd
}

/// The validator's API address, once it has written it (a minute at most).
fn gateway(root: &Path) -> Result<String, String> {
    let file = root.join("state").join("validator").join("api-address");
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(120) {
        if let Ok(a) = std::fs::read_to_string(&file) {
            return Ok(format!("http://{}", a.trim()));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    Err(format!(
        "the validator's API did not come up ({} missing)",
        file.display()
    ))
}

/// Submits the job of `dir` and starts following it.
pub fn submit(bin: &Path, dir: &Path, root: &Path, logs: &Path) -> Result<JobClient, String> {
    let prompts = dir.join("prompts.jsonl");
    let args_file = dir.join("submit.args");
    let args = std::fs::read_to_string(&args_file)
        .map_err(|e| format!("--job: reading {}: {e}", args_file.display()))?;
    let args: Vec<String> = args
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            // A module path is relative to the job folder.
            match l.strip_prefix("wasm:") {
                Some(file) => format!("wasm:{}", dir.join(file).display()),
                None => l.to_string(),
            }
        })
        .collect();
    let gateway = gateway(root)?;
    let out = client(bin, &gateway, root)
        .arg("submit")
        .arg("--prompts")
        .arg(&prompts)
        .args(&args)
        .output()
        .map_err(|e| format!("cannot run grail-client: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "grail-client submit failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    eprintln!("    client: job {id} submitted to {gateway}");
    let rollouts = root.join("job-rollouts.ndjson");
    let log = std::fs::File::create(logs.join("client.log"))
        .map_err(|e| format!("cannot create the client log: {e}"))?;
    let follower = client(bin, &gateway, root)
        .args(["follow", &id, "--out"])
        .arg(&rollouts)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot start grail-client follow: {e}"))?;
    Ok(JobClient {
        id,
        follower,
        out: rollouts,
    })
}

impl JobClient {
    /// Stops following and prints what the client received (`grail-client summarize`)
    /// and the follower's last progress line.
    pub fn finish(&mut self, bin: &Path, root: &Path) {
        // The follower long-polls; give it a moment for the last window's rollouts.
        std::thread::sleep(Duration::from_secs(2));
        let _ = self.follower.kill();
        let _ = self.follower.wait();
        println!("\nclient job {}:", self.id);
        let log = std::fs::read_to_string(root.join("logs").join("client.log")).unwrap_or_default();
        if let Some(last) = log.lines().rev().find(|l| l.contains("groups delivered")) {
            println!("  last status seen: {}", last.trim());
        }
        match Command::new(bin)
            .args(["--gateway", "-", "summarize"])
            .arg(&self.out)
            .output()
        {
            Ok(out) => print!("{}", String::from_utf8_lossy(&out.stdout)),
            Err(e) => eprintln!("cannot run grail-client summarize: {e}"),
        }
    }
}
