//! Tokenizers: a thin wrapper over Hugging Face `tokenizers`, and the builders that write
//! a byte-level BPE `tokenizer.json` from a vocabulary and merges (GGUF import, tiktoken
//! files, the tiny test model).

use std::collections::HashMap;
use std::path::Path;

use serde_json::{json, Value};

use crate::InferError;

/// A loaded `tokenizer.json`.
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
}

/// Runs a call into the `tokenizers` crate and turns a panic into an error. That crate
/// panics on some malformed tokenizer.json files (its deserializers `expect` instead of
/// returning errors: invalid JSON inside the `decoder` object hits `expect("Helper")`), and
/// a model folder is untrusted input; found by `cargo xtask fuzz --target model-dir`
/// (docs/reliability.md). The library's state is not reused after a panic in parsing (the
/// value is dropped); after one in encoding or decoding the call is an error.
fn guarded<T>(
    what: &'static str,
    call: impl FnOnce() -> Result<T, InferError>,
) -> Result<T, InferError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(call)).unwrap_or_else(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(InferError::TokenizerPanic { what, message })
    })
}

impl Tokenizer {
    /// Loads `tokenizer.json` from a file.
    pub fn from_file(path: &Path) -> Result<Self, InferError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| InferError::io(format!("reading {}", path.display()), e))?;
        Self::from_json(&text).map_err(|e| e.context(path.display().to_string()))
    }

    /// Parses `tokenizer.json` text.
    pub fn from_json(text: &str) -> Result<Self, InferError> {
        let inner = guarded("parsing tokenizer.json", || {
            text.parse::<tokenizers::Tokenizer>()
                .map_err(|source| InferError::TokenizerLib {
                    context: "parsing tokenizer.json".into(),
                    source,
                })
        })?;
        Ok(Self { inner })
    }

    /// Token ids of `text`. Special tokens written in the text (as a rendered chat
    /// template has them) become their ids; no BOS/EOS is added.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, InferError> {
        guarded("encoding", || {
            let encoding =
                self.inner
                    .encode(text, false)
                    .map_err(|source| InferError::TokenizerLib {
                        context: "encoding".into(),
                        source,
                    })?;
            Ok(encoding.get_ids().to_vec())
        })
    }

    /// Text of `ids`; special tokens kept unless `skip_special`.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String, InferError> {
        guarded("decoding", || {
            self.inner
                .decode(ids, skip_special)
                .map_err(|source| InferError::TokenizerLib {
                    context: "decoding".into(),
                    source,
                })
        })
    }

    /// The id of a token string (a special token such as `<|im_end|>` included).
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Number of ids, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }
}

/// GPT-2's reversible map from bytes to printable characters, used by byte-level BPE.
pub fn byte_to_char() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut next = 256u32;
    for b in 0..=255u8 {
        let printable = matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        table[b as usize] = if printable {
            char::from(b)
        } else {
            let c = char::from_u32(next).unwrap_or('?');
            next += 1;
            c
        };
    }
    table
}

/// Bytes written as their byte-level BPE characters.
pub fn bytes_to_token(bytes: &[u8]) -> String {
    let table = byte_to_char();
    bytes.iter().map(|&b| table[b as usize]).collect()
}

/// How text is split before BPE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreTokenizer {
    /// GPT-2's regex (ByteLevel with `use_regex`).
    Gpt2,
    /// SmolLM: every digit alone, then GPT-2's regex.
    SmolLm,
    /// Qwen2's regex (digits one by one, letters with a leading symbol), NFC first.
    Qwen2,
}

impl PreTokenizer {
    /// From GGUF's `tokenizer.ggml.pre`.
    pub fn from_gguf_name(name: &str) -> Result<Self, InferError> {
        match name {
            "default" | "gpt-2" | "gpt2" => Ok(Self::Gpt2),
            "smollm" => Ok(Self::SmolLm),
            "qwen2" => Ok(Self::Qwen2),
            other => Err(InferError::UnsupportedPreTokenizer { name: other.into() }),
        }
    }
}

/// Qwen2's split pattern.
pub const QWEN2_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// A special (added) token.
#[derive(Debug, Clone)]
pub struct SpecialToken {
    /// Its id.
    pub id: u32,
    /// Its text.
    pub content: String,
}

/// Writes a byte-level BPE `tokenizer.json`. `vocab` holds byte-level strings by id;
/// `merges` are pairs in priority order; `specials` are matched whole in input text.
pub fn byte_level_bpe_json(
    vocab: &[String],
    merges: &[(String, String)],
    specials: &[SpecialToken],
    pre: PreTokenizer,
) -> Value {
    let vocab_map: serde_json::Map<String, Value> = vocab
        .iter()
        .enumerate()
        .map(|(id, token)| (token.clone(), json!(id)))
        .collect();
    let merges: Vec<Value> = merges.iter().map(|(a, b)| json!([a, b])).collect();
    let added: Vec<Value> = specials
        .iter()
        .map(|s| {
            json!({"id": s.id, "content": s.content, "single_word": false, "lstrip": false,
                   "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    let byte_level = |regex: bool| json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": regex});
    let (normalizer, pre_tokenizer) = match pre {
        PreTokenizer::Gpt2 => (Value::Null, byte_level(true)),
        PreTokenizer::SmolLm => (
            Value::Null,
            json!({"type": "Sequence", "pretokenizers": [
                {"type": "Digits", "individual_digits": true}, byte_level(true)]}),
        ),
        PreTokenizer::Qwen2 => (
            json!({"type": "NFC"}),
            json!({"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": QWEN2_PATTERN},
                 "behavior": "Isolated", "invert": false},
                byte_level(false)]}),
        ),
    };
    json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": normalizer,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": byte_level(true),
        "decoder": byte_level(true),
        "model": {
            "type": "BPE", "dropout": null, "unk_token": null,
            "continuing_subword_prefix": null, "end_of_word_suffix": null,
            "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
            "vocab": vocab_map, "merges": merges
        }
    })
}

/// Converts tiktoken mergeable ranks (token bytes by rank = id) to a byte-level vocab and
/// merges: every split of a token into two tokens of the vocabulary is a merge, ordered by
/// the rank of the merged token — the rule tiktoken's byte-pair encoding follows.
pub fn tiktoken_to_bpe(ranks: &[Vec<u8>]) -> (Vec<String>, Vec<(String, String)>) {
    let index: HashMap<&[u8], usize> = ranks
        .iter()
        .enumerate()
        .map(|(i, t)| (t.as_slice(), i))
        .collect();
    let vocab: Vec<String> = ranks.iter().map(|t| bytes_to_token(t)).collect();
    let mut merges = Vec::new();
    for (rank, token) in ranks.iter().enumerate() {
        let mut local: Vec<(usize, usize)> = (1..token.len())
            .filter_map(|cut| {
                let left = *index.get(&token[..cut])?;
                let right = *index.get(&token[cut..])?;
                (left < rank && right < rank).then_some((left, right))
            })
            .collect();
        local.sort_unstable();
        merges.extend(
            local
                .into_iter()
                .map(|(l, r)| (vocab[l].clone(), vocab[r].clone())),
        );
    }
    (vocab, merges)
}

/// First id of Qwen's special tokens (right after the 151 643 BPE ranks).
pub const QWEN_SPECIAL_START: u32 = 151_643;

/// tokenizer.json for a Qwen (Qwen2 / Qwen2.5 / Qwen3) `.tiktoken` vocabulary: NFC, the
/// Qwen2 split pattern, byte-level BPE, and the special tokens `<|endoftext|>`,
/// `<|im_start|>`, `<|im_end|>`, `<|extra_0|>`…`<|extra_204|>` from id 151 643.
pub fn qwen_tokenizer_json(tiktoken: &str) -> Result<Value, InferError> {
    let ranks = parse_tiktoken(tiktoken)?;
    if ranks.len() != QWEN_SPECIAL_START as usize {
        return Err(InferError::VocabularySize {
            expected: QWEN_SPECIAL_START as usize,
            found: ranks.len(),
        });
    }
    let (mut vocab, merges) = tiktoken_to_bpe(&ranks);
    let names = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
        .into_iter()
        .map(str::to_string)
        .chain((0..205).map(|i| format!("<|extra_{i}|>")));
    let specials: Vec<SpecialToken> = names
        .enumerate()
        .map(|(i, content)| SpecialToken {
            id: QWEN_SPECIAL_START + i as u32,
            content,
        })
        .collect();
    vocab.extend(specials.iter().map(|s| s.content.clone()));
    Ok(byte_level_bpe_json(
        &vocab,
        &merges,
        &specials,
        PreTokenizer::Qwen2,
    ))
}

/// Parses a `.tiktoken` file (`base64 rank` per line; ranks must be 0..n in order).
pub fn parse_tiktoken(text: &str) -> Result<Vec<Vec<u8>>, InferError> {
    let mut out = Vec::new();
    for (line_no, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let bad = |problem| InferError::Tiktoken {
            line: line_no + 1,
            problem,
        };
        let mut parts = line.split_whitespace();
        let (Some(b64), Some(rank), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("expected `base64 rank`"));
        };
        let rank: usize = rank.parse().map_err(|_| bad("rank is not a number"))?;
        if rank != out.len() {
            return Err(bad("ranks must be consecutive from 0"));
        }
        out.push(base64_decode(b64).ok_or_else(|| bad("bad base64"))?);
    }
    Ok(out)
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let bytes = text.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        if chunk.len() == 1 {
            return None;
        }
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= value(c)? << (18 - 6 * i);
        }
        out.extend_from_slice(&acc.to_be_bytes()[1..chunk.len()]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by `cargo xtask fuzz --target model-dir` (docs/reliability.md): invalid JSON
    /// inside the `decoder` object of tokenizer.json made the tokenizers crate panic.
    #[test]
    fn a_malformed_tokenizer_json_is_an_error_not_a_panic() {
        let (json, _) = crate::tiny::tiny_tokenizer(20);
        let text = json.to_string();
        assert!(Tokenizer::from_json(&text).is_ok());
        let broken = text.replacen("\"decoder\":{", "\"decoder\":{\"type\" \"ByteLevel\",", 1);
        assert_ne!(broken, text);
        let err = Tokenizer::from_json(&broken).err().expect("an error");
        assert!(err.to_string().contains("panicked"), "{err}");
    }

    #[test]
    fn byte_table_is_a_bijection_with_gpt2_landmarks() {
        let t = byte_to_char();
        let unique: std::collections::HashSet<char> = t.iter().copied().collect();
        assert_eq!(unique.len(), 256);
        assert_eq!(t[b' ' as usize], 'Ġ');
        assert_eq!(t[b'\n' as usize], 'Ċ');
        assert_eq!(t[b'a' as usize], 'a');
    }

    #[test]
    fn base64_round_trips_known_values() {
        assert_eq!(base64_decode("IQ==").unwrap(), b"!");
        assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64_decode("aGVsbG8h").unwrap(), b"hello!");
        assert!(base64_decode("a").is_none());
        assert!(base64_decode("a$==").is_none());
    }

    #[test]
    fn tiktoken_conversion_tokenizes_like_rank_order_bpe() {
        // the 256 bytes, then "ab" (256), "abc" (257), "bc" (258)
        let mut ranks: Vec<Vec<u8>> = (0u8..=255).map(|b| vec![b]).collect();
        ranks.extend([b"ab".to_vec(), b"abc".to_vec(), b"bc".to_vec()]);
        let (vocab, merges) = tiktoken_to_bpe(&ranks);
        assert_eq!(merges[0], ("a".to_string(), "b".to_string()));
        assert_eq!(merges[1], ("ab".to_string(), "c".to_string()));
        let json = byte_level_bpe_json(&vocab, &merges, &[], PreTokenizer::Gpt2);
        let tok = Tokenizer::from_json(&json.to_string()).unwrap();
        assert_eq!(tok.encode("abc").unwrap(), vec![257]);
        assert_eq!(tok.encode("bc").unwrap(), vec![258]);
        assert_eq!(
            tok.decode(&tok.encode("abc abc").unwrap(), false).unwrap(),
            "abc abc"
        );
        assert!(parse_tiktoken("IQ== 1").is_err());
        assert_eq!(
            parse_tiktoken("IQ== 0\naGk= 1\n").unwrap(),
            vec![b"!".to_vec(), b"hi".to_vec()]
        );
    }
}
