//! Reading the validators' sealed archives of a window.

use std::collections::{BTreeMap, BTreeSet};

use grail_proto::archive::SealedWindow;
use grail_proto::params::PIN_SECONDS;
use grail_proto::Hotkey;
use grail_store::Store;
use tracing::warn;

use crate::network::Stop;
use crate::wiring::Wiring;
use crate::NodeError;

/// The validators of the subnet (hotkey → stake, every validator with a permit) and the
/// sealed archives of `window` in their buckets. Waits until validators holding a stake
/// majority have sealed the window (earlier, no group can have a majority's agreement) or
/// two windows have passed since its challenge could be drawn (the deadline plus
/// `PIN_SECONDS`); `None` when stopped meanwhile.
///
/// # Errors
/// The chain or a validator's bucket listing cannot be read (an unreadable archive is
/// skipped with a warning).
pub async fn window_archives(
    w: &Wiring,
    window: u64,
    stop: &mut Stop,
) -> Result<Option<(BTreeMap<Hotkey, u64>, Vec<SealedWindow>)>, NodeError> {
    // Who the validators are is read once per window; their buckets are polled.
    let (metagraph, stores) = w.registered_stores(|n| n.validator_permit).await?;
    let stakes: BTreeMap<Hotkey, u64> = metagraph
        .neurons
        .iter()
        .filter(|n| n.validator_permit)
        .map(|n| (n.hotkey, n.stake))
        .collect();
    let validators: Vec<(Hotkey, Store)> = stores
        .into_iter()
        .map(|(n, store)| (n.hotkey, store))
        .collect();
    let wl = w.net.window_length;
    // Validators check a window once its challenge is public, `PIN_SECONDS` after the
    // deadline; the two windows of patience count from then.
    let pin_blocks = (PIN_SECONDS * 1000).div_ceil(w.net.block_time_ms.max(1)) + 1;
    let give_up = window + 3 * wl + pin_blocks;
    let mut cache = BTreeMap::new();
    loop {
        sealed_archives(&validators, window, &mut cache).await?;
        let head = w.net.chain.block_number().await?;
        if majority_published(&stakes, &cache) || head > give_up {
            return Ok(Some((stakes, cache.into_values().collect())));
        }
        if stop.sleep(std::time::Duration::from_millis(500)).await {
            return Ok(None);
        }
    }
}

/// Reads the sealed archives of `window` in the validators' buckets that are not in
/// `cache` yet (keyed by validator and archive digest); an archive that cannot be read or
/// names another validator is skipped with a warning.
///
/// # Errors
/// A bucket cannot be listed.
pub(crate) async fn sealed_archives(
    validators: &[(Hotkey, Store)],
    window: u64,
    cache: &mut BTreeMap<(Hotkey, [u8; 32]), SealedWindow>,
) -> Result<(), NodeError> {
    for (hotkey, store) in validators {
        for digest in store.list_archives(window).await? {
            if cache.contains_key(&(*hotkey, digest)) {
                continue;
            }
            match store.get_archive(window, &digest).await {
                Ok((a, _)) if a.validator == *hotkey => {
                    cache.insert((*hotkey, digest), a);
                }
                Ok(_) => warn!(
                    window,
                    "an archive in {} names another validator",
                    hotkey.to_ss58()
                ),
                Err(e) => warn!(window, "unreadable archive: {e}"),
            }
        }
    }
    Ok(())
}

/// Whether the validators that published archives hold more than half of the stake (or
/// of the validators, when no stake is set): before that, no group can have a majority.
fn majority_published(
    stakes: &BTreeMap<Hotkey, u64>,
    archives: &BTreeMap<(Hotkey, [u8; 32]), SealedWindow>,
) -> bool {
    let by_count = stakes.values().all(|&s| s == 0);
    let weight = |s: u64| if by_count { 1u128 } else { u128::from(s) };
    let total: u128 = stakes.values().map(|&s| weight(s)).sum();
    let published: BTreeSet<&Hotkey> = archives.keys().map(|(h, _)| h).collect();
    let have: u128 = published
        .iter()
        .filter_map(|h| stakes.get(*h))
        .map(|&s| weight(s))
        .sum();
    total > 0 && 2 * have > total
}
