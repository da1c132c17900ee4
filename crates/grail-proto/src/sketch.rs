//! Sketch commitments: a few residues mod 2^31 − 1 per token position of the last hidden
//! state.
//!
//! For hidden vector `h` (dimension `d`) and coefficient rows `c_s` (one per sketch
//! `s < SKETCHES_PER_POSITION`, one signed byte per hidden dimension):
//!
//! ```text
//! q(x)        = clamp(round(x · 2^F), −2^30, 2^30)        (F = SKETCH_FRACTION_BITS)
//! sketch_s(h) = ( Σ_i c_s[i] · q(h[i]) ) mod Q              (result in [0, Q))
//! ```
//!
//! `round` rounds half away from zero in f64 (exact: `x · 2^F` of an f32 is exact); NaN
//! is 0 and ±∞ clamps. The sketch is a random linear projection of the fixed-point hidden
//! state, so the distance between two sketches grows in proportion to the distance
//! between the hidden states: float drift of an honest fp32 recomputation moves it by a
//! few hundred units, a substituted model by many thousands (measured in
//! docs/soundness.md). The soundness audit replaced version 1's log-magnitude buckets,
//! which mapped most coordinates to zero and let perturbed models pass.
//!
//! ```
//! use grail_proto::params::{SKETCH_FRACTION_BITS, SKETCH_MODULUS};
//! use grail_proto::sketch::{modular_distance, tolerance};
//! use grail_proto::SketchCoefficients;
//!
//! let coefficients = SketchCoefficients::derive(&[3; 32], 8); // window randomness, hidden size
//! let hidden = [0.25f32, -1.5, 3.0, 0.0, 0.75, -0.125, 2.0, -4.0];
//! let claimed = coefficients.sketch(&hidden);
//! let within = |a: u32, b: u32, pos: usize| modular_distance(a, b) <= tolerance(pos);
//!
//! // Honest float drift in the validator's recomputation stays within the tolerance.
//! let drifted: Vec<f32> = hidden.iter().map(|x| x + 1e-4).collect();
//! let recomputed = coefficients.sketch(&drifted);
//! assert!((0..2).all(|s| within(claimed.0[s], recomputed.0[s], 100)));
//!
//! // The sketch is linear in the fixed-point state: +4.0 at coordinate 3 moves sketch `s`
//! // by `c_s[3] · 4 · 2^F` mod Q, far outside the tolerance.
//! let mut other = hidden;
//! other[3] += 4.0;
//! let moved = coefficients.sketch(&other);
//! for s in 0..2 {
//!     let step = i64::from(coefficients.row(s).unwrap()[3]) * (4 << SKETCH_FRACTION_BITS);
//!     let want = (i64::from(claimed.0[s]) + step).rem_euclid(i64::from(SKETCH_MODULUS));
//!     assert_eq!(i64::from(moved.0[s]), want);
//! }
//! assert!(!(0..2).all(|s| within(claimed.0[s], moved.0[s], 100)));
//! ```

use crate::params::{
    SKETCHES_PER_POSITION, SKETCH_CLAMP_BITS, SKETCH_FRACTION_BITS, SKETCH_MODULUS, TOLERANCE_BASE,
    TOLERANCE_GROWTH,
};
use crate::prf::prf_into;

/// The fixed-point value of one coordinate: `clamp(round(x · 2^F), ±2^SKETCH_CLAMP_BITS)`.
pub fn fixed_point(x: f32) -> i64 {
    if x.is_nan() {
        return 0;
    }
    let limit = (1u64 << SKETCH_CLAMP_BITS) as f64;
    let scaled = f64::from(x) * (1u64 << SKETCH_FRACTION_BITS) as f64;
    scaled.round().clamp(-limit, limit) as i64
}

/// One position's sketches.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
pub struct PositionSketch(pub [u32; SKETCHES_PER_POSITION]);

/// The per-dimension coefficients of a window for one hidden size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SketchCoefficients {
    rows: Vec<Vec<i8>>,
}

impl SketchCoefficients {
    /// Coefficients for `hidden_size` dimensions:
    /// `prf("grail/sketch-coefficients", [window_randomness, u32be(hidden_size)], S·d)`,
    /// read as signed bytes, row `s` = bytes `s·d .. (s+1)·d`.
    pub fn derive(window_randomness: &[u8; 32], hidden_size: usize) -> Self {
        let mut bytes = vec![0u8; SKETCHES_PER_POSITION * hidden_size];
        prf_into(
            b"grail/sketch-coefficients",
            &[window_randomness, &(hidden_size as u32).to_be_bytes()],
            &mut bytes,
        );
        let rows = bytes
            .chunks_exact(hidden_size.max(1))
            .take(SKETCHES_PER_POSITION)
            .map(|row| row.iter().map(|&b| b as i8).collect())
            .collect();
        Self { rows }
    }

    /// The hidden size these coefficients are for.
    pub fn hidden_size(&self) -> usize {
        self.rows.first().map_or(0, Vec::len)
    }

    /// Coefficient row `s` (`None` for `s ≥ SKETCHES_PER_POSITION`).
    pub fn row(&self, s: usize) -> Option<&[i8]> {
        self.rows.get(s).map(Vec::as_slice)
    }

    /// The sketches of one hidden vector. `hidden.len()` must equal [`Self::hidden_size`];
    /// extra coordinates are ignored and missing ones count as zero.
    pub fn sketch(&self, hidden: &[f32]) -> PositionSketch {
        // |c| ≤ 128, |q| ≤ 2^30, d ≤ 2^16: every partial sum fits in i64.
        let mut acc = [0i64; SKETCHES_PER_POSITION];
        for (i, &x) in hidden.iter().enumerate().take(self.hidden_size()) {
            let q = fixed_point(x);
            if q != 0 {
                for (s, sum) in acc.iter_mut().enumerate() {
                    *sum += i64::from(self.rows[s][i]) * q;
                }
            }
        }
        PositionSketch(acc.map(|v| v.rem_euclid(i64::from(SKETCH_MODULUS)) as u32))
    }

    /// Sketches of many hidden vectors laid out row-major (`hidden.len() = n · d`).
    pub fn sketch_rows(&self, hidden: &[f32]) -> Vec<PositionSketch> {
        hidden
            .chunks_exact(self.hidden_size().max(1))
            .map(|row| self.sketch(row))
            .collect()
    }
}

/// Distance of two residues on the circle mod Q: `min(|a − b|, Q − |a − b|)` after
/// reducing both mod Q.
pub fn modular_distance(a: u32, b: u32) -> u32 {
    let d = (a % SKETCH_MODULUS).abs_diff(b % SKETCH_MODULUS);
    d.min(SKETCH_MODULUS - d)
}

/// Tolerance at absolute token position `pos`: `BASE + trunc(GROWTH · sqrt(pos))`.
pub fn tolerance(pos: usize) -> u32 {
    TOLERANCE_BASE + (TOLERANCE_GROWTH * (pos as f64).sqrt()) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_point_rounds_and_clamps() {
        let one = 1i64 << SKETCH_FRACTION_BITS;
        assert_eq!(fixed_point(0.0), 0);
        assert_eq!(fixed_point(-0.0), 0);
        assert_eq!(fixed_point(1.0), one);
        assert_eq!(fixed_point(-2.5), -5 * one / 2);
        assert_eq!(fixed_point(f32::NAN), 0);
        assert_eq!(fixed_point(f32::INFINITY), 1 << SKETCH_CLAMP_BITS);
        assert_eq!(fixed_point(f32::NEG_INFINITY), -(1 << SKETCH_CLAMP_BITS));
        assert_eq!(fixed_point(1e30), 1 << SKETCH_CLAMP_BITS);
        // Half a unit rounds away from zero.
        let half = 0.5 / (1u64 << SKETCH_FRACTION_BITS) as f32;
        assert_eq!(fixed_point(half), 1);
        assert_eq!(fixed_point(-half), -1);
    }

    #[test]
    fn sketch_is_linear_in_the_fixed_point_state() {
        let c = SketchCoefficients::derive(&[5; 32], 64);
        let a: Vec<f32> = (0..64).map(|i| (i as f32 - 30.0) / 8.0).collect();
        let mut b = a.clone();
        b[3] += 1.0;
        let (sa, sb) = (c.sketch(&a), c.sketch(&b));
        for s in 0..SKETCHES_PER_POSITION {
            let step = i64::from(c.row(s).unwrap()[3]) << SKETCH_FRACTION_BITS;
            let expected = (i64::from(sa.0[s]) + step).rem_euclid(i64::from(SKETCH_MODULUS));
            assert_eq!(i64::from(sb.0[s]), expected);
        }
        // A change far below the resolution changes nothing.
        let drifted: Vec<f32> = a.iter().map(|x| x + 1e-7).collect();
        assert_eq!(c.sketch(&a), c.sketch(&drifted));
    }

    #[test]
    fn coefficient_rows_are_independent_and_sized() {
        let c = SketchCoefficients::derive(&[5; 32], 64);
        assert_eq!(c.hidden_size(), 64);
        assert_eq!(c.row(0).map(<[i8]>::len), Some(64));
        assert_ne!(c.row(0), c.row(1));
        assert!(c.row(SKETCHES_PER_POSITION).is_none());
        assert_eq!(c, SketchCoefficients::derive(&[5; 32], 64));
        assert_ne!(c.row(0), SketchCoefficients::derive(&[6; 32], 64).row(0));
    }

    #[test]
    fn modular_distance_wraps() {
        let q = SKETCH_MODULUS;
        assert_eq!(modular_distance(0, q - 1), 1);
        assert_eq!(modular_distance(q - 1, 0), 1);
        assert_eq!(modular_distance(10, 3), 7);
        assert_eq!(modular_distance(5, 5), 0);
        assert_eq!(modular_distance(0, q / 2), q / 2);
        assert_eq!(modular_distance(0, q / 2 + 1), q / 2);
    }
}
