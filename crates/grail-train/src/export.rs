//! `grail-trainer export`: the accepted rollouts of a range of sealed windows, from every
//! permitted validator's bucket, as one Parquet file (`grail_store::export`: one row per
//! rollout, readable by pandas, pyarrow and Hugging Face `datasets`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use grail_proto::archive::SealedWindow;
use grail_proto::Hotkey;
use grail_store::Store;

use super::archives::sealed_archives;
use grail_node::cli::{init_logging, ConfigArgs, LogFormat};
use grail_node::wiring::Wiring;
use grail_node::NodeError;

/// Most windows one export reads.
pub const MAX_EXPORT_WINDOWS: u64 = 100_000;

/// Flags of `grail-trainer export`.
#[derive(Debug, Clone, clap::Args)]
pub struct ExportArgs {
    /// The configuration and its overrides (the chain and subnet to read).
    #[command(flatten)]
    pub node: ConfigArgs,
    /// First window (a block number; rounded up to a window start).
    #[arg(long)]
    pub from: u64,
    /// Last window (inclusive).
    #[arg(long)]
    pub to: u64,
    /// The Parquet file to write (replaced atomically).
    #[arg(long)]
    pub out: PathBuf,
}

/// Why an export cannot run.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The window range is empty or too long.
    #[error("windows {from}..={to}: {why}")]
    Range {
        /// First window asked.
        from: u64,
        /// Last window asked.
        to: u64,
        /// What is wrong.
        why: String,
    },
}

/// What an export wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportReport {
    /// Windows read.
    pub windows: usize,
    /// Archives read (one per validator and window, usually).
    pub archives: usize,
    /// Rows written (accepted rollouts).
    pub rows: usize,
}

impl From<ExportError> for NodeError {
    fn from(e: ExportError) -> Self {
        NodeError::Command(Box::new(e))
    }
}

/// The window starts in `from..=to` for windows of `window_length` blocks.
///
/// # Errors
/// An empty range or one of more than [`MAX_EXPORT_WINDOWS`] windows.
pub fn windows_in(from: u64, to: u64, window_length: u64) -> Result<Vec<u64>, ExportError> {
    let range = |why: String| ExportError::Range { from, to, why };
    let wl = window_length.max(1);
    let first = from
        .checked_next_multiple_of(wl)
        .ok_or_else(|| range("past the last block".into()))?;
    if first > to {
        return Err(range(format!(
            "no window starts in the range (windows are {wl} blocks)"
        )));
    }
    let count = (to - first) / wl + 1;
    if count > MAX_EXPORT_WINDOWS {
        return Err(range(format!(
            "{count} windows, over the limit of {MAX_EXPORT_WINDOWS} per export"
        )));
    }
    Ok((0..count).map(|i| first + i * wl).collect())
}

/// Reads the sealed archives of `windows` from `validators`' buckets (archives that cannot
/// be read, or name another validator, are skipped with a warning) and writes their
/// accepted rollouts to `out`.
///
/// # Errors
/// A bucket cannot be listed, or the file cannot be written.
pub async fn export_archives(
    validators: &[(Hotkey, Store)],
    windows: &[u64],
    out: &Path,
) -> Result<ExportReport, NodeError> {
    let mut archives: Vec<SealedWindow> = Vec::new();
    for &window in windows {
        let mut cache = BTreeMap::new();
        sealed_archives(validators, window, &mut cache).await?;
        archives.extend(cache.into_values());
    }
    let rows = grail_node::blocking(|| grail_store::export::export_parquet(&archives, out))?;
    Ok(ExportReport {
        windows: windows.len(),
        archives: archives.len(),
        rows,
    })
}

/// Exports windows `from..=to` from every validator with a permit whose bucket is
/// published on chain.
///
/// # Errors
/// As [`windows_in`] and [`export_archives`]; the chain cannot be read.
pub async fn export_windows(
    w: &Wiring,
    from: u64,
    to: u64,
    out: &Path,
) -> Result<ExportReport, NodeError> {
    let windows = windows_in(from, to, w.net.window_length)?;
    let (_, stores) = w.registered_stores(|n| n.validator_permit).await?;
    let validators: Vec<(Hotkey, Store)> = stores.into_iter().map(|(n, s)| (n.hotkey, s)).collect();
    export_archives(&validators, &windows, out).await
}

/// `grail-trainer export`: writes the file and prints what it holds to stderr.
///
/// # Errors
/// As [`export_windows`].
pub async fn run(args: &ExportArgs) -> Result<ExportReport, NodeError> {
    init_logging(LogFormat::Human);
    let w = args.node.wiring().await?;
    let report = export_windows(&w, args.from, args.to, &args.out).await?;
    eprintln!(
        "wrote {} rows (accepted rollouts) from {} archives of {} windows to {}",
        report.rows,
        report.archives,
        report.windows,
        args.out.display()
    );
    Ok(report)
}

#[cfg(test)]
mod tests {
    use grail_proto::archive::{ArchiveEntry, Verdict};
    use grail_store::StoreConfig;

    use super::*;
    use grail_validate::testing::group;

    #[test]
    fn the_range_is_aligned_and_bounded() {
        assert_eq!(windows_in(30, 95, 30).unwrap(), [30, 60, 90]);
        assert_eq!(windows_in(31, 95, 30).unwrap(), [60, 90]);
        assert_eq!(windows_in(0, 0, 30).unwrap(), [0]);
        assert!(windows_in(31, 59, 30).is_err());
        assert!(windows_in(90, 30, 30).is_err());
        assert!(windows_in(0, u64::MAX, 30).is_err());
        assert!(windows_in(u64::MAX, u64::MAX, 30).is_err());
    }

    fn sealed(window: u64, validator: Hotkey) -> SealedWindow {
        let miner = Hotkey([1; 32]);
        let entry = |i: u32, accepted: bool| ArchiveEntry {
            miner,
            bundle_sha256: [0; 32],
            group_index: i,
            group: group(miner, 10 + u64::from(i)),
            recomputed_logprobs: vec![vec![-0.25; 2]; 2],
            evidence: Vec::new(),
            verdict: Verdict {
                accepted,
                reason: if accepted { "accepted" } else { "proof_failed" }.into(),
                detail: String::new(),
            },
        };
        SealedWindow {
            window,
            validator,
            checkpoint: [9; 32],
            entries: vec![entry(0, true), entry(1, false)],
            credits: Vec::new(),
        }
    }

    #[tokio::test]
    async fn accepted_rollouts_of_the_range_are_written_for_pandas() {
        let dir = tempfile::tempdir().unwrap();
        let open = |name: &str| {
            StoreConfig::Local {
                dir: dir.path().join(name),
            }
            .open()
            .unwrap()
        };
        let (a, b) = (Hotkey([7; 32]), Hotkey([8; 32]));
        let (store_a, store_b) = (open("a"), open("b"));
        for window in [30, 60, 90] {
            store_a.put_archive(&sealed(window, a)).await.unwrap();
        }
        store_b.put_archive(&sealed(60, b)).await.unwrap();
        // An archive in b's bucket that claims to be a's is not b's: left out.
        store_b.put_archive(&sealed(30, a)).await.unwrap();
        let out = dir.path().join("rollouts.parquet");
        let validators = [(a, store_a), (b, store_b)];
        let report = export_archives(&validators, &windows_in(30, 60, 30).unwrap(), &out)
            .await
            .unwrap();
        // Windows 30 (a) and 60 (a, b): one accepted group of two rollouts each.
        assert_eq!(
            report,
            ExportReport {
                windows: 2,
                archives: 3,
                rows: 6
            }
        );
        let Some(python) = std::env::var_os("GRAIL_TOOLS_PYTHON").filter(|p| !p.is_empty()) else {
            eprintln!("SKIPPED the pandas read: GRAIL_TOOLS_PYTHON not set");
            return;
        };
        let script = "import sys, pandas\n\
                      df = pandas.read_parquet(sys.argv[1])\n\
                      print(len(df), sorted(int(w) for w in set(df.window)), float(df.reward.sum()))";
        let run = std::process::Command::new(python)
            .args(["-c", script])
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&run.stdout).trim(),
            "6 [30, 60] 3.0"
        );
    }
}
