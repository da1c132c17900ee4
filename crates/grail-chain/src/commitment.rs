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
    /// Not a checkpoint announcement at all: not UTF-8, or without the
    /// `grail:ckpt:v1:` prefix (another kind of commitment, or another format version).
    #[error("not a checkpoint announcement: {text}")]
    NotAnnouncement {
        /// The commitment (lossy UTF-8).
        text: String,
    },
    /// A `grail:ckpt:v1:` announcement with a malformed part (a bug or a forgery on the
    /// announcer's side).
    #[error("malformed checkpoint announcement ({part}): {text}")]
    MalformedAnnouncement {
        /// The commitment.
        text: String,
        /// The part that is wrong.
        part: AnnouncementPart,
    },
}

/// A part of a checkpoint announcement ([`CommitmentError::MalformedAnnouncement`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AnnouncementPart {
    /// Not exactly `{number}:{digest}:{effective window}` after the prefix.
    #[error("not three `:`-separated fields")]
    Fields,
    /// The checkpoint number is not a canonical decimal u64.
    #[error("the number is not a canonical decimal u64")]
    Number,
    /// The digest is not 64 lowercase hex digits.
    #[error("the digest is not 64 lowercase hex digits")]
    Digest,
    /// The effective window is not a canonical decimal u64.
    #[error("the effective window is not a canonical decimal u64")]
    EffectiveWindow,
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
        let lossy = || String::from_utf8_lossy(&commitment.0).into_owned();
        let not_one = || CommitmentError::NotAnnouncement { text: lossy() };
        let bad = |part| CommitmentError::MalformedAnnouncement {
            text: lossy(),
            part,
        };
        let text = commitment.as_text().ok_or_else(not_one)?;
        let rest = text.strip_prefix(ANNOUNCEMENT_PREFIX).ok_or_else(not_one)?;
        let mut parts = rest.split(':');
        let (Some(number), Some(digest), Some(window), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad(AnnouncementPart::Fields));
        };
        let int = |text: &str| {
            let canonical = !text.is_empty() && (text == "0" || !text.starts_with('0'));
            text.parse::<u64>().ok().filter(|_| canonical)
        };
        let number = int(number).ok_or_else(|| bad(AnnouncementPart::Number))?;
        let effective_window = int(window).ok_or_else(|| bad(AnnouncementPart::EffectiveWindow))?;
        if digest.len() != 64 || digest.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(bad(AnnouncementPart::Digest));
        }
        let digest: [u8; 32] = hex::decode(digest)
            .ok()
            .and_then(|d| d.try_into().ok())
            .ok_or_else(|| bad(AnnouncementPart::Digest))?;
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
        let digest = "ab".repeat(32);
        // `None`: not an announcement at all.
        let cases = [
            (
                format!("grail:ckpt:v1:01:{digest}:2"),
                Some(AnnouncementPart::Number),
            ),
            (
                format!("grail:ckpt:v1:-1:{digest}:2"),
                Some(AnnouncementPart::Number),
            ),
            (
                format!("grail:ckpt:v1:1:{digest}:02"),
                Some(AnnouncementPart::EffectiveWindow),
            ),
            (
                format!("grail:ckpt:v1:1:{}:2", "AB".repeat(32)),
                Some(AnnouncementPart::Digest),
            ),
            (
                format!("grail:ckpt:v1:1:{}:2", "ab".repeat(31)),
                Some(AnnouncementPart::Digest),
            ),
            (
                format!("grail:ckpt:v1:1:{digest}"),
                Some(AnnouncementPart::Fields),
            ),
            (
                format!("grail:ckpt:v1:1:{digest}:2:3"),
                Some(AnnouncementPart::Fields),
            ),
            (format!("grail:ckpt:v2:1:{digest}:2"), None),
            ("x".repeat(128), None),
        ];
        for (bad, expected) in cases {
            let c = Commitment::new(bad.clone()).unwrap();
            let err = CheckpointAnnouncement::parse(&c).unwrap_err();
            assert!(err.to_string().contains(&bad), "{err}");
            let part = match err {
                CommitmentError::MalformedAnnouncement { part, .. } => Some(part),
                CommitmentError::NotAnnouncement { .. } => None,
                other => panic!("{bad}: {other}"),
            };
            assert_eq!(part, expected, "{bad}");
        }
        assert!(matches!(
            CheckpointAnnouncement::parse(&Commitment::new(vec![0xff; 4]).unwrap()),
            Err(CommitmentError::NotAnnouncement { .. })
        ));
        assert_eq!(
            Commitment::new(vec![0u8; 129]),
            Err(CommitmentError::TooLong(129))
        );
    }
}
