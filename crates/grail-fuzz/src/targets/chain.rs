//! Commitments read from the chain: checkpoint announcements and bucket credentials.

use grail_chain::{CheckpointAnnouncement, Commitment};
use grail_store::ReadCredentials;

use super::{text, Target};

/// `CheckpointAnnouncement::parse` and `ReadCredentials::from_commitment` on chain bytes.
pub fn commitments() -> Target {
    Target {
        name: "commitment",
        what: "chain commitments: checkpoint announcements, bucket read credentials",
        max_len: 512,
        seeds: || {
            let announcement = CheckpointAnnouncement {
                number: 12,
                digest: [0xab; 32],
                effective_window: 3600,
            };
            vec![
                announcement.to_commitment().as_bytes().to_vec(),
                format!("{}{}{}", "a".repeat(32), "B".repeat(32), "c".repeat(64)).into_bytes(),
            ]
        },
        dictionary: &[
            b"grail:ckpt:v1:",
            b":",
            b"00",
            b"18446744073709551616",
            b" ",
        ],
        mutate: None,
        run: |bytes| {
            let announced = match Commitment::new(bytes.to_vec()) {
                Ok(c) => CheckpointAnnouncement::parse(&c).is_ok(),
                Err(_) => false,
            };
            let credentials = ReadCredentials::from_commitment(&text(bytes)).is_ok();
            match (announced, credentials) {
                (true, _) => "announcement",
                (_, true) => "credentials",
                _ => "rejected",
            }
        },
    }
}
