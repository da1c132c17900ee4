//! Wire types: rollouts, groups and window bundles, and their byte format.
//!
//! A bundle on the wire is `BUNDLE_MAGIC ‖ u32le(BUNDLE_FORMAT_VERSION) ‖ body`, where body
//! is the bincode 2 (standard configuration: little-endian, variable-length integers)
//! serde encoding of [`WindowBundle`]. [`decode_bundle`] takes untrusted bytes: it checks
//! the size limit before decoding, rejects trailing bytes, and validates every structural
//! rule ([`Group::validate`]) so that later stages can index without checks. It never
//! panics.

use serde::{Deserialize, Serialize};

use crate::params::{
    MAX_BUNDLE_BYTES, MAX_ENV_STRING_BYTES, MAX_GROUPS_PER_BUNDLE, MAX_GROUP_SIZE,
    MAX_ROLLOUT_TOKENS, PROTOCOL_VERSION, SKETCH_MODULUS,
};
use crate::sketch::PositionSketch;

/// First bytes of every encoded bundle.
pub const BUNDLE_MAGIC: &[u8; 8] = b"GRAILBDL";

/// Version of the bundle byte format (independent of the protocol version).
pub const BUNDLE_FORMAT_VERSION: u32 = 2;

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

/// Which environment (and which parameters of it) a group was generated and scored in.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EnvironmentId {
    /// Registry name, e.g. `sat`.
    pub name: String,
    /// Canonical parameter string of the environment (its generator version and ranges).
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
    /// One sketch per token position (prompt and completion).
    pub sketches: Vec<PositionSketch>,
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

/// Why bytes or a value are not a well-formed bundle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
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
    Malformed(String),
    /// Bytes after the body.
    #[error("{0} trailing bytes after the bundle body")]
    TrailingBytes(usize),
    /// A structural rule is broken.
    #[error("invalid {what}: {detail}")]
    Invalid {
        /// Where (e.g. `group 3 rollout 2`).
        what: String,
        /// Which rule.
        detail: String,
    },
}

fn invalid(what: impl Into<String>, detail: impl Into<String>) -> WireError {
    WireError::Invalid {
        what: what.into(),
        detail: detail.into(),
    }
}

impl Rollout {
    /// Checks the rollout's internal consistency and size limits.
    pub fn validate(&self) -> Result<(), String> {
        let n = self.tokens.len();
        if n > MAX_ROLLOUT_TOKENS {
            return Err(format!(
                "{n} tokens, over the limit of {MAX_ROLLOUT_TOKENS}"
            ));
        }
        let p = self.prompt_len as usize;
        if p == 0 || p >= n {
            return Err(format!(
                "prompt_len {p} leaves no prompt or no completion in {n} tokens"
            ));
        }
        if self.sketches.len() != n {
            return Err(format!("{} sketches for {n} tokens", self.sketches.len()));
        }
        if self.logprobs.len() != n - p {
            return Err(format!(
                "{} log-probs for {} completion tokens",
                self.logprobs.len(),
                n - p
            ));
        }
        if self
            .sketches
            .iter()
            .flat_map(|s| s.0)
            .any(|v| v >= SKETCH_MODULUS)
        {
            return Err("sketch value not reduced mod 2^31-1".into());
        }
        if let Some(lp) = self
            .logprobs
            .iter()
            .find(|lp| !lp.is_finite() || **lp > 0.0)
        {
            return Err(format!("log-prob {lp} is not a finite value ≤ 0"));
        }
        if !self.reward.is_finite() || !self.advantage.is_finite() {
            return Err("reward or advantage is not finite".into());
        }
        Ok(())
    }
}

impl Group {
    /// Checks the group's structure: version, sizes and every rollout.
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
            r.validate()
                .map_err(|d| invalid(format!("rollout {i}"), d))?;
        }
        Ok(())
    }
}

impl WindowBundle {
    /// Checks the bundle's structure and every group in it.
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
                other => other,
            })?;
        }
        Ok(())
    }
}

/// `magic ‖ u32le(version) ‖ bincode(value)`, the framing of bundles and archives; bincode
/// refuses bodies over `LIMIT` bytes.
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
        .map_err(|e| WireError::Malformed(e.to_string()))?;
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
        .map_err(|e| WireError::Malformed(e.to_string()))?;
    if used != body.len() {
        return Err(WireError::TrailingBytes(body.len() - used));
    }
    Ok(value)
}

/// Encodes a bundle (magic, format version, body).
pub fn encode_bundle(bundle: &WindowBundle) -> Result<Vec<u8>, WireError> {
    encode_framed::<_, MAX_BUNDLE_BYTES>(BUNDLE_MAGIC, BUNDLE_FORMAT_VERSION, bundle)
}

/// Decodes and validates untrusted bundle bytes.
pub fn decode_bundle(bytes: &[u8]) -> Result<WindowBundle, WireError> {
    let bundle: WindowBundle =
        decode_framed::<_, MAX_BUNDLE_BYTES>(bytes, BUNDLE_MAGIC, BUNDLE_FORMAT_VERSION)?;
    bundle.validate()?;
    Ok(bundle)
}
