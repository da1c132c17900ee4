//! A job's reward: the built-in specs (no code) and WebAssembly modules.
//!
//! Every reward is a number in `[0, 1]`, computed the same way by the miner that claims
//! it and the validator that recomputes it. The built-ins read the completion with
//! grail-env's answer scanners (hand-written, bounded, the same on every machine):
//!
//! | spec | reward 1 when |
//! |---|---|
//! | `exact` | the answer (last `<SOLUTION>` block, else last `\boxed{}`, else last non-empty line) equals the gold answer after [`grail_env::answer::normalize`] |
//! | `numeric` | the answer's number (SOLUTION/boxed, else the last number in the text) is within `tolerance` of the gold number |
//! | `regex` | the completion matches `pattern` (`{answer}` in it stands for the escaped gold answer) |
//! | `choice` | the chosen label (SOLUTION/boxed, else the last label standing alone in the text) is the gold one, ASCII case ignored |
//! | `wasm` | the module's `reward` export says so ([`crate::wasm`]) |

use base64::Engine as _;
use grail_env::answer::{last_boxed, last_number, normalize, strip_eos, tagged, Rational};
use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};

use crate::limits::{
    MAX_CHOICES, MAX_MODULE_BYTES, MAX_PATTERN_BYTES, MAX_REGEX_COMPILED_BYTES, PROBE_PROMPTS,
};
use crate::spec::JobPrompt;
use crate::wasm::{CallError, ModuleError, RewardInput, RewardModule};
use crate::JobError;

/// A reward, as a job names it (the canonical form is part of the job's digest).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum RewardSpec {
    /// Normalised string equality with the gold answer.
    Exact,
    /// Numeric equality within `tolerance` (absolute).
    Numeric {
        /// Largest accepted `|answer − gold|`.
        tolerance: f64,
    },
    /// A regular expression over the completion.
    Regex {
        /// The pattern (Rust `regex` syntax; `{answer}` is replaced by the escaped gold
        /// answer of the prompt).
        pattern: String,
    },
    /// One label out of `choices` (e.g. `A`–`D`); the gold answer is one of them.
    Choice {
        /// The labels.
        choices: Vec<String>,
    },
    /// A WebAssembly module (base64 of its bytes).
    Wasm {
        /// The module, base64 (standard alphabet, padded).
        module: String,
    },
}

impl RewardSpec {
    /// Whether prompts need a gold answer under this reward.
    fn needs_answer(&self) -> bool {
        !matches!(self, RewardSpec::Wasm { .. } | RewardSpec::Regex { .. })
            || matches!(self, RewardSpec::Regex { pattern } if pattern.contains("{answer}"))
    }
}

/// A reward ready to score completions of one job's prompts.
#[derive(Debug, Clone)]
pub struct Scorer {
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    Exact,
    Numeric(f64),
    /// One regex per prompt when the pattern names `{answer}`, else one for all.
    Regex(Vec<Regex>),
    Choice(Vec<String>),
    Wasm(RewardModule),
}

/// One reward with how it came about.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    /// The reward in `[0, 1]`.
    pub reward: f64,
    /// Why it is 0 without the completion being judged (a module that trapped or ran out
    /// of fuel), if so.
    pub failure: Option<String>,
}

impl Scorer {
    /// Checks a reward spec against the job's prompts and prepares it. Errors name the
    /// field (`reward.pattern`, `prompts[3].answer`) and what is wrong.
    pub fn new(spec: &RewardSpec, prompts: &[JobPrompt]) -> Result<Self, JobError> {
        if spec.needs_answer() {
            if let Some(i) = prompts.iter().position(|p| p.answer.is_none()) {
                return Err(JobError::invalid(
                    format!("prompts[{i}].answer"),
                    "this reward compares against a gold answer; every prompt needs one",
                ));
            }
        }
        let kind = match spec {
            RewardSpec::Exact => Kind::Exact,
            RewardSpec::Numeric { tolerance } => {
                if !(tolerance.is_finite() && *tolerance >= 0.0) {
                    return Err(JobError::invalid(
                        "reward.tolerance",
                        "must be a finite number ≥ 0",
                    ));
                }
                for (i, p) in prompts.iter().enumerate() {
                    if number(p.answer.as_deref().unwrap_or_default()).is_none() {
                        return Err(JobError::invalid(
                            format!("prompts[{i}].answer"),
                            "a numeric reward needs a number (`12`, `-0.5`, `3/4`)",
                        ));
                    }
                }
                Kind::Numeric(*tolerance)
            }
            RewardSpec::Regex { pattern } => Kind::Regex(regexes(pattern, prompts)?),
            RewardSpec::Choice { choices } => {
                check_choices(choices, prompts)?;
                Kind::Choice(choices.clone())
            }
            RewardSpec::Wasm { module } => {
                let bytes = decode_module(module)?;
                let module = RewardModule::compile(&bytes)
                    .map_err(|e: ModuleError| JobError::invalid("reward.module", e.to_string()))?;
                Kind::Wasm(module)
            }
        };
        Ok(Self { kind })
    }

    /// Tries a WebAssembly reward on the first [`PROBE_PROMPTS`] prompts with an empty
    /// completion and with the gold answer as the completion: a module that traps, runs
    /// out of fuel or returns NaN there is refused with that error. Built-ins pass.
    pub fn probe(&self, prompts: &[JobPrompt]) -> Result<(), JobError> {
        let Kind::Wasm(module) = &self.kind else {
            return Ok(());
        };
        for (i, p) in prompts.iter().take(PROBE_PROMPTS).enumerate() {
            let answer = p.answer.as_deref().unwrap_or_default();
            for completion in ["", answer] {
                let input = RewardInput {
                    completion,
                    answer,
                    meta: &p.meta_json(),
                };
                let field = || format!("reward.module (probe on prompts[{i}])");
                match module.call(input) {
                    Ok(r) if r.is_nan() => {
                        return Err(JobError::invalid(field(), "the reward returned NaN"))
                    }
                    Ok(_) => {}
                    Err(e) => return Err(JobError::invalid(field(), e.to_string())),
                }
            }
        }
        Ok(())
    }

    /// The reward of `completion` (end-of-sequence markers `eos` are removed first) for
    /// prompt `index` of `prompts`, in `[0, 1]`.
    pub fn score(
        &self,
        prompts: &[JobPrompt],
        index: usize,
        completion: &str,
        eos: &[&str],
    ) -> Scored {
        let Some(prompt) = prompts.get(index) else {
            return Scored {
                reward: 0.0,
                failure: Some(format!("no prompt {index}")),
            };
        };
        let text = strip_eos(completion, eos);
        let answer = prompt.answer.as_deref().unwrap_or_default();
        let hit = |b: bool| Scored {
            reward: f64::from(u8::from(b)),
            failure: None,
        };
        match &self.kind {
            Kind::Exact => {
                let gold = normalize(answer);
                hit(!gold.is_empty() && stated_answer(text).is_some_and(|a| normalize(a) == gold))
            }
            Kind::Numeric(tolerance) => {
                let gold = number(answer);
                let got = numeric_answer(text).and_then(|s| number(&s));
                hit(matches!((gold, got), (Some(g), Some(x)) if (x - g).abs() <= *tolerance))
            }
            Kind::Regex(res) => {
                let re = if res.len() == 1 { &res[0] } else { &res[index] };
                hit(re.is_match(text))
            }
            Kind::Choice(choices) => {
                hit(chosen(text, choices).is_some_and(|c| c.eq_ignore_ascii_case(answer.trim())))
            }
            Kind::Wasm(module) => {
                let meta = prompt.meta_json();
                match module.call(RewardInput {
                    completion: text,
                    answer,
                    meta: &meta,
                }) {
                    Ok(r) => Scored {
                        reward: canonical(r),
                        failure: None,
                    },
                    Err(
                        e @ (CallError::OutOfFuel
                        | CallError::Trap { .. }
                        | CallError::Instantiate { .. }
                        | CallError::Fuel { .. }
                        | CallError::BadPointer { .. }),
                    ) => Scored {
                        reward: 0.0,
                        failure: Some(e.to_string()),
                    },
                }
            }
        }
    }
}

/// NaN → 0, everything else clamped to `[0, 1]`.
pub fn canonical(r: f64) -> f64 {
    if r.is_nan() {
        0.0
    } else {
        r.clamp(0.0, 1.0)
    }
}

/// The answer a completion states: the last SOLUTION block (a `\boxed{}` inside wins),
/// else the last `\boxed{}`, else the last non-empty line.
fn stated_answer(text: &str) -> Option<&str> {
    if let Some(s) = tagged(text).solution {
        return Some(last_boxed(s).unwrap_or(s).trim());
    }
    if let Some(b) = last_boxed(text) {
        return Some(b.trim());
    }
    text.lines().map(str::trim).rfind(|l| !l.is_empty())
}

/// The numeric answer: the SOLUTION block or `\boxed{}` when there is one, else the last
/// number in the text.
fn numeric_answer(text: &str) -> Option<String> {
    if let Some(s) = tagged(text).solution {
        return Some(last_boxed(s).unwrap_or(s).trim().to_string());
    }
    last_boxed(text)
        .map(|b| b.trim().to_string())
        .or_else(|| last_number(text))
}

/// A number from an answer string: an exact rational when it is one, else a float.
fn number(s: &str) -> Option<f64> {
    let s = s.trim();
    let x = match Rational::parse(s) {
        Some(r) => r.num as f64 / r.den as f64,
        None => s.parse::<f64>().ok()?,
    };
    x.is_finite().then_some(x)
}

/// The label a completion chooses: inside SOLUTION/boxed when present, else the last
/// label that stands alone (no letter or digit on either side).
fn chosen<'a>(text: &str, choices: &'a [String]) -> Option<&'a str> {
    let inner = tagged(text)
        .solution
        .map(|s| last_boxed(s).unwrap_or(s))
        .or_else(|| last_boxed(text));
    if let Some(inner) = inner {
        let inner = inner
            .trim()
            .trim_matches(|c: char| "().:".contains(c))
            .trim();
        return choices
            .iter()
            .find(|c| c.eq_ignore_ascii_case(inner))
            .map(String::as_str);
    }
    let bytes = text.as_bytes();
    let mut best: Option<(usize, &str)> = None;
    for c in choices {
        for at in grail_env::answer::find_all_ci(text, c) {
            let end = at + c.len();
            let alone = (at == 0 || !bytes[at - 1].is_ascii_alphanumeric())
                && (end >= bytes.len() || !bytes[end].is_ascii_alphanumeric());
            if alone && best.is_none_or(|(b, _)| at >= b) {
                best = Some((at, c.as_str()));
            }
        }
    }
    best.map(|(_, c)| c)
}

fn check_choices(choices: &[String], prompts: &[JobPrompt]) -> Result<(), JobError> {
    if choices.len() < 2 || choices.len() > MAX_CHOICES {
        return Err(JobError::invalid(
            "reward.choices",
            format!("needs 2 to {MAX_CHOICES} labels"),
        ));
    }
    for (i, c) in choices.iter().enumerate() {
        let ok = !c.is_empty() && c.len() <= 16 && c.chars().all(|ch| ch.is_ascii_alphanumeric());
        if !ok {
            return Err(JobError::invalid(
                format!("reward.choices[{i}]"),
                "a label is 1 to 16 ASCII letters or digits",
            ));
        }
        if choices[..i].iter().any(|d| d.eq_ignore_ascii_case(c)) {
            return Err(JobError::invalid(
                format!("reward.choices[{i}]"),
                "labels must differ (ASCII case ignored)",
            ));
        }
    }
    for (i, p) in prompts.iter().enumerate() {
        let gold = p.answer.as_deref().unwrap_or_default().trim();
        if !choices.iter().any(|c| c.eq_ignore_ascii_case(gold)) {
            return Err(JobError::invalid(
                format!("prompts[{i}].answer"),
                format!("`{gold}` is not one of reward.choices"),
            ));
        }
    }
    Ok(())
}

fn compile_regex(pattern: &str) -> Result<Regex, String> {
    RegexBuilder::new(pattern)
        .size_limit(MAX_REGEX_COMPILED_BYTES)
        .dfa_size_limit(MAX_REGEX_COMPILED_BYTES)
        .build()
        .map_err(|e| e.to_string())
}

fn regexes(pattern: &str, prompts: &[JobPrompt]) -> Result<Vec<Regex>, JobError> {
    if pattern.is_empty() || pattern.len() > MAX_PATTERN_BYTES {
        return Err(JobError::invalid(
            "reward.pattern",
            format!("must be 1 to {MAX_PATTERN_BYTES} bytes"),
        ));
    }
    if !pattern.contains("{answer}") {
        return compile_regex(pattern)
            .map(|r| vec![r])
            .map_err(|e| JobError::invalid("reward.pattern", e));
    }
    prompts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let answer = regex::escape(p.answer.as_deref().unwrap_or_default());
            compile_regex(&pattern.replace("{answer}", &answer))
                .map_err(|e| JobError::invalid(format!("reward.pattern (prompts[{i}])"), e))
        })
        .collect()
}

/// The module bytes of a `wasm` reward.
pub fn decode_module(module: &str) -> Result<Vec<u8>, JobError> {
    // base64 is 4/3 of the bytes: refuse an oversized text before decoding it.
    if module.len() > MAX_MODULE_BYTES / 3 * 4 + 4 {
        return Err(JobError::invalid(
            "reward.module",
            format!("the module is over {MAX_MODULE_BYTES} bytes"),
        ));
    }
    base64::engine::general_purpose::STANDARD
        .decode(module)
        .map_err(|e| JobError::invalid("reward.module", format!("not base64: {e}")))
}

/// Base64 of module bytes, as a `wasm` reward holds them.
pub fn encode_module(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
