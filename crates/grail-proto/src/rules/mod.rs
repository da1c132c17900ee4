//! The validator's normative rules as pure functions: what a group must satisfy, in which
//! order, what each failure is called ([`Reason`]) and what it costs the miner
//! ([`Consequence`]), and how a miner's credited work follows from a checked sample.
//!
//! The node crates only fetch bytes, render prompts, run forward passes and compute
//! rewards; every decision is taken here, and [`crate::verifier`] runs the stages in
//! this order (docs/protocol.md §12):
//!
//! 1. [`group::check_binding`] — schema, hotkey, window, randomness, environment,
//!    sampling parameters, checkpoint (field comparisons);
//! 2. [`group::check_structure`] — group size, token limits, canonical prompt,
//!    termination (tokenizer only), then [`group::check_signature`] (the one costly
//!    check, last; [`crate::verifier::BundleCheck`] batches it over a bundle);
//! 3. [`bundle::duplicates`] — one group per prompt and no repeated group per bundle;
//! 4. [`bundle::shared_work`] and [`bundle::ReplaySet`] — work also in another miner's
//!    bundle is judged by who sampled it when checked ([`bundle::judge_copy`], stage 6);
//!    work from an earlier window of the checkpoint is void;
//! 5. [`bundle::sample_groups`] — which groups get a forward pass;
//! 6. [`group::check_forward`] — proof, log-probs, sampling, reward, advantages; on work
//!    another miner also holds, [`bundle::judge_copy`];
//! 7. [`bundle::credited_work`] — the miner's work for scoring ([`crate::scoring`]);
//! 8. [`training::agreed_entries`] — what a trainer learns from: groups that validators
//!    holding a stake majority accepted, weighted by the miners' agreed credit
//!    ([`training::agreed_credits`], [`training::training_slots`]); an archive votes
//!    only with evidence of its forward passes, and a copy of another validator's
//!    evidence is no vote ([`evidence`]).
//!
//! `examples/verify_bundle.rs` runs every stage on a toy model. Each failure is a
//! [`Rejection`]: a [`Reason`] with a stable name and its [`Consequence`].
//!
//! ```
//! use grail_proto::rules::{Consequence, Reason};
//!
//! let reason: Reason = "sampling_mismatch".parse()?;
//! assert_eq!(reason, Reason::SamplingMismatch);
//! assert_eq!(reason.consequence(), Consequence::ZeroWindow); // fraud costs the window
//! assert_eq!(Reason::Replay.consequence(), Consequence::Void); // a repeat costs the group
//! assert_eq!(Reason::Accepted.to_string(), "accepted");
//! assert!("no_such_reason".parse::<Reason>().is_err());
//! # Ok::<(), grail_proto::rules::UnknownReason>(())
//! ```

use std::fmt;
use std::str::FromStr;

use crate::wire::{EnvironmentId, GenerationParams};

pub mod bundle;
pub mod evidence;
pub mod group;
pub mod training;

/// Why a group or bundle was not counted (or `Accepted`). The strings are stable: they
/// appear in archives, metrics, summaries and the HTTP API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// Every check passed.
    Accepted,
    /// No bundle for the window.
    Missing,
    /// Uploaded (or its digest published) after the deadline.
    LateUpload,
    /// Over the bundle size limit.
    Oversized,
    /// Bundle bytes do not match the published SHA-256, or no digest was published.
    Integrity,
    /// The miner's storage backend failed.
    StoreUnreachable,
    /// Not a bundle.
    Malformed,
    /// The bundle names a hotkey that is not registered.
    UnregisteredHotkey,
    /// Structure or limits of the bundle or group.
    Schema,
    /// A group or bundle names another hotkey than the bucket's owner.
    HotkeyMismatch,
    /// The group signature does not verify.
    Signature,
    /// Made for another window.
    WindowMismatch,
    /// Made with other window randomness.
    RandomnessMismatch,
    /// Another environment or environment version.
    EnvironmentMismatch,
    /// Other sampling parameters than the subnet's.
    GenerationMismatch,
    /// Made with another checkpoint than the one in effect.
    StaleCheckpoint,
    /// Not the subnet's group size, or rollouts of different prompts.
    GroupSize,
    /// Token ids outside the vocabulary or lengths over the caps.
    TokenLimits,
    /// Prompt tokens are not the canonical rendering of the prompt id.
    PromptMismatch,
    /// Not exactly one EOS at the end (or none at the length cap).
    BadTermination,
    /// The same group (same prompt and completions) twice in one bundle.
    DuplicateGroup,
    /// Two groups of one bundle for the same prompt.
    DuplicatePrompt,
    /// GRAIL proof rejected: the hidden states are not the checkpoint's.
    ProofFailed,
    /// Claimed log-probs differ from the recomputed ones.
    LogprobsMismatch,
    /// A token was not the one Gumbel-max sampling with the public noise gives.
    SamplingMismatch,
    /// Claimed reward or success differs from the environment's.
    RewardMismatch,
    /// Claimed advantages differ from the recomputation.
    AdvantagesMismatch,
    /// The same work was already submitted in an earlier window of this checkpoint.
    Replay,
    /// A checked group that does not follow this miner's public noise while the same
    /// work is in another miner's bundle: a copy of someone else's sampling (protocol v5;
    /// v4 voided the later upload instead).
    Copycat,
}

impl Reason {
    /// Every reason, in pipeline order.
    pub const ALL: [Reason; 29] = [
        Reason::Accepted,
        Reason::Missing,
        Reason::LateUpload,
        Reason::Oversized,
        Reason::Integrity,
        Reason::StoreUnreachable,
        Reason::Malformed,
        Reason::UnregisteredHotkey,
        Reason::Schema,
        Reason::HotkeyMismatch,
        Reason::Signature,
        Reason::WindowMismatch,
        Reason::RandomnessMismatch,
        Reason::EnvironmentMismatch,
        Reason::GenerationMismatch,
        Reason::StaleCheckpoint,
        Reason::GroupSize,
        Reason::TokenLimits,
        Reason::PromptMismatch,
        Reason::BadTermination,
        Reason::DuplicateGroup,
        Reason::DuplicatePrompt,
        Reason::ProofFailed,
        Reason::LogprobsMismatch,
        Reason::SamplingMismatch,
        Reason::RewardMismatch,
        Reason::AdvantagesMismatch,
        Reason::Replay,
        Reason::Copycat,
    ];

    /// The stable string.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Accepted => "accepted",
            Reason::Missing => "missing",
            Reason::LateUpload => "late_upload",
            Reason::Oversized => "oversized",
            Reason::Integrity => "integrity",
            Reason::StoreUnreachable => "store_unreachable",
            Reason::Malformed => "malformed",
            Reason::UnregisteredHotkey => "unregistered_hotkey",
            Reason::Schema => "schema",
            Reason::HotkeyMismatch => "hotkey_mismatch",
            Reason::Signature => "signature",
            Reason::WindowMismatch => "window_mismatch",
            Reason::RandomnessMismatch => "randomness_mismatch",
            Reason::EnvironmentMismatch => "environment_mismatch",
            Reason::GenerationMismatch => "generation_mismatch",
            Reason::StaleCheckpoint => "stale_checkpoint",
            Reason::GroupSize => "group_size",
            Reason::TokenLimits => "token_limits",
            Reason::PromptMismatch => "prompt_mismatch",
            Reason::BadTermination => "bad_termination",
            Reason::DuplicateGroup => "duplicate_group",
            Reason::DuplicatePrompt => "duplicate_prompt",
            Reason::ProofFailed => "proof_failed",
            Reason::LogprobsMismatch => "logprobs_mismatch",
            Reason::SamplingMismatch => "sampling_mismatch",
            Reason::RewardMismatch => "reward_mismatch",
            Reason::AdvantagesMismatch => "advantages_mismatch",
            Reason::Replay => "replay",
            Reason::Copycat => "copycat",
        }
    }

    /// What the reason costs the miner.
    pub fn consequence(self) -> Consequence {
        match self {
            Reason::Accepted => Consequence::Credit,
            // A replay may be an honest miner's near-deterministic group met again: void,
            // no penalty. A copy is not voided but judged: it zeroes the copier's window
            // like any sampling failure, and honest miners that collide pass their own checks.
            Reason::Replay => Consequence::Void,
            _ => Consequence::ZeroWindow,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no [`Reason`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown verdict reason `{0}`")]
pub struct UnknownReason(pub String);

impl FromStr for Reason {
    type Err = UnknownReason;

    /// Parses a stable reason string ([`Reason::as_str`]).
    ///
    /// # Errors
    ///
    /// [`UnknownReason`] for any other string (reasons of other versions included).
    fn from_str(s: &str) -> Result<Self, UnknownReason> {
        Reason::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownReason(s.to_string()))
    }
}

/// What a verdict costs the miner in its window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consequence {
    /// The group counts (when in the learning zone).
    Credit,
    /// The group counts for nothing; the rest of the window is unaffected.
    Void,
    /// The miner earns nothing for the whole window: only a dishonest or broken miner
    /// fails this check, and spot checks are only sound if failing one costs everything.
    ZeroWindow,
}

/// A failed check: its reason and a human-readable detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The named reason.
    pub reason: Reason,
    /// Detail (indices, distances, counts).
    pub detail: String,
}

impl Rejection {
    /// A rejection for `reason`.
    pub fn new(reason: Reason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason, self.detail)
    }
}

/// What every group of a window must say: the subnet's parameters and the window's values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowPlan {
    /// First block of the window.
    pub window: u64,
    /// Window randomness (sketch coefficients and sampling noise).
    pub window_randomness: [u8; 32],
    /// Identity of the checkpoint in effect.
    pub checkpoint: [u8; 32],
    /// The subnet's environment.
    pub environment: EnvironmentId,
    /// The subnet's sampling parameters.
    pub generation: GenerationParams,
    /// Rollouts per group.
    pub group_size: usize,
}

impl WindowPlan {
    /// The header a group of `hotkey` for prompt `prompt_id` carries in this window (what
    /// `group::check_binding` expects), at the current [`crate::params::PROTOCOL_VERSION`].
    pub fn header(&self, hotkey: crate::wire::Hotkey, prompt_id: u64) -> crate::wire::GroupHeader {
        crate::wire::GroupHeader {
            protocol_version: crate::params::PROTOCOL_VERSION,
            hotkey,
            window: self.window,
            environment: self.environment.clone(),
            prompt_id,
            checkpoint: self.checkpoint,
            window_randomness: self.window_randomness,
            generation: self.generation,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_strings_are_unique_and_round_trip() {
        let mut seen = std::collections::BTreeSet::new();
        for r in Reason::ALL {
            assert!(seen.insert(r.as_str()), "{r} twice");
            assert_eq!(r.as_str().parse::<Reason>(), Ok(r));
        }
        assert!("token_distribution".parse::<Reason>().is_err());
        assert_eq!(Reason::Replay.consequence(), Consequence::Void);
        assert_eq!(Reason::Copycat.consequence(), Consequence::ZeroWindow);
        assert_eq!(
            Reason::SamplingMismatch.consequence(),
            Consequence::ZeroWindow
        );
    }
}
