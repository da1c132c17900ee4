//! The sketch rules under audit: the trait, grail-proto's native rule and the reference
//! rules (grail v5, Reliquary v7).

use grail_proto::compat::{grail_v5, reliquary_v7, TOPK};
use grail_proto::params::{CHALLENGE_K, CHALLENGE_MAX_MISSES, SKETCHES_PER_POSITION};
use grail_proto::sketch::{digest_passes, modular_distance};
use grail_proto::{PositionSketch, SketchCoefficients};

/// A sketch rule under audit: how a hidden vector becomes residues and when a claimed
/// residue passes against a recomputed one.
pub trait SketchRule {
    /// Name for tables.
    fn name(&self) -> &str;
    /// Residues per position.
    fn width(&self) -> usize;
    /// Appends the residues of `hidden` to `out`.
    fn sketch(&self, hidden: &[f32], out: &mut Vec<u32>);
    /// Largest modular distance over the position's residues.
    fn distance(&self, claimed: &[u32], recomputed: &[u32]) -> u32 {
        claimed
            .iter()
            .zip(recomputed)
            .map(|(&a, &b)| modular_distance(a, b))
            .max()
            .unwrap_or(0)
    }
    /// Whether the position passes.
    fn passes(&self, claimed: &[u32], recomputed: &[u32], position: usize) -> bool;
    /// Positions challenged per rollout.
    fn k(&self) -> usize;
    /// Failed positions a rollout may have and still be accepted.
    fn max_misses(&self) -> usize;
}

/// The native rule of grail-proto (its current parameters).
pub struct Native(pub SketchCoefficients);

impl SketchRule for Native {
    fn name(&self) -> &str {
        "native (grail-proto)"
    }
    fn width(&self) -> usize {
        SKETCHES_PER_POSITION
    }
    fn sketch(&self, hidden: &[f32], out: &mut Vec<u32>) {
        out.extend(self.0.sketch(hidden).0);
    }
    /// Protocol v4: the claimed residues travel as their digests (rounded to 2^16), the
    /// check adds the rounding to the tolerance.
    fn passes(&self, claimed: &[u32], recomputed: &[u32], position: usize) -> bool {
        let residues = |v: &[u32]| PositionSketch(std::array::from_fn(|s| v[s]));
        digest_passes(residues(claimed).digest(), residues(recomputed), position)
    }
    fn k(&self) -> usize {
        CHALLENGE_K
    }
    fn max_misses(&self) -> usize {
        CHALLENGE_MAX_MISSES
    }
}

/// A reference rule (grail v5 or Reliquary v7): one top-16 sketch, every position must pass.
pub struct Reference {
    name: &'static str,
    coefficients: [i8; TOPK],
    passes: fn(u32, u32, usize) -> bool,
}

impl Reference {
    /// grail v5 with coefficients from `randomness_hex`.
    pub fn grail_v5(randomness_hex: &str) -> Self {
        Self {
            name: "compat grail v5",
            coefficients: grail_v5::coefficients(randomness_hex).unwrap_or([1; TOPK]),
            passes: grail_v5::position_passes,
        }
    }

    /// Reliquary v7 with coefficients from `randomness_hex`.
    pub fn reliquary_v7(randomness_hex: &str) -> Self {
        Self {
            name: "compat reliquary v7",
            coefficients: reliquary_v7::coefficients(randomness_hex).unwrap_or([1; TOPK]),
            passes: reliquary_v7::position_passes,
        }
    }
}

impl SketchRule for Reference {
    fn name(&self) -> &str {
        self.name
    }
    fn width(&self) -> usize {
        1
    }
    fn sketch(&self, hidden: &[f32], out: &mut Vec<u32>) {
        out.push(grail_v5::sketch(hidden, &self.coefficients));
    }
    fn passes(&self, claimed: &[u32], recomputed: &[u32], position: usize) -> bool {
        (self.passes)(claimed[0], recomputed[0], position)
    }
    fn k(&self) -> usize {
        grail_v5::CHALLENGE_K
    }
    fn max_misses(&self) -> usize {
        0
    }
}
