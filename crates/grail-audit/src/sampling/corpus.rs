//! Whose noise ([`Setup`]) and the honest corpus: every rollout slot sampled with its
//! public noise as a miner does.

use grail_proto::sampling::RolloutNoise;
use grail_proto::Hotkey;

use grail_infer::model::Model;
use grail_infer::{InferError, SamplingParams};

/// Whose noise: one window, one miner, M rollouts per prompt.
#[derive(Debug, Clone)]
pub struct Setup {
    /// The window's randomness.
    pub window_randomness: [u8; 32],
    /// The miner.
    pub hotkey: Hotkey,
    /// Rollouts (noise streams) per prompt.
    pub rollouts_per_prompt: usize,
    /// Most tokens a completion may have.
    pub max_new_tokens: usize,
    /// Ids that end a completion.
    pub eos: Vec<u32>,
}

impl Setup {
    /// The public noise of rollout `index` of `prompt`.
    pub fn noise(&self, prompt: &[u32], index: usize) -> RolloutNoise {
        RolloutNoise::new(&self.window_randomness, &self.hotkey, prompt, index as u32)
    }

    /// Protocol sampling (no top-k/top-p) at `temperature`.
    pub fn params(&self, temperature: f64) -> SamplingParams {
        SamplingParams {
            max_new_tokens: self.max_new_tokens,
            temperature,
            ..SamplingParams::default()
        }
    }
}

/// Prompts and the honest completion of every rollout slot; slot `s` is rollout
/// `s % rollouts_per_prompt` of prompt `s / rollouts_per_prompt`.
#[derive(Debug, Clone)]
pub struct Corpus {
    /// Prompt tokens.
    pub prompts: Vec<Vec<u32>>,
    /// Honest completion tokens per slot (the EOS included when it stopped on one).
    pub completions: Vec<Vec<u32>>,
}

impl Corpus {
    /// Samples prompts from `next_prompt(i)` (i = 0, 1, …) with the public noise at
    /// temperature 1 until the completions hold `target` positions. `progress` sees the
    /// positions so far.
    pub fn sample(
        model: &Model,
        setup: &Setup,
        target: usize,
        next_prompt: &mut dyn FnMut(usize) -> Result<Vec<u32>, InferError>,
        progress: &mut dyn FnMut(usize),
    ) -> Result<Self, InferError> {
        let mut corpus = Corpus {
            prompts: Vec::new(),
            completions: Vec::new(),
        };
        while corpus.positions() < target {
            let first = corpus.prompts.len();
            let prompts = (first..first + GROUPS_PER_BATCH)
                .map(&mut *next_prompt)
                .collect::<Result<Vec<_>, _>>()?;
            corpus
                .completions
                .extend(sample_public(model, &prompts, setup, 1.0)?);
            corpus.prompts.extend(prompts);
            progress(corpus.positions());
        }
        Ok(corpus)
    }

    /// Completion positions.
    pub fn positions(&self) -> usize {
        self.completions.iter().map(Vec::len).sum()
    }

    /// The prompt of slot `s`.
    pub fn prompt(&self, setup: &Setup, s: usize) -> &[u32] {
        &self.prompts[s / setup.rollouts_per_prompt.max(1)]
    }

    /// The public noise of slot `s`.
    pub fn noise(&self, setup: &Setup, s: usize) -> RolloutNoise {
        setup.noise(self.prompt(setup, s), s % setup.rollouts_per_prompt.max(1))
    }
}

/// Groups sampled in one left-padded batch, as a miner with `miner.batch_groups = 4` does.
pub const GROUPS_PER_BATCH: usize = 4;

/// Samples every rollout slot of `prompts` as a miner does: [`GROUPS_PER_BATCH`] prompts
/// at a time prefilled together, their M rows each decoded together through the KV
/// cache (`Model::generate_groups`), each row with its public noise.
pub fn sample_public(
    model: &Model,
    prompts: &[Vec<u32>],
    setup: &Setup,
    temperature: f64,
) -> Result<Vec<Vec<u32>>, InferError> {
    let params = setup.params(temperature);
    let mut out = Vec::with_capacity(prompts.len() * setup.rollouts_per_prompt);
    for batch in prompts.chunks(GROUPS_PER_BATCH) {
        let mut requests: Vec<grail_infer::GroupRequest<'_, RolloutNoise>> = batch
            .iter()
            .map(|prompt| grail_infer::GroupRequest {
                prompt,
                noise: (0..setup.rollouts_per_prompt)
                    .map(|i| setup.noise(prompt, i))
                    .collect(),
            })
            .collect();
        let groups = model.generate_groups(
            &mut requests,
            &params,
            &setup.eos,
            &mut grail_infer::no_progress,
        )?;
        out.extend(groups.into_iter().flatten().map(|c| c.tokens));
    }
    Ok(out)
}
