//! `grail-validator reverify`: re-verifies a sealed window offline. The archive comes
//! from this validator's bucket (a client job's lane archive with `--job`, the job's
//! canonical bytes from the same bucket), the checkpoint in effect for the window from the
//! trainer's, the window and challenge randomness from the chain and beacon; every entry
//! is checked again with [`reverify_archive`] and its verdict compared with the archived
//! one. A disagreement (a different reason or acceptance) is an error, so the command
//! exits non-zero.

use std::io::Write;

use grail_env::Environment;
use grail_proto::archive::{SealedWindow, Verdict};

use super::{reverify_archive, WindowInputs};
use grail_node::checkpoints::CurrentModel;
use grail_node::cli::{init_logging, ConfigArgs, LogFormat};
use grail_node::wiring::Wiring;
use grail_node::NodeError;

/// Flags of `grail-validator reverify`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReverifyArgs {
    /// The configuration (this validator's) and its overrides.
    #[command(flatten)]
    pub node: ConfigArgs,
    /// The window to re-verify (its first block).
    #[arg(long)]
    pub window: u64,
    /// SHA-256 (hex) of the archive to re-verify (default: every archive of the window in
    /// the bucket).
    #[arg(long)]
    pub archive: Option<String>,
    /// A client job (its id): re-verify the job lane's archives of the window (the
    /// `archive` a delivered rollout names) against the job's reward and parameters.
    #[arg(long)]
    pub job: Option<String>,
}

/// Why a re-verification could not run or did not agree.
#[derive(Debug, thiserror::Error)]
pub enum ReverifyError {
    /// `--archive` is not 64 hex digits.
    #[error("--archive {text:?} is not a SHA-256 in hex (64 digits)")]
    BadDigest {
        /// What was given.
        text: String,
    },
    /// The bucket holds no archive of the window.
    #[error("no sealed archive of window {window} in the bucket")]
    NoArchive {
        /// The window.
        window: u64,
    },
    /// `--job` names no job this bucket holds, or bytes that are not that job.
    #[error("job {job}: {detail}")]
    BadJob {
        /// The id given.
        job: String,
        /// What is wrong.
        detail: String,
    },
    /// The trainer has announced no checkpoint in effect for the window.
    #[error("no checkpoint is in effect for window {window}")]
    NoCheckpoint {
        /// The window.
        window: u64,
    },
    /// The archive was sealed under another checkpoint than the one in effect.
    #[error("archive {archive} was sealed under checkpoint {sealed}, but {in_effect} is in effect for window {window}")]
    CheckpointMismatch {
        /// The window.
        window: u64,
        /// The archive (hex).
        archive: String,
        /// The archive's checkpoint digest (hex).
        sealed: String,
        /// The digest of the checkpoint in effect (hex).
        in_effect: String,
    },
    /// Some verdicts differ from the archived ones.
    #[error("window {window}: {mismatches} of {entries} verdicts differ from the archive")]
    Disagreement {
        /// The window.
        window: u64,
        /// Entries whose verdict differs.
        mismatches: usize,
        /// Entries checked.
        entries: usize,
    },
}

/// One archived entry re-verified.
#[derive(Debug, Clone, PartialEq)]
pub struct EntryCheck {
    /// The miner (SS58).
    pub miner: String,
    /// Index of the group in the miner's bundle.
    pub group_index: u32,
    /// The verdict in the archive.
    pub archived: Verdict,
    /// The verdict reached again.
    pub recomputed: Verdict,
}

impl EntryCheck {
    /// Whether both verdicts have the same acceptance and reason (details carry numbers
    /// that may print differently on other hardware).
    pub fn agrees(&self) -> bool {
        self.archived.accepted == self.recomputed.accepted
            && self.archived.reason == self.recomputed.reason
    }
}

/// One archive re-verified.
#[derive(Debug, Clone, PartialEq)]
pub struct ArchiveCheck {
    /// The window.
    pub window: u64,
    /// The archive's SHA-256 (hex).
    pub digest: String,
    /// The validator that sealed it (SS58).
    pub validator: String,
    /// The number of the checkpoint it was verified against.
    pub checkpoint: u64,
    /// Its entries, in archive order.
    pub entries: Vec<EntryCheck>,
}

impl ArchiveCheck {
    /// Entries whose verdict differs.
    pub fn mismatches(&self) -> usize {
        self.entries.iter().filter(|e| !e.agrees()).count()
    }
}

impl From<ReverifyError> for NodeError {
    fn from(e: ReverifyError) -> Self {
        NodeError::Command(Box::new(e))
    }
}

/// Parses a 64-digit hex SHA-256.
///
/// # Errors
/// Anything else.
pub fn parse_digest(text: &str) -> Result<[u8; 32], ReverifyError> {
    hex::decode(text.trim())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
        .ok_or_else(|| ReverifyError::BadDigest {
            text: text.chars().take(80).collect(),
        })
}

/// Re-verifies the archives of `window` in `w`'s bucket (only `archive` when given) with
/// the checkpoint in effect for the window and `env`.
///
/// # Errors
/// No archive, an unreadable or malformed archive, no checkpoint in effect or another one
/// than the archive's, chain, store or model failures, the re-verifier's own forward pass.
/// Disagreeing verdicts are not an error here: see [`ArchiveCheck::mismatches`].
pub async fn reverify_window(
    w: &Wiring,
    env: &dyn Environment,
    window: u64,
    archive: Option<[u8; 32]>,
) -> Result<Vec<ArchiveCheck>, NodeError> {
    reverify_lane(w, env, None, window, archive).await
}

/// Loads a client job from `w`'s bucket (`jobs/{id}.job`), its bytes checked against `id`.
///
/// # Errors
/// [`ReverifyError::BadJob`]: no such job, or bytes that are not a job of that id.
pub async fn load_job(w: &Wiring, id: &str) -> Result<grail_jobs::JobEnvironment, NodeError> {
    let bad = |detail: String| ReverifyError::BadJob {
        job: id.chars().take(80).collect(),
        detail,
    };
    let want: grail_jobs::JobId = id.parse().map_err(|e| bad(format!("{e}")))?;
    let fetched = w
        .store
        .get_capped(
            &grail_store::layout::job(id),
            grail_jobs::limits::MAX_JOB_BYTES as u64,
        )
        .await
        .map_err(|e| bad(e.to_string()))?;
    let job = grail_jobs::JobEnvironment::load(&fetched.bytes).map_err(|e| bad(e.to_string()))?;
    if job.job_id() != want {
        return Err(bad("the bucket's bytes hash to another job".into()).into());
    }
    Ok(job)
}

/// [`reverify_window`] for the subnet (`job` `None`) or a client job's lane (the job's
/// environment, loaded with [`load_job`]): its archives under `lanes/`.
///
/// # Errors
/// As [`reverify_window`].
pub async fn reverify_lane(
    w: &Wiring,
    env: &dyn Environment,
    job: Option<&grail_jobs::JobEnvironment>,
    window: u64,
    archive: Option<[u8; 32]>,
) -> Result<Vec<ArchiveCheck>, NodeError> {
    let lane = job.map(|j| j.job_id().to_string());
    let digests = match archive {
        Some(d) => vec![d],
        None => w.store.list_archives_in(window, lane.as_deref()).await?,
    };
    if digests.is_empty() {
        return Err(ReverifyError::NoArchive { window }.into());
    }
    let id = w
        .checkpoints
        .in_effect(w.net.chain.as_ref(), window)
        .await?
        .ok_or(ReverifyError::NoCheckpoint { window })?;
    let mut current: Option<CurrentModel> = None;
    let mut out = Vec::new();
    for digest in digests {
        let (sealed, _) = w
            .store
            .get_archive_in(window, lane.as_deref(), &digest)
            .await?;
        if sealed.checkpoint != id.digest {
            return Err(ReverifyError::CheckpointMismatch {
                window,
                archive: hex::encode(digest),
                sealed: hex::encode(sealed.checkpoint),
                in_effect: hex::encode(id.digest),
            }
            .into());
        }
        CurrentModel::ensure(&mut current, &w.checkpoints, id, w.device).await?;
        let model = current.as_ref().expect("ensured above");
        let inputs =
            WindowInputs::from_network(w, &model.context, env, window, id.digest, Vec::new())
                .await?;
        let again = match job {
            None => grail_node::blocking(|| reverify_archive(&sealed, &inputs))?,
            Some(job) => {
                let mut lane = inputs.lane(job);
                lane.groups_checked = w.config.jobs.lane_groups_checked;
                grail_node::blocking(|| reverify_archive(&sealed, &lane))?
            }
        };
        out.push(compare(&sealed, hex::encode(digest), id.number, again));
    }
    Ok(out)
}

fn compare(
    sealed: &SealedWindow,
    digest: String,
    checkpoint: u64,
    again: Vec<Verdict>,
) -> ArchiveCheck {
    ArchiveCheck {
        window: sealed.window,
        digest,
        validator: sealed.validator.to_ss58(),
        checkpoint,
        entries: sealed
            .entries
            .iter()
            .zip(again)
            .map(|(e, recomputed)| EntryCheck {
                miner: e.miner.to_ss58(),
                group_index: e.group_index,
                archived: e.verdict.clone(),
                recomputed,
            })
            .collect(),
    }
}

/// Writes the per-entry table of `checks` to `out`.
///
/// # Errors
/// `out` cannot be written.
pub fn print_checks(checks: &[ArchiveCheck], out: &mut dyn Write) -> std::io::Result<()> {
    for c in checks {
        writeln!(
            out,
            "window {} archive {} by {} (checkpoint #{}): {} entries, {} disagree",
            c.window,
            c.digest,
            c.validator,
            c.checkpoint,
            c.entries.len(),
            c.mismatches()
        )?;
        for e in &c.entries {
            let status = if e.agrees() { "agree" } else { "MISMATCH" };
            write!(
                out,
                "  {status:<8} {} group {:>4}: archived {}, re-verified {}",
                e.miner, e.group_index, e.archived.reason, e.recomputed.reason
            )?;
            if e.agrees() && e.archived.detail != e.recomputed.detail {
                write!(
                    out,
                    " (detail {:?} vs {:?})",
                    e.archived.detail, e.recomputed.detail
                )?;
            } else if !e.agrees() && !e.recomputed.detail.is_empty() {
                write!(out, " ({})", e.recomputed.detail)?;
            }
            writeln!(out)?;
        }
    }
    Ok(())
}

/// `grail-validator reverify`: re-verifies, prints every entry's agreement to `out`, and
/// fails with [`ReverifyError::Disagreement`] when any verdict differs.
///
/// # Errors
/// As [`reverify_window`], and a disagreement.
pub async fn run(args: &ReverifyArgs, out: &mut dyn Write) -> Result<(), NodeError> {
    init_logging(LogFormat::Human);
    let archive = args.archive.as_deref().map(parse_digest).transpose()?;
    let w = args.node.wiring().await?;
    let env = w.config.subnet.environment()?;
    let job = match &args.job {
        Some(id) => Some(load_job(&w, id).await?),
        None => None,
    };
    let checks = reverify_lane(&w, env.as_ref(), job.as_ref(), args.window, archive).await?;
    print_checks(&checks, out).map_err(|e| NodeError::io("writing the report", e))?;
    let mismatches: usize = checks.iter().map(ArchiveCheck::mismatches).sum();
    if mismatches > 0 {
        return Err(ReverifyError::Disagreement {
            window: args.window,
            mismatches,
            entries: checks.iter().map(|c| c.entries.len()).sum(),
        }
        .into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use grail_proto::archive::ArchiveEntry;
    use grail_proto::Hotkey;

    use super::*;
    use crate::testing::group;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: ReverifyArgs,
    }

    #[test]
    fn flags_parse_and_digests_are_checked() {
        let cli = Cli::try_parse_from([
            "reverify",
            "--config",
            "v.toml",
            "--window",
            "48",
            "--archive",
            &"ab".repeat(32),
        ])
        .unwrap();
        assert_eq!(cli.args.window, 48);
        assert_eq!(
            parse_digest(cli.args.archive.as_deref().unwrap()).unwrap(),
            [0xab; 32]
        );
        assert!(Cli::try_parse_from(["reverify", "--config", "v.toml"]).is_err());
        for bad in ["", "ab", &"zz".repeat(32), &"ab".repeat(33)] {
            assert!(matches!(
                parse_digest(bad),
                Err(ReverifyError::BadDigest { .. })
            ));
        }
    }

    fn verdict(reason: &str, detail: &str) -> Verdict {
        Verdict {
            accepted: reason == "accepted",
            reason: reason.into(),
            detail: detail.into(),
        }
    }

    #[test]
    fn a_different_reason_is_a_mismatch_a_different_detail_is_not() {
        let miner = Hotkey([4; 32]);
        let entry = |i: u32, reason: &str| ArchiveEntry {
            miner,
            bundle_sha256: [0; 32],
            group_index: i,
            group: group(miner, u64::from(i)),
            recomputed_logprobs: Vec::new(),
            evidence: Vec::new(),
            verdict: verdict(reason, "0.010"),
        };
        let sealed = SealedWindow {
            window: 48,
            validator: Hotkey([7; 32]),
            checkpoint: [0; 32],
            entries: vec![
                entry(0, "accepted"),
                entry(1, "proof_failed"),
                entry(2, "accepted"),
            ],
            credits: Vec::new(),
        };
        let again = vec![
            verdict("accepted", "0.010"),
            verdict("proof_failed", "0.011"),
            verdict("logprobs_mismatch", "off by 0.2"),
        ];
        let check = compare(&sealed, "aa".into(), 3, again);
        assert_eq!(check.mismatches(), 1);
        let mut text = Vec::new();
        print_checks(&[check], &mut text).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(text.contains("3 entries, 1 disagree"), "{text}");
        assert!(
            text.contains("MISMATCH")
                && text.contains("re-verified logprobs_mismatch (off by 0.2)"),
            "{text}"
        );
        assert!(text.contains("(detail \"0.010\" vs \"0.011\")"), "{text}");
    }
}
