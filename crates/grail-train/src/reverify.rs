//! The trainer's spot check of the validators' evidence (docs/protocol.md §12): per
//! window, `trainer.reverify_entries` random entries of each archive among those the
//! stake majority agreed on are re-verified with a forward pass of the checkpoint the
//! window was verified against (`grail_proto::rules::evidence::check_evidence`). The
//! choice uses the trainer's own OS randomness after every archive is sealed, so a
//! validator cannot know which of its entries will be checked. A validator whose evidence
//! is wrong (it ran no forward pass, or copied another validator's archive) loses its
//! votes and credits for the window; its stake still counts in the total, like a
//! validator that published nothing. Without the checkpoint (pruned, not published by
//! this trainer) or the window's challenge randomness, the window is not re-verified.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use grail_proto::archive::ArchiveEntry;
use grail_proto::binding::group_digest;
use grail_proto::params::EVIDENCE_TOLERANCE;
use grail_proto::prf::uniform_below;
use grail_proto::rules::evidence::{check_evidence, EvidenceError};
use grail_proto::Hotkey;
use grail_store::Store;
use rand_core::RngCore;
use tracing::{info, warn};

use super::archives::{own_archive, WindowArchives};
use super::state::Published;
use grail_node::checkpoints::{CheckpointId, CheckpointSource, CurrentModel};
use grail_node::context::ModelContext;
use grail_node::network::Network;
use grail_node::NodeError;
use grail_validate::verify::recompute_gaps;
use tch::Device;

/// Recomputed gaps of the window's groups, by group digest: a group several archives are
/// checked on runs once.
pub type GapCache = HashMap<[u8; 32], Vec<Vec<f64>>>;

/// The group digests to re-verify in each read archive: `per_archive` distinct ones
/// drawn uniformly with `rng` among its votes that are in `agreed` (the only ones that
/// can reach training; entries nobody else voted for cannot dilute the draw). An archive
/// with no agreed vote gets none.
pub fn choose_entries(
    archives: &WindowArchives,
    agreed: &BTreeSet<[u8; 32]>,
    per_archive: usize,
    rng: &mut impl RngCore,
) -> BTreeMap<Hotkey, Vec<[u8; 32]>> {
    archives
        .read
        .iter()
        .filter_map(|(v, a)| {
            let mut pool: Vec<[u8; 32]> = a.votes.intersection(agreed).copied().collect();
            let mut chosen = Vec::new();
            while chosen.len() < per_archive && !pool.is_empty() {
                let i = uniform_below(rng, pool.len() as u64) as usize;
                chosen.push(pool.swap_remove(i));
            }
            (!chosen.is_empty()).then_some((*v, chosen))
        })
        .collect()
}

/// Checks `validator`'s archived evidence of `entries` against the gaps of `context`'s
/// model (cached in `cache`). The inner error is the first entry whose evidence is wrong;
/// the outer one the trainer's own failure (its forward pass).
///
/// # Errors
/// The trainer's forward pass failed (nothing is held against the validator).
pub fn check_entries(
    context: &ModelContext,
    challenge_randomness: &[u8; 32],
    validator: &Hotkey,
    entries: &[&ArchiveEntry],
    cache: &mut GapCache,
) -> Result<Result<(), EvidenceError>, NodeError> {
    for e in entries {
        let digest = group_digest(&e.group);
        let gaps = match cache.get(&digest) {
            Some(g) => g,
            None => {
                let g = grail_node::blocking(|| recompute_gaps(context, &e.group))?;
                cache.entry(digest).or_insert(g)
            }
        };
        if let Err(wrong) =
            check_evidence(e, validator, challenge_randomness, gaps, EVIDENCE_TOLERANCE)
        {
            return Ok(Err(wrong));
        }
    }
    Ok(Ok(()))
}

/// Removes from `archives` every validator whose evidence failed (`caught`): it loses its
/// votes and credits for the window (its stake stays in the total).
pub fn exclude(archives: &mut WindowArchives, caught: &BTreeMap<Hotkey, EvidenceError>) {
    for (validator, why) in caught {
        if let Some(a) = archives.read.remove(validator) {
            warn!(
                window = a.header.window,
                "{}'s archive carries wrong evidence ({why}): its votes and credits do not count",
                validator.to_ss58()
            );
        }
    }
}

/// What screening a window needs: the chain and beacon (the window's challenge
/// randomness), this trainer's checkpoints and where to run them, and
/// `trainer.reverify_entries`.
#[derive(Clone, Copy)]
pub struct Screening<'a> {
    /// Chain and beacon.
    pub net: &'a Network,
    /// The trainer's checkpoints (the models evidence is re-verified with).
    pub checkpoints: &'a CheckpointSource,
    /// Where the models run.
    pub device: Device,
    /// Entries of each archive re-verified per window (0: only the copy rule runs).
    pub per_archive: usize,
}

/// The copy rule and the re-verification of one window's archives, as the trainer loop
/// runs them before agreement, with what `screening` holds: `validators` are the buckets
/// read, `voters` the stake agreement would count (the liveness rule's), which decides the
/// agreed entries drawn from. `model` caches the model of the last checkpoint used; `published` are this
/// trainer's checkpoints (the ones it can load). Returns the validators caught. Never
/// fails: what cannot be checked is skipped with an `info!`.
pub async fn screen_window(
    screening: &Screening<'_>,
    window: u64,
    (validators, voters): (&[(Hotkey, Store)], &BTreeMap<Hotkey, u64>),
    archives: &mut WindowArchives,
    published: &[Published],
    model: &mut Option<CurrentModel>,
) -> BTreeMap<Hotkey, EvidenceError> {
    let challenge_randomness = match screening.net.challenge_randomness(window).await {
        Ok(cr) => cr,
        Err(e) => {
            info!(
                window,
                "no challenge randomness, archives not screened for copies or re-verified: {e}"
            );
            return BTreeMap::new();
        }
    };
    archives.drop_copies(&challenge_randomness);
    let per_archive = screening.per_archive;
    if per_archive == 0 {
        return BTreeMap::new();
    }
    let agreed = archives.agreed(voters);
    let mut seed = [0u8; 32];
    rand_core::OsRng.fill_bytes(&mut seed);
    let mut rng = <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::from_seed(seed);
    let chosen = choose_entries(archives, &agreed, per_archive, &mut rng);
    let mut cache = GapCache::new();
    let mut caught = BTreeMap::new();
    for (validator, digests) in chosen {
        let Some(a) = archives.read.get(&validator) else {
            continue;
        };
        let checkpoint = a.header.checkpoint;
        let Some(p) = published
            .iter()
            .find(|p| p.digest == hex::encode(checkpoint))
        else {
            info!(
                window,
                checkpoint = hex::encode(&checkpoint[..6]),
                "not one of this trainer's checkpoints: {}'s archive is not re-verified",
                validator.to_ss58()
            );
            continue;
        };
        let id = CheckpointId {
            number: p.number,
            digest: checkpoint,
        };
        if let Err(e) =
            CurrentModel::ensure(model, screening.checkpoints, id, screening.device).await
        {
            info!(
                window,
                checkpoint = p.number,
                "checkpoint unavailable, archives not re-verified: {e}"
            );
            continue;
        }
        let Some(context) = model.as_ref().map(|m| &m.context) else {
            continue;
        };
        let Some((_, store)) = validators.iter().find(|(h, _)| *h == validator) else {
            continue;
        };
        let Some(full) = own_archive(store, &validator, window, &a.object.digest).await else {
            continue;
        };
        let entries: Vec<&ArchiveEntry> = digests
            .iter()
            .filter_map(|d| full.accepted().find(|e| group_digest(&e.group) == *d))
            .collect();
        match check_entries(
            context,
            &challenge_randomness,
            &validator,
            &entries,
            &mut cache,
        ) {
            Ok(Ok(())) => info!(
                window,
                entries = entries.len(),
                "{}'s evidence re-verified",
                validator.to_ss58()
            ),
            Ok(Err(wrong)) => {
                caught.insert(validator, wrong);
            }
            Err(e) => info!(
                window,
                "the trainer's own forward pass failed, {}'s archive not re-verified: {e}",
                validator.to_ss58()
            ),
        }
    }
    exclude(archives, &caught);
    caught
}

#[cfg(test)]
mod tests {
    use grail_proto::archive::SealedWindow;
    use grail_proto::rules::WindowPlan;
    use grail_proto::signing::Keypair;
    use grail_proto::{GenerationParams, SketchCoefficients};
    use grail_store::StoreConfig;
    use rand_core::SeedableRng;

    use super::*;
    use crate::archives::read_votes;
    use grail_mine::groups::make_group;
    use grail_validate::verify::WindowCheck;

    /// Honest validators a and b check two groups of one miner on the tiny model; a lazy
    /// validator accepts both with made-up evidence of the right shape (zeros, or the
    /// miner's claimed log-probs), and a copier re-publishes a's archive under its own
    /// hotkey after altering the values slightly (so the no-model copy rule misses it).
    /// Re-verification catches the lazy validator and the copier; both honest ones pass.
    #[tokio::test]
    async fn a_lazy_validators_fabricated_evidence_is_caught_by_the_trainer() {
        let dir = tempfile::tempdir().unwrap();
        let model_dir = dir.path().join("tiny");
        grail_infer::tiny::write_tiny_model(&grail_infer::tiny::TinySpec::default(), &model_dir)
            .unwrap();
        let context = ModelContext::load(&model_dir, tch::Device::Cpu).unwrap();
        let env = grail_env::by_name("math:0", None).unwrap();
        let window = 40;
        let plan = WindowPlan {
            window,
            window_randomness: [3; 32],
            checkpoint: [9; 32],
            environment: env.id(),
            generation: GenerationParams {
                max_new_tokens: 12,
                temperature_milli: 1000,
            },
            group_size: 2,
        };
        let coefficients =
            SketchCoefficients::derive(&plan.window_randomness, context.model.config().hidden_size);
        let miner = Keypair::from_seed(&[5; 32]);
        let groups: Vec<_> = (0..2)
            .map(|p| make_group(&context, env.as_ref(), &plan, &coefficients, &miner, p).unwrap())
            .collect();
        let cr = [7; 32];
        let (a, b, lazy, copier) = (
            Hotkey([1; 32]),
            Hotkey([2; 32]),
            Hotkey([3; 32]),
            Hotkey([4; 32]),
        );
        // What an honest validator archives: its own forward pass's evidence.
        let honest = |validator: Hotkey| -> SealedWindow {
            let params = grail_validate::verify::window_params(
                &context,
                plan.clone(),
                cr,
                validator,
                grail_proto::params::GROUPS_CHECKED,
            );
            let check = WindowCheck {
                context: &context,
                env: env.as_ref(),
                params: &params,
            };
            let entries = groups
                .iter()
                .map(|g| {
                    let outcome = check.check_forward(g).unwrap();
                    assert!(outcome.verdict.accepted, "{:?}", outcome.verdict);
                    ArchiveEntry {
                        miner: miner.public(),
                        bundle_sha256: [0; 32],
                        group_index: g.header.prompt_id as u32,
                        group: g.clone(),
                        recomputed_logprobs: outcome.recomputed_logprobs,
                        evidence: outcome.evidence,
                        verdict: outcome.verdict,
                    }
                })
                .collect();
            SealedWindow {
                window,
                validator,
                checkpoint: plan.checkpoint,
                entries,
                credits: Vec::new(),
            }
        };
        let (sealed_a, sealed_b) = (honest(a), honest(b));
        // The lazy validator copies a's verdicts and makes its evidence up: zeros for the
        // first group, the miner's claimed log-probs for the second.
        let mut sealed_lazy = SealedWindow {
            validator: lazy,
            ..sealed_a.clone()
        };
        for (k, e) in sealed_lazy.entries.iter_mut().enumerate() {
            e.evidence = e
                .evidence
                .iter()
                .zip(&e.group.rollouts)
                .map(|(v, r)| {
                    (0..v.len())
                        .map(|p| {
                            if k == 0 {
                                0.0
                            } else {
                                f64::from(r.logprobs[p])
                            }
                        })
                        .collect()
                })
                .collect();
        }
        let mut sealed_copy = SealedWindow {
            validator: copier,
            ..sealed_a.clone()
        };
        for e in &mut sealed_copy.entries {
            for v in e.evidence.iter_mut().flatten() {
                *v += 1e-9;
            }
        }
        let mut validators = Vec::new();
        for (i, sealed) in [&sealed_a, &sealed_b, &sealed_lazy, &sealed_copy]
            .into_iter()
            .enumerate()
        {
            let store = StoreConfig::Local {
                dir: dir.path().join(format!("v{i}")),
            }
            .open()
            .unwrap();
            store.put_archive(sealed).await.unwrap();
            validators.push((sealed.validator, store));
        }
        let mut archives = WindowArchives {
            stakes: BTreeMap::from([(a, 30), (b, 30), (lazy, 20), (copier, 20)]),
            read: BTreeMap::new(),
        };
        read_votes(&validators, window, u64::MAX, &mut archives.read)
            .await
            .unwrap();
        assert!(
            archives.drop_copies(&cr).is_empty(),
            "altered values pass the no-model copy rule"
        );
        let all = archives.stakes.clone();
        let agreed = archives.agreed(&all);
        assert_eq!(agreed.len(), 2, "everyone voted for both groups");
        let chosen = choose_entries(
            &archives,
            &agreed,
            1,
            &mut rand_chacha::ChaCha20Rng::seed_from_u64(1),
        );
        assert_eq!(chosen.len(), 4, "one entry of each archive");
        let mut cache = GapCache::new();
        let mut caught = BTreeMap::new();
        for (validator, digests) in &chosen {
            let (_, store) = validators.iter().find(|(h, _)| h == validator).unwrap();
            let object = &archives.read[validator].object;
            let full = own_archive(store, validator, window, &object.digest)
                .await
                .unwrap();
            let entries: Vec<&ArchiveEntry> = digests
                .iter()
                .map(|d| {
                    full.accepted()
                        .find(|e| group_digest(&e.group) == *d)
                        .unwrap()
                })
                .collect();
            if let Err(wrong) = check_entries(&context, &cr, validator, &entries, &mut cache)
                .expect("the trainer's forward pass")
            {
                caught.insert(*validator, wrong);
            }
        }
        assert_eq!(
            caught.keys().copied().collect::<Vec<_>>(),
            vec![lazy, copier],
            "{caught:?}"
        );
        assert!(cache.len() <= 2, "one forward pass per group");
        exclude(&mut archives, &caught);
        assert_eq!(archives.read.len(), 2);
        // The honest 60 of 100 still agree on both groups; the caught 40 vote nothing.
        assert_eq!(archives.agreed(&all), agreed);
        // Every entry of the lazy archive is wrong, whichever one is drawn.
        for e in sealed_lazy.accepted() {
            let gaps = recompute_gaps(&context, &e.group).unwrap();
            assert!(matches!(
                check_evidence(e, &lazy, &cr, &gaps, EVIDENCE_TOLERANCE),
                Err(EvidenceError::Mismatch { .. })
            ));
        }
        // An exact copy is already dropped by the copy rule, without a model.
        let exact = SealedWindow {
            validator: copier,
            ..sealed_a.clone()
        };
        let copies = validators[3].1.clone();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        copies.put_archive(&exact).await.unwrap();
        let mut again = WindowArchives {
            stakes: all.clone(),
            read: BTreeMap::new(),
        };
        read_votes(&validators[..1], window, u64::MAX, &mut again.read)
            .await
            .unwrap();
        read_votes(&validators[3..], window, u64::MAX, &mut again.read)
            .await
            .unwrap();
        let dropped = again.drop_copies(&cr);
        assert_eq!(dropped, BTreeMap::from([(copier, 2)]));
        assert!(again.read[&copier].votes.is_empty());
    }
}
