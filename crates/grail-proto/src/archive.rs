//! Sealed-window archives: what a validator decided about every group it checked, with
//! the groups themselves, in the bytes the trainer consumes.
//!
//! On the wire: `ARCHIVE_MAGIC ‖ u32le(ARCHIVE_FORMAT_VERSION) ‖ body` (bincode 2,
//! standard configuration, like bundles). Archives are stored under the SHA-256 of these
//! bytes, so the same decisions always give the same name, and re-verifying an archive
//! offline must reproduce its verdicts.
//!
//! ```
//! use grail_proto::archive::{decode_archive, encode_archive, MinerCredit, SealedWindow};
//! use grail_proto::wire::WireError;
//! use grail_proto::Hotkey;
//!
//! let sealed = SealedWindow {
//!     window: 300,
//!     validator: Hotkey([7; 32]),
//!     checkpoint: [1; 32],
//!     entries: Vec::new(), // one `ArchiveEntry` per checked group
//!     credits: vec![MinerCredit { miner: Hotkey([2; 32]), credited: 12.5 }],
//! };
//! let bytes = encode_archive(&sealed)?;
//! assert!(bytes.starts_with(b"GRAILARC"));
//! assert_eq!(decode_archive(&bytes)?, sealed);
//! // Untrusted bytes are refused, never a panic.
//! assert!(matches!(decode_archive(&bytes[..bytes.len() - 1]), Err(_)));
//! assert!(matches!(decode_archive(b"not an archive"), Err(WireError::BadMagic)));
//! # Ok::<(), WireError>(())
//! ```

use serde::{Deserialize, Serialize};

use crate::params::MAX_ARCHIVE_BYTES;
use crate::wire::{decode_framed, encode_framed, Group, Hotkey, WireError};

/// First bytes of every encoded archive.
pub const ARCHIVE_MAGIC: &[u8; 8] = b"GRAILARC";

/// Version of the archive byte format.
pub const ARCHIVE_FORMAT_VERSION: u32 = 5;

/// A validator's decision about one group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// Whether the group counts.
    pub accepted: bool,
    /// The named reason of the first failed check (`accepted` when it passed).
    #[serde(deserialize_with = "crate::wire::bounded_string")]
    pub reason: String,
    /// Human-readable detail (distances, counts).
    #[serde(deserialize_with = "crate::wire::bounded_string")]
    pub detail: String,
}

/// One checked group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArchiveEntry {
    /// The miner whose bundle held the group.
    pub miner: Hotkey,
    /// SHA-256 of the bundle bytes the validator fetched.
    pub bundle_sha256: [u8; 32],
    /// Index of the group in the bundle.
    pub group_index: u32,
    /// The group as uploaded.
    pub group: Group,
    /// The validator's own log-probs of each rollout's completion tokens (temperature 1),
    /// from its proof pass; what the trainer uses as behaviour log-probs. Empty when the
    /// group was rejected before the proof pass.
    pub recomputed_logprobs: Vec<Vec<f32>>,
    /// Evidence of the forward pass (format 5): per rollout, the validator's own sampling
    /// gaps at its `rules::evidence::evidence_positions` (keyed by the archiving
    /// validator's hotkey), in position order. Empty when no forward pass ran.
    pub evidence: Vec<Vec<f64>>,
    /// The decision.
    pub verdict: Verdict,
}

/// The work a validator credited one miner with for the window
/// (`rules::bundle::credited_work`): what weights the miner's groups in training
/// (`rules::training::training_slots`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MinerCredit {
    /// The miner.
    pub miner: Hotkey,
    /// Its credited work (estimated in-zone groups; 0 when its window was zeroed).
    pub credited: f64,
}

/// Everything a validator decided for one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SealedWindow {
    /// First block of the window.
    pub window: u64,
    /// The validator that sealed it.
    pub validator: Hotkey,
    /// Checkpoint identity the window was verified against.
    pub checkpoint: [u8; 32],
    /// Checked groups, in the validator's order.
    pub entries: Vec<ArchiveEntry>,
    /// Credited work of every miner whose bundle the validator read, by hotkey.
    pub credits: Vec<MinerCredit>,
}

impl SealedWindow {
    /// The accepted entries.
    pub fn accepted(&self) -> impl Iterator<Item = &ArchiveEntry> {
        self.entries.iter().filter(|e| e.verdict.accepted)
    }
}

/// Encodes an archive: [`ARCHIVE_MAGIC`], [`ARCHIVE_FORMAT_VERSION`], body.
///
/// # Errors
///
/// [`WireError::TooLarge`] when the encoding exceeds [`MAX_ARCHIVE_BYTES`];
/// [`WireError::Encode`] if bincode fails (not expected for these types).
pub fn encode_archive(archive: &SealedWindow) -> Result<Vec<u8>, WireError> {
    encode_framed::<_, MAX_ARCHIVE_BYTES>(ARCHIVE_MAGIC, ARCHIVE_FORMAT_VERSION, archive)
}

/// Decodes untrusted archive bytes (size-checked, no trailing bytes). Groups are not
/// re-validated: rejected groups are archived as uploaded. Never panics.
///
/// # Errors
///
/// [`WireError::TooLarge`] over [`MAX_ARCHIVE_BYTES`]; [`WireError::BadMagic`] without
/// [`ARCHIVE_MAGIC`] and a version; [`WireError::UnsupportedFormat`] for another
/// [`ARCHIVE_FORMAT_VERSION`]; [`WireError::Malformed`] when the body does not decode;
/// [`WireError::TrailingBytes`] after it.
pub fn decode_archive(bytes: &[u8]) -> Result<SealedWindow, WireError> {
    decode_framed::<_, MAX_ARCHIVE_BYTES>(bytes, ARCHIVE_MAGIC, ARCHIVE_FORMAT_VERSION)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_archive_round_trips_and_garbage_is_refused() {
        let archive = SealedWindow {
            window: 42,
            validator: Hotkey([7; 32]),
            checkpoint: [1; 32],
            entries: Vec::new(),
            credits: vec![MinerCredit {
                miner: Hotkey([3; 32]),
                credited: 12.5,
            }],
        };
        let bytes = encode_archive(&archive).unwrap();
        assert_eq!(decode_archive(&bytes).unwrap(), archive);
        assert!(matches!(
            decode_archive(b"GRAILBDL\x01\0\0\0"),
            Err(WireError::BadMagic)
        ));
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(matches!(
            decode_archive(&trailing),
            Err(WireError::TrailingBytes(1))
        ));
        let mut future = bytes;
        future[8] = 9;
        assert!(matches!(
            decode_archive(&future),
            Err(WireError::UnsupportedFormat(9))
        ));
    }
}
