//! Test helpers other crates' tests use too (feature `test-helpers`): small groups,
//! archive entries and miner reports that are well-formed but carry no valid proof.

use grail_proto::archive::Verdict;
use grail_proto::{
    EnvironmentId, GenerationParams, Group, GroupHeader, Hotkey, Rollout, Signature, SketchDigest,
};

use crate::verify::{CheckedGroup, GroupOutcome, MinerReport};

/// An accepted archive entry of `group`, signed by `miner`, with the validator's
/// log-probs of a [`group`].
pub fn accepted_entry(
    miner: &grail_proto::signing::Keypair,
    mut group: Group,
) -> grail_proto::archive::ArchiveEntry {
    miner.sign_group(&mut group);
    grail_proto::archive::ArchiveEntry {
        miner: miner.public(),
        bundle_sha256: [0; 32],
        group_index: group.header.prompt_id as u32,
        group,
        recomputed_logprobs: vec![vec![-0.5; 2]; 2],
        // Two completion tokens per rollout: the evidence covers both, for any
        // validator (a well-formed archive, no copy).
        evidence: vec![vec![0.5, 1.5]; 2],
        verdict: Verdict {
            accepted: true,
            reason: "accepted".into(),
            detail: String::new(),
        },
    }
}

/// A small group of `hotkey` for `prompt_id` (not a valid proof: the history only
/// reads its header).
pub fn group(hotkey: Hotkey, prompt_id: u64) -> Group {
    Group {
        header: GroupHeader {
            protocol_version: grail_proto::params::PROTOCOL_VERSION,
            hotkey,
            window: 40,
            environment: EnvironmentId {
                name: "math".into(),
                params: "v1".into(),
            },
            prompt_id,
            checkpoint: [9; 32],
            window_randomness: [3; 32],
            generation: GenerationParams {
                max_new_tokens: 4,
                temperature_milli: 900,
            },
        },
        rollouts: (0..2)
            .map(|i| Rollout {
                tokens: vec![1, 2, 3 + i, 4],
                prompt_len: 2,
                sketches: vec![SketchDigest([0, 0]); 4],
                logprobs: vec![-0.5; 2],
                reward: f64::from(i),
                advantage: f64::from(i) - 0.5,
                success: i == 1,
            })
            .collect(),
        signature: Signature([0; 64]),
    }
}

/// A report of `hotkey` with one checked group per reason in `reasons`.
pub fn report(hotkey: Hotkey, uid: u16, reasons: &[&str]) -> MinerReport {
    let mut r = MinerReport::new(hotkey, uid);
    r.groups_submitted = reasons.len() + 1;
    r.eligible = reasons.len();
    r.checked = reasons
        .iter()
        .enumerate()
        .map(|(i, reason)| CheckedGroup {
            index: i as u32,
            group: group(hotkey, 100 + i as u64),
            outcome: GroupOutcome {
                verdict: Verdict {
                    accepted: *reason == "accepted",
                    reason: reason.to_string(),
                    detail: "d".repeat(500),
                },
                recomputed_logprobs: Vec::new(),
                rewards: Vec::new(),
                evidence: Vec::new(),
                in_zone: *reason == "accepted",
                sampling: Default::default(),
            },
        })
        .collect();
    r.credited = if r.zeroed() { 0.0 } else { 1.5 };
    r
}

/// A one-prompt job (`prompt {n}`, answer 1, exact reward, groups of 4, deadline 10 000).
pub fn job(n: usize) -> grail_jobs::Job {
    let req = grail_jobs::spec::JobRequest {
        prompts: vec![grail_jobs::spec::PromptRequest {
            prompt: Some(format!("prompt {n}")),
            answer: Some("1".into()),
            ..Default::default()
        }],
        reward: grail_jobs::RewardSpec::Exact,
        group_size: 4,
        max_new_tokens: 16,
        temperature: 1.0,
        groups_per_prompt: 2,
        deadline_unix: 10_000,
        pass_threshold: 1.0,
    };
    grail_jobs::Job::from_request(&req, 1_000)
        .expect("a valid job")
        .0
}
