//! The canonical binary binding a miner signs: no JSON, no float formatting.
//!
//! Integers are big-endian; byte strings and lists carry a `u32be` length (element count
//! for lists); floats are their IEEE-754 bit patterns, big-endian.
//!
//! ```text
//! rollout_digest(i, r) = SHA256("grail-rs/rollout/v1" ‖ u32(i) ‖ u32(prompt_len)
//!                        ‖ u32(#tokens) ‖ u32 each token
//!                        ‖ u32(#positions) ‖ per position: u32 each sketch
//!                        ‖ u32(#logprobs) ‖ f32 bits each ‖ f64 bits reward
//!                        ‖ f64 bits advantage ‖ u8 success)
//! group_digest(g)      = SHA256("grail-rs/group/v3" ‖ u32(protocol_version) ‖ hotkey[32]
//!                        ‖ u64(window) ‖ lp(env name) ‖ lp(env params) ‖ u64(prompt_id)
//!                        ‖ checkpoint[32] ‖ window_randomness[32]
//!                        ‖ u32(max_new_tokens) ‖ u32(temperature_milli)
//!                        ‖ u32(#rollouts) ‖ rollout_digest each)
//! ```
//!
//! The signature is sr25519 over the 32-byte group digest. Every field a validator relies
//! on — version, signer, window, environment, prompt, model identity, randomness, tokens,
//! sketches, log-probs, rewards, advantages, order — is inside it.

use sha2::{Digest, Sha256};

use crate::wire::{Group, GroupHeader, Rollout};

/// Domain of [`rollout_digest`].
pub const ROLLOUT_DOMAIN: &[u8] = b"grail-rs/rollout/v1";
/// Domain of [`group_digest`].
pub const GROUP_DOMAIN: &[u8] = b"grail-rs/group/v3";

fn put_u32(h: &mut Sha256, v: u32) {
    h.update(v.to_be_bytes());
}

fn put_len(h: &mut Sha256, n: usize) {
    put_u32(h, u32::try_from(n).unwrap_or(u32::MAX));
}

/// Digest of one rollout at index `index` of its group.
pub fn rollout_digest(index: u32, r: &Rollout) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(ROLLOUT_DOMAIN);
    put_u32(&mut h, index);
    put_u32(&mut h, r.prompt_len);
    put_len(&mut h, r.tokens.len());
    for &t in &r.tokens {
        put_u32(&mut h, t);
    }
    put_len(&mut h, r.sketches.len());
    for s in &r.sketches {
        h.update(s.to_bytes());
    }
    put_len(&mut h, r.logprobs.len());
    for lp in &r.logprobs {
        h.update(lp.to_bits().to_be_bytes());
    }
    h.update(r.reward.to_bits().to_be_bytes());
    h.update(r.advantage.to_bits().to_be_bytes());
    h.update([u8::from(r.success)]);
    h.finalize().into()
}

/// Digest a miner signs for a group, from its header and rollout digests.
pub fn group_digest_from_parts(header: &GroupHeader, rollout_digests: &[[u8; 32]]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(GROUP_DOMAIN);
    put_u32(&mut h, header.protocol_version);
    h.update(header.hotkey.0);
    h.update(header.window.to_be_bytes());
    for s in [&header.environment.name, &header.environment.params] {
        put_len(&mut h, s.len());
        h.update(s.as_bytes());
    }
    h.update(header.prompt_id.to_be_bytes());
    h.update(header.checkpoint);
    h.update(header.window_randomness);
    let g = &header.generation;
    put_u32(&mut h, g.max_new_tokens);
    put_u32(&mut h, g.temperature_milli);
    put_len(&mut h, rollout_digests.len());
    for d in rollout_digests {
        h.update(d);
    }
    h.finalize().into()
}

/// Digest a miner signs for a group.
pub fn group_digest(group: &Group) -> [u8; 32] {
    let digests: Vec<[u8; 32]> = group
        .rollouts
        .iter()
        .enumerate()
        .map(|(i, r)| rollout_digest(i as u32, r))
        .collect();
    group_digest_from_parts(&group.header, &digests)
}

/// SHA-256 of the token ids alone (`u32be` each): what copy detection compares across miners.
pub fn token_digest(tokens: &[u32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"grail-rs/tokens/v1");
    for &t in tokens {
        put_u32(&mut h, t);
    }
    h.finalize().into()
}

/// Domain of [`work_digest`].
pub const WORK_DOMAIN: &[u8] = b"grail-rs/work/v1";

/// What a group's work is, independent of who signed it and when: SHA-256 of the
/// domain, the group size and the sorted [`token_digest`]s of its rollouts (prompt and
/// completion tokens). Equal digests mean the same prompt with the same completions in
/// any order, which is how duplicates within a bundle, replays across windows and copies
/// across miners are recognised.
pub fn work_digest(group: &Group) -> [u8; 32] {
    let mut digests: Vec<[u8; 32]> = group
        .rollouts
        .iter()
        .map(|r| token_digest(&r.tokens))
        .collect();
    digests.sort_unstable();
    let mut h = Sha256::new();
    h.update(WORK_DOMAIN);
    put_len(&mut h, digests.len());
    for d in &digests {
        h.update(d);
    }
    h.finalize().into()
}
