//! Off-policy samplers: best-of-n from private randomness and one edited token.

use rand_core::RngCore;

use grail_infer::model::Model;
use grail_infer::InferError;

use super::corpus::Setup;

/// Best-of-n: `n` candidates per slot from private randomness at temperature 1, and the
/// one with the highest log-probability submitted.
pub fn sample_best_of(
    model: &Model,
    prompts: &[Vec<u32>],
    setup: &Setup,
    n: usize,
    rng: &mut impl RngCore,
) -> Result<Vec<Vec<u32>>, InferError> {
    let params = setup.params(1.0);
    let m = setup.rollouts_per_prompt;
    let mut out = Vec::with_capacity(prompts.len() * m);
    for prompt in prompts {
        let candidates = model.generate_group(
            prompt,
            m * n,
            &params,
            &setup.eos,
            rng,
            &mut grail_infer::no_progress,
        )?;
        for slot in candidates.chunks(n.max(1)) {
            let score =
                |c: &grail_infer::Completion| c.logprobs.iter().map(|&l| l as f64).sum::<f64>();
            let best = slot
                .iter()
                .max_by(|a, b| score(a).total_cmp(&score(b)))
                .map(|c| c.tokens.clone())
                .unwrap_or_default();
            out.push(best);
        }
    }
    Ok(out)
}

/// One edit per slot: a position chosen at random (never a final EOS) whose token is
/// replaced by `alternatives`' choice; the rest of the rollout is kept. Returns the edited
/// completions.
pub fn edit_one_token(
    completions: &[Vec<u32>],
    alternatives: &[Vec<(u32, f64)>],
    eos: &[u32],
    rng: &mut impl RngCore,
) -> Vec<Vec<u32>> {
    completions
        .iter()
        .zip(alternatives)
        .map(|(c, alt)| {
            let mut edited = c.clone();
            let eligible = match c.last() {
                Some(t) if eos.contains(t) => c.len() - 1,
                _ => c.len(),
            };
            if eligible > 0 {
                let t = (rng.next_u64() % eligible as u64) as usize;
                if let Some(&(token, _)) = alt.get(t) {
                    edited[t] = token;
                }
            }
            edited
        })
        .collect()
}
