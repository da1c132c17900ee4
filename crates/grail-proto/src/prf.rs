//! The protocol's pseudo-random function and the deterministic streams seeded from it.
//!
//! `prf(label, parts, n)` = the first `n` bytes of
//! `SHAKE256("grail-rs/prf/v1" ‖ u32be(len label) ‖ label ‖ u32be(#parts) ‖
//! for each part: u64be(len part) ‖ part)`.
//! Every length is explicit, so no two different (label, parts) lists share an input.
//!
//! Streams are ChaCha20 (`rand_chacha::ChaCha20Rng`, 20 rounds, 64-bit block counter from
//! 0, stream 0) keyed with a 32-byte PRF output; words are the keystream read as
//! little-endian `u32`/`u64`. [`uniform_below`] turns them into integers without bias.
//!
//! ```
//! use grail_proto::prf::{prf, prf32, stream, uniform_below};
//!
//! // Deterministic, and bound to the label and to every part (lengths included).
//! assert_eq!(prf(b"label", &[b"ab", b"c"], 16), prf(b"label", &[b"ab", b"c"], 16));
//! assert_ne!(prf(b"label", &[b"ab", b"c"], 16), prf(b"label", &[b"a", b"bc"], 16));
//! assert_eq!(prf32(b"label", &[b"x"])[..], prf(b"label", &[b"x"], 32)[..]);
//! // A stream gives the same words to everyone who seeds it alike.
//! let (mut a, mut b) = (stream(b"grail/example", &[b"seed"]), stream(b"grail/example", &[b"seed"]));
//! let draws: Vec<u64> = (0..5).map(|_| uniform_below(&mut a, 10)).collect();
//! assert!(draws.iter().all(|&d| d < 10));
//! assert_eq!(draws, (0..5).map(|_| uniform_below(&mut b, 10)).collect::<Vec<_>>());
//! ```

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use sha3::digest::{ExtendableOutput, Update, XofReader};

/// Domain prefix of every PRF input.
pub const PRF_DOMAIN: &[u8] = b"grail-rs/prf/v1";

/// The PRF: `out_len` bytes bound to `label` and every byte of every part.
pub fn prf(label: &[u8], parts: &[&[u8]], out_len: usize) -> Vec<u8> {
    let mut out = vec![0u8; out_len];
    prf_into(label, parts, &mut out);
    out
}

/// The PRF writing into `out` (fills all of it).
pub fn prf_into(label: &[u8], parts: &[&[u8]], out: &mut [u8]) {
    let mut h = sha3::Shake256::default();
    h.update(PRF_DOMAIN);
    h.update(&(label.len() as u32).to_be_bytes());
    h.update(label);
    h.update(&(parts.len() as u32).to_be_bytes());
    for part in parts {
        h.update(&(part.len() as u64).to_be_bytes());
        h.update(part);
    }
    h.finalize_xof().read(out);
}

/// A 32-byte PRF output, the seed size of [`stream`].
pub fn prf32(label: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut out = [0u8; 32];
    prf_into(label, parts, &mut out);
    out
}

/// A ChaCha20 stream keyed by `prf32(label, parts)`.
pub fn stream(label: &[u8], parts: &[&[u8]]) -> ChaCha20Rng {
    ChaCha20Rng::from_seed(prf32(label, parts))
}

/// A uniform integer in `[0, n)` from `rng` (`n > 0`): draw `u64` words, keep the low
/// `bit_length(n − 1)` bits, and reject values `≥ n`. Returns 0 for `n ≤ 1` without drawing.
pub fn uniform_below(rng: &mut impl RngCore, n: u64) -> u64 {
    if n <= 1 {
        return 0;
    }
    let bits = 64 - (n - 1).leading_zeros();
    let mask = if bits == 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    loop {
        let v = rng.next_u64() & mask;
        if v < n {
            return v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_separate_parts() {
        // Same concatenated bytes, different split: must differ.
        assert_ne!(prf32(b"l", &[b"ab", b"c"]), prf32(b"l", &[b"a", b"bc"]));
        assert_ne!(prf32(b"l", &[b"abc"]), prf32(b"l", &[b"abc", b""]));
        assert_ne!(prf32(b"la", &[b"b"]), prf32(b"l", &[b"ab"]));
    }

    #[test]
    fn prefix_property_of_the_xof() {
        let long = prf(b"x", &[b"y"], 64);
        assert_eq!(&long[..32], &prf32(b"x", &[b"y"])[..]);
    }

    #[test]
    fn uniform_below_stays_in_range_and_covers_it() {
        let mut rng = stream(b"test", &[]);
        let mut seen = [false; 7];
        for _ in 0..1000 {
            let v = uniform_below(&mut rng, 7) as usize;
            seen[v] = true;
        }
        assert!(seen.iter().all(|&s| s));
        assert_eq!(uniform_below(&mut rng, 1), 0);
        assert!(uniform_below(&mut rng, u64::MAX) < u64::MAX);
    }
}
