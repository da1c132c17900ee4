//! A weighted mix of environments: one subnet, several task families or difficulty tiers.
//!
//! **Part of a prompt id** (normative): `x = uniform_below(stream("grail/env/mix/v1",
//! [u64be(id)]), Σ weights)`; the part is the first whose cumulative weight exceeds `x`, in
//! the order given. The part sees the id itself (or `id mod n` for a part with `n`
//! prompts); the problem keeps the mix's id.

use grail_proto::prf::{stream, uniform_below};
use sha2::{Digest, Sha256};

use crate::{EnvError, Environment, EnvironmentId, Problem, PromptSpace, RewardVector};

/// Most parts in a mix.
pub const MAX_PARTS: usize = 16;

/// One part: its weight, its spec label (e.g. `math:1`) and the environment.
pub struct Part {
    /// Relative weight (at least 1).
    pub weight: u32,
    /// The spec it was made from, for the id and logs.
    pub label: String,
    /// The environment.
    pub env: Box<dyn Environment>,
}

/// Several environments drawn by weight from the prompt id.
pub struct Mix {
    parts: Vec<Part>,
    total: u64,
}

impl Mix {
    /// A mix of 2..=[`MAX_PARTS`] parts with positive weights.
    pub fn new(parts: Vec<Part>) -> Result<Self, EnvError> {
        if !(2..=MAX_PARTS).contains(&parts.len()) {
            return Err(EnvError::MixSize {
                parts: parts.len(),
                max: MAX_PARTS,
            });
        }
        if let Some(p) = parts.iter().find(|p| p.weight == 0) {
            return Err(EnvError::ZeroWeight {
                label: p.label.clone(),
            });
        }
        let total = parts.iter().map(|p| u64::from(p.weight)).sum();
        Ok(Self { parts, total })
    }

    /// The part a prompt id belongs to, and the id the part sees.
    pub fn part_of(&self, prompt_id: u64) -> (&Part, u64) {
        let mut rng = stream(b"grail/env/mix/v1", &[&prompt_id.to_be_bytes()]);
        let mut x = uniform_below(&mut rng, self.total);
        let mut chosen = &self.parts[self.parts.len() - 1];
        for p in &self.parts {
            if x < u64::from(p.weight) {
                chosen = p;
                break;
            }
            x -= u64::from(p.weight);
        }
        let local = match chosen.env.prompt_space() {
            PromptSpace::Unbounded => prompt_id,
            PromptSpace::Finite(n) => prompt_id % n.max(1),
        };
        (chosen, local)
    }
}

impl Environment for Mix {
    /// `mix` with `v1;` then each part as `weight*label`, and the SHA-256 of the parts'
    /// full ids (so a part's version change changes the mix's id).
    fn id(&self) -> EnvironmentId {
        let mut h = Sha256::new();
        for p in &self.parts {
            let id = p.env.id();
            h.update(format!("{}*{}[{}];", p.weight, id.name, id.params));
        }
        let listing: Vec<String> = self
            .parts
            .iter()
            .map(|p| format!("{}*{}", p.weight, p.label))
            .collect();
        EnvironmentId {
            name: "mix".into(),
            params: format!(
                "v1;{};sha256={}",
                listing.join("+"),
                hex::encode(&h.finalize()[..16])
            ),
        }
    }

    fn prompt_space(&self) -> PromptSpace {
        PromptSpace::Unbounded
    }

    fn problem(&self, prompt_id: u64) -> Result<Problem, EnvError> {
        let (part, local) = self.part_of(prompt_id);
        let mut problem = part.env.problem(local)?;
        problem.prompt_id = prompt_id;
        Ok(problem)
    }

    fn score(&self, problem: &Problem, completion: &str, eos_markers: &[&str]) -> RewardVector {
        self.part_of(problem.prompt_id)
            .0
            .env
            .score(problem, completion, eos_markers)
    }

    fn messages(&self, problem: &Problem) -> Vec<crate::template::Message> {
        self.part_of(problem.prompt_id).0.env.messages(problem)
    }

    fn stratum(&self, prompt_id: u64) -> String {
        let (part, local) = self.part_of(prompt_id);
        part.env.stratum(local)
    }

    fn strata(&self) -> Vec<String> {
        let mut all: Vec<String> = self.parts.iter().flat_map(|p| p.env.strata()).collect();
        all.sort();
        all.dedup();
        all
    }
}
