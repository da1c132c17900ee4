//! Bittensor wallet hotkeys: `~/.bittensor/wallets/<wallet>/hotkeys/<hotkey>` files, in
//! the plain JSON form and the NaCl-encrypted form (`$NACL` ‖ nonce ‖ secretbox, key from
//! Argon2i of the password), as the Python SDK writes them.

use std::path::{Path, PathBuf};

use argon2::{Algorithm, Argon2, Params, Version};
use crypto_secretbox::aead::{Aead, KeyInit};
use crypto_secretbox::{Nonce, XSalsa20Poly1305};
use grail_proto::signing::Keypair;
use serde::Deserialize;

/// Prefix of NaCl-encrypted keyfiles.
const NACL_PREFIX: &[u8] = b"$NACL";
/// The fixed salt the Bittensor SDK derives keyfile keys with.
const NACL_SALT: [u8; 16] = *b"\x13q\x83\xdf\xf1Z\t\xbc\x9c\x90\xb5Q\x879\xe9\xb1";
/// libsodium's `crypto_pwhash_argon2i` SENSITIVE limits, which the SDK uses: 8 passes over
/// 512 MiB.
const ARGON2I_PASSES: u32 = 8;
const ARGON2I_MEMORY_KIB: u32 = 512 * 1024;
/// Largest keyfile read.
const MAX_KEYFILE_BYTES: u64 = 64 * 1024;

/// Why a hotkey could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyfileError {
    /// The file could not be read.
    #[error("cannot read keyfile {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The file is encrypted and no password was given.
    #[error("keyfile {0} is encrypted: give its password (GRAIL_HOTKEY_PASSWORD or the BT_PW_… variable)")]
    PasswordRequired(PathBuf),
    /// Decryption failed: the password is wrong (or the file was altered).
    #[error("wrong password for keyfile {0} (or the file was altered)")]
    WrongPassword(PathBuf),
    /// An encryption this crate does not read.
    #[error("keyfile {path} uses {kind} encryption; re-encrypt it with a current btcli (NaCl)")]
    UnsupportedEncryption {
        /// The file.
        path: PathBuf,
        /// Which legacy format.
        kind: &'static str,
    },
    /// Not a keyfile, or inconsistent contents.
    #[error("keyfile {path} is corrupt: {detail}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The (decrypted) contents are not a keyfile JSON object.
    #[error("keyfile {path} is corrupt: not a keyfile JSON object: {source}")]
    NotJson {
        /// The file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// The password could not be turned into a key (Argon2 refused its parameters).
    #[error("keyfile {path}: deriving the key from the password: {source}")]
    KeyDerivation {
        /// The file.
        path: PathBuf,
        /// Argon2's error.
        #[source]
        source: argon2::Error,
    },
    /// The file could not be written.
    #[error("cannot write keyfile {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// `~/.bittensor/wallets` (or `$BT_WALLET_PATH`).
pub fn default_wallets_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("BT_WALLET_PATH") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| ".".into());
    PathBuf::from(home).join(".bittensor").join("wallets")
}

/// The hotkey file of `wallet`/`hotkey` under `wallets_dir`.
pub fn hotkey_path(wallets_dir: &Path, wallet: &str, hotkey: &str) -> PathBuf {
    wallets_dir.join(wallet).join("hotkeys").join(hotkey)
}

/// The environment variable the Bittensor SDK keeps a keyfile's password in:
/// `BT_PW_` + the path with `/` and `.` replaced by `_`, upper-cased.
pub fn password_env_var(path: &Path) -> String {
    let normalized = path.to_string_lossy().replace(['/', '.'], "_");
    format!("BT_PW_{}", normalized.to_uppercase())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeyfileJson {
    #[serde(default)]
    secret_seed: Option<String>,
    #[serde(default)]
    secret_phrase: Option<String>,
    #[serde(default)]
    public_key: Option<String>,
    #[serde(default)]
    ss58_address: Option<String>,
}

/// Loads the hotkey in `path`; `password` is needed only for encrypted files.
pub fn load_hotkey(path: &Path, password: Option<&str>) -> Result<Keypair, KeyfileError> {
    use std::io::Read;
    let io = |source| KeyfileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut data = Vec::new();
    std::fs::File::open(path)
        .map_err(io)?
        .take(MAX_KEYFILE_BYTES + 1)
        .read_to_end(&mut data)
        .map_err(io)?;
    if data.len() as u64 > MAX_KEYFILE_BYTES {
        return Err(corrupt(path, "larger than any keyfile"));
    }
    let plain = if let Some(sealed) = data.strip_prefix(NACL_PREFIX) {
        let password = password.ok_or_else(|| KeyfileError::PasswordRequired(path.into()))?;
        decrypt_nacl(path, sealed, password)?
    } else if data.starts_with(b"$ANSIBLE_VAULT") {
        return Err(KeyfileError::UnsupportedEncryption {
            path: path.into(),
            kind: "Ansible Vault",
        });
    } else if data.starts_with(b"gAAAAA") {
        return Err(KeyfileError::UnsupportedEncryption {
            path: path.into(),
            kind: "legacy Fernet",
        });
    } else {
        data
    };
    parse_keyfile_json(path, &plain)
}

fn corrupt(path: &Path, detail: impl Into<String>) -> KeyfileError {
    KeyfileError::Corrupt {
        path: path.into(),
        detail: detail.into(),
    }
}

/// The 32-byte secretbox key the SDK derives from a password.
fn derive_key(password: &str) -> Result<[u8; 32], argon2::Error> {
    let params = Params::new(ARGON2I_MEMORY_KIB, ARGON2I_PASSES, 1, Some(32))?;
    let mut key = [0u8; 32];
    Argon2::new(Algorithm::Argon2i, Version::V0x13, params).hash_password_into(
        password.as_bytes(),
        &NACL_SALT,
        &mut key,
    )?;
    Ok(key)
}

fn decrypt_nacl(path: &Path, sealed: &[u8], password: &str) -> Result<Vec<u8>, KeyfileError> {
    if sealed.len() < 24 + 16 {
        return Err(corrupt(path, "encrypted payload is too short"));
    }
    let (nonce, ciphertext) = sealed.split_at(24);
    let nonce: [u8; 24] = nonce.try_into().map_err(|_| corrupt(path, "bad nonce"))?;
    let key = derive_key(password).map_err(|source| KeyfileError::KeyDerivation {
        path: path.into(),
        source,
    })?;
    XSalsa20Poly1305::new(&key.into())
        .decrypt(&Nonce::from(nonce), ciphertext)
        .map_err(|_| KeyfileError::WrongPassword(path.into()))
}

fn parse_keyfile_json(path: &Path, data: &[u8]) -> Result<Keypair, KeyfileError> {
    let json: KeyfileJson =
        serde_json::from_slice(data).map_err(|source| KeyfileError::NotJson {
            path: path.into(),
            source,
        })?;
    let key = match (&json.secret_seed, &json.secret_phrase) {
        (Some(seed), _) => {
            let hex_seed = seed.strip_prefix("0x").unwrap_or(seed);
            let bytes: [u8; 32] = hex::decode(hex_seed)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| corrupt(path, "secretSeed is not 32 hex bytes"))?;
            Keypair::from_seed(&bytes)
        }
        (None, Some(phrase)) => Keypair::from_uri(phrase)
            .map_err(|_| corrupt(path, "secretPhrase is not a valid mnemonic"))?,
        (None, None) => {
            return Err(corrupt(
                path,
                "no secretSeed or secretPhrase (is this a public-key-only file?)",
            ))
        }
    };
    if let Some(public) = &json.public_key {
        let public = public.strip_prefix("0x").unwrap_or(public);
        if !public.eq_ignore_ascii_case(&hex::encode(key.public().0)) {
            return Err(corrupt(path, "publicKey does not match the secret"));
        }
    }
    if let Some(address) = &json.ss58_address {
        if address != &key.public().to_ss58() {
            return Err(corrupt(path, "ss58Address does not match the secret"));
        }
    }
    Ok(key)
}

/// Writes `key` as a plain (unencrypted) JSON hotkey file, as `btcli` does for hotkeys
/// created with `--no-use-password` (used for local networks). The file is created with
/// mode 0600 and written atomically.
pub fn write_plain_hotkey(path: &Path, seed: &[u8; 32]) -> Result<Keypair, KeyfileError> {
    let key = Keypair::from_seed(seed);
    let json = serde_json::json!({
        "accountId": format!("0x{}", hex::encode(key.public().0)),
        "publicKey": format!("0x{}", hex::encode(key.public().0)),
        "secretSeed": format!("0x{}", hex::encode(seed)),
        "ss58Address": key.public().to_ss58(),
    });
    grail_fs::write_atomic_mode(path, json.to_string(), 0o600).map_err(|source| {
        KeyfileError::Write {
            path: path.to_path_buf(),
            source,
        }
    })?;
    Ok(key)
}
