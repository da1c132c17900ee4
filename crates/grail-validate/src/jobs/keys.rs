//! The gateway's API keys: a file of `label key` lines, kept only as SHA-256 digests.

use std::path::Path;

use sha2::{Digest, Sha256};

use grail_node::NodeError;

/// Shortest key accepted (bytes): a key is a bearer secret, not a password.
pub const MIN_KEY_BYTES: usize = 24;

/// The clients allowed to submit jobs.
#[derive(Clone, Default)]
pub struct ApiKeys {
    /// `(label, SHA-256 of the key)`.
    keys: Vec<(String, [u8; 32])>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Labels only: the digests stay out of logs too.
        let labels: Vec<&str> = self.keys.iter().map(|(l, _)| l.as_str()).collect();
        f.debug_struct("ApiKeys").field("labels", &labels).finish()
    }
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

impl ApiKeys {
    /// Parses `label key` lines (`#` starts a comment; blank lines are skipped). Labels are
    /// `[A-Za-z0-9_.-]{1,64}` and unique; keys at least [`MIN_KEY_BYTES`] of visible ASCII.
    /// Errors name the line, never the key.
    pub fn parse(text: &str, source: &str) -> Result<Self, NodeError> {
        let mut keys: Vec<(String, [u8; 32])> = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or_default().trim();
            if line.is_empty() {
                continue;
            }
            let bad = |why: &str| NodeError::Config(format!("{source}:{}: {why}", n + 1));
            let mut parts = line.split_whitespace();
            let (Some(label), Some(key), None) = (parts.next(), parts.next(), parts.next()) else {
                return Err(bad("expected `label key`"));
            };
            let label_ok = label.len() <= 64
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
            if !label_ok {
                return Err(bad("a label is 1 to 64 of A-Z a-z 0-9 _ . -"));
            }
            if key.len() < MIN_KEY_BYTES || !key.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(bad(&format!(
                    "the key of `{label}` must be at least {MIN_KEY_BYTES} visible ASCII characters"
                )));
            }
            if keys.iter().any(|(l, _)| l == label) {
                return Err(bad(&format!("label `{label}` appears twice")));
            }
            let d = digest(key);
            if keys.iter().any(|(_, k)| *k == d) {
                return Err(bad("this key is already given to another label"));
            }
            keys.push((label.to_string(), d));
        }
        Ok(Self { keys })
    }

    /// Reads a key file.
    pub fn load(path: &Path) -> Result<Self, NodeError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| NodeError::io(format!("reading API keys {}", path.display()), e))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// The label of the client presenting `Authorization: Bearer <key>`, if any.
    pub fn client(&self, authorization: Option<&str>) -> Option<&str> {
        let key = authorization?.strip_prefix("Bearer ")?.trim();
        let d = digest(key);
        // Compare every digest in full so the time taken says nothing about which matched.
        let mut found = None;
        for (label, k) in &self.keys {
            let diff = k.iter().zip(&d).fold(0u8, |acc, (a, b)| acc | (a ^ b));
            if diff == 0 {
                found = Some(label.as_str());
            }
        }
        found
    }

    /// How many keys there are.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there are none (then every submission is refused).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "k-0123456789abcdefghijklmnop";

    #[test]
    fn keys_authenticate_their_label_only() {
        let keys = ApiKeys::parse(
            &format!("# clients\nlab-a {KEY}\n\nlab-b {KEY}x  # second\n"),
            "keys",
        )
        .unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys.client(Some(&format!("Bearer {KEY}"))), Some("lab-a"));
        assert_eq!(keys.client(Some(&format!("Bearer {KEY}x"))), Some("lab-b"));
        assert_eq!(keys.client(Some(&format!("Bearer {KEY}y"))), None);
        assert_eq!(keys.client(Some(KEY)), None);
        assert_eq!(keys.client(None), None);
        assert!(!format!("{keys:?}").contains("0123456789"));
    }

    #[test]
    fn bad_key_files_name_the_line_not_the_key() {
        for (text, needle) in [
            ("lab short", "at least"),
            ("only-a-label", "expected"),
            (&format!("a {KEY}\na {KEY}z") as &str, "twice"),
            (&format!("a {KEY}\nb {KEY}") as &str, "already"),
            (&format!("bad/label {KEY}") as &str, "label"),
        ] {
            let e = ApiKeys::parse(text, "keys.txt").unwrap_err().to_string();
            assert!(e.contains(needle) && e.contains("keys.txt:"), "{e}");
            assert!(!e.contains("0123456789"), "{e}");
        }
    }
}
