//! Offline re-verification of a sealed window.

use grail_proto::archive::{SealedWindow, Verdict};
use grail_proto::params::EVIDENCE_TOLERANCE;
use grail_proto::rules::evidence::check_evidence;
use grail_proto::rules::Reason;

use super::WindowInputs;
use crate::verify::{recompute_gaps, GroupOutcome, PromptCache};
use grail_node::NodeError;

/// The verdict string `reverify_archive` reports for an entry accepted again whose
/// archived evidence is not the re-verifier's (never archived: not a §12 reason).
pub const EVIDENCE_MISMATCH: &str = "evidence_mismatch";

/// Re-checks a sealed window offline: every archived group runs the per-group checks
/// again (binding, structure and, for groups that had one, the forward pass); verdicts
/// that depend on groups outside the archive (duplicates within the full bundle, replays
/// of earlier windows) are confirmed when the group passes its own binding and structure
/// checks; a `copycat` is confirmed when the group fails the sampling check under its
/// own miner's noise (that another bundle held the same work is taken from the
/// archive). An entry accepted again must also carry the archiving validator's evidence
/// (`grail_proto::rules::evidence::check_evidence` against a fresh forward pass): when
/// it does not, its verdict is [`EVIDENCE_MISMATCH`]. Returns the verdicts in entry
/// order; an error is the re-verifier's own failure (its forward pass).
///
/// # Errors
/// The re-verifier's own failure (prompt rendering, forward pass, environment).
pub fn reverify_archive(
    archive: &SealedWindow,
    inputs: &WindowInputs<'_>,
) -> Result<Vec<grail_proto::archive::Verdict>, NodeError> {
    // The evidence positions are the archiving validator's.
    let params = inputs.params(archive.validator);
    let check = inputs.check(&params);
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
            let outcome = match check
                .prechecks()
                .precheck(&params, &e.miner, &e.group, &prompts)?
            {
                Err(r) => GroupOutcome::rejected(r),
                Ok(()) if cross_group => return Ok(e.verdict.clone()),
                Ok(()) => check.check_forward(&e.group)?,
            };
            if archived == Some(Reason::Copycat) && outcome.reason() == Reason::SamplingMismatch {
                return Ok(e.verdict.clone());
            }
            if outcome.verdict.accepted && e.verdict.accepted {
                let gaps = recompute_gaps(inputs.context, &e.group)?;
                let cr = &inputs.challenge_randomness;
                if let Err(err) =
                    check_evidence(e, &archive.validator, cr, &gaps, EVIDENCE_TOLERANCE)
                {
                    return Ok(Verdict {
                        accepted: false,
                        reason: EVIDENCE_MISMATCH.into(),
                        detail: err.to_string(),
                    });
                }
            }
            Ok(outcome.verdict)
        })
        .collect()
}
