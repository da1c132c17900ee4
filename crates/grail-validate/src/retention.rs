//! Retention: what a validator forgets after each window. Its state keeps the summaries
//! and work history of the last `validator.retention_windows` windows and the per-miner
//! verdicts of the last `validator.verdict_windows`; its bucket keeps the sealed archives
//! of the last `retention_windows` (deleted with `grail_store::Store::prune_windows`).

use grail_store::Store;

use super::ValidatorState;
use grail_node::config::ValidatorSettings;
use grail_node::network::Network;
use grail_node::NodeError;

/// Forgets, in `state`, what is older than the retention after `window`: summaries and
/// work before the last `retention_windows` windows (0: keep them all), verdicts before
/// the last `verdict_windows` (0: keep none).
pub fn prune_state(
    state: &mut ValidatorState,
    net: &Network,
    settings: &ValidatorSettings,
    window: u64,
) {
    if let Some(first) = net.first_kept(window, settings.retention_windows) {
        state.windows.retain(|&w, _| w >= first);
        state.work.retain(|&w, _| w >= first);
        state.verdicts.prune_before(first);
    }
    match settings.verdict_windows {
        0 => state.verdicts.prune_before(u64::MAX),
        keep => {
            if let Some(first) = net.first_kept(window, keep) {
                state.verdicts.prune_before(first);
            }
        }
    }
}

/// Deletes this validator's sealed archives (and any bundles) of windows older than the
/// last `retention_windows` from its bucket; returns how many objects went.
///
/// # Errors
/// The bucket cannot be listed or an object cannot be deleted.
pub async fn prune_store(
    store: &Store,
    net: &Network,
    settings: &ValidatorSettings,
    window: u64,
) -> Result<usize, NodeError> {
    match net.first_kept(window, settings.retention_windows) {
        Some(first) => Ok(store.prune_windows(first).await?),
        None => Ok(0),
    }
}

#[cfg(test)]
mod tests {
    use grail_proto::archive::SealedWindow;
    use grail_proto::Hotkey;

    use super::*;
    use crate::testing::report;
    use crate::WindowSummary;
    use grail_node::sim;

    #[test]
    fn first_kept_counts_whole_windows_back() {
        let net = sim::network(); // windows of 4 blocks
        assert_eq!(net.first_kept(40, 0), None, "0 keeps everything");
        assert_eq!(net.first_kept(40, 1), Some(40));
        assert_eq!(net.first_kept(40, 3), Some(32));
        assert_eq!(net.first_kept(40, 11), None, "nothing is old enough yet");
        assert_eq!(net.first_kept(40, u64::MAX), None);
    }

    #[tokio::test]
    async fn old_windows_leave_the_state_and_the_bucket() {
        let dir = tempfile::tempdir().unwrap();
        let w = sim::wiring(dir.path(), sim::network(), 1);
        let settings = ValidatorSettings {
            rolling_windows: 2,
            retention_windows: 3,
            verdict_windows: 2,
            ..Default::default()
        };
        let mut state = ValidatorState::default();
        let miner = Hotkey([5; 32]);
        for window in (0..=40).step_by(4) {
            state.windows.insert(
                window,
                WindowSummary {
                    window,
                    ..Default::default()
                },
            );
            state.work.entry(window).or_default().insert(3, 1.0);
            state
                .verdicts
                .record(window, Some(0), &[report(miner, 3, &["accepted"])]);
            w.store
                .put_archive(&SealedWindow {
                    window,
                    validator: w.key.public(),
                    checkpoint: [0; 32],
                    entries: Vec::new(),
                    credits: Vec::new(),
                })
                .await
                .unwrap();
        }
        prune_state(&mut state, &w.net, &settings, 40);
        assert_eq!(
            state.windows.keys().copied().collect::<Vec<_>>(),
            [32, 36, 40]
        );
        assert_eq!(state.work.keys().copied().collect::<Vec<_>>(), [32, 36, 40]);
        let kept: Vec<u64> = state
            .verdicts
            .miner(&miner.to_ss58())
            .unwrap()
            .iter()
            .map(|v| v.window)
            .collect();
        assert_eq!(kept, [36, 40]);

        let removed = prune_store(&w.store, &w.net, &settings, 40).await.unwrap();
        assert_eq!(removed, 8, "windows 0..=28");
        for window in (0..=40).step_by(4) {
            let archives = w.store.list_archives(window).await.unwrap();
            assert_eq!(archives.len(), usize::from(window >= 32), "window {window}");
        }
        // Nothing older is left: a second pass deletes nothing.
        assert_eq!(
            prune_store(&w.store, &w.net, &settings, 40).await.unwrap(),
            0
        );

        // verdict_windows = 0 keeps no verdicts; retention_windows = 0 keeps every window.
        let all = ValidatorSettings {
            retention_windows: 0,
            verdict_windows: 0,
            ..settings
        };
        prune_state(&mut state, &w.net, &all, 44);
        assert!(state.verdicts.is_empty());
        assert_eq!(state.windows.len(), 3);
        assert_eq!(prune_store(&w.store, &w.net, &all, 44).await.unwrap(), 0);
    }
}
