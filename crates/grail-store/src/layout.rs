//! Where things live in a bucket (normative; docs/protocol.md §11 repeats it).
//!
//! ```text
//! bundles/{window:012}/{hotkey}.bundle     miner window bundle (grail-proto bytes)
//! bundles/{window:012}/{hotkey}.sha256     its SHA-256, hex, written after the bundle
//! lanes/{window:012}/{job}/{hotkey}.bundle a miner's groups for a client job (its lane), and
//! lanes/{window:012}/{job}/{hotkey}.sha256 its SHA-256, as for the subnet's bundle
//! lanes/{window:012}/{job}/{sha256}.archive a validator's sealed window of the job's lane
//! archives/{window:012}/{sha256}.archive   validator sealed window, named by its hash
//! checkpoints/{number:012}/{file}          checkpoint files
//! checkpoints/{number:012}/manifest.json   signed manifest, written after the files
//! checkpoints/latest.json                  pointer to the newest manifest, written last
//! jobs/{id}.job                            a client job's canonical bytes (grail-jobs), named by their digest
//! jobs/index.json                          the validator gateway's open jobs, rewritten on every change
//! ```
//!
//! Windows and checkpoint numbers are zero-padded so that lexical listing is numeric
//! order; hotkeys are lowercase hex of the public key.

use grail_proto::Hotkey;

/// Folder of a window's bundles.
pub fn bundles_prefix(window: u64) -> String {
    format!("bundles/{window:012}/")
}

/// A miner's bundle.
pub fn bundle(window: u64, hotkey: &Hotkey) -> String {
    bundle_in(window, None, hotkey)
}

/// The published SHA-256 of a miner's bundle.
pub fn bundle_digest(window: u64, hotkey: &Hotkey) -> String {
    bundle_digest_in(window, None, hotkey)
}

/// Folder of a job lane's bundles in a window (`lane`: the job id, hex).
pub fn lane_prefix(window: u64, lane: &str) -> String {
    format!("lanes/{window:012}/{lane}/")
}

fn slot_prefix(window: u64, lane: Option<&str>) -> String {
    match lane {
        None => bundles_prefix(window),
        Some(lane) => lane_prefix(window, lane),
    }
}

/// A validator's sealed window of a job's lane, named by the hash of its bytes.
pub fn lane_archive(window: u64, lane: &str, sha256: &[u8; 32]) -> String {
    format!(
        "{}{}.archive",
        lane_prefix(window, lane),
        hex::encode(sha256)
    )
}

/// A miner's bundle in the subnet's lane (`None`) or a job's lane.
pub fn bundle_in(window: u64, lane: Option<&str>, hotkey: &Hotkey) -> String {
    format!(
        "{}{}.bundle",
        slot_prefix(window, lane),
        hex::encode(hotkey.0)
    )
}

/// The published SHA-256 of [`bundle_in`].
pub fn bundle_digest_in(window: u64, lane: Option<&str>, hotkey: &Hotkey) -> String {
    format!(
        "{}{}.sha256",
        slot_prefix(window, lane),
        hex::encode(hotkey.0)
    )
}

/// Folder of a window's archives.
pub fn archives_prefix(window: u64) -> String {
    format!("archives/{window:012}/")
}

/// A sealed-window archive, named by the SHA-256 of its bytes.
pub fn archive(window: u64, sha256: &[u8; 32]) -> String {
    format!("{}{}.archive", archives_prefix(window), hex::encode(sha256))
}

/// Folder of one checkpoint.
pub fn checkpoint_prefix(number: u64) -> String {
    format!("checkpoints/{number:012}/")
}

/// A checkpoint file.
pub fn checkpoint_file(number: u64, name: &str) -> String {
    format!("{}{name}", checkpoint_prefix(number))
}

/// A checkpoint's signed manifest.
pub fn checkpoint_manifest(number: u64) -> String {
    checkpoint_file(number, "manifest.json")
}

/// The pointer to the newest checkpoint.
pub const LATEST_CHECKPOINT: &str = "checkpoints/latest.json";

/// A client job's canonical bytes (`id`: the job's digest in hex).
pub fn job(id: &str) -> String {
    format!("jobs/{id}.job")
}

/// The gateway's list of open jobs.
pub const JOBS_INDEX: &str = "jobs/index.json";

/// Parses the window out of a `bundles/…`, `lanes/…` or `archives/…` key.
pub fn window_of(key: &str) -> Option<u64> {
    let rest = key
        .strip_prefix("bundles/")
        .or_else(|| key.strip_prefix("lanes/"))
        .or_else(|| key.strip_prefix("archives/"))?;
    rest.split('/').next()?.parse().ok()
}

/// Parses the checkpoint number out of a `checkpoints/{n}/…` key.
pub fn checkpoint_of(key: &str) -> Option<u64> {
    key.strip_prefix("checkpoints/")?
        .split('/')
        .next()?
        .parse()
        .ok()
}

/// Parses the hotkey out of a bundle key.
pub fn hotkey_of_bundle(key: &str) -> Option<Hotkey> {
    let name = key.rsplit('/').next()?.strip_suffix(".bundle")?;
    let bytes: [u8; 32] = hex::decode(name).ok()?.try_into().ok()?;
    Some(Hotkey(bytes))
}

/// A checkpoint file name is one path segment of safe characters (it becomes a local file).
pub fn valid_file_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_back() {
        let h = Hotkey([0xab; 32]);
        assert_eq!(
            bundle(7, &h),
            format!("bundles/000000000007/{}.bundle", "ab".repeat(32))
        );
        assert_eq!(window_of(&bundle(7, &h)), Some(7));
        assert_eq!(hotkey_of_bundle(&bundle(7, &h)), Some(h));
        assert_eq!(window_of(&archive(9, &[1; 32])), Some(9));
        let lane = bundle_in(7, Some("cd"), &h);
        assert_eq!(
            lane,
            format!("lanes/000000000007/cd/{}.bundle", "ab".repeat(32))
        );
        assert_eq!(window_of(&lane), Some(7));
        assert_eq!(hotkey_of_bundle(&lane), Some(h));
        assert_eq!(checkpoint_of(&checkpoint_manifest(12)), Some(12));
        assert_eq!(checkpoint_of(LATEST_CHECKPOINT), None);
        assert!(hotkey_of_bundle("bundles/000000000007/zz.bundle").is_none());
        assert!(valid_file_name("model.safetensors"));
        assert!(!valid_file_name("../x") && !valid_file_name("a/b") && !valid_file_name(".."));
    }
}
