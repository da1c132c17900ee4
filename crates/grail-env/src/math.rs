//! Math environments: a procedural generator with exact rational answers, and loaders for
//! GSM8K and Hendrycks MATH JSONL files the user has on disk (`dataset`, re-exported here:
//! [`DatasetMath`], [`DatasetFormat`]).
//!
//! **Generator** (normative). `rng = stream("grail/env/math/v1", [u64be(id)])`;
//! `level = uniform_below(4)`; each level's template then draws its numbers with
//! `uniform_below` in the order written in [`generate`]. Levels: 0 one operation, 1 a
//! multi-step expression, 2 a word problem, 3 fraction arithmetic.
//!
//! **Answers**: the content of the last `<SOLUTION>` block (a `\boxed{}` inside it wins),
//! else the last `\boxed{}`, else the last number; compared by exact value when both sides
//! parse as numbers ([`crate::answer::Rational`]), else as normalised strings.

use grail_proto::prf::{stream, uniform_below};
use rand_chacha::ChaCha20Rng;

use crate::answer::{last_boxed, last_number, strip_eos, tagged, Answer, Rational};
use crate::{EnvError, Environment, EnvironmentId, Problem, PromptSpace, RewardVector, Target};

mod dataset;

pub use dataset::{DatasetFormat, DatasetMath};

/// Reward weights `(component, weight)`, in scoring order.
pub const WEIGHTS: [(&str, f64); 4] = [
    ("correctness", 1.0),
    ("format", 0.15),
    ("thinking", 0.10),
    ("no_trailing", 0.05),
];

/// Trailing characters after `</SOLUTION>` that cost the whole `no_trailing` component.
pub const TRAILING_BUDGET: f64 = 200.0;

const NAMES: [&str; 8] = [
    "Ava", "Ben", "Chen", "Dara", "Eli", "Fatima", "Goran", "Hana",
];

fn pick(rng: &mut ChaCha20Rng, lo: u64, hi: u64) -> i128 {
    (lo + uniform_below(rng, hi - lo + 1)) as i128
}

/// A generated problem: statement, exact answer and difficulty level.
#[derive(Debug, Clone, PartialEq)]
pub struct Generated {
    /// Task text.
    pub statement: String,
    /// Exact answer.
    pub answer: Rational,
    /// Difficulty level 0–3 of [`generate`], or the tier 0–5 of [`generate_tier`].
    pub level: u8,
}

impl Generated {
    /// The problem of prompt `prompt_id` with this statement and exact answer.
    pub fn into_problem(self, prompt_id: u64) -> Problem {
        Problem {
            prompt_id,
            statement: self.statement,
            target: Target::Math(Answer::Number(self.answer)),
        }
    }
}

/// The procedural problem of an id.
pub fn generate(id: u64) -> Generated {
    let mut rng = stream(b"grail/env/math/v1", &[&id.to_be_bytes()]);
    let level = uniform_below(&mut rng, 4) as u8;
    let (statement, answer) = level_problem(&mut rng, level);
    Generated {
        statement,
        answer,
        level,
    }
}

/// Number of difficulty tiers of [`MathTier`].
pub const TIERS: u8 = 6;

/// The problem of an id in difficulty tier `tier` (normative):
/// `rng = stream("grail/env/math/tier/v1", [u64be(id)])`; tier 0 `a + b` with one-digit
/// `a, b` (1–9); tier 1 `a + b` or `a − b` with two-digit `a, b` (10–99, one draw picks the
/// operation after the numbers); tiers 2–5 are levels 0–3 of [`generate`] drawn from this
/// stream. `None` for a tier ≥ [`TIERS`].
pub fn generate_tier(id: u64, tier: u8) -> Option<Generated> {
    let mut rng = stream(b"grail/env/math/tier/v1", &[&id.to_be_bytes()]);
    let r = &mut rng;
    let (statement, answer) = match tier {
        0 => {
            let (a, b) = (pick(r, 1, 9), pick(r, 1, 9));
            (format!("What is {a} + {b}?"), Rational::int(a + b))
        }
        1 => {
            let (a, b) = (pick(r, 10, 99), pick(r, 10, 99));
            match uniform_below(r, 2) {
                0 => (format!("What is {a} + {b}?"), Rational::int(a + b)),
                _ => (format!("What is {a} - {b}?"), Rational::int(a - b)),
            }
        }
        2..TIERS => level_problem(r, tier - 2),
        _ => return None,
    };
    Some(Generated {
        statement,
        answer,
        level: tier,
    })
}

/// The statement and answer of a level (0–3) of [`generate`], drawn from `r`.
fn level_problem(r: &mut ChaCha20Rng, level: u8) -> (String, Rational) {
    match level {
        0 => {
            let (a, b) = (pick(r, 2, 99), pick(r, 2, 99));
            let (s, v) = match uniform_below(r, 3) {
                0 => (format!("What is {a} + {b}?"), a + b),
                1 => (format!("What is {a} - {b}?"), a - b),
                _ => (format!("What is {a} × {b}?"), a * b),
            };
            (s, Rational::int(v))
        }
        1 => {
            let (a, b, c, d) = (
                pick(r, 2, 50),
                pick(r, 2, 50),
                pick(r, 2, 12),
                pick(r, 2, 99),
            );
            let (s, v) = match uniform_below(r, 3) {
                0 => (format!("Compute ({a} + {b}) × {c} - {d}."), (a + b) * c - d),
                1 => (format!("Compute {a} × {c} + {b} × {d}."), a * c + b * d),
                _ => (format!("Compute {d} - ({a} - {b}) × {c}."), d - (a - b) * c),
            };
            (s, Rational::int(v))
        }
        2 => word_problem(r),
        _ => {
            let (a, b) = (pick(r, 1, 12), pick(r, 2, 12));
            let (c, d) = (pick(r, 1, 12), pick(r, 2, 12));
            let (x, y) = (
                Rational::int(a).checked_div(Rational::int(b)),
                Rational::int(c).checked_div(Rational::int(d)),
            );
            let (x, y) = (x.unwrap_or(Rational::int(0)), y.unwrap_or(Rational::int(0)));
            let (op, v) = match uniform_below(r, 3) {
                0 => ("+", x.checked_add(y)),
                1 => ("-", x.checked_sub(y)),
                _ => ("×", x.checked_mul(y)),
            };
            (
                format!(
                    "What is {a}/{b} {op} {c}/{d}? Write the answer as a fraction in lowest terms."
                ),
                v.unwrap_or(Rational::int(0)),
            )
        }
    }
}

fn word_problem(r: &mut ChaCha20Rng) -> (String, Rational) {
    let name = NAMES[uniform_below(r, NAMES.len() as u64) as usize];
    match uniform_below(r, 4) {
        0 => {
            let (a, b, c) = (pick(r, 3, 40), pick(r, 2, 9), pick(r, 2, 12));
            let d = pick(r, 1, (a + b * c - 1) as u64);
            (
                format!("{name} has {a} apples, buys {b} bags with {c} apples in each bag, then gives {d} apples to a friend. How many apples does {name} have now?"),
                Rational::int(a + b * c - d),
            )
        }
        1 => {
            let (p, q, a, b, extra) = (
                pick(r, 2, 15),
                pick(r, 1, 6),
                pick(r, 1, 6),
                pick(r, 1, 9),
                pick(r, 1, 20),
            );
            let cost = a * p + b * q;
            let bill = cost + extra;
            (
                format!("A notebook costs {p} dollars and a pen costs {q} dollars. {name} buys {a} notebooks and {b} pens and pays with {bill} dollars. How many dollars of change does {name} get?"),
                Rational::int(extra),
            )
        }
        2 => {
            let (v, h, w, k) = (
                pick(r, 20, 120),
                pick(r, 1, 6),
                pick(r, 20, 120),
                pick(r, 1, 6),
            );
            (
                format!("A train travels at {v} km per hour for {h} hours, then at {w} km per hour for {k} hours. How many kilometres does it travel in total?"),
                Rational::int(v * h + w * k),
            )
        }
        _ => {
            let (n, k) = (pick(r, 5, 60), pick(r, 2, 8));
            (
                format!("{name} shares {n} stickers equally among {k} friends. How many stickers does each friend get? If it is not a whole number, give a fraction in lowest terms."),
                Rational::new(n, k).unwrap_or(Rational::int(0)),
            )
        }
    }
}

/// The answer a completion gives, if any: SOLUTION block (boxed inside wins), else the
/// last `\boxed{}`, else the last number.
pub fn extract_answer(text: &str) -> Option<String> {
    let t = tagged(text);
    if let Some(content) = t.solution {
        return Some(last_boxed(content).unwrap_or(content).trim().to_string());
    }
    last_boxed(text)
        .map(|s| s.trim().to_string())
        .or_else(|| last_number(text))
}

/// Scores a completion against a math answer.
pub fn score(answer: &Answer, completion: &str, eos_markers: &[&str]) -> RewardVector {
    let text = strip_eos(completion, eos_markers);
    let t = tagged(text);
    let correct = extract_answer(text).is_some_and(|a| answer.matches(&a));
    let has_answer = t.solution.is_some();
    let values = [
        f64::from(u8::from(correct)),
        f64::from(u8::from(
            has_answer && t.open_tags == 1 && t.close_tags == 1,
        )),
        f64::from(u8::from(t.has_thinking)),
        if has_answer {
            (1.0 - t.trailing as f64 / TRAILING_BUDGET).max(0.0)
        } else {
            0.0
        },
    ];
    RewardVector::from_table(&WEIGHTS, &values, correct)
}

/// Scores a completion against a problem's math target (0 for any other target).
fn score_problem(problem: &Problem, completion: &str, eos_markers: &[&str]) -> RewardVector {
    match &problem.target {
        Target::Math(answer) => score(answer, completion, eos_markers),
        _ => RewardVector::weighted(&[("correctness", 1.0, 0.0)], false),
    }
}

/// The procedural math environment: any `u64` prompt id.
#[derive(Debug, Clone, Default)]
pub struct ProceduralMath;

impl Environment for ProceduralMath {
    fn id(&self) -> EnvironmentId {
        EnvironmentId {
            name: "math".into(),
            params: "gen=v1;levels=0-3;reward=v2".into(),
        }
    }

    fn prompt_space(&self) -> PromptSpace {
        PromptSpace::Unbounded
    }

    fn problem(&self, prompt_id: u64) -> Result<Problem, EnvError> {
        Ok(generate(prompt_id).into_problem(prompt_id))
    }

    fn score(&self, problem: &Problem, completion: &str, eos_markers: &[&str]) -> RewardVector {
        score_problem(problem, completion, eos_markers)
    }

    fn stratum(&self, prompt_id: u64) -> String {
        format!("math:level-{}", generate(prompt_id).level)
    }

    fn strata(&self) -> Vec<String> {
        (0..4).map(|l| format!("math:level-{l}")).collect()
    }
}

/// One difficulty tier of the procedural math environment (see [`generate_tier`]): any
/// `u64` prompt id. Tier 0 is one-digit addition, tier 5 fraction arithmetic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MathTier(u8);

impl MathTier {
    /// Tier `tier`, if it exists (below [`TIERS`]).
    pub fn new(tier: u8) -> Result<Self, EnvError> {
        crate::check_tier("math", tier, TIERS).map(Self)
    }
}

impl Environment for MathTier {
    fn id(&self) -> EnvironmentId {
        EnvironmentId {
            name: "math".into(),
            params: format!("gen=tiers-v1;tier={};reward=v2", self.0),
        }
    }

    fn prompt_space(&self) -> PromptSpace {
        PromptSpace::Unbounded
    }

    fn problem(&self, prompt_id: u64) -> Result<Problem, EnvError> {
        generate_tier(prompt_id, self.0)
            .map(|g| g.into_problem(prompt_id))
            .ok_or_else(|| EnvError::NoSuchTier {
                env: "math".into(),
                tier: self.0,
                tiers: TIERS,
            })
    }

    fn score(&self, problem: &Problem, completion: &str, eos_markers: &[&str]) -> RewardVector {
        score_problem(problem, completion, eos_markers)
    }

    fn stratum(&self, _prompt_id: u64) -> String {
        format!("math:{}", self.0)
    }
}
