//! Wire types: rollouts, groups and window bundles, and their byte format.
//!
//! A bundle on the wire is `BUNDLE_MAGIC ‖ u32le(BUNDLE_FORMAT_VERSION) ‖ body`, where body
//! is the bincode 2 (standard configuration: little-endian, variable-length integers)
//! serde encoding of [`WindowBundle`]. [`decode_bundle`] takes untrusted bytes: it checks
//! the size limit before decoding, rejects trailing bytes, and validates every structural
//! rule ([`Group::validate`]) so that later stages can index without checks. It never
//! panics.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::params::{
    MAX_BUNDLE_BYTES, MAX_ENV_STRING_BYTES, MAX_GROUPS_PER_BUNDLE, MAX_GROUP_SIZE,
    MAX_ROLLOUT_TOKENS, PROTOCOL_VERSION,
};
use crate::sketch::SketchDigest;

/// First bytes of every encoded bundle.
pub const BUNDLE_MAGIC: &[u8; 8] = b"GRAILBDL";

/// Version of the bundle byte format (independent of the protocol version).
pub const BUNDLE_FORMAT_VERSION: u32 = 3;

/// A hotkey's sr25519 public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Hotkey(pub [u8; 32]);

impl std::fmt::Display for Hotkey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "0x{}", hex::encode(self.0))
    }
}

/// A 64-byte sr25519 signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature(pub [u8; 64]);

impl Serialize for Signature {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Signature;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("64 signature bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Signature, E> {
                <[u8; 64]>::try_from(v)
                    .map(Signature)
                    .map_err(|_| E::invalid_length(v.len(), &self))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Signature, E> {
                self.visit_bytes(&v)
            }
        }
        d.deserialize_bytes(V)
    }
}

/// Reads a `String` field as a `str` first. bincode's `deserialize_string` allocates the
/// length a body claims before it reads (up to the decoding limit, 256 MiB for a bundle and
/// 2 GiB for an archive), so a 300-byte input could allocate gigabytes; through
/// `deserialize_str` it checks the claimed length against the bytes left and borrows them.
/// Other formats (JSON) read the field as before.
pub(crate) fn bounded_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    struct V;
    impl serde::de::Visitor<'_> for V {
        type Value = String;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a string")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_owned())
        }
        fn visit_string<E: serde::de::Error>(self, v: String) -> Result<String, E> {
            Ok(v)
        }
    }
    d.deserialize_str(V)
}

/// Which environment (and which parameters of it) a group was generated and scored in.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EnvironmentId {
    /// Registry name, e.g. `sat`.
    #[serde(deserialize_with = "bounded_string")]
    pub name: String,
    /// Canonical parameter string of the environment (its generator version and ranges).
    #[serde(deserialize_with = "bounded_string")]
    pub params: String,
}

/// The sampling parameters a group was generated with, as integers (no float formatting).
/// Sampling is plain inverse-CDF over the tempered distribution (`crate::sampling`): no
/// top-k or top-p, which would make the check depend on sort orders and ties.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GenerationParams {
    /// Maximum completion tokens.
    pub max_new_tokens: u32,
    /// Temperature × 1000 (positive).
    pub temperature_milli: u32,
}

/// Everything a group shares, all of it covered by the group signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupHeader {
    /// [`PROTOCOL_VERSION`] the group was made under.
    pub protocol_version: u32,
    /// The miner's hotkey (signer).
    pub hotkey: Hotkey,
    /// First block of the window.
    pub window: u64,
    /// Environment and its parameters.
    pub environment: EnvironmentId,
    /// Prompt id in the environment's id space.
    pub prompt_id: u64,
    /// SHA-256 identity of the checkpoint the rollouts were generated with.
    pub checkpoint: [u8; 32],
    /// The window randomness the sketches were computed with.
    pub window_randomness: [u8; 32],
    /// Sampling parameters.
    pub generation: GenerationParams,
}

/// One completion of a prompt, with its proof material and claims.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rollout {
    /// Prompt tokens followed by completion tokens.
    pub tokens: Vec<u32>,
    /// Number of prompt tokens at the start of `tokens`.
    pub prompt_len: u32,
    /// One sketch digest per token position (prompt and completion).
    pub sketches: Vec<SketchDigest>,
    /// Log-probability of each completion token under the model (temperature 1).
    pub logprobs: Vec<f32>,
    /// Claimed total reward from the environment.
    pub reward: f64,
    /// Claimed GRPO advantage within the group.
    pub advantage: f64,
    /// Claimed environment success flag.
    pub success: bool,
}

impl Rollout {
    /// The completion tokens.
    pub fn completion(&self) -> &[u32] {
        self.tokens.get(self.prompt_len as usize..).unwrap_or(&[])
    }

    /// The prompt tokens.
    pub fn prompt(&self) -> &[u32] {
        self.tokens
            .get(..self.prompt_len as usize)
            .unwrap_or(&self.tokens)
    }
}

/// M rollouts of one prompt, signed together by the miner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    /// What the rollouts share.
    pub header: GroupHeader,
    /// The rollouts, in the miner's order (their index is bound).
    pub rollouts: Vec<Rollout>,
    /// sr25519 signature of [`crate::binding::group_digest`] by `header.hotkey`.
    pub signature: Signature,
}

/// One miner's upload for one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowBundle {
    /// The uploading miner.
    pub hotkey: Hotkey,
    /// First block of the window.
    pub window: u64,
    /// The groups.
    pub groups: Vec<Group>,
}

/// Why bytes or a value are not a well-formed bundle (or archive).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// Larger than [`MAX_BUNDLE_BYTES`].
    #[error("bundle is {size} bytes, over the limit of {limit}")]
    TooLarge {
        /// Size seen.
        size: usize,
        /// Limit.
        limit: usize,
    },
    /// Missing or wrong magic bytes.
    #[error("not a grail bundle (bad magic)")]
    BadMagic,
    /// A format version this code does not read.
    #[error("unsupported bundle format version {0}")]
    UnsupportedFormat(u32),
    /// bincode could not decode the body.
    #[error("malformed bundle body: {0}")]
    Malformed(#[source] CodecError),
    /// bincode could not encode the value (not expected for the protocol's own types).
    #[error("could not encode the body: {0}")]
    Encode(#[source] CodecError),
    /// Bytes after the body.
    #[error("{0} trailing bytes after the bundle body")]
    TrailingBytes(usize),
    /// A structural rule of a bundle or group header is broken.
    #[error("invalid {what}: {detail}")]
    Invalid {
        /// Where (e.g. `group 3 group header`).
        what: String,
        /// Which rule.
        detail: String,
    },
    /// A rollout breaks a structural rule ([`Rollout::validate`]).
    #[error("invalid {}rollout {rollout}: {source}", group_prefix(*.group))]
    InvalidRollout {
        /// Index of the group in its bundle (`None` when a lone group was validated).
        group: Option<usize>,
        /// Index of the rollout in its group.
        rollout: usize,
        /// Which rule.
        #[source]
        source: RolloutError,
    },
}

fn group_prefix(group: Option<usize>) -> String {
    group.map_or_else(String::new, |g| format!("group {g} "))
}

/// The error bincode reported while encoding or decoding a body: the source of
/// [`WireError::Malformed`] and [`WireError::Encode`]. It displays as bincode's message and
/// is shared, so [`WireError`] stays `Clone`; two are equal when their messages are.
#[derive(Debug, Clone)]
pub struct CodecError(Arc<dyn std::error::Error + Send + Sync>);

impl CodecError {
    fn new(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Arc::new(error))
    }

    /// bincode's own error (`bincode::error::DecodeError` or `EncodeError` of bincode 2),
    /// for callers that downcast it.
    pub fn get_ref(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.0
    }
}

impl std::fmt::Display for CodecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for CodecError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl PartialEq for CodecError {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.to_string() == other.0.to_string()
    }
}

impl Eq for CodecError {}

/// Which structural rule a [`Rollout`] breaks ([`Rollout::validate`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RolloutError {
    /// More than [`MAX_ROLLOUT_TOKENS`] tokens.
    #[error("{tokens} tokens, over the limit of {limit}")]
    TooManyTokens {
        /// Tokens in the rollout.
        tokens: usize,
        /// The limit.
        limit: usize,
    },
    /// `prompt_len` is 0 or leaves no completion token.
    #[error("prompt_len {prompt_len} leaves no prompt or no completion in {tokens} tokens")]
    NoPromptOrCompletion {
        /// The claimed prompt length.
        prompt_len: usize,
        /// Tokens in the rollout.
        tokens: usize,
    },
    /// Not one sketch per token.
    #[error("{sketches} sketches for {tokens} tokens")]
    SketchCount {
        /// Sketches carried.
        sketches: usize,
        /// Tokens in the rollout.
        tokens: usize,
    },
    /// Not one log-prob per completion token.
    #[error("{logprobs} log-probs for {completion} completion tokens")]
    LogprobCount {
        /// Log-probs carried.
        logprobs: usize,
        /// Completion tokens.
        completion: usize,
    },
    /// A sketch digest above 15 bits (`SketchDigest::MAX`).
    #[error("sketch digest above 15 bits")]
    UnreducedSketch,
    /// A log-prob is NaN, infinite or positive.
    #[error("log-prob {} is not a finite value ≤ 0", f32::from_bits(*.bits))]
    BadLogprob {
        /// Completion position of the first such log-prob.
        index: usize,
        /// Its IEEE-754 bits (`f32::from_bits`; bits keep the error `Eq` for NaN).
        bits: u32,
    },
    /// The reward or the advantage is NaN or infinite.
    #[error("reward or advantage is not finite")]
    NonFiniteReward,
}

fn invalid(what: impl Into<String>, detail: impl Into<String>) -> WireError {
    WireError::Invalid {
        what: what.into(),
        detail: detail.into(),
    }
}

impl Rollout {
    /// Checks the rollout's internal consistency and size limits: at most
    /// [`MAX_ROLLOUT_TOKENS`] tokens, a non-empty prompt and completion, one sketch per
    /// token with every digest at most [`SketchDigest::MAX`], one finite log-prob `≤ 0` per
    /// completion token, and a finite reward and advantage.
    ///
    /// # Errors
    ///
    /// The first rule broken, as a [`RolloutError`].
    pub fn validate(&self) -> Result<(), RolloutError> {
        let n = self.tokens.len();
        if n > MAX_ROLLOUT_TOKENS {
            return Err(RolloutError::TooManyTokens {
                tokens: n,
                limit: MAX_ROLLOUT_TOKENS,
            });
        }
        let p = self.prompt_len as usize;
        if p == 0 || p >= n {
            return Err(RolloutError::NoPromptOrCompletion {
                prompt_len: p,
                tokens: n,
            });
        }
        if self.sketches.len() != n {
            return Err(RolloutError::SketchCount {
                sketches: self.sketches.len(),
                tokens: n,
            });
        }
        if self.logprobs.len() != n - p {
            return Err(RolloutError::LogprobCount {
                logprobs: self.logprobs.len(),
                completion: n - p,
            });
        }
        if self
            .sketches
            .iter()
            .flat_map(|s| s.0)
            .any(|v| v > SketchDigest::MAX)
        {
            return Err(RolloutError::UnreducedSketch);
        }
        if let Some((index, lp)) = self
            .logprobs
            .iter()
            .enumerate()
            .find(|(_, lp)| !lp.is_finite() || **lp > 0.0)
        {
            return Err(RolloutError::BadLogprob {
                index,
                bits: lp.to_bits(),
            });
        }
        if !self.reward.is_finite() || !self.advantage.is_finite() {
            return Err(RolloutError::NonFiniteReward);
        }
        Ok(())
    }
}

impl Group {
    /// Checks the group's structure: protocol version, environment string lengths, a
    /// positive temperature, 1 to [`MAX_GROUP_SIZE`] rollouts, and every rollout
    /// ([`Rollout::validate`]). It does not check the signature or any window value: that
    /// is [`crate::rules::group::check_binding`] and [`crate::rules::group::check_signature`].
    ///
    /// # Errors
    ///
    /// [`WireError::Invalid`] for a broken header or group rule, or
    /// [`WireError::InvalidRollout`] (with `group: None`) for the first invalid rollout.
    pub fn validate(&self) -> Result<(), WireError> {
        let h = &self.header;
        if h.protocol_version != PROTOCOL_VERSION {
            return Err(invalid(
                "group header",
                format!(
                    "protocol version {} (expected {PROTOCOL_VERSION})",
                    h.protocol_version
                ),
            ));
        }
        for s in [&h.environment.name, &h.environment.params] {
            if s.len() > MAX_ENV_STRING_BYTES {
                return Err(invalid("group header", "environment string too long"));
            }
        }
        if h.generation.temperature_milli == 0 {
            return Err(invalid("group header", "temperature must be positive"));
        }
        let m = self.rollouts.len();
        if m == 0 || m > MAX_GROUP_SIZE {
            return Err(invalid(
                "group",
                format!("{m} rollouts (allowed 1..={MAX_GROUP_SIZE})"),
            ));
        }
        for (i, r) in self.rollouts.iter().enumerate() {
            r.validate().map_err(|source| WireError::InvalidRollout {
                group: None,
                rollout: i,
                source,
            })?;
        }
        Ok(())
    }
}

impl WindowBundle {
    /// Checks the bundle's structure: at most [`MAX_GROUPS_PER_BUNDLE`] groups, each naming
    /// the bundle's hotkey and window, each valid ([`Group::validate`]).
    /// [`decode_bundle`] runs it on every bundle it returns.
    ///
    /// # Errors
    ///
    /// [`WireError::Invalid`] or [`WireError::InvalidRollout`] for the first broken rule,
    /// naming the group's index.
    pub fn validate(&self) -> Result<(), WireError> {
        if self.groups.len() > MAX_GROUPS_PER_BUNDLE {
            return Err(invalid(
                "bundle",
                format!(
                    "{} groups (limit {MAX_GROUPS_PER_BUNDLE})",
                    self.groups.len()
                ),
            ));
        }
        for (g, group) in self.groups.iter().enumerate() {
            if group.header.hotkey != self.hotkey || group.header.window != self.window {
                return Err(invalid(
                    format!("group {g}"),
                    "hotkey or window differs from the bundle's",
                ));
            }
            group.validate().map_err(|e| match e {
                WireError::Invalid { what, detail } => invalid(format!("group {g} {what}"), detail),
                WireError::InvalidRollout {
                    rollout, source, ..
                } => WireError::InvalidRollout {
                    group: Some(g),
                    rollout,
                    source,
                },
                other => other,
            })?;
        }
        Ok(())
    }
}

/// `magic ‖ u32le(version) ‖ bincode(value)`, the framing of bundles and archives; bytes
/// over `LIMIT` are refused ([`WireError::TooLarge`]).
pub(crate) fn encode_framed<T: Serialize, const LIMIT: usize>(
    magic: &[u8; 8],
    version: u32,
    value: &T,
) -> Result<Vec<u8>, WireError> {
    let config = bincode::config::standard().with_limit::<LIMIT>();
    let mut out = Vec::with_capacity(1024);
    out.extend_from_slice(magic);
    out.extend_from_slice(&version.to_le_bytes());
    let body = bincode::serde::encode_to_vec(value, config)
        .map_err(|e| WireError::Encode(CodecError::new(e)))?;
    out.extend_from_slice(&body);
    if out.len() > LIMIT {
        return Err(WireError::TooLarge {
            size: out.len(),
            limit: LIMIT,
        });
    }
    Ok(out)
}

/// Reads [`encode_framed`] bytes from an untrusted source: size, magic, version, body, and
/// no trailing bytes. Never panics.
pub(crate) fn decode_framed<T: serde::de::DeserializeOwned, const LIMIT: usize>(
    bytes: &[u8],
    magic: &[u8; 8],
    version: u32,
) -> Result<T, WireError> {
    if bytes.len() > LIMIT {
        return Err(WireError::TooLarge {
            size: bytes.len(),
            limit: LIMIT,
        });
    }
    let body = bytes
        .strip_prefix(magic.as_slice())
        .ok_or(WireError::BadMagic)?;
    let (found, body) = body.split_first_chunk::<4>().ok_or(WireError::BadMagic)?;
    let found = u32::from_le_bytes(*found);
    if found != version {
        return Err(WireError::UnsupportedFormat(found));
    }
    let config = bincode::config::standard().with_limit::<LIMIT>();
    let (value, used): (T, usize) = bincode::serde::decode_from_slice(body, config)
        .map_err(|e| WireError::Malformed(CodecError::new(e)))?;
    if used != body.len() {
        return Err(WireError::TrailingBytes(body.len() - used));
    }
    Ok(value)
}

/// Encodes a bundle: [`BUNDLE_MAGIC`], [`BUNDLE_FORMAT_VERSION`], body. It does not
/// validate the bundle; [`decode_bundle`] does.
///
/// # Errors
///
/// [`WireError::TooLarge`] when the encoding exceeds [`MAX_BUNDLE_BYTES`];
/// [`WireError::Encode`] if bincode fails (not expected for these types).
///
/// # Examples
///
/// ```
/// use grail_proto::{decode_bundle, encode_bundle, Hotkey, WindowBundle, WireError};
///
/// let bundle = WindowBundle { hotkey: Hotkey([7; 32]), window: 300, groups: Vec::new() };
/// let mut bytes = encode_bundle(&bundle)?;
/// assert!(bytes.starts_with(grail_proto::wire::BUNDLE_MAGIC));
/// assert_eq!(decode_bundle(&bytes)?, bundle);
///
/// // Untrusted bytes are refused with a typed reason, never a panic.
/// bytes.push(0);
/// assert_eq!(decode_bundle(&bytes), Err(WireError::TrailingBytes(1)));
/// assert_eq!(decode_bundle(b"not a bundle"), Err(WireError::BadMagic));
/// bytes[8] = 9; // the format version
/// assert_eq!(decode_bundle(&bytes), Err(WireError::UnsupportedFormat(9)));
/// # Ok::<(), WireError>(())
/// ```
pub fn encode_bundle(bundle: &WindowBundle) -> Result<Vec<u8>, WireError> {
    encode_framed::<_, MAX_BUNDLE_BYTES>(BUNDLE_MAGIC, BUNDLE_FORMAT_VERSION, bundle)
}

/// Decodes and validates untrusted bundle bytes: size, magic, format version, body, no
/// trailing bytes, then every structural rule ([`WindowBundle::validate`]). It does not
/// check signatures or window values ([`crate::verifier::BundleCheck`]). It never
/// panics, and it reads at most [`MAX_BUNDLE_BYTES`] (callers usually cap downloads lower,
/// at [`crate::params::DEFAULT_MAX_BUNDLE_BYTES`]). See [`encode_bundle`] for an example.
///
/// # Errors
///
/// [`WireError::TooLarge`] over [`MAX_BUNDLE_BYTES`]; [`WireError::BadMagic`] without
/// [`BUNDLE_MAGIC`] and a version; [`WireError::UnsupportedFormat`] for another
/// [`BUNDLE_FORMAT_VERSION`]; [`WireError::Malformed`] when the body does not decode;
/// [`WireError::TrailingBytes`] after it; [`WireError::Invalid`] or
/// [`WireError::InvalidRollout`] when the decoded bundle breaks a structural rule.
pub fn decode_bundle(bytes: &[u8]) -> Result<WindowBundle, WireError> {
    let bundle: WindowBundle =
        decode_framed::<_, MAX_BUNDLE_BYTES>(bytes, BUNDLE_MAGIC, BUNDLE_FORMAT_VERSION)?;
    bundle.validate()?;
    Ok(bundle)
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    fn bundle() -> WindowBundle {
        let rollout = Rollout {
            tokens: vec![1, 2, 3, 4],
            prompt_len: 2,
            sketches: vec![SketchDigest([0, 0]); 4],
            logprobs: vec![-0.5, -0.25],
            reward: 1.0,
            advantage: 0.0,
            success: true,
        };
        let header = GroupHeader {
            protocol_version: PROTOCOL_VERSION,
            hotkey: Hotkey([1; 32]),
            window: 30,
            environment: EnvironmentId {
                name: "toy".into(),
                params: "v1".into(),
            },
            prompt_id: 1,
            checkpoint: [2; 32],
            window_randomness: [3; 32],
            generation: GenerationParams {
                max_new_tokens: 8,
                temperature_milli: 1000,
            },
        };
        WindowBundle {
            hotkey: Hotkey([1; 32]),
            window: 30,
            groups: vec![Group {
                header,
                rollouts: vec![rollout.clone(), rollout],
                signature: Signature([0; 64]),
            }],
        }
    }

    /// The process's peak virtual size (`VmPeak`), bytes.
    #[cfg(target_os = "linux")]
    fn vm_peak() -> usize {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("VmPeak:")).unwrap();
        let kb: usize = line[7..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .unwrap();
        kb * 1024
    }

    /// Found by `cargo xtask fuzz --target bundle` and `--target archive`
    /// (docs/reliability.md): a body claiming a long string made bincode allocate the
    /// claimed length (up to the 2 GiB archive limit) before finding the input short; a
    /// 361-byte archive allocated 836 MiB. The claim is now checked against the bytes left
    /// first. Seen here as the process's peak virtual size, which a 1.5 GB allocation
    /// would raise by 1.5 GB.
    #[cfg(target_os = "linux")]
    #[test]
    fn claimed_string_lengths_are_checked_before_allocating() {
        use crate::params::MAX_ARCHIVE_BYTES;
        let claim = 1_500_000_000u32;
        let mut evil = b"GRAILTST".to_vec();
        evil.extend(1u32.to_le_bytes());
        evil.push(252); // bincode varint: a u32 follows
        evil.extend(claim.to_le_bytes());
        evil.extend(b"toy");
        let before = vm_peak();
        let result = decode_framed::<EnvironmentId, MAX_ARCHIVE_BYTES>(&evil, b"GRAILTST", 1);
        let after = vm_peak();
        assert!(matches!(result, Err(WireError::Malformed(_))), "{result:?}");
        assert!(
            after < before + claim as usize / 2,
            "decoding raised the peak virtual size from {before} to {after}"
        );
        // The same claim inside a bundle is malformed, not an allocation.
        let bytes = encode_bundle(&bundle()).unwrap();
        let name_at = bytes.windows(4).position(|w| w == b"\x03toy").unwrap();
        let mut evil = bytes[..name_at].to_vec();
        evil.push(252);
        evil.extend(200_000_000u32.to_le_bytes());
        evil.extend_from_slice(&bytes[name_at + 4..]);
        assert!(matches!(decode_bundle(&evil), Err(WireError::Malformed(_))));
        // Other formats read the fields as before.
        let id: EnvironmentId = serde_json::from_str(r#"{"name":"a\"b","params":"v1"}"#).unwrap();
        assert_eq!(id.name, "a\"b");
    }

    #[test]
    fn bincode_edge_cases_decode_as_protocol_md_says() {
        // docs/protocol.md §7 states each of these outcomes for implementers.
        let good = encode_bundle(&bundle()).unwrap();
        let n = good.len();
        assert_eq!(good[n - 65], 64, "the signature's length prefix");
        let success = n - 66; // the last rollout's `success` byte, before the signature
        assert_eq!(good[success], 1);

        // A bool byte other than 0 or 1 does not decode.
        let mut two = good.clone();
        two[success] = 2;
        assert!(matches!(decode_bundle(&two), Err(WireError::Malformed(_))));

        // A 63-byte signature does not decode (the length is part of the encoding).
        let mut short = good[..n - 65].to_vec();
        short.push(63);
        short.extend_from_slice(&good[n - 64..n - 1]);
        assert!(matches!(
            decode_bundle(&short),
            Err(WireError::Malformed(_))
        ));

        // A non-minimal varint (the bundle's window 30 written as marker 251 + u16le)
        // decodes, to the same value: bincode 2 does not insist on the shortest form, so
        // one bundle has several byte encodings. Nothing but the archived `bundle_sha256`
        // (the hash of the bytes fetched) depends on the bytes; signatures and digests are
        // over decoded values (§8).
        let window_at = 8 + 4 + 32;
        assert_eq!(good[window_at], 30);
        let mut wide = good[..window_at].to_vec();
        wide.extend_from_slice(&[251, 30, 0]);
        wide.extend_from_slice(&good[window_at + 1..]);
        assert_eq!(decode_bundle(&wide).unwrap(), bundle());
    }

    #[test]
    fn malformed_bodies_keep_bincode_as_the_source() {
        let bytes = encode_bundle(&bundle()).unwrap();
        let err = decode_bundle(&bytes[..bytes.len() - 1]).unwrap_err();
        let WireError::Malformed(codec) = &err else {
            panic!("{err:?}");
        };
        assert!(codec
            .get_ref()
            .downcast_ref::<bincode::error::DecodeError>()
            .is_some());
        assert_eq!(
            err.source().map(ToString::to_string),
            Some(codec.to_string())
        );
        assert_eq!(err.to_string(), format!("malformed bundle body: {codec}"));
        // Clone and equality still hold for the shared source.
        assert_eq!(err.clone(), err);
        let again = decode_bundle(&bytes[..bytes.len() - 1]).unwrap_err();
        assert_eq!(again, err);
        let other = CodecError::new(bincode::error::DecodeError::LimitExceeded);
        assert_ne!(WireError::Malformed(other), err);
    }

    #[test]
    fn invalid_rollouts_are_typed_and_located() {
        let mut b = bundle();
        b.groups[0].rollouts[1].sketches.pop();
        let want = RolloutError::SketchCount {
            sketches: 3,
            tokens: 4,
        };
        let err = b.validate().unwrap_err();
        assert_eq!(
            err,
            WireError::InvalidRollout {
                group: Some(0),
                rollout: 1,
                source: want.clone(),
            }
        );
        assert_eq!(
            err.to_string(),
            "invalid group 0 rollout 1: 3 sketches for 4 tokens"
        );
        let source = err.source().and_then(|s| s.downcast_ref::<RolloutError>());
        assert_eq!(source, Some(&want));
        // A lone group names no group index.
        assert_eq!(
            b.groups[0].validate().unwrap_err().to_string(),
            "invalid rollout 1: 3 sketches for 4 tokens"
        );
        // The same error comes back from the bytes.
        let bytes = encode_bundle(&b).unwrap();
        assert_eq!(decode_bundle(&bytes).unwrap_err(), err);
    }

    #[test]
    fn every_rollout_rule_has_its_variant() {
        let base = bundle().groups[0].rollouts[0].clone();
        type Edit = fn(&mut Rollout);
        let cases: [(Edit, RolloutError); 7] = [
            (
                |r| r.tokens = vec![1; MAX_ROLLOUT_TOKENS + 1],
                RolloutError::TooManyTokens {
                    tokens: MAX_ROLLOUT_TOKENS + 1,
                    limit: MAX_ROLLOUT_TOKENS,
                },
            ),
            (
                |r| r.prompt_len = 4,
                RolloutError::NoPromptOrCompletion {
                    prompt_len: 4,
                    tokens: 4,
                },
            ),
            (
                |r| r.sketches.push(SketchDigest([0, 0])),
                RolloutError::SketchCount {
                    sketches: 5,
                    tokens: 4,
                },
            ),
            (
                |r| r.logprobs.push(-1.0),
                RolloutError::LogprobCount {
                    logprobs: 3,
                    completion: 2,
                },
            ),
            (
                |r| r.sketches[2].0[1] = SketchDigest::MAX + 1,
                RolloutError::UnreducedSketch,
            ),
            (
                |r| r.logprobs[1] = f32::NAN,
                RolloutError::BadLogprob {
                    index: 1,
                    bits: f32::NAN.to_bits(),
                },
            ),
            (
                |r| r.advantage = f64::INFINITY,
                RolloutError::NonFiniteReward,
            ),
        ];
        for (edit, want) in cases {
            let mut r = base.clone();
            edit(&mut r);
            assert_eq!(r.validate(), Err(want));
        }
        let mut r = base;
        r.logprobs[0] = 0.5;
        assert_eq!(
            r.validate().unwrap_err().to_string(),
            "log-prob 0.5 is not a finite value ≤ 0"
        );
    }
}
