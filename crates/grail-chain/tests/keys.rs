//! Bittensor hotkey files written by the Python SDK: plain JSON and NaCl-encrypted.

use std::path::PathBuf;

use grail_chain::keys::{
    hotkey_path, load_hotkey, password_env_var, write_plain_hotkey, KeyfileError,
};
use grail_proto::signing::Keypair;

const PLAIN: &[u8] = include_bytes!("fixtures/hotkey-plain");
const NACL: &[u8] = include_bytes!("fixtures/hotkey-nacl");

fn write(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn sdk_keyfiles_load_plain_and_encrypted() {
    let dir = tempfile::tempdir().unwrap();
    let expected = Keypair::from_seed(&[1; 32]).public();
    assert_eq!(
        expected.to_ss58(),
        "5CcyqxXnJucaCnQQvvUg5EPzj1uoNAxACZvzArHw5aVDvgNH"
    );

    let plain = write(&dir, "plain", PLAIN);
    assert_eq!(load_hotkey(&plain, None).unwrap().public(), expected);

    let nacl = write(&dir, "nacl", NACL);
    assert!(matches!(
        load_hotkey(&nacl, None),
        Err(KeyfileError::PasswordRequired(_))
    ));
    assert_eq!(
        load_hotkey(&nacl, Some("correct horse")).unwrap().public(),
        expected
    );
    assert!(matches!(
        load_hotkey(&nacl, Some("wrong horse")),
        Err(KeyfileError::WrongPassword(_))
    ));
}

#[test]
fn corrupt_and_unsupported_files_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    assert!(matches!(
        load_hotkey(&missing, None),
        Err(KeyfileError::Io { .. })
    ));
    let truncated = write(&dir, "truncated", &PLAIN[..100]);
    assert!(matches!(
        load_hotkey(&truncated, None),
        Err(KeyfileError::NotJson { .. })
    ));
    let short_nacl = write(&dir, "short", b"$NACLabc");
    assert!(matches!(
        load_hotkey(&short_nacl, Some("x")),
        Err(KeyfileError::Corrupt { .. })
    ));
    let text = String::from_utf8(PLAIN.to_vec()).unwrap();
    let mismatched = write(
        &dir,
        "mismatch",
        text.replace("189dac29", "289dac29").as_bytes(),
    );
    assert!(matches!(
        load_hotkey(&mismatched, None),
        Err(KeyfileError::Corrupt { .. })
    ));
    let public_only = write(&dir, "pub", br#"{"publicKey":"0x00","ss58Address":"x"}"#);
    assert!(matches!(
        load_hotkey(&public_only, None),
        Err(KeyfileError::Corrupt { .. })
    ));
    let vault = write(&dir, "vault", b"$ANSIBLE_VAULT;1.1;AES256\n3131");
    assert!(matches!(
        load_hotkey(&vault, Some("x")),
        Err(KeyfileError::UnsupportedEncryption { .. })
    ));
    let huge = write(&dir, "huge", &vec![b' '; 100_000]);
    assert!(matches!(
        load_hotkey(&huge, None),
        Err(KeyfileError::Corrupt { .. })
    ));
}

#[test]
fn written_hotkeys_load_back_with_owner_only_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = hotkey_path(dir.path(), "localnet", "miner-1");
    assert!(path.ends_with("localnet/hotkeys/miner-1"));
    let key = write_plain_hotkey(&path, &[5; 32]).unwrap();
    assert_eq!(load_hotkey(&path, None).unwrap().public(), key.public());
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(
        password_env_var(std::path::Path::new("/root/.bittensor/wallets/w/hotkeys/h")),
        "BT_PW__ROOT__BITTENSOR_WALLETS_W_HOTKEYS_H"
    );
}
