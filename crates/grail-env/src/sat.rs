//! Deterministic 3-SAT: generator, DPLL solver, answer parser and rewards.
//!
//! **Generator** (normative). `rng = stream("grail/env/sat/v1", [u64be(seed)])` (ChaCha20,
//! see docs/protocol.md §2). `vars = 3 + uniform_below(8)` (3–10), `clauses = 5 +
//! uniform_below(16)` (5–20). Each clause picks 3 distinct variables by repeated
//! `uniform_below(vars)` (skipping repeats, in draw order) and negates each with
//! `uniform_below(2) = 1`. Instances need not be satisfiable: [`solve`] labels them.
//!
//! **Answer**: `<SOLUTION>b1 b2 … bn</SOLUTION>` with one 0/1 bit per variable.

use grail_proto::prf::{stream, uniform_below};

use crate::answer::{strip_eos, tagged};
use crate::{EnvError, Environment, EnvironmentId, Problem, PromptSpace, RewardVector, Target};

/// Fewest variables.
pub const MIN_VARS: u64 = 3;
/// Most variables.
pub const MAX_VARS: u64 = 10;
/// Fewest clauses.
pub const MIN_CLAUSES: u64 = 5;
/// Most clauses.
pub const MAX_CLAUSES: u64 = 20;
/// Number of difficulty tiers of [`SatTier`] (tier `t` has 3 + 2t or 4 + 2t variables).
pub const TIERS: u8 = 4;
/// Literals per clause.
pub const CLAUSE_LEN: usize = 3;

/// Reward weights `(component, weight)`, in scoring order. Changing one changes every
/// reward a validator recomputes: bump the environment's params string.
pub const WEIGHTS: [(&str, f64); 6] = [
    ("correctness", 1.0),
    ("format", 0.15),
    ("tags", 0.10),
    ("assignment_length", 0.15),
    ("no_trailing", 0.10),
    ("bits_only", 0.05),
];

/// Trailing characters after `</SOLUTION>` that cost the whole `no_trailing` component.
pub const TRAILING_BUDGET: f64 = 200.0;

/// A literal: variable index (1-based) and polarity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Literal {
    /// Variable, 1-based.
    pub var: u32,
    /// True for `NOT x`.
    pub negated: bool,
}

/// A CNF formula with three literals per clause.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SatInstance {
    /// Number of variables `x1..xn`.
    pub num_vars: u32,
    /// The clauses.
    pub clauses: Vec<[Literal; CLAUSE_LEN]>,
}

impl SatInstance {
    /// The instance of a seed.
    pub fn generate(seed: u64) -> Self {
        let mut rng = stream(b"grail/env/sat/v1", &[&seed.to_be_bytes()]);
        let num_vars = MIN_VARS + uniform_below(&mut rng, MAX_VARS - MIN_VARS + 1);
        let num_clauses = MIN_CLAUSES + uniform_below(&mut rng, MAX_CLAUSES - MIN_CLAUSES + 1);
        Self::with_sizes(&mut rng, num_vars, num_clauses)
    }

    /// The instance of a seed in difficulty tier `tier` (normative):
    /// `rng = stream("grail/env/sat/tier/v1", [u64be(seed)])`, `vars = 3 + 2·tier +
    /// uniform_below(2)`, `clauses = vars + 2 + uniform_below(vars + 1)`, then clauses as in
    /// [`Self::generate`]. `None` for a tier ≥ [`TIERS`].
    pub fn generate_tier(seed: u64, tier: u8) -> Option<Self> {
        if tier >= TIERS {
            return None;
        }
        let mut rng = stream(b"grail/env/sat/tier/v1", &[&seed.to_be_bytes()]);
        let num_vars = MIN_VARS + 2 * u64::from(tier) + uniform_below(&mut rng, 2);
        let num_clauses = num_vars + 2 + uniform_below(&mut rng, num_vars + 1);
        Some(Self::with_sizes(&mut rng, num_vars, num_clauses))
    }

    fn with_sizes(rng: &mut rand_chacha::ChaCha20Rng, num_vars: u64, num_clauses: u64) -> Self {
        let clauses = (0..num_clauses)
            .map(|_| {
                let mut vars: Vec<u32> = Vec::with_capacity(CLAUSE_LEN);
                while vars.len() < CLAUSE_LEN {
                    let v = 1 + uniform_below(rng, num_vars) as u32;
                    if !vars.contains(&v) {
                        vars.push(v);
                    }
                }
                // from_fn runs in index order, so negation draws follow the variables.
                std::array::from_fn(|i| Literal {
                    var: vars[i],
                    negated: uniform_below(rng, 2) == 1,
                })
            })
            .collect();
        Self {
            num_vars: num_vars as u32,
            clauses,
        }
    }

    /// Whether `assignment` (`assignment[i]` = value of `x(i+1)`) satisfies every clause.
    pub fn satisfied_by(&self, assignment: &[bool]) -> bool {
        assignment.len() == self.num_vars as usize
            && self.clauses.iter().all(|c| {
                c.iter().any(|l| {
                    let value = (l.var as usize)
                        .checked_sub(1)
                        .and_then(|i| assignment.get(i));
                    value.is_some_and(|&v| v != l.negated)
                })
            })
    }

    /// The task statement shown to the model.
    pub fn statement(&self) -> String {
        let mut s = format!(
            "Solve this 3-SAT problem. Variables: x1..x{n} ({n} variables).\nClauses (all must be true):\n",
            n = self.num_vars
        );
        for c in &self.clauses {
            let lits: Vec<String> = c
                .iter()
                .map(|l| format!("{}x{}", if l.negated { "NOT " } else { "" }, l.var))
                .collect();
            s.push_str(&format!("  ({})\n", lits.join(" OR ")));
        }
        s.push_str(&format!(
            "\nGive the assignment inside <SOLUTION></SOLUTION> as {} space-separated 0/1 values for x1..x{} (e.g. <SOLUTION>{}</SOLUTION>).",
            self.num_vars,
            self.num_vars,
            vec!["0"; self.num_vars as usize].join(" ")
        ));
        s
    }
}

/// A satisfying assignment, or `None` if the instance is unsatisfiable (DPLL with unit
/// propagation; exact for any size, fast for the sizes the generator makes).
pub fn solve(instance: &SatInstance) -> Option<Vec<bool>> {
    let mut assignment = vec![None; instance.num_vars as usize];
    dpll(instance, &mut assignment).then(|| assignment.iter().map(|v| v.unwrap_or(false)).collect())
}

fn dpll(inst: &SatInstance, a: &mut Vec<Option<bool>>) -> bool {
    // Unit propagation until fixpoint; remember what we set to undo on failure.
    let mut trail = Vec::new();
    loop {
        let mut unit = None;
        for c in &inst.clauses {
            let mut unassigned = None;
            let mut open = 0;
            let mut sat = false;
            for l in c {
                match a[l.var as usize - 1] {
                    Some(v) if v != l.negated => sat = true,
                    Some(_) => {}
                    None => {
                        open += 1;
                        unassigned = Some(*l);
                    }
                }
            }
            if sat {
                continue;
            }
            if open == 0 {
                for v in trail {
                    a[v] = None;
                }
                return false;
            }
            if open == 1 {
                unit = unassigned;
                break;
            }
        }
        match unit {
            Some(l) => {
                a[l.var as usize - 1] = Some(!l.negated);
                trail.push(l.var as usize - 1);
            }
            None => break,
        }
    }
    let Some(free) = a.iter().position(Option::is_none) else {
        return true;
    };
    for value in [false, true] {
        a[free] = Some(value);
        if dpll(inst, a) {
            return true;
        }
    }
    a[free] = None;
    for v in trail {
        a[v] = None;
    }
    false
}

/// What a completion's answer block says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedAssignment {
    /// The 0/1 bits found, in order.
    pub bits: Vec<bool>,
    /// The block holds nothing but bits and whitespace.
    pub bits_only: bool,
}

/// Parses the content of a `<SOLUTION>` block.
pub fn parse_assignment(content: &str) -> ParsedAssignment {
    ParsedAssignment {
        bits: content
            .chars()
            .filter_map(|c| match c {
                '0' => Some(false),
                '1' => Some(true),
                _ => None,
            })
            .collect(),
        bits_only: content
            .chars()
            .all(|c| c == '0' || c == '1' || c.is_whitespace()),
    }
}

/// Scores a completion against an instance.
pub fn score(instance: &SatInstance, completion: &str, eos_markers: &[&str]) -> RewardVector {
    let t = tagged(strip_eos(completion, eos_markers));
    let parsed = t.solution.map(parse_assignment);
    let has_answer = parsed.is_some();
    let bits_only = parsed.as_ref().is_some_and(|p| p.bits_only);
    let right_length = parsed
        .as_ref()
        .is_some_and(|p| p.bits.len() == instance.num_vars as usize);
    let clean = has_answer && bits_only && right_length && t.trailing == 0;
    let correct = clean
        && parsed
            .as_ref()
            .is_some_and(|p| instance.satisfied_by(&p.bits));
    let strict = clean && t.open_tags == 1 && t.close_tags == 1;
    let values = [
        f64::from(u8::from(correct)),
        f64::from(u8::from(strict)),
        f64::from(u8::from(has_answer)),
        f64::from(u8::from(right_length)),
        if has_answer {
            (1.0 - t.trailing as f64 / TRAILING_BUDGET).max(0.0)
        } else {
            0.0
        },
        f64::from(u8::from(bits_only)),
    ];
    RewardVector::from_table(&WEIGHTS, &values, correct)
}

/// The SAT environment: any `u64` prompt id is a seed.
#[derive(Debug, Clone, Default)]
pub struct SatEnv;

impl Environment for SatEnv {
    fn id(&self) -> EnvironmentId {
        EnvironmentId {
            name: "sat".into(),
            params: format!(
                "gen=v1;vars={MIN_VARS}-{MAX_VARS};clauses={MIN_CLAUSES}-{MAX_CLAUSES};k={CLAUSE_LEN};reward=v1"
            ),
        }
    }

    fn prompt_space(&self) -> PromptSpace {
        PromptSpace::Unbounded
    }

    fn problem(&self, prompt_id: u64) -> Result<Problem, EnvError> {
        let instance = SatInstance::generate(prompt_id);
        Ok(Problem {
            prompt_id,
            statement: instance.statement(),
            target: Target::Sat(instance),
        })
    }

    fn score(&self, problem: &Problem, completion: &str, eos_markers: &[&str]) -> RewardVector {
        match &problem.target {
            Target::Sat(instance) => score(instance, completion, eos_markers),
            _ => RewardVector::weighted(&[("correctness", 1.0, 0.0)], false),
        }
    }
}

/// One difficulty tier of SAT (see [`SatInstance::generate_tier`]): any `u64` seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SatTier(u8);

impl SatTier {
    /// Tier `tier`, if it exists (below [`TIERS`]).
    pub fn new(tier: u8) -> Result<Self, EnvError> {
        crate::check_tier("sat", tier, TIERS).map(Self)
    }
}

impl Environment for SatTier {
    fn id(&self) -> EnvironmentId {
        EnvironmentId {
            name: "sat".into(),
            params: format!("gen=tiers-v1;tier={};k={CLAUSE_LEN};reward=v1", self.0),
        }
    }

    fn prompt_space(&self) -> PromptSpace {
        PromptSpace::Unbounded
    }

    fn problem(&self, prompt_id: u64) -> Result<Problem, EnvError> {
        let instance =
            SatInstance::generate_tier(prompt_id, self.0).ok_or_else(|| EnvError::NoSuchTier {
                env: "sat".into(),
                tier: self.0,
                tiers: TIERS,
            })?;
        Ok(Problem {
            prompt_id,
            statement: instance.statement(),
            target: Target::Sat(instance),
        })
    }

    fn score(&self, problem: &Problem, completion: &str, eos_markers: &[&str]) -> RewardVector {
        SatEnv.score(problem, completion, eos_markers)
    }

    fn stratum(&self, _prompt_id: u64) -> String {
        format!("sat:{}", self.0)
    }
}
