//! sr25519 hotkeys (Substrate/Bittensor keys) through sp-core, and SS58 addresses.
//!
//! Signatures are schnorrkel sr25519 with the Substrate signing context, over the 32-byte
//! group digest ([`crate::binding::group_digest`]), as Bittensor hotkeys sign.

use sp_core::crypto::{Pair as _, Ss58Codec};
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
pub enum KeyError {
    /// A secret URI (`//Alice`, a mnemonic, a hex seed) that sp-core rejects.
    #[error("invalid secret URI: {0}")]
    BadUri(String),
    /// A string that is not an SS58 address of an sr25519 key.
    #[error("invalid SS58 address `{0}`")]
    BadAddress(String),
}

impl Keypair {
    /// Key from a 32-byte mini-secret seed.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self(sr25519::Pair::from_seed(seed))
    }

    /// Key from a secret URI: `//Alice`-style dev keys, a mnemonic, or a `0x` hex seed.
    pub fn from_uri(uri: &str) -> Result<Self, KeyError> {
        sr25519::Pair::from_string(uri, None)
            .map(Self)
            .map_err(|e| KeyError::BadUri(format!("{e:?}")))
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

    /// Signs a group in place (sets `group.signature`).
    pub fn sign_group(&self, group: &mut Group) {
        group.signature = self.sign(&group_digest(group));
    }
}

/// Whether `signature` is `hotkey`'s signature of `message`.
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
    pub fn from_ss58(address: &str) -> Result<Self, KeyError> {
        sr25519::Public::from_ss58check_with_version(address)
            .map(|(public, _)| Hotkey(public.0))
            .map_err(|_| KeyError::BadAddress(address.to_string()))
    }
}
