//! Math datasets the user has on disk: GSM8K and Hendrycks MATH JSONL files loaded into
//! [`DatasetMath`], an environment whose prompt id is the line index.

use std::path::Path;

use sha2::{Digest, Sha256};

use super::score_problem;
use crate::answer::{last_boxed, Answer};
use crate::{EnvError, Environment, EnvironmentId, Problem, PromptSpace, RewardVector, Target};

/// Which JSONL layout a dataset file has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatasetFormat {
    /// GSM8K: `question`, `answer` ending in `#### N`.
    Gsm8k,
    /// Hendrycks MATH: `problem`, `solution` with the answer in `\boxed{}`.
    HendrycksMath,
}

impl DatasetFormat {
    fn name(self) -> &'static str {
        match self {
            DatasetFormat::Gsm8k => "gsm8k",
            DatasetFormat::HendrycksMath => "hendrycks-math",
        }
    }
}

/// A math dataset loaded from disk; prompt id = line index (blank lines skipped).
#[derive(Debug, Clone)]
pub struct DatasetMath {
    format: DatasetFormat,
    sha256: [u8; 32],
    items: Vec<(String, Answer)>,
}

impl DatasetMath {
    /// Loads a JSONL file; a malformed line is an error naming the file and line number.
    pub fn load(path: &Path, format: DatasetFormat) -> Result<Self, EnvError> {
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| EnvError::Io {
            path: shown.clone(),
            source,
        })?;
        Self::parse(&bytes, &shown, format)
    }

    /// Parses JSONL bytes (`source` names them in errors).
    pub fn parse(bytes: &[u8], source: &str, format: DatasetFormat) -> Result<Self, EnvError> {
        let text = std::str::from_utf8(bytes).map_err(|e| EnvError::Dataset {
            path: source.into(),
            line: 1 + bytes[..e.valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count(),
            message: "not UTF-8".into(),
        })?;
        let mut items = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let err = |message: String| EnvError::Dataset {
                path: source.into(),
                line: i + 1,
                message,
            };
            let v: serde_json::Value =
                serde_json::from_str(line).map_err(|e| EnvError::DatasetJson {
                    path: source.into(),
                    line: i + 1,
                    source: e,
                })?;
            let field = |k: &str| {
                v.get(k)
                    .and_then(|x| x.as_str())
                    .ok_or_else(|| err(format!("missing string field `{k}`")))
            };
            let item = match format {
                DatasetFormat::Gsm8k => {
                    let answer = field("answer")?;
                    let gold = answer
                        .rsplit_once("####")
                        .map(|(_, a)| a.trim())
                        .ok_or_else(|| err("answer has no `#### N` final line".into()))?;
                    (field("question")?.to_string(), Answer::parse(gold))
                }
                DatasetFormat::HendrycksMath => {
                    let solution = field("solution")?;
                    let gold = last_boxed(solution)
                        .ok_or_else(|| err("solution has no \\boxed{} answer".into()))?;
                    (field("problem")?.to_string(), Answer::parse(gold))
                }
            };
            items.push(item);
        }
        if items.is_empty() {
            return Err(EnvError::Dataset {
                path: source.into(),
                line: 0,
                message: "no problems in the file".into(),
            });
        }
        Ok(Self {
            format,
            sha256: Sha256::digest(bytes).into(),
            items,
        })
    }

    /// Number of problems.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether there are no problems (never true for a loaded dataset).
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

impl Environment for DatasetMath {
    fn id(&self) -> EnvironmentId {
        EnvironmentId {
            name: self.format.name().into(),
            params: format!("sha256={};reward=v2", hex::encode(self.sha256)),
        }
    }

    fn prompt_space(&self) -> PromptSpace {
        PromptSpace::Finite(self.items.len() as u64)
    }

    fn problem(&self, prompt_id: u64) -> Result<Problem, EnvError> {
        let (q, a) = usize::try_from(prompt_id)
            .ok()
            .and_then(|i| self.items.get(i))
            .ok_or_else(|| EnvError::PromptOutOfRange {
                env: self.format.name().into(),
                id: prompt_id,
                size: self.items.len() as u64,
            })?;
        Ok(Problem {
            prompt_id,
            statement: q.clone(),
            target: Target::Math(a.clone()),
        })
    }

    fn score(&self, problem: &Problem, completion: &str, eos_markers: &[&str]) -> RewardVector {
        score_problem(problem, completion, eos_markers)
    }
}
