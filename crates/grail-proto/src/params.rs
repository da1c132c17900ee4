//! Every constant of the native protocol, in one place.
//!
//! Changing any value here changes what miners commit to and what validators accept:
//! nodes that disagree on one of them reject each other's rollouts. Bump
//! [`PROTOCOL_VERSION`] with any change. The proof parameters are provisional until the
//! soundness audit fixes them from measured honest drift and
//! measured acceptance of substituted models.

/// Version of the native protocol. It is part of every signed binding, so rollouts made
/// under another version fail signature verification rather than being misread.
pub const PROTOCOL_VERSION: u32 = 5;

/// The sketch modulus, the Mersenne prime 2^31 − 1. Sketches are residues in `[0, Q)`;
/// changing it changes every commitment.
pub const SKETCH_MODULUS: u32 = 2_147_483_647;

/// Fraction bits of the fixed-point hidden state the sketch projects:
/// `q(x) = round(x · 2^F)`. Larger F resolves smaller differences; both honest drift and
/// forgeries scale with it, so it only has to keep rounding below fp32 drift. Chosen by
/// the soundness audit (docs/soundness.md).
pub const SKETCH_FRACTION_BITS: u32 = 16;

/// Fixed-point values are clamped to `±2^SKETCH_CLAMP_BITS`, so a sketch sum fits in i64
/// for any hidden size up to `MAX_HIDDEN_SIZE` (2^7 · 2^30 · 2^16 < 2^63).
pub const SKETCH_CLAMP_BITS: u32 = 30;

/// Independent sketches per token position, each with its own coefficient vector. More
/// sketches make a substitute's per-position acceptance the product of independent
/// chances; the wire carries this many 2-byte digests per position.
pub const SKETCHES_PER_POSITION: usize = 2;

/// Low bits of a sketch residue the wire drops: a rollout carries each residue rounded to
/// a multiple of 2^SKETCH_DIGEST_SHIFT, as the 15-bit digest `round(s / 2^16) mod 2^15`
/// (two bytes; 4 B per position for the two sketches instead of 10). Rounding moves a
/// residue by at most [`SKETCH_DIGEST_ROUNDING`], which the check adds to the tolerance;
/// with `Q = 2^31 − 1` and 16 bits dropped the digests are exactly 15 bits. Changing it
/// changes the wire format, the signed bytes and the acceptance window
/// (docs/soundness.md, "protocol v4").
pub const SKETCH_DIGEST_SHIFT: u32 = 16;

/// Largest modular distance between a residue and its rounded wire value:
/// `2^(SKETCH_DIGEST_SHIFT − 1)` (residues that round up to 2^31 wrap to the digest 0,
/// at most `2^15 − 1` away on the circle mod Q).
pub const SKETCH_DIGEST_ROUNDING: u32 = 1 << (SKETCH_DIGEST_SHIFT - 1);

/// Per-position tolerance: a sketch passes when its modular distance to the validator's
/// recomputation is at most `TOLERANCE_BASE + TOLERANCE_GROWTH · sqrt(position)` (plus
/// [`SKETCH_DIGEST_ROUNDING`] for the rounded wire value, so honest drift up to the
/// tolerance always passes). Set by
/// the soundness audit on SmolLM2-135M (docs/soundness.md): 2^16 is 16× the largest honest
/// fp32 drift measured on the CPU (batching, padding, threads, KV-cache decode) and 10×
/// below the largest tolerance that still rejects weights with 0.1 % noise at ≤ 2^-40 per
/// rollout. Wider absorbs more drift and accepts closer substitutes.
pub const TOLERANCE_BASE: u32 = 1 << 16;

/// Growth of the tolerance with the absolute token position. The audit found no growth of
/// fp32 drift with position (KV-cache decode drifts no more than one prefill), so zero.
pub const TOLERANCE_GROWTH: f64 = 0.0;

/// Seconds between a window's deadline and the earliest drand round its challenge
/// randomness may come from: the challenge uses the first round emitted after
/// `deadline + PIN_SECONDS` (docs/protocol.md §3). In that interval every validator pins
/// each miner's bundle (its published SHA-256 and size, §11), so that what is checked is
/// fixed before anyone can know which groups will be spot-checked. Shorter leaves
/// validators no time to pin (a round can fall a millisecond after the deadline), and a
/// miner could then upload once the challenge is public; longer delays every window's
/// check by as much.
pub const PIN_SECONDS: u64 = 6;

/// Number of completion positions a validator challenges per rollout (all of them when
/// the completion is shorter).
pub const CHALLENGE_K: usize = 32;

/// Challenged positions that may fail while the rollout still passes, at full K (fewer
/// checked positions allow proportionally fewer, rounded down: see
/// `challenge::allowed_misses`). The forgery bound is the binomial tail of a substitute
/// passing `K − MAX_MISSES` of `K` positions.
pub const CHALLENGE_MAX_MISSES: usize = 2;

/// Upper bound on tokens (prompt + completion) in one rollout accepted from the wire.
pub const MAX_ROLLOUT_TOKENS: usize = 8_192;

/// Upper bound on rollouts in one group (the group size M is a window parameter ≤ this).
pub const MAX_GROUP_SIZE: usize = 64;

/// Upper bound on groups in one window bundle.
pub const MAX_GROUPS_PER_BUNDLE: usize = 4_096;

/// Upper bound on an encoded window bundle, checked before decoding (the format's hard
/// limit). Validators read far less by default ([`DEFAULT_MAX_BUNDLE_BYTES`]).
pub const MAX_BUNDLE_BYTES: usize = 256 * 1024 * 1024;

/// The bundle size a validator reads by default: 16 MiB, about 16× an honest 2-core
/// miner's window on SmolLM2 (~1 MiB). Raising it lets one miner make every validator
/// download and decode more before any check.
pub const DEFAULT_MAX_BUNDLE_BYTES: usize = 16 * 1024 * 1024;

/// Upper bound on the hidden size a verifier accepts from a provider.
pub const MAX_HIDDEN_SIZE: usize = 65_536;

/// Largest sealed-window archive read (2 GiB): the checked groups of every miner in a
/// window. Larger archives are refused before decoding.
pub const MAX_ARCHIVE_BYTES: usize = 1 << 31;

/// Upper bound on environment names and parameter strings in a binding.
pub const MAX_ENV_STRING_BYTES: usize = 256;

/// Minimum population standard deviation of a group's rewards for it to be in the
/// learning zone (worth training on). Groups below it carry no GRPO gradient.
pub const LEARNING_ZONE_SIGMA_FLOOR: f64 = 0.05;

/// Below this σ a group's advantages are exactly zero (equal rewards up to rounding).
pub const ADVANTAGE_SIGMA_EPSILON: f64 = 1e-8;

/// Largest |Σ advantages| a validator accepts for a group (they must sum to zero).
pub const ADVANTAGE_SUM_TOLERANCE: f64 = 1e-3;

/// Margin of the sampling check (docs/protocol.md §6), in units of perturbed score
/// (logit / T): a claimed token whose score is at most this much below the best other
/// token's is *ambiguous* (drift may have swapped them); further below it is a miss. Chosen
/// by the v5 sampling audit on SmolLM2-135M (docs/soundness.md, "6. Sampling"): the largest
/// honest gap drift over 100 007 positions was 7.6e-5 (the miner's KV-cache path against a
/// one-sequence forward), so 1e-3 is 13×; at 1e-3 a position offers an attacker a
/// *choice* at 6.4e-4 of honest positions (the share grows linearly with the margin).
/// Wider tolerates more drift between miner and validator hardware but gives an attacker
/// more choices; narrower rejects honest work from other hardware.
pub const SAMPLING_MARGIN: f64 = 1e-3;

/// Completion positions per rollout whose gap may lie below the margin. Zero: every such
/// position is another token.
pub const SAMPLING_MAX_MISSES: usize = 0;

/// Ambiguous positions (gap in `[−margin, 0]`) tolerated per rollout:
/// `SAMPLING_AMBIGUOUS_BASE + completion positions / SAMPLING_AMBIGUOUS_PER`
/// (`sampling::allowed_ambiguous`). Each tolerated position is one where an attacker may
/// pick between two tokens and re-roll the rest of the rollout; honest drift flipped none of
/// 3 × 100 007 audited positions (docs/soundness.md).
pub const SAMPLING_AMBIGUOUS_BASE: usize = 1;

/// See [`SAMPLING_AMBIGUOUS_BASE`].
pub const SAMPLING_AMBIGUOUS_PER: usize = 1024;

/// Ambiguous positions tolerated over a miner's whole checked sample in a window:
/// `SAMPLING_SAMPLE_AMBIGUOUS_BASE + positions / SAMPLING_SAMPLE_AMBIGUOUS_PER`
/// (`sampling::allowed_ambiguous_in_sample`); above it the miner's window is zeroed
/// (`sampling_mismatch`). Bounds the choices an attacker gets per window whatever the
/// number of rollouts; sized so that honest drift alone zeroes no window (docs/soundness.md).
pub const SAMPLING_SAMPLE_AMBIGUOUS_BASE: usize = 2;

/// See [`SAMPLING_SAMPLE_AMBIGUOUS_BASE`].
pub const SAMPLING_SAMPLE_AMBIGUOUS_PER: usize = 4096;

/// Largest |claimed − recomputed| log-prob accepted (fp32 on different hardware differs
/// by ~1e-5; a forged value by far more).
pub const LOGPROB_TOLERANCE: f32 = 1e-2;

/// Groups a validator checks with a forward pass per miner and window (default). The
/// spot-check economics (docs/protocol.md §12) need it above the scoring exponent.
pub const GROUPS_CHECKED: usize = 8;

/// Exponent on credited work in the score (`scoring::weights`). 1 since protocol v5: a
/// linear score makes splitting work across hotkeys and pooling it into one neutral. Above
/// 1 splitting loses but pooling pays (at 1.5, a pool with 25 % of the work against many
/// small miners earns 62.5 %), which rewards concentration; changing it changes every
/// validator's weights, so validators with different values disagree on chain. Must stay
/// below `GROUPS_CHECKED`, or cheating on a fraction of groups has positive expected gain.
pub const SCORE_EXPONENT: f64 = 1.0;

/// Void groups (replays) a validator archives per miner and window; the rest are counted
/// in its verdicts but not archived, so a miner replaying thousands of groups cannot blow
/// up every validator's archive past what the trainer reads
/// (`trainer.max_archive_bytes`). Changing it changes archive bytes.
pub const MAX_ARCHIVED_VOIDS: usize = 8;

/// Windows of work digests a validator keeps for replay detection (within the lifetime of
/// one checkpoint). Bounds the validator's state; a replay older than this would still
/// have to pass the sampling check under the new window's noise.
pub const REPLAY_WINDOWS: usize = 64;

/// Completion positions per rollout at which a validator records its own sampling gaps in
/// an archive entry (`rules::evidence`; all of them when the completion is shorter). The
/// positions are keyed by the validator's hotkey, so another validator's evidence is at
/// other positions. More positions make fabricated evidence less likely to pass and the
/// archive larger (8 bytes per position and rollout); changing it changes archive bytes
/// and which archives vote (archives of the old count are not well formed).
pub const EVIDENCE_POSITIONS: usize = 4;

/// Largest |archived − recomputed| sampling gap a re-verifier accepts in an archive's
/// evidence (`rules::evidence::check_evidence`), in units of perturbed score. Honest gap
/// drift between CPU paths was at most 7.6e-5 in the v5 sampling audit (the
/// [`SAMPLING_MARGIN`] measurement), so 1e-2 leaves more than 100× for other hardware
/// and the trainer's device; a validator that ran no forward pass must guess each gap to
/// within it, while gaps spread over several units (a guess lands with probability of the
/// order of 1e-2 per position). Narrower risks flagging honest validators on other
/// hardware; wider lets cheaper approximations (a smaller model's gaps) pass.
pub const EVIDENCE_TOLERANCE: f64 = 1e-2;
