//! Window and challenge randomness.
//!
//! Two values per window, both 32 bytes, both derived by the PRF from public inputs that
//! grail-chain fetches and verifies (block hashes from the chain, drand beacons whose BLS
//! signature was checked):
//!
//! - **window randomness** — from the hash of the window's first block and the drand round
//!   pinned to the window's start. Known when the window opens; it seeds the sketch
//!   coefficients (and anything else miners need while generating).
//! - **challenge randomness** — from the hash of the window's deadline block and the drand
//!   round pinned to just after the upload deadline. Unknown until uploads are closed; it
//!   picks the positions a validator checks, so a miner must commit to a sketch for every
//!   position before it can know which ones are checked.
//!
//! ```
//! use grail_proto::{challenge_randomness, window_randomness, Beacon, SketchCoefficients};
//!
//! // Public inputs grail-chain fetches and verifies: block hashes and drand beacons.
//! let (window, start_hash, deadline_hash) = (0, [0; 32], [0; 32]);
//! let start = Beacon { round: 0, randomness: [0; 32] };
//! let after_deadline = Beacon { round: 0, randomness: [0; 32] };
//!
//! let wr = window_randomness(window, &start_hash, &start);
//! let cr = challenge_randomness(window, &deadline_hash, &after_deadline);
//! // The values of the `zeros` case of tests/vectors/native_v5.json.
//! assert_eq!(wr[..4], [0xf4, 0x3d, 0x4b, 0xc9]);
//! assert_eq!(cr[..4], [0xb0, 0xfd, 0x75, 0x6b]);
//! // Every input counts.
//! assert_ne!(wr, window_randomness(window + 1, &start_hash, &start));
//! assert_ne!(wr, window_randomness(window, &start_hash, &Beacon { round: 1, ..start }));
//!
//! // The window randomness seeds the sketch coefficients (and the sampling noise).
//! let coefficients = SketchCoefficients::derive(&wr, 576);
//! assert_eq!(coefficients.hidden_size(), 576);
//! ```

use crate::prf::prf32;

/// A verified public-randomness beacon: the drand round and its 32-byte randomness
/// (SHA-256 of the BLS signature that grail-chain has verified).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Beacon {
    /// The drand round number.
    pub round: u64,
    /// The round's randomness.
    pub randomness: [u8; 32],
}

/// Randomness that seeds a window's sketch coefficients:
/// `prf32("grail/window-randomness", [u64be(window), block_hash, u64be(round), randomness])`.
pub fn window_randomness(window: u64, window_block_hash: &[u8; 32], beacon: &Beacon) -> [u8; 32] {
    prf32(
        b"grail/window-randomness",
        &[
            &window.to_be_bytes(),
            window_block_hash,
            &beacon.round.to_be_bytes(),
            &beacon.randomness,
        ],
    )
}

/// Randomness that picks challenged positions, from after the upload deadline:
/// `prf32("grail/challenge-randomness", [u64be(window), deadline_block_hash, u64be(round), randomness])`.
pub fn challenge_randomness(
    window: u64,
    deadline_block_hash: &[u8; 32],
    beacon: &Beacon,
) -> [u8; 32] {
    prf32(
        b"grail/challenge-randomness",
        &[
            &window.to_be_bytes(),
            deadline_block_hash,
            &beacon.round.to_be_bytes(),
            &beacon.randomness,
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_and_challenge_randomness_are_separated_and_bind_every_input() {
        let b = Beacon {
            round: 7,
            randomness: [1; 32],
        };
        let h = [2u8; 32];
        let w = window_randomness(30, &h, &b);
        assert_ne!(w, challenge_randomness(30, &h, &b));
        assert_ne!(w, window_randomness(60, &h, &b));
        assert_ne!(w, window_randomness(30, &[3; 32], &b));
        assert_ne!(w, window_randomness(30, &h, &Beacon { round: 8, ..b }));
        assert_ne!(
            w,
            window_randomness(
                30,
                &h,
                &Beacon {
                    randomness: [9; 32],
                    ..b
                }
            )
        );
    }
}
