//! Sketch commitments: a few residues mod 2^31 − 1 per token position of the last hidden
//! state.
//!
//! For hidden vector `h` (dimension `d`) and coefficient rows `c_s` (one per sketch
//! `s < SKETCHES_PER_POSITION`, one signed byte per hidden dimension):
//!
//! ```text
//! sketch_s(h) = ( Σ_i c_s[i] · bucket(h[i]) ) mod Q        (result in [0, Q))
//! ```
//!
//! `bucket` is a signed log-magnitude bucket defined by a fixed table of f32 thresholds
//! ([`BUCKET_THRESHOLDS`]): the number of thresholds `t` with `|x| ≥ t`, negated for
//! negative `x`; NaN is 0. Small coordinates are bucket 0, so float drift only matters for
//! the few coordinates that sit on a threshold. Because every dimension has its own
//! coefficient, the sketch binds *which* dimensions carry the large activations, not only
//! how large they are; two sketches per position make a substitute pass only by matching
//! two independent projections.
//!
//! Unlike the reference's top-k, there is no rank cut-off whose membership can flip
//! between kernels: the only discontinuities are the fixed magnitude thresholds.

use crate::params::{SKETCHES_PER_POSITION, SKETCH_MODULUS, TOLERANCE_BASE, TOLERANCE_GROWTH};
use crate::prf::prf_into;

/// Bucket thresholds: `BUCKET_THRESHOLDS[j-1]` is the f32 nearest to
/// `2^(j / SKETCH_BUCKET_SCALE) − 1` for `j = 1..SKETCH_NUM_BUCKETS`. Normative as f32
/// values, so every implementation compares the same numbers.
pub const BUCKET_THRESHOLDS: [f32; 7] = [
    1.378_414_3,
    4.656_854,
    12.454_343,
    31.0,
    75.109_25,
    180.019_33,
    429.538_97,
];

/// One position's sketches.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
pub struct PositionSketch(pub [u32; SKETCHES_PER_POSITION]);

/// Signed log-magnitude bucket of one coordinate, in `−7..=7`.
pub fn bucket(x: f32) -> i32 {
    let a = x.abs();
    // NaN compares false everywhere and lands in bucket 0.
    let b = BUCKET_THRESHOLDS.iter().take_while(|&&t| a >= t).count() as i32;
    if x < 0.0 {
        -b
    } else {
        b
    }
}

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
        let mut acc = [0i64; SKETCHES_PER_POSITION];
        for (i, &x) in hidden.iter().enumerate().take(self.hidden_size()) {
            let b = bucket(x);
            if b != 0 {
                for (s, sum) in acc.iter_mut().enumerate() {
                    *sum += i64::from(self.rows[s][i]) * i64::from(b);
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
    use crate::params::{SKETCH_BUCKET_SCALE, SKETCH_NUM_BUCKETS};

    #[test]
    fn thresholds_match_their_definition() {
        assert_eq!(BUCKET_THRESHOLDS.len() as i32, SKETCH_NUM_BUCKETS - 1);
        for (j, &t) in BUCKET_THRESHOLDS.iter().enumerate() {
            let exact = 2f64.powf((j + 1) as f64 / SKETCH_BUCKET_SCALE) - 1.0;
            assert_eq!(t, exact as f32, "threshold {}", j + 1);
        }
    }

    #[test]
    fn buckets() {
        assert_eq!(bucket(0.0), 0);
        assert_eq!(bucket(-0.0), 0);
        assert_eq!(bucket(1.3), 0);
        assert_eq!(bucket(1.378_414_3), 1);
        assert_eq!(bucket(-2.0), -1);
        assert_eq!(bucket(31.0), 4);
        assert_eq!(bucket(1e9), 7);
        assert_eq!(bucket(f32::INFINITY), 7);
        assert_eq!(bucket(f32::NEG_INFINITY), -7);
        assert_eq!(bucket(f32::NAN), 0);
    }

    #[test]
    fn sketch_binds_which_dimension_is_large() {
        let c = SketchCoefficients::derive(&[5; 32], 64);
        let mut a = vec![0.1f32; 64];
        let mut b = a.clone();
        a[3] = 40.0;
        b[4] = 40.0;
        assert_ne!(c.sketch(&a), c.sketch(&b));
        // Small drift away from thresholds changes nothing.
        let drifted: Vec<f32> = a.iter().map(|x| x * 1.0001).collect();
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
