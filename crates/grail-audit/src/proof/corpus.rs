//! The audited corpus: prompts with completions sampled from the model.

use rand_core::RngCore;

use grail_infer::model::Model;
use grail_infer::{InferError, Progress, SamplingParams};

/// Token sequences to audit: prompts with sampled completions.
pub struct Corpus {
    /// Prompt + completion tokens.
    pub sequences: Vec<Vec<u32>>,
    /// Prompt length of each sequence.
    pub prompt_lens: Vec<usize>,
}

impl Corpus {
    /// Samples `per_prompt` completions of up to `max_new` tokens for each prompt.
    pub fn sample(
        model: &Model,
        prompts: &[Vec<u32>],
        per_prompt: usize,
        max_new: usize,
        eos: &[u32],
        rng: &mut impl RngCore,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Self, InferError> {
        let params = SamplingParams {
            max_new_tokens: max_new,
            ..SamplingParams::default()
        };
        let mut corpus = Corpus {
            sequences: Vec::new(),
            prompt_lens: Vec::new(),
        };
        for (i, prompt) in prompts.iter().enumerate() {
            progress(Progress::new(
                "sampling corpus",
                i as u64,
                prompts.len() as u64,
            ));
            for c in model.generate_group(
                prompt,
                per_prompt,
                &params,
                eos,
                rng,
                &mut grail_infer::no_progress,
            )? {
                corpus
                    .sequences
                    .push(prompt.iter().chain(&c.tokens).copied().collect());
                corpus.prompt_lens.push(prompt.len());
            }
        }
        progress(Progress::new(
            "sampling corpus",
            prompts.len() as u64,
            prompts.len() as u64,
        ));
        Ok(corpus)
    }

    /// Every position of every sequence.
    pub fn positions(&self) -> usize {
        self.sequences.iter().map(Vec::len).sum()
    }
}
