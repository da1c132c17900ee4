//! Native conformance vectors for protocol v5: `tests/vectors/native_v5.json`.
//!
//! Third parties that implement grail-proto's rules in another language check their code
//! against this file; this test keeps the file equal to what the Rust reference computes.
//! Every value is computed here from fixed inputs, and every case in the file carries its
//! inputs next to its outputs, so a consumer needs nothing but the JSON.
//!
//! # Regenerating
//!
//! `cargo xtask vectors` (= `GRAIL_WRITE_VECTORS=1 cargo test -p grail-proto --test
//! conformance`) rewrites the file; review the diff before committing it, since any change
//! to it is a protocol change. Without the variable the test reads the file (it fails when
//! it is missing) and reports every difference by section, case and field.
//! `RECORDED_SIGNATURE` below is one sr25519 signature of the fixture group's digest: when
//! the fixture or the binding changes, the generator panics with a fresh signature to paste.
//!
//! # Layout
//!
//! One object, keys sorted, with these sections (each a list of cases or an object of such
//! lists; a case's `name` says what it pins):
//!
//! - `meta`, `params` — the protocol version, these conventions and every constant used.
//! - `prf` — `prf`/`prf32` outputs with their SHAKE256 input bytes (empty parts, length
//!   separation, output lengths).
//! - `stream` — ChaCha20 stream keys, keystream bytes and `u64` words; `uniform_below`
//!   draws with the words each one consumed.
//! - `randomness` — window and challenge randomness from block hashes and beacons.
//! - `sketch` — fixed point `q(x)` edge cases, coefficient rows, sketches of hidden
//!   vectors and their wire digests, modular distance and tolerance.
//! - `challenge` — challenged positions for `(prompt_len, total_len, k)` cases.
//! - `evidence` — archive evidence positions (completion offsets) for `(validator, work
//!   digest, rollout, completion_len)` cases.
//! - `sampling` — prompt digests, the per-rollout seed streams, SplitMix64 token words,
//!   Gumbel scores, claimed-token gaps, the reference sampler and the sampling check.
//! - `digests` — a fixed group of two rollouts with the hotkey from a fixed seed: rollout,
//!   group, token and work digests with their SHA-256 preimages, and a recorded signature.
//! - `bundle` — the exact encoded bytes of a window bundle holding that group.
//! - `rules` — reason strings in order, consequences, credited work, copy voiding,
//!   spot-check sampling and scoring weights.
//! - `grpo` — group advantages and the learning-zone predicate.
//!
//! `stream`, `sampling` and `rules` also carry `notes`: the exact arithmetic (summation
//! order, rounding, edge rules) where the float results depend on it.
//!
//! # Encodings
//!
//! Byte strings are lowercase hex without prefix (`*_hex`). Integers that fit in 2^53 are
//! JSON numbers; `u64` values that may not (stream words, `uniform_below` bounds and
//! results) are strings: words as `0x` + 16 hex digits, the others in decimal. A float
//! field `x` comes with `x_bits`, its IEEE-754 bit pattern (`0x` + 16 hex digits for f64,
//! 8 for f32); compare the bits. `x` itself is the value as a JSON number (an f32 widened
//! to f64 exactly), or `"NaN"`, `"inf"`, `"-inf"`. The decimal numbers are informative
//! only: this test compares them within 2 ulps because JSON parsers need not round
//! decimals exactly, and the bit patterns exactly — except in cases that carry a `libm`
//! key (`ln` or `pow`: Gumbel scores and gaps, some scoring weights), whose floats depend
//! on the libm and compare within 1e-12 relative.
//!
//! The file needs the `sr25519` feature (on by default) for the signature checks.

#![cfg(feature = "sr25519")]

use std::path::PathBuf;

use grail_proto::binding::{
    group_digest, rollout_digest, token_digest, work_digest, GROUP_DOMAIN, ROLLOUT_DOMAIN,
    WORK_DOMAIN,
};
use grail_proto::challenge::challenge_positions;
use grail_proto::grpo;
use grail_proto::params::*;
use grail_proto::prf::{prf, prf32, stream, uniform_below, PRF_DOMAIN};
use grail_proto::randomness::{challenge_randomness, window_randomness, Beacon};
use grail_proto::rules::bundle::{
    credited_work, judge_copy, sample_groups, shared_work, CheckedOutcome,
};
use grail_proto::rules::evidence::evidence_positions;
use grail_proto::rules::training::training_slots;
use grail_proto::rules::{Consequence, Reason, Rejection};
use grail_proto::sampling::{
    allowed_ambiguous, allowed_ambiguous_in_sample, check_sampling_with, claimed_gap, classify,
    prompt_digest, sample_token, score, temperature, PositionClass, PositionNoise, RolloutNoise,
    SamplingError, SAMPLING_LABEL,
};
use grail_proto::scoring::{weights, ScoreRule, WorkHistory};
use grail_proto::signing::{verify, verify_group, Keypair};
use grail_proto::sketch::{fixed_point, modular_distance, tolerance, SketchCoefficients};
use grail_proto::wire::{
    decode_bundle, encode_bundle, EnvironmentId, GenerationParams, Group, GroupHeader, Hotkey,
    Rollout, Signature, WindowBundle, BUNDLE_FORMAT_VERSION, BUNDLE_MAGIC,
};
use grail_proto::PositionSketch;
use rand_chacha::ChaCha20Rng;
use rand_core::RngCore;
use serde_json::{Map, Number, Value};
use sha2::{Digest, Sha256};
use sha3::digest::{ExtendableOutput, Update, XofReader};

/// Set to `1` to (re)write the vector file before checking it.
const WRITE_ENV: &str = "GRAIL_WRITE_VECTORS";
/// The vector file, relative to the package root.
const VECTOR_FILE: &str = "tests/vectors/native_v5.json";

/// Mini-secret seed of the fixture hotkey (`signing::Keypair::from_seed`).
const SEED_HEX: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
/// A signature of the fixture group's digest by the fixture hotkey, made once: sr25519
/// signing is randomised, so it cannot be recomputed, only verified.
const RECORDED_SIGNATURE: &str = "ee31ed628c775f67cbe7c60a3daa7f679befa17fd862e3d8a57fb46637587d41f15882beaa371b13ac2a688b59c888ae739de0d6795dcf1233b17a3c7a27fd8b";

// ---------------------------------------------------------------------------------------
// JSON helpers

fn num64(x: f64) -> Value {
    if x.is_nan() {
        Value::from("NaN")
    } else if x.is_infinite() {
        Value::from(if x > 0.0 { "inf" } else { "-inf" })
    } else {
        Number::from_f64(x).map_or(Value::Null, Value::Number)
    }
}

fn bits64(x: f64) -> Value {
    Value::from(format!("0x{:016x}", x.to_bits()))
}

fn bits32(x: f32) -> Value {
    Value::from(format!("0x{:08x}", x.to_bits()))
}

fn word(x: u64) -> Value {
    Value::from(format!("0x{x:016x}"))
}

fn big(x: u64) -> Value {
    Value::from(x.to_string())
}

fn hexes<T: AsRef<[u8]>>(items: &[T]) -> Value {
    Value::from(items.iter().map(hex::encode).collect::<Vec<_>>())
}

/// An object under construction.
#[derive(Default)]
struct Obj(Map<String, Value>);

impl Obj {
    fn new() -> Self {
        Self::default()
    }

    fn v(mut self, key: &str, value: impl Into<Value>) -> Self {
        let old = self.0.insert(key.to_string(), value.into());
        assert!(old.is_none(), "key `{key}` set twice");
        self
    }

    fn hex(self, key: &str, bytes: impl AsRef<[u8]>) -> Self {
        self.v(key, hex::encode(bytes))
    }

    fn f64(self, key: &str, x: f64) -> Self {
        self.v(key, num64(x)).v(&format!("{key}_bits"), bits64(x))
    }

    fn f32(self, key: &str, x: f32) -> Self {
        self.v(key, num64(f64::from(x)))
            .v(&format!("{key}_bits"), bits32(x))
    }

    fn f64s(self, key: &str, xs: &[f64]) -> Self {
        let values: Vec<Value> = xs.iter().map(|&x| num64(x)).collect();
        let bits: Vec<Value> = xs.iter().map(|&x| bits64(x)).collect();
        self.v(key, values).v(&format!("{key}_bits"), bits)
    }

    fn f32s(self, key: &str, xs: &[f32]) -> Self {
        let values: Vec<Value> = xs.iter().map(|&x| num64(f64::from(x))).collect();
        let bits: Vec<Value> = xs.iter().map(|&x| bits32(x)).collect();
        self.v(key, values).v(&format!("{key}_bits"), bits)
    }
}

impl From<Obj> for Value {
    fn from(o: Obj) -> Value {
        Value::Object(o.0)
    }
}

fn case(name: &str) -> Obj {
    Obj::new().v("name", name)
}

/// Pretty JSON with sorted keys; arrays of scalars are filled into lines of `WIDTH`.
fn render(v: &Value) -> String {
    const WIDTH: usize = 96;
    fn pad(out: &mut String, n: usize) {
        out.extend(std::iter::repeat_n(' ', n));
    }
    fn scalar(v: &Value) -> bool {
        !matches!(v, Value::Array(_) | Value::Object(_))
    }
    fn go(v: &Value, indent: usize, out: &mut String) {
        match v {
            Value::Object(m) if !m.is_empty() => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                out.push_str("{\n");
                for (i, k) in keys.iter().enumerate() {
                    pad(out, indent + 2);
                    out.push_str(&serde_json::to_string(k).unwrap());
                    out.push_str(": ");
                    go(&m[k.as_str()], indent + 2, out);
                    out.push_str(if i + 1 < keys.len() { ",\n" } else { "\n" });
                }
                pad(out, indent);
                out.push('}');
            }
            Value::Array(a) if !a.is_empty() && a.iter().all(scalar) => {
                let items: Vec<String> = a
                    .iter()
                    .map(|x| serde_json::to_string(x).unwrap())
                    .collect();
                let inline = items.join(", ");
                if indent + inline.len() + 8 <= WIDTH {
                    out.push('[');
                    out.push_str(&inline);
                    out.push(']');
                    return;
                }
                out.push_str("[\n");
                let mut line = String::new();
                for (i, item) in items.iter().enumerate() {
                    let piece = if i + 1 < items.len() {
                        format!("{item},")
                    } else {
                        item.clone()
                    };
                    if !line.is_empty() && indent + 2 + line.len() + 1 + piece.len() > WIDTH {
                        pad(out, indent + 2);
                        out.push_str(&line);
                        out.push('\n');
                        line.clear();
                    }
                    if !line.is_empty() {
                        line.push(' ');
                    }
                    line.push_str(&piece);
                }
                pad(out, indent + 2);
                out.push_str(&line);
                out.push('\n');
                pad(out, indent);
                out.push(']');
            }
            Value::Array(a) if !a.is_empty() => {
                out.push_str("[\n");
                for (i, x) in a.iter().enumerate() {
                    pad(out, indent + 2);
                    go(x, indent + 2, out);
                    out.push_str(if i + 1 < a.len() { ",\n" } else { "\n" });
                }
                pad(out, indent);
                out.push(']');
            }
            other => out.push_str(&serde_json::to_string(other).unwrap()),
        }
    }
    let mut out = String::new();
    go(v, 0, &mut out);
    out.push('\n');
    out
}

// ---------------------------------------------------------------------------------------
// Comparison

/// Relative tolerance of float outputs in cases marked `libm` (they depend on `exp` or
/// `pow`, which IEEE 754 does not require to be correctly rounded).
const LIBM_RELATIVE_TOLERANCE: f64 = 1e-12;

fn close(x: f64, y: f64) -> bool {
    x == y
        || (x.is_nan() && y.is_nan())
        || (x - y).abs() <= LIBM_RELATIVE_TOLERANCE * x.abs().max(y.abs())
}

/// Numbers are equal when they are the same integer, or floats within 2 ulps (the `_bits`
/// fields carry the exact values), or within [`LIBM_RELATIVE_TOLERANCE`] when `loose`.
fn same_number(a: &Number, b: &Number, loose: bool) -> bool {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        return x == y;
    }
    if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
        return x == y;
    }
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => {
            x == y
                || (x.is_sign_negative() == y.is_sign_negative()
                    && x.to_bits().abs_diff(y.to_bits()) <= 2)
                || (loose && close(x, y))
        }
        _ => false,
    }
}

/// The float a bit-pattern string (`0x` + 8 or 16 hex digits) stands for.
fn from_bits(s: &str) -> Option<f64> {
    let h = s.strip_prefix("0x")?;
    match h.len() {
        16 => u64::from_str_radix(h, 16).ok().map(f64::from_bits),
        8 => u32::from_str_radix(h, 16)
            .ok()
            .map(|b| f64::from(f32::from_bits(b))),
        _ => None,
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 120 {
        format!("{}…", s.chars().take(120).collect::<String>())
    } else {
        s
    }
}

/// Every difference between the reference value `want` and the file's `got`, as
/// `(path, description)`. Array elements are named by index and, for cases, by `name`.
/// Inside an object with a `libm` key, floats (and float bit patterns) compare within
/// [`LIBM_RELATIVE_TOLERANCE`].
fn diff(path: &str, want: &Value, got: &Value, loose: bool, out: &mut Vec<(String, String)>) {
    let join = |key: &str| {
        if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        }
    };
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            let loose = loose || w.contains_key("libm");
            for (k, wv) in w {
                match g.get(k) {
                    Some(gv) => diff(&join(k), wv, gv, loose, out),
                    None => out.push((
                        join(k),
                        format!("missing from the file (reference computes {})", short(wv)),
                    )),
                }
            }
            for (k, gv) in g {
                if !w.contains_key(k) {
                    out.push((
                        join(k),
                        format!(
                            "in the file ({}) but not computed by the reference",
                            short(gv)
                        ),
                    ));
                }
            }
        }
        (Value::Array(w), Value::Array(g)) => {
            if w.len() != g.len() {
                out.push((
                    path.to_string(),
                    format!(
                        "file has {} entries, reference computes {}",
                        g.len(),
                        w.len()
                    ),
                ));
            }
            for (i, (wv, gv)) in w.iter().zip(g).enumerate() {
                let p = match wv.get("name").and_then(Value::as_str) {
                    Some(name) => format!("{path}[{i} \"{name}\"]"),
                    None => format!("{path}[{i}]"),
                };
                diff(&p, wv, gv, loose, out);
            }
        }
        (Value::Number(a), Value::Number(b)) if same_number(a, b, loose) => {}
        _ if want == got => {}
        (Value::String(a), Value::String(b))
            if loose
                && a.len() == b.len()
                && matches!(
                    (from_bits(a), from_bits(b)),
                    (Some(x), Some(y)) if close(x, y)
                ) => {}
        _ => out.push((
            path.to_string(),
            format!(
                "file has {}, reference computes {}",
                short(got),
                short(want)
            ),
        )),
    }
}

/// Compares the file with the reference, section by section; panics with every
/// difference.
fn check_against(file: &Value, reference: &Value, source: &str) {
    let (Value::Object(file), Value::Object(reference)) = (file, reference) else {
        panic!("{source}: not a JSON object");
    };
    let mut problems = Vec::new();
    for (section, want) in reference {
        let Some(got) = file.get(section) else {
            problems.push(format!("section `{section}`: missing from the file"));
            continue;
        };
        let mut found = Vec::new();
        diff("", want, got, false, &mut found);
        for (path, what) in found {
            let at = if path.is_empty() {
                String::new()
            } else {
                format!(" at `{path}`")
            };
            problems.push(format!("section `{section}`{at}: {what}"));
        }
    }
    for section in file.keys().filter(|k| !reference.contains_key(*k)) {
        problems.push(format!(
            "section `{section}`: in the file but not computed by the reference"
        ));
    }
    if !problems.is_empty() {
        let shown: Vec<&String> = problems.iter().take(40).collect();
        panic!(
            "{source} differs from the reference implementation in {} place(s):\n  {}{}\n\n\
             If the protocol changed on purpose, regenerate the vectors with `cargo xtask \
             vectors` and review the diff; otherwise the reference changed behaviour.",
            problems.len(),
            shown
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n  "),
            if problems.len() > shown.len() {
                format!("\n  … and {} more", problems.len() - shown.len())
            } else {
                String::new()
            }
        );
    }
}

// ---------------------------------------------------------------------------------------
// Fixed inputs

/// 32 bytes named by a tag: SHA-256 of the tag (only a way to write fixed inputs; the
/// file carries the bytes themselves).
fn h32(tag: &str) -> [u8; 32] {
    Sha256::digest(tag.as_bytes()).into()
}

fn seed() -> [u8; 32] {
    hex::decode(SEED_HEX).unwrap().try_into().unwrap()
}

fn keypair() -> Keypair {
    Keypair::from_seed(&seed())
}

/// The window of the fixture group.
const WINDOW: u64 = 4_200_000;

fn start_beacon() -> Beacon {
    Beacon {
        round: 5_123_456,
        randomness: h32("drand 5123456"),
    }
}

fn deadline_beacon() -> Beacon {
    Beacon {
        round: 5_123_458,
        randomness: h32("drand 5123458"),
    }
}

fn fixture_window_randomness() -> [u8; 32] {
    window_randomness(WINDOW, &h32("block 4200000"), &start_beacon())
}

fn fixture_challenge_randomness() -> [u8; 32] {
    challenge_randomness(WINDOW, &h32("block 4200050"), &deadline_beacon())
}

const PROMPT: [u32; 3] = [101, 2023, 7];

/// The fixture group: two short rollouts of one prompt, carrying `signature`.
fn fixture_group(signature: Signature) -> Group {
    let q = SKETCH_MODULUS;
    // Residues as computed, sent as their digests (rounding, and the wrap of Q − 1 to 0).
    let p = |a: u32, b: u32| PositionSketch([a, b]).digest();
    let tokens = |completion: &[u32]| [PROMPT.as_slice(), completion].concat();
    Group {
        header: GroupHeader {
            protocol_version: PROTOCOL_VERSION,
            hotkey: keypair().public(),
            window: WINDOW,
            environment: EnvironmentId {
                name: "sat".into(),
                params: "sat/v1 vars=3..5".into(),
            },
            prompt_id: 1_234_567,
            checkpoint: h32("checkpoint 7"),
            window_randomness: fixture_window_randomness(),
            generation: GenerationParams {
                max_new_tokens: 3,
                temperature_milli: 700,
            },
        },
        rollouts: vec![
            Rollout {
                tokens: tokens(&[15, 16, 2]),
                prompt_len: 3,
                sketches: vec![
                    p(0, q - 1),
                    p(1, 2),
                    p(123_456_789, 987_654_321),
                    p(q - 1, 0),
                    p(65_536, 2_147_483_000),
                    p(42, 4_242),
                ],
                // -0.0 is a valid log-prob whose bits differ from 0.0 in the digest.
                logprobs: vec![-0.5, -1.25, -0.0],
                reward: 1.0,
                advantage: 1.0,
                success: true,
            },
            Rollout {
                tokens: tokens(&[9, 2]),
                prompt_len: 3,
                sketches: vec![
                    p(7, 8),
                    p(1_000_000, 2_000_000),
                    p(q - 2, q - 3),
                    p(31_337, 0),
                    p(5, 5),
                ],
                logprobs: vec![-0.1, -3.0e-5],
                reward: 0.0,
                advantage: -1.0,
                success: false,
            },
        ],
        signature,
    }
}

fn recorded_signature() -> Signature {
    let bytes = hex::decode(RECORDED_SIGNATURE).unwrap_or_default();
    Signature(bytes.try_into().unwrap_or([0; 64]))
}

/// The fixture group with the recorded signature, which must verify.
fn signed_fixture_group() -> Group {
    let group = fixture_group(recorded_signature());
    if !verify_group(&group) {
        let mut fresh = group.clone();
        keypair().sign_group(&mut fresh);
        panic!(
            "RECORDED_SIGNATURE does not verify for the fixture group (the fixture or the \
             binding changed?). A fresh signature to paste into conformance.rs:\n{}",
            hex::encode(fresh.signature.0)
        );
    }
    group
}

fn fixture_bundle() -> WindowBundle {
    WindowBundle {
        hotkey: keypair().public(),
        window: WINDOW,
        groups: vec![signed_fixture_group()],
    }
}

// ---------------------------------------------------------------------------------------
// Sections

fn meta() -> Value {
    Obj::new()
        .v("format", "grail-rs native conformance vectors")
        .v("protocol_version", PROTOCOL_VERSION)
        .v(
            "generator",
            "crates/grail-proto/tests/conformance.rs; regenerate with `cargo xtask vectors`",
        )
        .v(
            "conventions",
            vec![
                "byte strings: lowercase hex without prefix (keys ending in _hex)",
                "u64 that may exceed 2^53: strings; stream words as 0x + 16 hex digits, \
                 uniform_below bounds and results in decimal",
                "float field x: x is the value (f32 widened to f64; \"NaN\", \"inf\", \"-inf\" \
                 for non-finite), x_bits its IEEE-754 bits (0x + 16 hex digits for f64, 8 for \
                 f32); compare the bits",
                "cases with a libm key (ln or pow) depend on that function, which IEEE 754 \
                 does not require to be correctly rounded (these were computed with the \
                 generator's libm): compare their float outputs within 1e-12 relative; \
                 integer outputs (sampled tokens) stay exact; every other value is bit-exact",
                "keys are sorted; every case lists its inputs next to its outputs",
            ],
        )
        .into()
}

fn params() -> Value {
    Obj::new()
        .v("protocol_version", PROTOCOL_VERSION)
        .v("sketch_modulus", SKETCH_MODULUS)
        .v("sketch_fraction_bits", SKETCH_FRACTION_BITS)
        .v("sketch_clamp_bits", SKETCH_CLAMP_BITS)
        .v("sketches_per_position", SKETCHES_PER_POSITION)
        .v("sketch_digest_shift", SKETCH_DIGEST_SHIFT)
        .v("sketch_digest_rounding", SKETCH_DIGEST_ROUNDING)
        .v("tolerance_base", TOLERANCE_BASE)
        .f64("tolerance_growth", TOLERANCE_GROWTH)
        .v("challenge_k", CHALLENGE_K)
        .v("challenge_max_misses", CHALLENGE_MAX_MISSES)
        .v("evidence_positions", EVIDENCE_POSITIONS)
        .f64("evidence_tolerance", EVIDENCE_TOLERANCE)
        .f64("sampling_margin", SAMPLING_MARGIN)
        .v("sampling_max_misses", SAMPLING_MAX_MISSES)
        .v("sampling_ambiguous_base", SAMPLING_AMBIGUOUS_BASE)
        .v("sampling_ambiguous_per", SAMPLING_AMBIGUOUS_PER)
        .v(
            "sampling_sample_ambiguous_base",
            SAMPLING_SAMPLE_AMBIGUOUS_BASE,
        )
        .v(
            "sampling_sample_ambiguous_per",
            SAMPLING_SAMPLE_AMBIGUOUS_PER,
        )
        .v("replay_windows", REPLAY_WINDOWS)
        .v("default_max_bundle_bytes", DEFAULT_MAX_BUNDLE_BYTES)
        .f32("logprob_tolerance", LOGPROB_TOLERANCE)
        .f64("learning_zone_sigma_floor", LEARNING_ZONE_SIGMA_FLOOR)
        .f64("advantage_sigma_epsilon", ADVANTAGE_SIGMA_EPSILON)
        .f64("advantage_sum_tolerance", ADVANTAGE_SUM_TOLERANCE)
        .f64("score_exponent", SCORE_EXPONENT)
        .v("groups_checked", GROUPS_CHECKED)
        .v("max_rollout_tokens", MAX_ROLLOUT_TOKENS)
        .v("max_group_size", MAX_GROUP_SIZE)
        .v("max_groups_per_bundle", MAX_GROUPS_PER_BUNDLE)
        .v("max_bundle_bytes", MAX_BUNDLE_BYTES)
        .v("max_env_string_bytes", MAX_ENV_STRING_BYTES)
        .v("max_hidden_size", MAX_HIDDEN_SIZE)
        .v(
            "bundle_magic",
            String::from_utf8(BUNDLE_MAGIC.to_vec()).unwrap(),
        )
        .v("bundle_format_version", BUNDLE_FORMAT_VERSION)
        .v("prf_domain", std::str::from_utf8(PRF_DOMAIN).unwrap())
        .v(
            "rollout_domain",
            std::str::from_utf8(ROLLOUT_DOMAIN).unwrap(),
        )
        .v("group_domain", std::str::from_utf8(GROUP_DOMAIN).unwrap())
        .v("work_domain", std::str::from_utf8(WORK_DOMAIN).unwrap())
        .v(
            "sampling_label",
            std::str::from_utf8(SAMPLING_LABEL).unwrap(),
        )
        .into()
}

/// The SHAKE256 input of `prf(label, parts, ·)`, written out from the specification.
fn prf_input(label: &[u8], parts: &[Vec<u8>]) -> Vec<u8> {
    let mut m = PRF_DOMAIN.to_vec();
    m.extend((label.len() as u32).to_be_bytes());
    m.extend(label);
    m.extend((parts.len() as u32).to_be_bytes());
    for p in parts {
        m.extend((p.len() as u64).to_be_bytes());
        m.extend(p);
    }
    m
}

fn shake256(input: &[u8], len: usize) -> Vec<u8> {
    let mut h = sha3::Shake256::default();
    h.update(input);
    let mut out = vec![0; len];
    h.finalize_xof().read(&mut out);
    out
}

fn refs(parts: &[Vec<u8>]) -> Vec<&[u8]> {
    parts.iter().map(Vec::as_slice).collect()
}

fn prf_section() -> Value {
    let b = |s: &str| s.as_bytes().to_vec();
    let coeff_parts = vec![vec![0u8; 32], 8u32.to_be_bytes().to_vec()];
    let cases: Vec<(&str, &str, Vec<Vec<u8>>, usize)> = vec![
        ("no_parts", "grail/test", vec![], 32),
        ("one_empty_part", "grail/test", vec![vec![]], 32),
        ("two_empty_parts", "grail/test", vec![vec![], vec![]], 32),
        ("empty_label", "", vec![b("x")], 32),
        ("split_ab_c", "l", vec![b("ab"), b("c")], 32),
        ("split_a_bc", "l", vec![b("a"), b("bc")], 32),
        ("whole_abc", "l", vec![b("abc")], 32),
        ("abc_then_empty", "l", vec![b("abc"), vec![]], 32),
        ("label_la_part_b", "la", vec![b("b")], 32),
        ("label_l_part_ab", "l", vec![b("ab")], 32),
        (
            "binary_part",
            "grail/test",
            vec![vec![0x00, 0xff, 0x80, 0x7f, 0x01]],
            32,
        ),
        ("len_0", "x", vec![b("y")], 0),
        ("len_1", "x", vec![b("y")], 1),
        ("len_32", "x", vec![b("y")], 32),
        ("len_64_extends_len_32", "x", vec![b("y")], 64),
        (
            "len_16_sketch_label",
            "grail/sketch-coefficients",
            coeff_parts,
            16,
        ),
    ];
    let mut out: Vec<Value> = Vec::new();
    for (name, label, parts, len) in cases {
        let got = prf(label.as_bytes(), &refs(&parts), len);
        let input = prf_input(label.as_bytes(), &parts);
        assert_eq!(
            got,
            shake256(&input, len),
            "prf `{name}` vs its specification"
        );
        let function = if len == 32 {
            assert_eq!(got, prf32(label.as_bytes(), &refs(&parts)));
            "prf32"
        } else {
            "prf"
        };
        out.push(
            case(name)
                .v("function", function)
                .v("label", label)
                .v("parts_hex", hexes(&parts))
                .v("len", len)
                .hex("shake_input_hex", &input)
                .hex("out_hex", &got)
                .into(),
        );
    }
    Value::from(out)
}

/// Counts the `u64` words `uniform_below` takes.
struct Counting {
    rng: ChaCha20Rng,
    words: u64,
}

impl RngCore for Counting {
    fn next_u32(&mut self) -> u32 {
        panic!("uniform_below draws u64 words only")
    }
    fn next_u64(&mut self) -> u64 {
        self.words += 1;
        self.rng.next_u64()
    }
    fn fill_bytes(&mut self, _: &mut [u8]) {
        panic!("uniform_below draws u64 words only")
    }
    fn try_fill_bytes(&mut self, _: &mut [u8]) -> Result<(), rand_core::Error> {
        panic!("uniform_below draws u64 words only")
    }
}

fn stream_section() -> Value {
    let cases: Vec<(&str, &str, Vec<Vec<u8>>, usize)> = vec![
        // 34 words cross the 256-byte buffer of rand_chacha: the keystream simply continues.
        ("no_parts_34_words", "grail/test", vec![], 34),
        ("one_empty_part", "grail/test", vec![vec![]], 8),
        (
            "challenge_positions_label",
            "grail/challenge-positions",
            vec![h32("challenge").to_vec(), h32("digest").to_vec()],
            8,
        ),
    ];
    let mut words_cases: Vec<Value> = Vec::new();
    for (name, label, parts, n) in cases {
        let key = prf32(label.as_bytes(), &refs(&parts));
        let mut keystream = vec![0u8; 8 * n];
        stream(label.as_bytes(), &refs(&parts)).fill_bytes(&mut keystream);
        let mut rng = stream(label.as_bytes(), &refs(&parts));
        let words: Vec<u64> = (0..n).map(|_| rng.next_u64()).collect();
        for (i, w) in words.iter().enumerate() {
            let le = u64::from_le_bytes(keystream[8 * i..8 * i + 8].try_into().unwrap());
            assert_eq!(
                *w, le,
                "stream `{name}` word {i} is not the keystream read LE"
            );
        }
        words_cases.push(
            case(name)
                .v("label", label)
                .v("parts_hex", hexes(&parts))
                .hex("key_hex", key)
                .hex("keystream_hex", &keystream)
                .v("u64", words.iter().map(|&w| word(w)).collect::<Vec<_>>())
                .into(),
        );
    }

    let draw_cases: Vec<(&str, &[u8], Vec<u64>)> = vec![
        (
            "mixed_bounds",
            b"uniform_below",
            vec![
                1,
                2,
                3,
                7,
                7,
                10,
                100,
                1000,
                (1 << 31) - 1,
                1 << 32,
                (1 << 32) + 1,
                (1 << 53) + 1,
                1 << 63,
                (1 << 63) + 1,
                (1 << 63) + 1,
                u64::MAX,
                1,
                5,
            ],
        ),
        // bit_length(2) = 2 bits, so a quarter of the words are rejected.
        ("bound_3_repeated", b"uniform_below 3", vec![3; 24]),
    ];
    let mut draws_cases: Vec<Value> = Vec::new();
    for (name, part, bounds) in draw_cases {
        let mut rng = Counting {
            rng: stream(b"grail/test", &[part]),
            words: 0,
        };
        let mut draws = Vec::new();
        for n in bounds {
            let before = rng.words;
            let value = uniform_below(&mut rng, n);
            assert!(value < n.max(1));
            draws.push(Value::from(
                Obj::new()
                    .v("n", big(n))
                    .v("value", big(value))
                    .v("words", rng.words - before),
            ));
        }
        draws_cases.push(
            case(name)
                .v("label", "grail/test")
                .v("parts_hex", hexes(&[part]))
                .v("draws", draws)
                .into(),
        );
    }
    Obj::new()
        .v(
            "notes",
            vec![
                "stream(label, parts) = ChaCha20 (20 rounds) keyed by prf32(label, parts), \
                 64-bit block counter from 0, 64-bit stream id 0; the first 2^32 blocks \
                 equal RFC 8439 ChaCha20 with a zero nonce and counter 0",
                "a u64 word is the next 8 keystream bytes read little-endian",
                "uniform_below(n): 0 without drawing for n <= 1; else b = bit_length(n - 1), \
                 draw words, keep the low b bits, return the first value < n; words = how \
                 many words the draw consumed",
            ],
        )
        .v("words", words_cases)
        .v("uniform_below", draws_cases)
        .into()
}

fn beacon_json(b: &Beacon) -> Value {
    Obj::new()
        .v("round", b.round)
        .hex("randomness_hex", b.randomness)
        .into()
}

fn randomness_section() -> Value {
    let zero = Beacon {
        round: 0,
        randomness: [0; 32],
    };
    let cases = vec![
        ("zeros", 0, [0u8; 32], [0u8; 32], zero, zero),
        (
            "fixture_window",
            WINDOW,
            h32("block 4200000"),
            h32("block 4200050"),
            start_beacon(),
            deadline_beacon(),
        ),
        (
            "large_numbers",
            1 << 40,
            [0xff; 32],
            h32("deadline"),
            Beacon {
                round: (1 << 52) + 3,
                randomness: [0xaa; 32],
            },
            Beacon {
                round: (1 << 52) + 4,
                randomness: [0x55; 32],
            },
        ),
    ];
    let mut out: Vec<Value> = Vec::new();
    for (name, window, hash, deadline_hash, start, deadline) in cases {
        let w = window_randomness(window, &hash, &start);
        let c = challenge_randomness(window, &deadline_hash, &deadline);
        out.push(
            case(name)
                .v("window", window)
                .hex("block_hash_hex", hash)
                .v("start_beacon", beacon_json(&start))
                .hex("deadline_block_hash_hex", deadline_hash)
                .v("deadline_beacon", beacon_json(&deadline))
                .hex("window_randomness_hex", w)
                .hex("challenge_randomness_hex", c)
                .into(),
        );
    }
    Value::from(out)
}

fn sketch_section() -> Value {
    let unit = 1.0f32 / (1 << SKETCH_FRACTION_BITS) as f32; // 2^-16, one fixed-point step
    let half = unit / 2.0;
    let limit = (1u32 << (SKETCH_CLAMP_BITS - SKETCH_FRACTION_BITS)) as f32; // 2^14
    let points: Vec<(&str, f32)> = vec![
        ("zero", 0.0),
        ("negative_zero", -0.0),
        ("one", 1.0),
        ("minus_one", -1.0),
        ("half_unit_rounds_away", half),
        ("minus_half_unit_rounds_away", -half),
        ("below_half_unit", half.next_down()),
        ("above_half_unit", half.next_up()),
        ("one_and_a_half_units", 3.0 * half),
        ("two_and_a_half_units_not_even", 5.0 * half),
        ("minus_two_and_a_half_units", -5.0 * half),
        ("one_plus_half_unit", 1.0 + half),
        ("large_half_unit", 2001.0 * half),
        ("tenth", 0.1),
        ("minus_tenth", -0.1),
        ("third", 1.0 / 3.0),
        ("hundred_thousandth", 1e-5),
        ("clamp_edge_exact", limit),
        ("clamp_edge_below", limit.next_down()),
        ("clamp_edge_above", limit.next_up()),
        ("minus_clamp_edge", -limit),
        ("minus_clamp_edge_beyond", (-limit).next_down()),
        ("big", 1e30),
        ("f32_max", f32::MAX),
        ("f32_min", f32::MIN),
        ("inf", f32::INFINITY),
        ("minus_inf", f32::NEG_INFINITY),
        ("nan", f32::NAN),
        ("negative_nan", f32::from_bits(0xffc0_0000)),
        ("signalling_nan_payload", f32::from_bits(0x7f80_0001)),
        ("smallest_subnormal", f32::from_bits(1)),
        ("minus_smallest_subnormal", -f32::from_bits(1)),
        ("smallest_normal", f32::MIN_POSITIVE),
    ];
    let fixed: Vec<Value> = points
        .iter()
        .map(|&(name, x)| case(name).f32("x", x).v("q", fixed_point(x)).into())
        .collect();

    let wr = fixture_window_randomness();
    let mut coefficients: Vec<Value> = Vec::new();
    for d in [1usize, 8, 13] {
        let c = SketchCoefficients::derive(&wr, d);
        let raw = prf(
            b"grail/sketch-coefficients",
            &[&wr, &(d as u32).to_be_bytes()],
            SKETCHES_PER_POSITION * d,
        );
        let rows: Vec<Vec<i8>> = (0..SKETCHES_PER_POSITION)
            .map(|s| c.row(s).unwrap().to_vec())
            .collect();
        let from_raw: Vec<Vec<i8>> = raw
            .chunks(d)
            .map(|r| r.iter().map(|&b| b as i8).collect())
            .collect();
        assert_eq!(rows, from_raw, "coefficient rows of d = {d}");
        coefficients.push(
            case(&format!("d{d}"))
                .hex("window_randomness_hex", wr)
                .v("hidden_size", d)
                .hex("prf_hex", &raw)
                .v("rows", rows)
                .into(),
        );
    }

    let d = 8;
    let c = SketchCoefficients::derive(&wr, d);
    let pseudo: Vec<f32> = h32("hidden")
        .chunks(4)
        .map(|b| {
            let v = u32::from_le_bytes(b.try_into().unwrap());
            (v >> 8) as f32 / (1 << 21) as f32 - 4.0
        })
        .collect();
    let vectors: Vec<(&str, Vec<f32>)> = vec![
        ("zeros", vec![0.0; d]),
        ("ramp", (0..d).map(|i| (i as f32 - 3.5) / 4.0).collect()),
        (
            "edges",
            vec![
                f32::NAN,
                f32::INFINITY,
                f32::NEG_INFINITY,
                limit,
                -0.0,
                half,
                -5.0 * half,
                1e30,
            ],
        ),
        ("all_clamped_high", vec![limit; d]),
        ("all_clamped_low", vec![-limit; d]),
        (
            "small_drift",
            vec![0.0123, -0.0456, 0.789, -1.5, 2.25, 3.0e-6, -7.0e-6, 0.5],
        ),
        ("pseudo_random", pseudo),
    ];
    let mut sketches: Vec<Value> = Vec::new();
    for (name, h) in vectors {
        let s = c.sketch(&h);
        let q: Vec<i64> = h.iter().map(|&x| fixed_point(x)).collect();
        // The definition, written out: Σ c·q in integers, reduced into [0, Q).
        for (row, &got) in s.0.iter().enumerate() {
            let sum: i64 = c
                .row(row)
                .unwrap()
                .iter()
                .zip(&q)
                .map(|(&ci, &qi)| i64::from(ci) * qi)
                .sum();
            assert_eq!(
                i64::from(got),
                sum.rem_euclid(i64::from(SKETCH_MODULUS)),
                "sketch `{name}` row {row}"
            );
        }
        sketches.push(
            case(name)
                .hex("window_randomness_hex", wr)
                .v("hidden_size", d)
                .f32s("hidden", &h)
                .v("q", q)
                .v("sketch", s.0.to_vec())
                .v("digest", s.digest().0.to_vec())
                .into(),
        );
    }

    let q = SKETCH_MODULUS;
    let pairs: Vec<(u32, u32)> = vec![
        (5, 5),
        (10, 3),
        (3, 10),
        (0, q - 1),
        (q - 1, 0),
        (0, q / 2),
        (0, q / 2 + 1),
        (100, q - 100),
        (q, 0),
        (u32::MAX, 0),
        (u32::MAX, q - 1),
        (1_000_000, 1_065_536),
        (1_000_000, 1_065_537),
    ];
    let distances: Vec<Value> = pairs
        .into_iter()
        .map(|(a, b)| {
            Obj::new()
                .v("a", a)
                .v("b", b)
                .v("distance", modular_distance(a, b))
                .into()
        })
        .collect();
    let tolerances: Vec<Value> = [0usize, 1, 2, 100, 8191, 1 << 20]
        .into_iter()
        .map(|p| {
            Obj::new()
                .v("position", p)
                .v("tolerance", tolerance(p))
                .into()
        })
        .collect();
    Obj::new()
        .v("fixed_point", fixed)
        .v("coefficients", coefficients)
        .v("sketches", sketches)
        .v("modular_distance", distances)
        .v("tolerance", tolerances)
        .into()
}

fn challenge_section() -> Value {
    let cr = fixture_challenge_randomness();
    let digest0 = rollout_digest(0, &fixture_group(Signature([0; 64])).rollouts[0]);
    let other = h32("rollout digest");
    let cases: Vec<(&str, [u8; 32], usize, usize, usize)> = vec![
        ("k32_of_200", digest0, 10, 210, CHALLENGE_K),
        ("k3_of_10", other, 1, 11, 3),
        ("k9_of_10_many_repeats", other, 1, 11, 9),
        ("k1_of_2", other, 4, 6, 1),
        ("k32_of_5000", other, 500, 5500, CHALLENGE_K),
        ("k_equals_span", other, 3, 35, 32),
        ("k_above_span", other, 3, 8, CHALLENGE_K),
        ("k0", other, 3, 8, 0),
        ("empty_completion", other, 5, 5, CHALLENGE_K),
        ("prompt_longer_than_total", other, 9, 5, CHALLENGE_K),
    ];
    let mut out: Vec<Value> = Vec::new();
    for (name, digest, prompt_len, total, k) in cases {
        let positions = challenge_positions(&cr, &digest, prompt_len, total, k);
        out.push(
            case(name)
                .hex("challenge_randomness_hex", cr)
                .hex("rollout_digest_hex", digest)
                .v("prompt_len", prompt_len)
                .v("total_len", total)
                .v("k", k)
                .v("positions", positions)
                .into(),
        );
    }
    Value::from(out)
}

fn evidence_section() -> Value {
    let cr = fixture_challenge_randomness();
    let fixture = fixture_group(Signature([0; 64]));
    let work0 = work_digest(&fixture);
    let other = h32("work digest");
    let (me, you) = (keypair().public(), Hotkey(h32("another validator")));
    let cases: Vec<(&str, Hotkey, [u8; 32], u32, usize)> = vec![
        ("fixture_work_rollout0_of_100", me, work0, 0, 100),
        ("fixture_work_rollout1_of_100", me, work0, 1, 100),
        ("another_validator_same_rollout", you, work0, 0, 100),
        ("five_tokens", me, other, 3, 5),
        ("exactly_k_tokens", me, other, 0, EVIDENCE_POSITIONS),
        ("two_tokens", me, other, 0, 2),
        ("empty_completion", me, other, 0, 0),
        ("long_completion", you, other, 7, 8_000),
    ];
    let mut out: Vec<Value> = Vec::new();
    for (name, validator, work, rollout, len) in cases {
        let positions = evidence_positions(&cr, &validator, &work, rollout, len);
        out.push(
            case(name)
                .hex("challenge_randomness_hex", cr)
                .hex("validator_hex", validator.0)
                .hex("work_digest_hex", work)
                .v("rollout", rollout)
                .v("completion_len", len)
                .v("positions", positions)
                .into(),
        );
    }
    Value::from(out)
}

fn sampling_error(e: &SamplingError) -> &'static str {
    match e {
        SamplingError::BadDistribution(_) => "bad_distribution",
        SamplingError::TokenOutOfRange { .. } => "token_out_of_range",
        // A kind added later has no vector name until the vectors are regenerated.
        _ => "unknown",
    }
}

fn class_name(c: PositionClass) -> &'static str {
    match c {
        PositionClass::Inside => "inside",
        PositionClass::Ambiguous => "ambiguous",
        PositionClass::Miss => "miss",
    }
}

fn sampling_section() -> Value {
    let prompts: Vec<Vec<u32>> = vec![
        vec![],
        vec![0],
        vec![1, 2, 3],
        PROMPT.to_vec(),
        vec![u32::MAX, 0, 65_536],
    ];
    let prompt_digests: Vec<Value> = prompts
        .iter()
        .map(|p| {
            let mut pre = b"grail-rs/prompt/v1".to_vec();
            pre.extend((p.len() as u32).to_be_bytes());
            p.iter().for_each(|t| pre.extend(t.to_be_bytes()));
            let d = prompt_digest(p);
            assert_eq!(
                <[u8; 32]>::from(Sha256::digest(&pre)),
                d,
                "prompt digest {p:?}"
            );
            Obj::new()
                .v("prompt", p.clone())
                .hex("preimage_hex", &pre)
                .hex("digest_hex", d)
                .into()
        })
        .collect();

    let wr = fixture_window_randomness();
    let hotkey = keypair().public();
    let noise_cases = vec![
        ("fixture_rollout_0", wr, hotkey, PROMPT.to_vec(), 0),
        ("fixture_rollout_1", wr, hotkey, PROMPT.to_vec(), 1),
        ("empty_prompt", wr, hotkey, vec![], 0),
        (
            "zeros_max_index",
            [0; 32],
            Hotkey([0; 32]),
            vec![0],
            u32::MAX,
        ),
    ];
    let mut seeds: Vec<Value> = Vec::new();
    for (name, r, key, prompt, index) in &noise_cases {
        let pd = prompt_digest(prompt);
        let idx = index.to_be_bytes();
        let mut rng = stream(SAMPLING_LABEL, &[r, &key.0, &pd, &idx]);
        let words: Vec<u64> = (0..8).map(|_| rng.next_u64()).collect();
        let noise = RolloutNoise::new(r, key, prompt, *index).take_vec(8);
        assert_eq!(
            noise.iter().map(|n| n.0).collect::<Vec<_>>(),
            words,
            "{name}"
        );
        seeds.push(
            case(name)
                .hex("window_randomness_hex", r)
                .hex("hotkey_hex", key.0)
                .v("prompt", prompt.clone())
                .v("rollout_index", *index)
                .v(
                    "position_seeds",
                    words.iter().map(|&w| word(w)).collect::<Vec<_>>(),
                )
                .into(),
        );
    }
    let fixture = RolloutNoise::new(&wr, &hotkey, &PROMPT, 0).take_vec(4);
    let mut token_words: Vec<Value> = Vec::new();
    for (name, seed) in [
        ("zero_seed", 0u64),
        ("max_seed", u64::MAX),
        ("fixture_position_0", fixture[0].0),
    ] {
        let tokens = [0usize, 1, 2, 3, 1000, 151_935];
        let noise = PositionNoise(seed);
        token_words.push(
            case(name)
                .v("seed", word(seed))
                .v("tokens", tokens.to_vec())
                .v(
                    "words",
                    tokens
                        .iter()
                        .map(|&j| word(noise.word(j)))
                        .collect::<Vec<_>>(),
                )
                .into(),
        );
    }
    let gumbel: Vec<Value> = vec![case("fixture_position_0")
        .v("libm", "ln")
        .v("seed", word(fixture[0].0))
        .f64s(
            "gumbel",
            &(0..8).map(|j| fixture[0].gumbel(j)).collect::<Vec<_>>(),
        )
        .into()];

    let a = vec![0.0f32, 1.0, -3.0, 2.0, f32::MIN];
    let logit_cases: Vec<(&str, Vec<f32>, u32)> = vec![
        ("mixed_t1", a.clone(), 1000),
        ("mixed_t0.7", a.clone(), 700),
        ("mixed_t2.5", a.clone(), 2500),
        ("uniform_quarters", vec![0.5; 4], 1000),
        ("ones_and_lowest", vec![1.0, 1.0, f32::MIN, 1.0, 1.0], 700),
        ("single_token", vec![1.0], 1000),
        ("peaked_t0.1", vec![10.0, -10.0, 0.0, 3.25, 9.999], 100),
        ("huge_t0.001", vec![-1e4, 0.0, 88.7, 88.69], 1),
        ("inexact_t0.9", vec![0.1, 0.2, 0.3, -0.4, 1.7, -2.9], 900),
    ];
    let mut scores: Vec<Value> = Vec::new();
    let mut gaps: Vec<Value> = Vec::new();
    let mut samples: Vec<Value> = Vec::new();
    for (name, logits, milli) in &logit_cases {
        let t = temperature(*milli);
        let noise = fixture[0];
        let per_token: Vec<Value> = (0..logits.len())
            .map(|j| {
                Obj::new()
                    .v("token", j as u32)
                    .f64("score", score(logits[j], t, noise, j))
                    .f64("gap", claimed_gap(logits, t, j as u32, noise).unwrap())
                    .into()
            })
            .collect();
        scores.push(
            case(name)
                .v("libm", "ln")
                .f32s("logits", logits)
                .v("temperature_milli", *milli)
                .f64("temperature", t)
                .v("seed", word(noise.0))
                .v("tokens", per_token)
                .into(),
        );
        let draws: Vec<Value> = fixture
            .iter()
            .chain(&[PositionNoise(0), PositionNoise(u64::MAX)])
            .map(|n| {
                let token = sample_token(logits, t, *n).unwrap();
                Obj::new().v("seed", word(n.0)).v("token", token).into()
            })
            .collect();
        samples.push(
            case(name)
                .f32s("logits", logits)
                .v("temperature_milli", *milli)
                .v("draws", draws)
                .into(),
        );
    }
    let error_cases: Vec<(&str, Vec<f32>, u32, u32)> = vec![
        ("no_logits", vec![], 1000, 0),
        ("nan_logit", vec![0.0, f32::NAN], 1000, 0),
        ("inf_logit", vec![0.0, f32::INFINITY], 1000, 0),
        ("zero_temperature", vec![0.0, 1.0], 0, 0),
        ("token_out_of_range", vec![0.0, 1.0], 1000, 2),
    ];
    for (name, logits, milli, tok) in &error_cases {
        let err = claimed_gap(logits, temperature(*milli), *tok, fixture[0]).unwrap_err();
        gaps.push(
            case(name)
                .f32s("logits", logits)
                .v("temperature_milli", *milli)
                .v("token", *tok)
                .v("error", sampling_error(&err))
                .into(),
        );
    }

    let m = SAMPLING_MARGIN;
    let check_cases: Vec<(&str, Vec<f64>, f64)> = vec![
        ("unit_test_case", vec![0.3, -0.005, -0.4], 0.01),
        ("zero_gap_is_ambiguous", vec![0.0, 1.0], m),
        ("at_the_margin", vec![-m, -m.next_up()], m),
        (
            "one_over_the_rollout_cap",
            vec![-m / 2.0; allowed_ambiguous(2) + 1],
            m,
        ),
        (
            "non_finite",
            vec![f64::NAN, f64::INFINITY, f64::NEG_INFINITY],
            m,
        ),
        ("empty", vec![], m),
    ];
    let mut checks: Vec<Value> = Vec::new();
    for (name, gs, margin) in check_cases {
        let r = check_sampling_with(&gs, margin);
        let classes: Vec<&str> = gs
            .iter()
            .map(|&g| class_name(classify(g, margin)))
            .collect();
        checks.push(
            case(name)
                .f64s("gaps", &gs)
                .f64("margin", margin)
                .v("classes", classes)
                .v("positions", r.positions)
                .v("ambiguous", r.ambiguous)
                .v("misses", r.misses.clone())
                .f64("max_excess", r.max_excess)
                .v("accepted", r.accepted())
                .into(),
        );
    }
    let caps: Vec<Value> = [0usize, 1, 255, 256, 1023, 1024, 4095, 4096, 100_000]
        .iter()
        .map(|&n| {
            Obj::new()
                .v("positions", n)
                .v("rollout", allowed_ambiguous(n))
                .v("sample", allowed_ambiguous_in_sample(n))
                .into()
        })
        .collect();

    Obj::new()
        .v(
            "notes",
            vec![
                "seed of completion position t: the t-th u64 word of stream(sampling_label, \
                 [window_randomness, hotkey, prompt_digest, u32be(rollout_index)])",
                "word of token j at a position with seed s: SplitMix64 output j: x = s + (j + 1) \
                 * 0x9E3779B97F4A7C15 mod 2^64; x ^= x >> 30; x *= 0xBF58476D1CE4E5B9; \
                 x ^= x >> 27; x *= 0x94D049BB133111EB; x ^= x >> 31 (all mod 2^64)",
                "v = ((word >> 11) + 1) * 2^-53 in f64 (exact, in (0, 1]); gumbel = -ln(-ln v) \
                 (+inf when v = 1); score of token j = f64(z_j) / T + gumbel_j, \
                 T = temperature_milli / 1000 in f64",
                "sample_token: the token with the largest score; the smallest id among equal \
                 scores; errors: bad_distribution for no logits, a non-finite logit or T not \
                 finite and > 0",
                "claimed_gap of token c: score_c - max over j != c of score_j (+inf for a \
                 one-token vocabulary); token_out_of_range when c >= vocabulary size (checked \
                 first), then bad_distribution as for sample_token",
                "check_sampling: inside if gap > 0; else ambiguous if gap >= -margin; else \
                 (or NaN) a miss; max_excess = largest max(-gap, 0) (infinite for NaN); \
                 accepted when misses <= sampling_max_misses, ambiguous <= \
                 sampling_ambiguous_base + positions / sampling_ambiguous_per (integer \
                 division) and positions > 0",
                "a miner's checked sample: the sum of its checked groups' ambiguous positions \
                 must be <= sampling_sample_ambiguous_base + positions / \
                 sampling_sample_ambiguous_per (caps.sample), else sampling_mismatch for the \
                 group that crosses it",
            ],
        )
        .v("prompt_digest", prompt_digests)
        .v("position_seeds", seeds)
        .v("token_words", token_words)
        .v("gumbel", gumbel)
        .v("scores", scores)
        .v("claimed_gap_errors", gaps)
        .v("sample_token", samples)
        .v("check_sampling", checks)
        .v("caps", caps)
        .into()
}

fn rollout_json(r: &Rollout) -> Value {
    Obj::new()
        .v("tokens", r.tokens.clone())
        .v("prompt_len", r.prompt_len)
        .v(
            "sketches",
            r.sketches.iter().map(|s| s.0.to_vec()).collect::<Vec<_>>(),
        )
        .f32s("logprobs", &r.logprobs)
        .f64("reward", r.reward)
        .f64("advantage", r.advantage)
        .v("success", r.success)
        .into()
}

fn header_json(h: &GroupHeader) -> Value {
    Obj::new()
        .v("protocol_version", h.protocol_version)
        .hex("hotkey_hex", h.hotkey.0)
        .v("window", h.window)
        .v(
            "environment",
            Obj::new()
                .v("name", h.environment.name.clone())
                .v("params", h.environment.params.clone()),
        )
        .v("prompt_id", h.prompt_id)
        .hex("checkpoint_hex", h.checkpoint)
        .hex("window_randomness_hex", h.window_randomness)
        .v(
            "generation",
            Obj::new()
                .v("max_new_tokens", h.generation.max_new_tokens)
                .v("temperature_milli", h.generation.temperature_milli),
        )
        .into()
}

fn rollout_preimage(i: u32, r: &Rollout) -> Vec<u8> {
    let mut m = ROLLOUT_DOMAIN.to_vec();
    m.extend(i.to_be_bytes());
    m.extend(r.prompt_len.to_be_bytes());
    m.extend((r.tokens.len() as u32).to_be_bytes());
    r.tokens.iter().for_each(|t| m.extend(t.to_be_bytes()));
    m.extend((r.sketches.len() as u32).to_be_bytes());
    r.sketches
        .iter()
        .flat_map(|s| s.0)
        .for_each(|v| m.extend(v.to_be_bytes()));
    m.extend((r.logprobs.len() as u32).to_be_bytes());
    r.logprobs
        .iter()
        .for_each(|lp| m.extend(lp.to_bits().to_be_bytes()));
    m.extend(r.reward.to_bits().to_be_bytes());
    m.extend(r.advantage.to_bits().to_be_bytes());
    m.push(u8::from(r.success));
    m
}

fn group_preimage(g: &Group, digests: &[[u8; 32]]) -> Vec<u8> {
    let h = &g.header;
    let mut m = GROUP_DOMAIN.to_vec();
    m.extend(h.protocol_version.to_be_bytes());
    m.extend(h.hotkey.0);
    m.extend(h.window.to_be_bytes());
    for s in [&h.environment.name, &h.environment.params] {
        m.extend((s.len() as u32).to_be_bytes());
        m.extend(s.as_bytes());
    }
    m.extend(h.prompt_id.to_be_bytes());
    m.extend(h.checkpoint);
    m.extend(h.window_randomness);
    m.extend(h.generation.max_new_tokens.to_be_bytes());
    m.extend(h.generation.temperature_milli.to_be_bytes());
    m.extend((digests.len() as u32).to_be_bytes());
    digests.iter().for_each(|d| m.extend(d));
    m
}

fn token_preimage(tokens: &[u32]) -> Vec<u8> {
    let mut m = b"grail-rs/tokens/v1".to_vec();
    tokens.iter().for_each(|t| m.extend(t.to_be_bytes()));
    m
}

fn sha(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn digests_section() -> Value {
    let key = keypair();
    let group = signed_fixture_group();
    let mut rollouts: Vec<Value> = Vec::new();
    let mut digests = Vec::new();
    for (i, r) in group.rollouts.iter().enumerate() {
        let d = rollout_digest(i as u32, r);
        let pre = rollout_preimage(i as u32, r);
        assert_eq!(sha(&pre), d, "rollout {i} digest vs its specification");
        digests.push(d);
        rollouts.push(
            Obj::new()
                .v("index", i)
                .hex("preimage_hex", &pre)
                .hex("digest_hex", d)
                .into(),
        );
    }
    let gd = group_digest(&group);
    let gpre = group_preimage(&group, &digests);
    assert_eq!(sha(&gpre), gd, "group digest vs its specification");

    let mut token_lists: Vec<Vec<u32>> = group.rollouts.iter().map(|r| r.tokens.clone()).collect();
    token_lists.push(vec![]);
    let tokens: Vec<Value> = token_lists
        .iter()
        .map(|t| {
            let pre = token_preimage(t);
            let d = token_digest(t);
            assert_eq!(sha(&pre), d, "token digest vs its specification");
            Obj::new()
                .v("tokens", t.clone())
                .hex("preimage_hex", &pre)
                .hex("digest_hex", d)
                .into()
        })
        .collect();

    let mut sorted: Vec<[u8; 32]> = group
        .rollouts
        .iter()
        .map(|r| token_digest(&r.tokens))
        .collect();
    sorted.sort();
    let mut wpre = WORK_DOMAIN.to_vec();
    wpre.extend((sorted.len() as u32).to_be_bytes());
    sorted.iter().for_each(|d| wpre.extend(d));
    let wd = work_digest(&group);
    assert_eq!(sha(&wpre), wd, "work digest vs its specification");
    let mut swapped = group.clone();
    swapped.rollouts.reverse();
    assert_eq!(
        work_digest(&swapped),
        wd,
        "work digest ignores rollout order"
    );
    assert_ne!(
        group_digest(&swapped),
        gd,
        "group digest binds rollout order"
    );

    Obj::new()
        .v(
            "keypair",
            Obj::new()
                .v("seed_hex", SEED_HEX)
                .hex("public_hex", key.public().0)
                .v("ss58", key.public().to_ss58()),
        )
        .v(
            "group",
            Obj::new().v("header", header_json(&group.header)).v(
                "rollouts",
                group.rollouts.iter().map(rollout_json).collect::<Vec<_>>(),
            ),
        )
        .v("rollout_digests", rollouts)
        .hex("group_preimage_hex", &gpre)
        .hex("group_digest_hex", gd)
        .v("token_digests", tokens)
        .hex("work_preimage_hex", &wpre)
        .hex("work_digest_hex", wd)
        .hex("signature_hex", group.signature.0)
        .v(
            "signature_scheme",
            "sr25519 (schnorrkel, signing context \"substrate\") of group_digest by the \
             header's hotkey; randomised, so verify signature_hex, do not recompute it",
        )
        .into()
}

fn bundle_section() -> Value {
    let bundle = fixture_bundle();
    let bytes = encode_bundle(&bundle).unwrap();
    assert_eq!(decode_bundle(&bytes).unwrap(), bundle, "bundle round trip");
    Obj::new()
        .v(
            "contents",
            "WindowBundle { hotkey: digests.keypair.public_hex, window, groups: [digests.group \
             with signature digests.signature_hex] }",
        )
        .hex("hotkey_hex", bundle.hotkey.0)
        .v("window", bundle.window)
        .v("len", bytes.len())
        .hex("bytes_hex", &bytes)
        .hex("sha256_hex", sha(&bytes))
        .into()
}

fn consequence_name(c: Consequence) -> &'static str {
    match c {
        Consequence::Credit => "credit",
        Consequence::Void => "void",
        Consequence::ZeroWindow => "zero_window",
    }
}

fn rules_section() -> Value {
    let reasons: Vec<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
    let consequences: Vec<Value> = Reason::ALL
        .iter()
        .map(|r| {
            Obj::new()
                .v("reason", r.as_str())
                .v("consequence", consequence_name(r.consequence()))
                .into()
        })
        .collect();

    let o = |reason: Reason, in_zone: bool| CheckedOutcome { reason, in_zone };
    let ok = o(Reason::Accepted, true);
    let flat = o(Reason::Accepted, false);
    let credit_cases: Vec<(&str, usize, Vec<CheckedOutcome>)> = vec![
        ("three_of_four_in_zone", 100, vec![ok, ok, flat, ok]),
        (
            "one_failure_zeroes",
            100,
            vec![ok, ok, o(Reason::SamplingMismatch, false), ok],
        ),
        ("nothing_checked", 100, vec![]),
        (
            "void_counts_as_checked",
            10,
            vec![ok, o(Reason::Copycat, true), ok],
        ),
        ("replay_half", 7, vec![ok, o(Reason::Replay, false)]),
        ("no_eligible", 0, vec![ok, ok]),
        ("all_flat", 9, vec![flat, flat]),
        ("single", 5, vec![ok]),
        ("schema_zeroes", 50, vec![ok, o(Reason::Schema, true)]),
    ];
    let credited: Vec<Value> = credit_cases
        .iter()
        .map(|(name, eligible, checked)| {
            case(name)
                .v("eligible", *eligible)
                .v(
                    "checked",
                    checked
                        .iter()
                        .map(|c| {
                            Value::from(
                                Obj::new()
                                    .v("reason", c.reason.as_str())
                                    .v("in_zone", c.in_zone),
                            )
                        })
                        .collect::<Vec<_>>(),
                )
                .f64("credit", credited_work(*eligible, checked))
                .into()
        })
        .collect();

    let bundles = |list: &[&[u8]]| -> Vec<Vec<[u8; 32]>> {
        list.iter()
            .map(|works| works.iter().map(|&w| [w; 32]).collect())
            .collect()
    };
    let shared_cases: Vec<(&str, Vec<Vec<[u8; 32]>>)> = vec![
        ("two_holders", bundles(&[&[1, 2], &[2, 3], &[3, 4], &[4]])),
        ("three_holders", bundles(&[&[9], &[9], &[9], &[8]])),
        ("repeat_within_one_bundle", bundles(&[&[5, 5], &[6]])),
        ("no_overlap", bundles(&[&[1], &[2]])),
    ];
    let shared_values: Vec<Value> = shared_cases
        .iter()
        .map(|(name, list)| {
            let refs: Vec<&[[u8; 32]]> = list.iter().map(Vec::as_slice).collect();
            let shared: Vec<Value> = shared_work(&refs)
                .into_iter()
                .map(|(work, holders)| {
                    Value::from(Obj::new().hex("work_hex", work).v("holders", holders))
                })
                .collect();
            case(name)
                .v(
                    "bundles_works_hex",
                    list.iter().map(|w| hexes(w)).collect::<Vec<_>>(),
                )
                .v("shared", shared)
                .into()
        })
        .collect();
    let copy_cases = [
        (
            "sampling_failure_on_shared_work",
            Reason::SamplingMismatch,
            true,
        ),
        ("sampling_failure_alone", Reason::SamplingMismatch, false),
        ("other_failure_on_shared_work", Reason::ProofFailed, true),
        ("accepted_on_shared_work", Reason::Accepted, true),
    ];
    let judged_copies: Vec<Value> = copy_cases
        .iter()
        .map(|(name, reason, shared)| {
            let others = if *shared {
                vec![Hotkey([5; 32])]
            } else {
                Vec::new()
            };
            let outcome = if *reason == Reason::Accepted {
                Ok(())
            } else {
                Err(Rejection::new(*reason, "d"))
            };
            let judged = judge_copy(outcome, &others)
                .err()
                .map_or(Reason::Accepted, |r| r.reason);
            case(name)
                .v("reason", reason.as_str())
                .v(
                    "others_hex",
                    hexes(&others.iter().map(|h| h.0).collect::<Vec<_>>()),
                )
                .v("judged", judged.as_str())
                .into()
        })
        .collect();

    // (name, miner of each group, credit per miner), hotkeys as repeated bytes.
    type SlotCase<'a> = (&'a str, Vec<u8>, Vec<(u8, f64)>);
    let slot_cases: Vec<SlotCase> = vec![
        (
            "credit_over_checked_groups",
            vec![1, 1, 2, 2, 3, 3],
            vec![(1, 30.0), (2, 5.0), (3, 5.0)],
        ),
        (
            "sybils",
            [vec![1; 8], vec![2; 8], vec![3; 8]].concat(),
            vec![(1, 4096.0), (2, 8.0), (3, 8.0)],
        ),
        ("tie_to_lower_hotkey", vec![2, 1], vec![(1, 1.0), (2, 1.0)]),
        ("uncredited_miner", vec![1, 2, 2], vec![(1, 2.0), (2, 0.0)]),
        ("nothing_credited", vec![1, 2], vec![(1, f64::NAN)]),
    ];
    let slots: Vec<Value> = slot_cases
        .iter()
        .map(|(name, miners, credit)| {
            let miners: Vec<Hotkey> = miners.iter().map(|&k| Hotkey([k; 32])).collect();
            let credit_map = credit.iter().map(|&(k, c)| (Hotkey([k; 32]), c)).collect();
            case(name)
                .v(
                    "miners_hex",
                    hexes(&miners.iter().map(|h| h.0).collect::<Vec<_>>()),
                )
                .v(
                    "credit",
                    credit
                        .iter()
                        .map(|&(k, c)| {
                            Value::from(Obj::new().hex("miner_hex", [k; 32]).f64("credited", c))
                        })
                        .collect::<Vec<_>>(),
                )
                .v("slots", training_slots(&miners, &credit_map))
                .into()
        })
        .collect();

    let cr = fixture_challenge_randomness();
    let miner = keypair().public();
    let thirds: Vec<usize> = (0..50).filter(|i| i % 3 != 0).collect();
    let sample_cases: Vec<(&str, usize, Vec<usize>, usize)> = vec![
        ("8_of_33_of_50", 50, thirds.clone(), GROUPS_CHECKED),
        ("1_of_33_of_50", 50, thirds, 1),
        ("8_of_100", 100, (0..100).collect(), GROUPS_CHECKED),
        ("all_when_few", 10, vec![4, 9], GROUPS_CHECKED),
        ("none_asked", 5, vec![1, 2, 3], 0),
        ("nothing_eligible", 7, vec![], GROUPS_CHECKED),
    ];
    let samples: Vec<Value> = sample_cases
        .iter()
        .map(|(name, total, eligible, n)| {
            case(name)
                .hex("challenge_randomness_hex", cr)
                .hex("hotkey_hex", miner.0)
                .v("total", *total)
                .v("eligible", eligible.clone())
                .v("n", *n)
                .v(
                    "chosen",
                    sample_groups(&cr, &miner, *total, |i| eligible.contains(&i), *n),
                )
                .into()
        })
        .collect();

    let rule = |rolling_windows: usize, exponent: f64, burn_fraction: f64| ScoreRule {
        rolling_windows,
        exponent,
        burn_fraction,
    };
    let base = vec![
        (0, 1, 100.0),
        (30, 1, 1.0),
        (30, 2, 1.0),
        (60, 1, 1.0),
        (60, 2, 2.0),
    ];
    let score_cases = vec![
        ("rolling_two_squared", base.clone(), 60, rule(2, 2.0, 0.0)),
        ("burn_half", base.clone(), 60, rule(2, 2.0, 0.5)),
        (
            "later_windows_excluded",
            base.clone(),
            30,
            rule(2, 2.0, 0.0),
        ),
        (
            "default_rule_exact_powers",
            vec![(0, 1, 4.0), (30, 2, 9.0), (60, 3, 1.0), (60, 1, 5.0)],
            60,
            ScoreRule::default(),
        ),
        ("empty_history_burns_all", vec![], 0, rule(3, 1.5, 0.0)),
        (
            "non_finite_and_negative_ignored",
            vec![
                (0, 1, f64::NAN),
                (0, 2, 1.0),
                (0, 3, -4.0),
                (0, 4, f64::INFINITY),
            ],
            0,
            rule(3, 2.0, 0.0),
        ),
        (
            "exponent_below_one_is_one",
            vec![(0, 1, 1.0), (0, 2, 3.0)],
            0,
            rule(1, 0.5, 0.0),
        ),
        (
            "nan_exponent_is_one",
            vec![(0, 1, 1.0), (0, 2, 3.0)],
            0,
            rule(1, f64::NAN, 0.0),
        ),
        (
            "burn_everything",
            vec![(0, 1, 1.0), (0, 2, 3.0)],
            0,
            rule(1, 1.5, 1.0),
        ),
        (
            "uid0_work_and_burn",
            vec![(0, 0, 2.0), (0, 5, 2.0)],
            0,
            rule(1, 1.5, 0.25),
        ),
        (
            "span_counts_recorded_windows",
            vec![(0, 1, 4.0), (60, 2, 1.0)],
            60,
            rule(2, 2.0, 0.0),
        ),
        (
            "inexact_sums",
            vec![(0, 1, 0.1), (30, 1, 0.2), (30, 2, 0.3), (60, 3, 1.0 / 3.0)],
            60,
            rule(3, 1.5, 0.1),
        ),
    ];
    let scores: Vec<Value> = score_cases
        .iter()
        .map(|(name, entries, window, rule)| {
            let mut history = WorkHistory::new();
            for &(w, uid, work) in entries {
                history.entry(w).or_default().insert(uid, work);
            }
            let shares = weights(&history, *window, rule);
            // powf with exponent 1.5 on a work that is not a perfect square is inexact, so
            // it depends on the libm's pow.
            let pow_dependent = ["burn_everything", "uid0_work_and_burn", "inexact_sums"];
            let c = case(name);
            let c = if pow_dependent.contains(name) {
                c.v("libm", "pow")
            } else {
                c
            };
            c.v(
                "history",
                entries
                    .iter()
                    .map(|&(w, uid, work)| {
                        Value::from(Obj::new().v("window", w).v("uid", uid).f64("work", work))
                    })
                    .collect::<Vec<_>>(),
            )
            .v("window", *window)
            .v(
                "rule",
                Obj::new()
                    .v("rolling_windows", rule.rolling_windows)
                    .f64("exponent", rule.exponent)
                    .f64("burn_fraction", rule.burn_fraction),
            )
            .v(
                "weights",
                shares
                    .iter()
                    .map(|(&uid, &w)| Value::from(Obj::new().v("uid", uid).f64("weight", w)))
                    .collect::<Vec<_>>(),
            )
            .into()
        })
        .collect();

    Obj::new()
        .v(
            "notes",
            vec![
                "credited_work: 0 when nothing was checked or any checked reason's \
                 consequence is zero_window; else eligible * (accepted and in zone) / checked",
                "shared_work: every work digest held by more than one bundle, with the \
                 ascending indices of the bundles holding it (each once); nothing is voided",
                "judge_copy: a checked group of shared work that fails with \
                 sampling_mismatch is copycat (consequence zero_window); any other outcome \
                 is unchanged; the detail names the other holders' hotkeys in hex",
                "training_slots: slots = number of groups; miners with finite positive \
                 credit get floor(slots * credit / total) each, then one more each in \
                 descending order of the fractional part (ties: ascending hotkey bytes) \
                 until all slots are given; a miner's slots cycle through its groups in \
                 their order; the result is the group indices sorted ascending; empty when \
                 no credit is positive",
                "sample_groups: order = [0, 1, ..., total - 1]; with rng = \
                 stream(\"grail/validator-sample\", [challenge_randomness, hotkey]), for i \
                 in 0..total (until n are chosen): j = i + uniform_below(total - i), swap \
                 order[i] and order[j], choose order[i] if it is eligible; return the chosen \
                 indices in ascending order",
                "weights: per uid, sum the finite positive work of the last rolling_windows \
                 windows present in the history at or before window, newest first; score = \
                 work^exponent (exponent clamped to >= 1, 1 if not finite); total = sum of \
                 scores in uid order; weight = score / total * (1 - burn); uid 0 also gets \
                 burn; no score at all gives {0: 1}",
            ],
        )
        .v("reasons", reasons)
        .v("consequences", consequences)
        .v("credited_work", credited)
        .v("shared_work", shared_values)
        .v("judge_copy", judged_copies)
        .v("training_slots", slots)
        .v("sample_groups", samples)
        .v("weights", scores)
        .into()
}

fn grpo_section() -> Value {
    let cases: Vec<(&str, Vec<f64>)> = vec![
        ("binary_four", vec![1.0, 0.0, 0.0, 1.0]),
        ("binary_two", vec![1.0, 0.0]),
        ("all_equal", vec![0.7; 8]),
        ("inexact", vec![0.3, 0.9, 0.1]),
        ("just_below_zone", vec![0.0, 0.09]),
        ("tiny_spread_zeroed", vec![1.0, 1.0 + 1e-9]),
        ("empty", vec![]),
    ];
    let out: Vec<Value> = cases
        .iter()
        .map(|(name, r)| {
            case(name)
                .f64s("rewards", r)
                .f64("mean", grpo::mean(r))
                .f64("sigma", grpo::population_sigma(r))
                .f64s("advantages", &grpo::advantages(r))
                .v("in_learning_zone", grpo::in_learning_zone(r))
                .into()
        })
        .collect();
    Value::from(out)
}

fn build() -> Value {
    Obj::new()
        .v("meta", meta())
        .v("params", params())
        .v("prf", prf_section())
        .v("stream", stream_section())
        .v("randomness", randomness_section())
        .v("sketch", sketch_section())
        .v("challenge", challenge_section())
        .v("evidence", evidence_section())
        .v("sampling", sampling_section())
        .v("digests", digests_section())
        .v("bundle", bundle_section())
        .v("rules", rules_section())
        .v("grpo", grpo_section())
        .into()
}

fn vector_path() -> PathBuf {
    // The package root at run time (cargo sets it for tests); the compile-time value
    // could name another checkout when the build is reused from a shared target folder.
    let root = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    root.join(VECTOR_FILE)
}

// ---------------------------------------------------------------------------------------
// Tests

#[test]
fn native_v5_vectors_match_the_reference() {
    let reference = build();
    let path = vector_path();
    if std::env::var(WRITE_ENV).is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, render(&reference))
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        eprintln!("wrote {}", path.display());
    }
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {} ({e}): generate it with `cargo xtask vectors`",
            path.display()
        )
    });
    let file: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", path.display()));
    check_against(&file, &reference, VECTOR_FILE);
}

#[test]
fn a_signature_made_now_verifies_and_binds_the_group() {
    let key = keypair();
    let mut group = fixture_group(Signature([0; 64]));
    assert!(!verify_group(&group));
    key.sign_group(&mut group);
    assert!(verify_group(&group));
    assert!(verify(
        &key.public(),
        &group_digest(&group),
        &group.signature
    ));
    // A second signature differs (sr25519 is randomised) and verifies too.
    let again = key.sign(&group_digest(&group));
    assert_ne!(again, group.signature);
    assert!(verify(&key.public(), &group_digest(&group), &again));
    let mut tampered = group.clone();
    tampered.rollouts[1].reward = 0.5;
    assert!(!verify_group(&tampered));
}

#[test]
fn the_recorded_signature_still_verifies() {
    let group = signed_fixture_group();
    assert!(verify(
        &keypair().public(),
        &group_digest(&group),
        &recorded_signature()
    ));
}

#[test]
fn the_fixture_bundle_round_trips() {
    let bundle = fixture_bundle();
    let bytes = encode_bundle(&bundle).unwrap();
    assert_eq!(decode_bundle(&bytes).unwrap(), bundle);
    assert_eq!(
        encode_bundle(&decode_bundle(&bytes).unwrap()).unwrap(),
        bytes
    );
}

#[test]
fn the_comparison_names_section_case_and_field() {
    let reference = build();
    let mut edited = reference.clone();
    edited["sketch"]["fixed_point"][4]["q"] = Value::from(0);
    let message = std::panic::catch_unwind(|| check_against(&edited, &reference, "edited"))
        .expect_err("an edited value must fail")
        .downcast::<String>()
        .unwrap();
    assert!(
        message.contains(
            "section `sketch` at `fixed_point[4 \"half_unit_rounds_away\"].q`: file has 0, \
             reference computes 1"
        ),
        "{message}"
    );
}

#[test]
fn libm_cases_compare_within_tolerance_and_others_exactly() {
    let reference = build();
    let fails = |edited: &Value| {
        std::panic::catch_unwind(|| check_against(edited, &reference, "edited")).is_err()
    };
    // Adds `ulps` to the bit pattern of a float at `path` in the sampling section.
    let bump = |path: &[&str], ulps: u64| {
        let mut edited = reference.clone();
        let mut field = &mut edited["sampling"];
        for key in path {
            field = match key.parse::<usize>() {
                Ok(i) => &mut field[i],
                Err(_) => &mut field[*key],
            };
        }
        let bits = u64::from_str_radix(field.as_str().unwrap().trim_start_matches("0x"), 16);
        *field = Value::from(format!("0x{:016x}", bits.unwrap() + ulps));
        edited
    };
    // Scores depend on ln: a few ulps pass, a real change does not.
    let score = ["scores", "0", "tokens", "0", "score_bits"];
    assert_eq!(reference["sampling"]["scores"][0]["libm"], "ln");
    assert!(!fails(&bump(&score, 3)));
    assert!(fails(&bump(&score, 1 << 20)));
    // The sampling check's outputs are exact: one ulp fails.
    let excess = ["check_sampling", "0", "max_excess_bits"];
    assert!(reference["sampling"]["check_sampling"][0]
        .get("libm")
        .is_none());
    assert!(fails(&bump(&excess, 1)));
}
