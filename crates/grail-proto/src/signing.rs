//! sr25519 hotkeys (Substrate/Bittensor keys) through sp-core, and SS58 addresses.
//!
//! Signatures are schnorrkel sr25519 with the Substrate signing context, over the 32-byte
//! group digest ([`crate::binding::group_digest`]), as Bittensor hotkeys sign.
//!
//! ```
//! use grail_proto::signing::{verify_group, Keypair};
//! use grail_proto::{EnvironmentId, GenerationParams, Group, GroupHeader, SketchDigest, Rollout, Signature};
//!
//! let key = Keypair::from_uri("//Alice")?;
//! let rollout = Rollout { tokens: vec![1, 2, 3], prompt_len: 2, sketches: vec![SketchDigest([0, 0]); 3],
//!     logprobs: vec![-0.5], reward: 1.0, advantage: 0.0, success: true };
//! let mut group = Group {
//!     header: GroupHeader {
//!         protocol_version: grail_proto::params::PROTOCOL_VERSION, hotkey: key.public(), window: 300,
//!         environment: EnvironmentId { name: "sat".into(), params: "v1".into() }, prompt_id: 42,
//!         checkpoint: [7; 32], window_randomness: [3; 32],
//!         generation: GenerationParams { max_new_tokens: 64, temperature_milli: 700 },
//!     },
//!     rollouts: vec![rollout],
//!     signature: Signature([0; 64]),
//! };
//! key.sign_group(&mut group);
//! assert!(verify_group(&group));
//! group.rollouts[0].reward = 2.0; // every field is signed
//! assert!(!verify_group(&group));
//! # Ok::<(), grail_proto::signing::KeyError>(())
//! ```

use sp_core::crypto::{Pair as _, PublicError, SecretStringError, Ss58Codec};
use sp_core::sr25519;

use crate::binding::group_digest;
use crate::wire::{Group, Hotkey, Signature};

/// SS58 address format of Bittensor (the generic Substrate prefix 42).
pub const SS58_FORMAT: u16 = 42;

/// A hotkey's secret.
#[derive(Clone)]
pub struct Keypair(sr25519::Pair);

impl std::fmt::Debug for Keypair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keypair({})", self.public().to_ss58())
    }
}

/// Why a key could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// A secret URI (`//Alice`, a mnemonic, a hex seed) that sp-core rejects. The URI
    /// itself is not kept: it is a secret.
    #[error("invalid secret URI: {0}")]
    BadUri(#[source] SecretStringError),
    /// A string that is not an SS58 address of an sr25519 key.
    #[error("invalid SS58 address `{address}`: {source}")]
    BadAddress {
        /// The string given.
        address: String,
        /// Why sp-core rejected it.
        #[source]
        source: PublicError,
    },
}

impl Keypair {
    /// Key from a 32-byte mini-secret seed.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self(sr25519::Pair::from_seed(seed))
    }

    /// Key from a secret URI: `//Alice`-style dev keys, a mnemonic, or a `0x` hex seed,
    /// each with optional `//hard` and `/soft` derivation junctions.
    ///
    /// # Errors
    ///
    /// [`KeyError::BadUri`] when sp-core rejects the URI (not a mnemonic or a 32-byte hex
    /// seed, a bad derivation path).
    ///
    /// # Examples
    ///
    /// ```
    /// use grail_proto::signing::{Keypair, KeyError};
    ///
    /// let alice = Keypair::from_uri("//Alice")?;
    /// assert_eq!(alice.public().to_ss58(), "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY");
    /// assert!(matches!(Keypair::from_uri("not a mnemonic"), Err(KeyError::BadUri(_))));
    /// # Ok::<(), KeyError>(())
    /// ```
    pub fn from_uri(uri: &str) -> Result<Self, KeyError> {
        sr25519::Pair::from_string(uri, None)
            .map(Self)
            .map_err(KeyError::BadUri)
    }

    /// The underlying sp-core pair (for chain clients that sign extrinsics).
    pub fn as_sr25519(&self) -> &sr25519::Pair {
        &self.0
    }

    /// The public hotkey.
    pub fn public(&self) -> Hotkey {
        Hotkey(self.0.public().0)
    }

    /// Signs a message.
    pub fn sign(&self, message: &[u8]) -> Signature {
        Signature(self.0.sign(message).0)
    }

    /// Signs a group in place: sets `group.signature` to the signature of its
    /// [`group_digest`]. Sign after the last edit: any later change to a signed field makes
    /// [`verify_group`] fail (see the module example).
    pub fn sign_group(&self, group: &mut Group) {
        group.signature = self.sign(&group_digest(group));
    }
}

/// Whether `signature` is `hotkey`'s signature of `message`. Never panics: an invalid
/// public key or signature is simply `false`.
///
/// ```
/// use grail_proto::signing::{verify, Keypair};
///
/// let key = Keypair::from_seed(&[1; 32]);
/// let signature = key.sign(b"message");
/// assert!(verify(&key.public(), b"message", &signature));
/// assert!(!verify(&key.public(), b"massage", &signature));
/// assert!(!verify(&Keypair::from_seed(&[2; 32]).public(), b"message", &signature));
/// ```
pub fn verify(hotkey: &Hotkey, message: &[u8], signature: &Signature) -> bool {
    let public = sr25519::Public::from_raw(hotkey.0);
    let sig = sr25519::Signature::from_raw(signature.0);
    sr25519::Pair::verify(&sig, message, &public)
}

/// Whether a group carries a valid signature of its header's hotkey.
pub fn verify_group(group: &Group) -> bool {
    verify(&group.header.hotkey, &group_digest(group), &group.signature)
}

impl Hotkey {
    /// SS58 address (format 42).
    pub fn to_ss58(&self) -> String {
        sr25519::Public::from_raw(self.0).to_ss58check_with_version(SS58_FORMAT.into())
    }

    /// Parses an SS58 address (any network prefix; the checksum must hold).
    ///
    /// # Errors
    ///
    /// [`KeyError::BadAddress`] when the string is not base58, has the wrong length or
    /// prefix, or fails its checksum.
    ///
    /// # Examples
    ///
    /// ```
    /// use grail_proto::signing::KeyError;
    /// use grail_proto::Hotkey;
    ///
    /// let alice = Hotkey::from_ss58("5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY")?;
    /// assert_eq!(Hotkey::from_ss58(&alice.to_ss58())?, alice);
    /// // One character off: the checksum fails.
    /// let err = Hotkey::from_ss58("5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQZ").unwrap_err();
    /// assert!(matches!(err, KeyError::BadAddress { .. }));
    /// # Ok::<(), KeyError>(())
    /// ```
    pub fn from_ss58(address: &str) -> Result<Self, KeyError> {
        sr25519::Public::from_ss58check_with_version(address)
            .map(|(public, _)| Hotkey(public.0))
            .map_err(|source| KeyError::BadAddress {
                address: address.to_string(),
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn key_errors_keep_sp_core_as_the_source() {
        let err = Keypair::from_uri("not a mnemonic").unwrap_err();
        let KeyError::BadUri(inner) = &err else {
            panic!("{err:?}");
        };
        assert!(err
            .source()
            .is_some_and(|s| s.downcast_ref::<SecretStringError>() == Some(inner)));
        let address = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQZ";
        let err = Hotkey::from_ss58(address).unwrap_err();
        assert!(matches!(
            &err,
            KeyError::BadAddress { address: a, source: PublicError::InvalidChecksum } if a == address
        ));
        assert!(err.source().is_some());
        assert!(err
            .to_string()
            .starts_with(&format!("invalid SS58 address `{address}`")));
    }
}
