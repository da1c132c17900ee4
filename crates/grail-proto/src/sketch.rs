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
    SKETCHES_PER_POSITION, SKETCH_CLAMP_BITS, SKETCH_DIGEST_ROUNDING, SKETCH_DIGEST_SHIFT,
    SKETCH_FRACTION_BITS, SKETCH_MODULUS, TOLERANCE_BASE, TOLERANCE_GROWTH,
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

/// One position's sketches: residues in `[0, Q)`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
pub struct PositionSketch(pub [u32; SKETCHES_PER_POSITION]);

impl PositionSketch {
    /// What a rollout carries for this position: each residue rounded to the nearest
    /// multiple of `2^SKETCH_DIGEST_SHIFT` (mod Q), as a 15-bit digest.
    pub fn digest(self) -> SketchDigest {
        let half = 1u32 << (SKETCH_DIGEST_SHIFT - 1);
        let top = (1u16 << (31 - SKETCH_DIGEST_SHIFT)) - 1;
        SketchDigest(
            self.0
                .map(|s| (((s % SKETCH_MODULUS) + half) >> SKETCH_DIGEST_SHIFT) as u16 & top),
        )
    }
}

/// One position's sketches as the wire carries them (protocol v4): each residue rounded
/// to a multiple of `2^SKETCH_DIGEST_SHIFT`, kept as the 15-bit quotient. Encodes as 4
/// bytes (two big-endian `u16`); a digest of 2^15 or more does not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SketchDigest(pub [u16; SKETCHES_PER_POSITION]);

impl SketchDigest {
    /// Largest digest value (15 bits).
    pub const MAX: u16 = (1 << (31 - SKETCH_DIGEST_SHIFT)) - 1;

    /// The residues the digest stands for (multiples of `2^SKETCH_DIGEST_SHIFT`, in
    /// `[0, Q)`).
    pub fn residues(self) -> PositionSketch {
        PositionSketch(self.0.map(|d| u32::from(d) << SKETCH_DIGEST_SHIFT))
    }

    /// The 4 bytes it encodes as (and is signed as).
    pub fn to_bytes(self) -> [u8; 2 * SKETCHES_PER_POSITION] {
        let [a, b] = self.0.map(u16::to_be_bytes);
        [a[0], a[1], b[0], b[1]]
    }

    /// The digest of 4 encoded bytes, if both values fit in 15 bits.
    pub fn from_bytes(bytes: [u8; 2 * SKETCHES_PER_POSITION]) -> Option<Self> {
        let d = [
            u16::from_be_bytes([bytes[0], bytes[1]]),
            u16::from_be_bytes([bytes[2], bytes[3]]),
        ];
        d.iter().all(|&v| v <= Self::MAX).then_some(Self(d))
    }
}

impl serde::Serialize for SketchDigest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let bytes = self.to_bytes();
        let mut t = serializer.serialize_tuple(bytes.len())?;
        for b in bytes {
            t.serialize_element(&b)?;
        }
        t.end()
    }
}

impl<'de> serde::Deserialize<'de> for SketchDigest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let bytes = <[u8; 2 * SKETCHES_PER_POSITION]>::deserialize(deserializer)?;
        Self::from_bytes(bytes).ok_or_else(|| {
            serde::de::Error::custom("sketch digest above 15 bits (not a protocol v4 digest)")
        })
    }
}

/// Largest distance between a digest's residue and the recomputed one that passes at
/// absolute position `pos`: `tolerance(pos) + SKETCH_DIGEST_ROUNDING`.
pub fn digest_tolerance(pos: usize) -> u32 {
    tolerance(pos) + SKETCH_DIGEST_ROUNDING
}

/// Whether a claimed digest passes against the validator's recomputed sketch at absolute
/// position `pos`: every residue within [`digest_tolerance`]. The check of protocol v4
/// (`challenge::check_positions`).
pub fn digest_passes(claimed: SketchDigest, recomputed: PositionSketch, pos: usize) -> bool {
    let bound = digest_tolerance(pos);
    digest_distances(claimed, recomputed)
        .iter()
        .all(|&d| d <= bound)
}

/// Modular distance of each residue of `recomputed` to the one `claimed` stands for.
pub fn digest_distances(
    claimed: SketchDigest,
    recomputed: PositionSketch,
) -> [u32; SKETCHES_PER_POSITION] {
    let claimed = claimed.residues();
    std::array::from_fn(|s| modular_distance(claimed.0[s], recomputed.0[s]))
}

/// The per-dimension coefficients of a window for one hidden size.
#[derive(Debug, Clone, PartialEq)]
pub struct SketchCoefficients {
    rows: Vec<Vec<i8>>,
    /// The same coefficients as f64, the operand type of the exact sum in [`Self::sketch`].
    wide: [Vec<f64>; SKETCHES_PER_POSITION],
}

// Only the i8 rows are compared; `wide` is a function of them.
impl Eq for SketchCoefficients {}

/// Independent partial sums per sketch in [`SketchCoefficients::sketch`]: without them the
/// sum is one serial chain of additions; with them the compiler vectorises the loop.
const LANES: usize = 8;

/// Coordinates summed in f64 before the total moves to i64. A term `c · q` has
/// `|c| ≤ 2^7` and `|q| ≤ 2^SKETCH_CLAMP_BITS`, so any sum of this many terms is an
/// integer of magnitude ≤ 2^53, which f64 represents exactly: every addition is exact and
/// the order of the additions does not matter.
const EXACT_F64_TERMS: usize = 1 << (53 - 7 - SKETCH_CLAMP_BITS);

/// [`fixed_point`] of every f32, computed in f32 and i32 so that it vectorises (no call to
/// `round`): `x · 2^F` is exact in f32 (a power-of-two scale), clamping before rounding
/// gives the same value as after (the limit is an integer), `t = trunc(v)` and `v − t`
/// are exact, and `trunc(2 · (v − t))` is ±1 exactly when the fraction is at least one
/// half, which rounds half away from zero. NaN gives 0 (`as i32` maps NaN to 0). The
/// unit test `fixed_point_fast_matches_on_every_f32` checks all 2^32 inputs.
#[inline(always)]
fn fixed_point_fast(x: f32) -> i32 {
    const SCALE: f32 = (1u32 << SKETCH_FRACTION_BITS) as f32;
    const LIMIT: f32 = (1u32 << SKETCH_CLAMP_BITS) as f32;
    let v = (x * SCALE).clamp(-LIMIT, LIMIT);
    let t = v as i32;
    let twice_fraction = (v - t as f32) * 2.0;
    t + twice_fraction as i32
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
        let rows: Vec<Vec<i8>> = bytes
            .chunks_exact(hidden_size.max(1))
            .take(SKETCHES_PER_POSITION)
            .map(|row| row.iter().map(|&b| b as i8).collect())
            .collect();
        let wide = std::array::from_fn(|s| {
            rows.get(s)
                .map_or_else(Vec::new, |row| row.iter().map(|&c| f64::from(c)).collect())
        });
        Self { rows, wide }
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
    ///
    /// The sum `Σ c_s[i] · q(h[i])` is computed exactly: in f64 over blocks of
    /// `EXACT_F64_TERMS` coordinates (exact, see there) with `LANES` partial sums each,
    /// then in i64 across blocks (`|Σ| ≤ 2^7 · 2^30 · 2^16 < 2^63` for any hidden size up
    /// to `MAX_HIDDEN_SIZE`). The value is the one the formula in the module docs defines.
    pub fn sketch(&self, hidden: &[f32]) -> PositionSketch {
        let n = hidden.len().min(self.hidden_size());
        let mut total = [0i64; SKETCHES_PER_POSITION];
        for start in (0..n).step_by(EXACT_F64_TERMS) {
            let end = n.min(start + EXACT_F64_TERMS);
            let block = self.block_sums(&hidden[start..end], start);
            for (t, b) in total.iter_mut().zip(block) {
                *t += b as i64;
            }
        }
        PositionSketch(total.map(|v| v.rem_euclid(i64::from(SKETCH_MODULUS)) as u32))
    }

    /// `Σ c_s[offset + i] · q(x[i])` for each sketch `s`, exactly in f64
    /// (`x.len() ≤ EXACT_F64_TERMS`).
    fn block_sums(&self, x: &[f32], offset: usize) -> [f64; SKETCHES_PER_POSITION] {
        let [c0, c1] = &self.wide;
        let (c0, c1) = (&c0[offset..offset + x.len()], &c1[offset..offset + x.len()]);
        let mut acc = [[0f64; LANES]; SKETCHES_PER_POSITION];
        let mut xs = x.chunks_exact(LANES);
        let mut c0s = c0.chunks_exact(LANES);
        let mut c1s = c1.chunks_exact(LANES);
        for ((x, c0), c1) in (&mut xs).zip(&mut c0s).zip(&mut c1s) {
            for l in 0..LANES {
                let q = f64::from(fixed_point_fast(x[l]));
                acc[0][l] += c0[l] * q;
                acc[1][l] += c1[l] * q;
            }
        }
        let tail = xs
            .remainder()
            .iter()
            .zip(c0s.remainder())
            .zip(c1s.remainder());
        for (l, ((&x, &c0), &c1)) in tail.enumerate() {
            let q = f64::from(fixed_point_fast(x));
            acc[0][l] += c0 * q;
            acc[1][l] += c1 * q;
        }
        acc.map(|lanes| lanes.iter().sum())
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

    /// The sketch as the module docs define it: scalar `fixed_point`, i64 sums.
    fn sketch_by_definition(c: &SketchCoefficients, hidden: &[f32]) -> PositionSketch {
        let mut acc = [0i64; SKETCHES_PER_POSITION];
        for (i, &x) in hidden.iter().enumerate().take(c.hidden_size()) {
            for (s, sum) in acc.iter_mut().enumerate() {
                *sum += i64::from(c.row(s).unwrap()[i]) * fixed_point(x);
            }
        }
        PositionSketch(acc.map(|v| v.rem_euclid(i64::from(SKETCH_MODULUS)) as u32))
    }

    /// Bit patterns around every power of two and half-unit boundary, plus a stride
    /// through all of them (the exhaustive test below is `--ignored`: too slow unoptimised).
    #[test]
    fn fixed_point_fast_matches_on_sampled_f32() {
        let specials = [
            0.0f32,
            -0.0,
            f32::NAN,
            -f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::MAX,
            f32::MIN,
            f32::MIN_POSITIVE,
            16_384.0,
            -16_384.0,
        ];
        let unit = 1.0 / (1u64 << SKETCH_FRACTION_BITS) as f32;
        let near_halves = (0..4096).flat_map(|k| {
            let half = (k as f32 + 0.5) * unit;
            [
                half,
                -half,
                half.next_up(),
                half.next_down(),
                -half.next_up(),
            ]
        });
        let strided = (0..=u32::MAX).step_by(9_973).map(f32::from_bits);
        for x in specials.into_iter().chain(near_halves).chain(strided) {
            assert_eq!(i64::from(fixed_point_fast(x)), fixed_point(x), "{x:e}");
        }
    }

    /// All 2^32 f32 values: `cargo test -p grail-proto --release --lib -- --ignored`.
    #[test]
    #[ignore = "4 billion inputs; run in release"]
    fn fixed_point_fast_matches_on_every_f32() {
        for bits in 0..=u32::MAX {
            let x = f32::from_bits(bits);
            assert_eq!(i64::from(fixed_point_fast(x)), fixed_point(x), "{bits:#x}");
        }
    }

    #[test]
    fn sketch_equals_the_definition() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for d in [0usize, 1, 7, 8, 9, 63, 576, 1000] {
            let c = SketchCoefficients::derive(&[d as u8; 32], d);
            for trial in 0..20 {
                let len = match trial % 4 {
                    0 => d.saturating_sub(3),
                    1 => d + 5,
                    _ => d,
                };
                let hidden: Vec<f32> = (0..len)
                    .map(|_| {
                        let u = next();
                        match u % 50 {
                            0 => f32::from_bits((u >> 32) as u32), // any bit pattern
                            1 => 20_000.0 * if u & 2 == 0 { 1.0 } else { -1.0 },
                            2 => f32::NAN,
                            _ => ((u >> 8) % 4_000_001) as f32 / 1e6 - 2.0,
                        }
                    })
                    .collect();
                assert_eq!(
                    c.sketch(&hidden),
                    sketch_by_definition(&c, &hidden),
                    "d={d}"
                );
            }
        }
        // Every term at its largest magnitude, with and without cancellation.
        let d = 4096;
        let c = SketchCoefficients::derive(&[9; 32], d);
        for value in [f32::INFINITY, f32::NEG_INFINITY] {
            let hidden = vec![value; d];
            assert_eq!(c.sketch(&hidden), sketch_by_definition(&c, &hidden));
        }
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
