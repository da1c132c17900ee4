//! Every cap a job is held to, in one place.
//!
//! Miners and validators load a job from its canonical bytes and re-check it against
//! these numbers; a node whose limits differ from the others' rejects jobs they accept
//! (its groups for them are then never mined or never verified), so changing a value is
//! a network-wide upgrade, announced like a protocol version. The fuel and memory caps
//! also decide *which* reward a module returns on a hard input (out of fuel is reward 0):
//! they, and the pinned `wasmi` version that counts fuel, must match on every node.

/// Largest submitted job document (JSON), in bytes. Bounds the HTTP body and the copy
/// every miner and validator downloads.
pub const MAX_JOB_BYTES: usize = 8 * 1024 * 1024;

/// Most prompts in one job.
pub const MAX_PROMPTS: usize = 4_096;

/// Most chat messages in one prompt.
pub const MAX_MESSAGES: usize = 32;

/// Largest prompt: the sum of its messages' contents, in bytes (before templating; the
/// rendered prompt must still fit the model's context with `max_new_tokens`).
pub const MAX_PROMPT_BYTES: usize = 32 * 1024;

/// Largest gold answer, in bytes.
pub const MAX_ANSWER_BYTES: usize = 4 * 1024;

/// Largest per-prompt metadata object, as canonical JSON, in bytes.
pub const MAX_META_BYTES: usize = 8 * 1024;

/// Rollouts per group: at least two (an advantage needs a spread), at most this.
pub const MAX_JOB_GROUP_SIZE: u32 = 32;

/// Largest `max_new_tokens` a job may ask for.
pub const MAX_JOB_NEW_TOKENS: u32 = 4_096;

/// Temperature bounds, in thousandths (the sampling rule divides logits by it).
pub const MIN_TEMPERATURE_MILLI: u32 = 100;
/// See [`MIN_TEMPERATURE_MILLI`].
pub const MAX_TEMPERATURE_MILLI: u32 = 2_000;

/// Most groups a job asks for per prompt.
pub const MAX_GROUPS_PER_PROMPT: u32 = 64;

/// Furthest deadline from submission, in seconds (a week).
pub const MAX_JOB_SECONDS: u64 = 7 * 24 * 3600;

/// Largest regular expression in a `regex` reward, in bytes of pattern.
pub const MAX_PATTERN_BYTES: usize = 1_024;

/// Compiled-size cap of one regular expression (the `regex` crate's `size_limit`).
pub const MAX_REGEX_COMPILED_BYTES: usize = 1 << 20;

/// Most labels in a `choice` reward.
pub const MAX_CHOICES: usize = 26;

/// Largest WebAssembly reward module, in bytes.
pub const MAX_MODULE_BYTES: usize = 1024 * 1024;

/// Fuel one reward call may burn (wasmi fuel: about one unit per executed instruction).
/// Out of fuel is reward 0 — the same on every node, since fuel is counted, not timed.
pub const WASM_FUEL_PER_CALL: u64 = 20_000_000;

/// Largest linear memory a reward module may have or grow to, in bytes (256 pages).
pub const WASM_MAX_MEMORY_BYTES: usize = 16 * 1024 * 1024;

/// Deepest call stack a reward module may reach (wasmi's recursion depth).
pub const WASM_MAX_RECURSION: usize = 1_024;

/// Largest completion handed to a reward, in bytes: longer ones are cut there (a
/// `MAX_JOB_NEW_TOKENS` completion is far below it).
pub const MAX_REWARD_INPUT_BYTES: usize = 256 * 1024;

/// Prompts a new job's WebAssembly reward is tried on at submission (with an empty and a
/// gold completion): a module that traps, loops or returns NaN there is refused.
pub const PROBE_PROMPTS: usize = 8;
