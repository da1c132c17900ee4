//! What a participant publishes in its on-chain commitment.
//!
//! Subtensor's `Commitments` pallet stores one field per hotkey and subnet (`MaxFields` is
//! 1 in the recorded runtime) of at most 128 raw bytes (`Data::Raw0..Raw128`). grail puts
//! one of these in it:
//!
//! - miners and validators: the read credentials of their bucket (grail-store's
//!   128-character format, or `local:DIR` on a local network);
//! - the trainer: a [`CheckpointAnnouncement`],
//!   `grail:ckpt:v1:{number}:{sha256 hex}:{effective window}`.

use serde::{Deserialize, Serialize};

/// Largest commitment (bytes), the pallet's `Raw128`.
pub const MAX_COMMITMENT_BYTES: usize = 128;

/// One hotkey's commitment: raw bytes, at most [`MAX_COMMITMENT_BYTES`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commitment(Vec<u8>);

/// Why bytes are not a valid commitment or announcement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommitmentError {
    /// Over the pallet's size limit.
    #[error("commitment is {0} bytes; the chain stores at most {MAX_COMMITMENT_BYTES}")]
    TooLong(usize),
    /// Not a checkpoint announcement.
    #[error("not a checkpoint announcement: {0}")]
    NotAnnouncement(String),
}

impl Commitment {
    /// A commitment of `bytes`.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, CommitmentError> {
        let bytes = bytes.into();
        if bytes.len() > MAX_COMMITMENT_BYTES {
            return Err(CommitmentError::TooLong(bytes.len()));
        }
        Ok(Self(bytes))
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The bytes as text, when they are UTF-8.
    pub fn as_text(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }
}

/// The trainer's announcement of a new checkpoint: its number and its identity (the
/// SHA-256 digest of its signed manifest, `grail_store::CheckpointManifest::digest`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointAnnouncement {
    /// Checkpoint number.
    pub number: u64,
    /// Checkpoint identity.
    pub digest: [u8; 32],
    /// First window whose rollouts must be made with it (earlier windows use its parent).
    pub effective_window: u64,
}

const ANNOUNCEMENT_PREFIX: &str = "grail:ckpt:v1:";

impl CheckpointAnnouncement {
    /// As a commitment: `grail:ckpt:v1:{number}:{digest hex}:{effective window}` (at most
    /// 119 bytes).
    pub fn to_commitment(&self) -> Commitment {
        let text = format!(
            "{ANNOUNCEMENT_PREFIX}{}:{}:{}",
            self.number,
            hex::encode(self.digest),
            self.effective_window
        );
        Commitment(text.into_bytes())
    }

    /// Parses a commitment written by [`Self::to_commitment`].
    pub fn parse(commitment: &Commitment) -> Result<Self, CommitmentError> {
        let bad =
            || CommitmentError::NotAnnouncement(String::from_utf8_lossy(&commitment.0).into());
        let text = commitment.as_text().ok_or_else(bad)?;
        let rest = text.strip_prefix(ANNOUNCEMENT_PREFIX).ok_or_else(bad)?;
        let mut parts = rest.split(':');
        let (Some(number), Some(digest), Some(window), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let int = |text: &str| {
            let canonical = !text.is_empty() && (text == "0" || !text.starts_with('0'));
            text.parse::<u64>().ok().filter(|_| canonical)
        };
        let number = int(number).ok_or_else(bad)?;
        let effective_window = int(window).ok_or_else(bad)?;
        if digest.len() != 64 || digest.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(bad());
        }
        let digest: [u8; 32] = hex::decode(digest)
            .ok()
            .and_then(|d| d.try_into().ok())
            .ok_or_else(bad)?;
        Ok(Self {
            number,
            digest,
            effective_window,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements_round_trip_and_reject_lookalikes() {
        let a = CheckpointAnnouncement {
            number: u64::MAX,
            digest: [0xab; 32],
            effective_window: u64::MAX,
        };
        let c = a.to_commitment();
        assert!(c.as_bytes().len() <= MAX_COMMITMENT_BYTES);
        assert_eq!(CheckpointAnnouncement::parse(&c).unwrap(), a);
        for bad in [
            "grail:ckpt:v1:01:".to_string() + &"ab".repeat(32),
            "grail:ckpt:v1:1:".to_string() + &"AB".repeat(32),
            "grail:ckpt:v1:1:".to_string() + &"ab".repeat(31),
            "grail:ckpt:v2:1:".to_string() + &"ab".repeat(32),
            "grail:ckpt:v1:-1:".to_string() + &"ab".repeat(32),
            "x".repeat(128),
        ] {
            let c = Commitment::new(bad.clone()).unwrap();
            assert!(CheckpointAnnouncement::parse(&c).is_err(), "{bad}");
        }
        assert_eq!(
            Commitment::new(vec![0u8; 129]),
            Err(CommitmentError::TooLong(129))
        );
    }
}
