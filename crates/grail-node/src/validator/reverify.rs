//! Offline re-verification of a sealed window.

use grail_proto::archive::SealedWindow;
use grail_proto::rules::Reason;

use super::WindowInputs;
use crate::verify::{GroupOutcome, PromptCache};
use crate::NodeError;

/// Re-checks a sealed window offline: every archived group runs the per-group checks
/// again (binding, structure and, for groups that had one, the forward pass); verdicts
/// that depend on groups outside the archive (duplicates within the full bundle, replays
/// of earlier windows) are confirmed when the group passes its own binding and structure
/// checks; a `copycat` is confirmed when the group fails the sampling check under its
/// own miner's noise (that another bundle held the same work is taken from the
/// archive). Returns the verdicts in entry order; an error is the re-verifier's
/// own failure (its forward pass).
pub fn reverify_archive(
    archive: &SealedWindow,
    inputs: &WindowInputs<'_>,
) -> Result<Vec<grail_proto::archive::Verdict>, NodeError> {
    let coefficients = inputs.coefficients();
    let check = inputs.check(&coefficients);
    let prompts = PromptCache::new();
    archive
        .entries
        .iter()
        .map(|e| {
            let archived: Option<Reason> = e.verdict.reason.parse().ok();
            let cross_group = matches!(
                archived,
                Some(Reason::DuplicateGroup | Reason::DuplicatePrompt | Reason::Replay)
            );
            let outcome = match check.precheck(&e.miner, &e.group, &prompts)? {
                Err(r) => GroupOutcome::rejected(r),
                Ok(()) if cross_group => return Ok(e.verdict.clone()),
                Ok(()) => check.check_forward(&e.group)?,
            };
            if archived == Some(Reason::Copycat) && outcome.reason() == Reason::SamplingMismatch {
                return Ok(e.verdict.clone());
            }
            Ok(outcome.verdict)
        })
        .collect()
}
