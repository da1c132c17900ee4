//! The fuzz targets: every surface where grail-rs reads bytes it does not trust.
//!
//! A target takes the fuzzer's bytes and drives the real code path with them; it returns
//! a short label of how far the input got (counted in the report, so the table shows the
//! fuzzer reaches the deep checks, not only the first parse error). Anything that panics,
//! aborts, hangs or allocates without bound is a finding.

mod chain;
mod env;
mod http;
mod infer;
mod proto;

/// One fuzz target.
pub struct Target {
    /// Name on the command line and in reports.
    pub name: &'static str,
    /// What it drives.
    pub what: &'static str,
    /// Inputs are cut to this many bytes.
    pub max_len: usize,
    /// Valid inputs to start from.
    pub seeds: fn() -> Vec<Vec<u8>>,
    /// Tokens the mutator may insert.
    pub dictionary: &'static [&'static [u8]],
    /// Runs one input; returns how far it got.
    pub run: fn(&[u8]) -> &'static str,
    /// A structure-aware edit (decode, change one field, encode), used for half of the
    /// mutations when present; `None` when the input does not decode.
    pub mutate: Option<StructuredEdit>,
}

/// Decodes an input, changes one field and encodes it again (`None`: it does not decode).
pub type StructuredEdit = fn(&[u8], &mut crate::engine::Rng) -> Option<Vec<u8>>;

/// Every target, in report order.
pub fn all() -> Vec<Target> {
    vec![
        proto::bundle(),
        proto::group(),
        proto::archive(),
        env::math(),
        env::sat(),
        env::dataset(),
        http::validator_api(),
        chain::commitments(),
        infer::gguf(),
        infer::safetensors(),
        infer::config(),
        infer::tokenizer(),
    ]
}

/// The target called `name` (also `selftest`, which is not in [`all`]).
pub fn by_name(name: &str) -> Option<Target> {
    all()
        .into_iter()
        .chain([selftest()])
        .find(|t| t.name == name)
}

/// A target that fails on purpose, to test the fuzzer itself: its one seed is the value of
/// `GRAIL_FUZZ_SELFTEST` (`panic`, `abort`, `hang`, `grow`: a 2 GiB request, or `leak`:
/// 300 MiB held during the execution); any other input passes.
pub fn selftest() -> Target {
    Target {
        name: "selftest",
        what: "fails on purpose (tests of the fuzzer)",
        max_len: 64,
        seeds: || {
            vec![std::env::var("GRAIL_FUZZ_SELFTEST")
                .unwrap_or_default()
                .into_bytes()]
        },
        dictionary: &[],
        mutate: None,
        run: |bytes| match bytes {
            b"panic" => panic!("selftest panic"),
            b"abort" => std::process::abort(),
            b"hang" => {
                std::thread::sleep(std::time::Duration::from_secs(600));
                "hung"
            }
            b"grow" => {
                let v: Vec<u8> = Vec::with_capacity(2 << 30);
                if v.capacity() > 0 {
                    "grew"
                } else {
                    "empty"
                }
            }
            b"leak" => {
                let v: Vec<u8> = vec![1; 300 << 20];
                if v.iter().step_by(4096).all(|&b| b == 1) {
                    "held"
                } else {
                    "lost"
                }
            }
            _ => "ok",
        },
    }
}

/// The scratch folder targets of process `pid` write model files to; whoever started
/// the process removes it ([`crate::supervise`] after each child, tests at their end).
pub fn scratch_dir(pid: u32) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("grail-fuzz-{pid}"))
}

/// Text as UTF-8, lossily (most text targets take strings).
fn text(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}
