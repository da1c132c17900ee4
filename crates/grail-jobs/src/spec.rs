//! What a client submits, and the canonical job every node derives from it.
//!
//! A [`JobRequest`] is the lenient JSON a client posts (plain-text or chat prompts,
//! `temperature` as a float). [`Job::from_request`] checks every field against
//! [`crate::limits`] and turns it into a [`Job`]: chat messages only, temperature in
//! thousandths, metadata with sorted keys. Its [`Job::canonical_bytes`] are what is
//! stored and downloaded, and their digest is the job's [`JobId`]; [`Job::from_canonical`]
//! refuses bytes that are not exactly the canonical form of a valid job, so one job has
//! one name.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use grail_env::template::Message;

use crate::limits::*;
use crate::reward::{RewardSpec, Scorer};
use crate::JobError;

/// Version of the canonical job document (changes the digest of every job).
pub const JOB_FORMAT: u32 = 1;

/// Domain separation of a job's digest.
const JOB_DIGEST_DOMAIN: &[u8] = b"grail/job/v1\0";

/// One prompt as a client writes it: plain `prompt` text or chat `messages` (exactly one
/// of the two), an optional gold `answer` and optional `meta` object.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptRequest {
    /// Plain text: one user message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// Chat messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages: Option<Vec<Message>>,
    /// The gold answer the reward compares against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
    /// Anything else the reward needs (a WebAssembly reward receives it as JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<serde_json::Value>,
}

/// A job as a client submits it (`POST /v2/jobs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobRequest {
    /// The prompts.
    pub prompts: Vec<PromptRequest>,
    /// The reward.
    pub reward: RewardSpec,
    /// Rollouts per group.
    pub group_size: u32,
    /// Most tokens per completion.
    pub max_new_tokens: u32,
    /// Sampling temperature (default 1).
    #[serde(default = "one_f64")]
    pub temperature: f64,
    /// Groups wanted per prompt (default 1).
    #[serde(default = "one_u32")]
    pub groups_per_prompt: u32,
    /// Unix time after which no more groups are mined for it.
    pub deadline_unix: u64,
    /// Reward at or above which a rollout counts as solved (default 1).
    #[serde(default = "one_f64")]
    pub pass_threshold: f64,
}

fn one_f64() -> f64 {
    1.0
}
fn one_u32() -> u32 {
    1
}

/// One prompt of a canonical job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobPrompt {
    /// Chat messages, the last one from the user.
    pub messages: Vec<Message>,
    /// Gold answer.
    pub answer: Option<String>,
    /// Metadata: canonical JSON of an object (keys sorted), if any.
    pub meta: Option<String>,
}

impl JobPrompt {
    /// The metadata as the reward module receives it (`{}` when there is none).
    pub fn meta_json(&self) -> String {
        self.meta.clone().unwrap_or_else(|| "{}".into())
    }
}

/// A validated job in canonical form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Job {
    /// [`JOB_FORMAT`].
    pub format: u32,
    /// The prompts; a group's prompt id is the index here.
    pub prompts: Vec<JobPrompt>,
    /// The reward.
    pub reward: RewardSpec,
    /// Rollouts per group.
    pub group_size: u32,
    /// Most tokens per completion.
    pub max_new_tokens: u32,
    /// Temperature in thousandths.
    pub temperature_milli: u32,
    /// Groups wanted per prompt.
    pub groups_per_prompt: u32,
    /// Unix time after which no more groups are mined for it.
    pub deadline_unix: u64,
    /// Solved threshold in thousandths of reward.
    pub pass_threshold_milli: u32,
}

/// A job's name: SHA-256 over a domain tag and its canonical bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(pub [u8; 32]);

impl std::fmt::Display for JobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl std::str::FromStr for JobId {
    type Err = JobError;
    fn from_str(s: &str) -> Result<Self, JobError> {
        let mut id = [0u8; 32];
        hex::decode_to_slice(s, &mut id)
            .map_err(|_| JobError::invalid("job id", "64 hexadecimal characters"))?;
        Ok(Self(id))
    }
}

impl Job {
    /// Checks a submission made at unix time `now` and builds its canonical job (the
    /// reward is prepared and, for a WebAssembly module, probed).
    pub fn from_request(req: &JobRequest, now: u64) -> Result<(Job, Scorer), JobError> {
        if req.deadline_unix <= now {
            return Err(JobError::invalid(
                "deadline_unix",
                format!("{} is not in the future (now {now})", req.deadline_unix),
            ));
        }
        if req.deadline_unix - now > MAX_JOB_SECONDS {
            return Err(JobError::invalid(
                "deadline_unix",
                format!("at most {MAX_JOB_SECONDS} s after submission"),
            ));
        }
        if !(req.temperature.is_finite()) {
            return Err(JobError::invalid("temperature", "must be a number"));
        }
        let temperature_milli = (req.temperature * 1000.0).round();
        if !(f64::from(MIN_TEMPERATURE_MILLI)..=f64::from(MAX_TEMPERATURE_MILLI))
            .contains(&temperature_milli)
        {
            return Err(JobError::invalid(
                "temperature",
                format!(
                    "must be between {} and {}",
                    f64::from(MIN_TEMPERATURE_MILLI) / 1000.0,
                    f64::from(MAX_TEMPERATURE_MILLI) / 1000.0
                ),
            ));
        }
        if !(req.pass_threshold.is_finite() && (0.0..=1.0).contains(&req.pass_threshold)) {
            return Err(JobError::invalid("pass_threshold", "must be in [0, 1]"));
        }
        let prompts = req
            .prompts
            .iter()
            .enumerate()
            .map(|(i, p)| prompt(i, p))
            .collect::<Result<Vec<_>, _>>()?;
        let job = Job {
            format: JOB_FORMAT,
            prompts,
            reward: req.reward.clone(),
            group_size: req.group_size,
            max_new_tokens: req.max_new_tokens,
            temperature_milli: temperature_milli as u32,
            groups_per_prompt: req.groups_per_prompt,
            deadline_unix: req.deadline_unix,
            pass_threshold_milli: (req.pass_threshold * 1000.0).round() as u32,
        };
        let scorer = job.check()?;
        scorer.probe(&job.prompts)?;
        Ok((job, scorer))
    }

    /// Reads canonical job bytes (from a store or a peer): they must be the exact
    /// canonical form of a valid job. The deadline is not compared with the clock.
    pub fn from_canonical(bytes: &[u8]) -> Result<(Job, Scorer), JobError> {
        if bytes.len() > MAX_JOB_BYTES {
            return Err(JobError::TooLarge {
                bytes: bytes.len(),
                max: MAX_JOB_BYTES,
            });
        }
        let job: Job = serde_json::from_slice(bytes).map_err(|e| JobError::Json {
            line: None,
            message: e.to_string(),
        })?;
        if job.format != JOB_FORMAT {
            return Err(JobError::invalid(
                "format",
                format!("job format {} (this node reads {JOB_FORMAT})", job.format),
            ));
        }
        for (i, p) in job.prompts.iter().enumerate() {
            let request = PromptRequest {
                prompt: None,
                messages: Some(p.messages.clone()),
                answer: p.answer.clone(),
                meta: match &p.meta {
                    None => None,
                    Some(m) => Some(serde_json::from_str(m).map_err(|e| {
                        JobError::invalid(format!("prompts[{i}].meta"), e.to_string())
                    })?),
                },
            };
            if prompt(i, &request)? != *p {
                return Err(JobError::NotCanonical);
            }
        }
        let scorer = job.check()?;
        if job.canonical_bytes() != bytes {
            return Err(JobError::NotCanonical);
        }
        Ok((job, scorer))
    }

    /// The checks shared by submission and loading; prepares the reward.
    fn check(&self) -> Result<Scorer, JobError> {
        if self.prompts.is_empty() || self.prompts.len() > MAX_PROMPTS {
            return Err(JobError::invalid(
                "prompts",
                format!("1 to {MAX_PROMPTS} prompts"),
            ));
        }
        if !(2..=MAX_JOB_GROUP_SIZE).contains(&self.group_size) {
            return Err(JobError::invalid(
                "group_size",
                format!("2 to {MAX_JOB_GROUP_SIZE} rollouts (an advantage needs at least two)"),
            ));
        }
        if !(1..=MAX_JOB_NEW_TOKENS).contains(&self.max_new_tokens) {
            return Err(JobError::invalid(
                "max_new_tokens",
                format!("1 to {MAX_JOB_NEW_TOKENS}"),
            ));
        }
        if !(MIN_TEMPERATURE_MILLI..=MAX_TEMPERATURE_MILLI).contains(&self.temperature_milli) {
            return Err(JobError::invalid(
                "temperature_milli",
                format!("{MIN_TEMPERATURE_MILLI} to {MAX_TEMPERATURE_MILLI}"),
            ));
        }
        if !(1..=MAX_GROUPS_PER_PROMPT).contains(&self.groups_per_prompt) {
            return Err(JobError::invalid(
                "groups_per_prompt",
                format!("1 to {MAX_GROUPS_PER_PROMPT}"),
            ));
        }
        if self.pass_threshold_milli > 1000 {
            return Err(JobError::invalid("pass_threshold_milli", "0 to 1000"));
        }
        let len = self.canonical_bytes().len();
        if len > MAX_JOB_BYTES {
            return Err(JobError::TooLarge {
                bytes: len,
                max: MAX_JOB_BYTES,
            });
        }
        Scorer::new(&self.reward, &self.prompts)
    }

    /// The canonical bytes (compact JSON in field order).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        // Serializing plain structs, strings and integers cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The job's name.
    pub fn id(&self) -> JobId {
        let mut h = Sha256::new();
        h.update(JOB_DIGEST_DOMAIN);
        h.update(self.canonical_bytes());
        JobId(h.finalize().into())
    }

    /// Groups the job asks for in all.
    pub fn groups_wanted(&self) -> u64 {
        self.prompts.len() as u64 * u64::from(self.groups_per_prompt)
    }
}

/// Checks one submitted prompt and puts it in canonical form.
fn prompt(i: usize, p: &PromptRequest) -> Result<JobPrompt, JobError> {
    let field = |f: &str| format!("prompts[{i}]{f}");
    let messages = match (&p.prompt, &p.messages) {
        (Some(text), None) => vec![Message {
            role: "user".into(),
            content: text.clone(),
        }],
        (None, Some(m)) => m.clone(),
        _ => {
            return Err(JobError::invalid(
                field(""),
                "give exactly one of `prompt` (text) and `messages` (chat)",
            ))
        }
    };
    if messages.is_empty() || messages.len() > MAX_MESSAGES {
        return Err(JobError::invalid(
            field(".messages"),
            format!("1 to {MAX_MESSAGES} messages"),
        ));
    }
    for (j, m) in messages.iter().enumerate() {
        if !["system", "user", "assistant"].contains(&m.role.as_str()) {
            return Err(JobError::invalid(
                field(&format!(".messages[{j}].role")),
                format!("`{}`: one of system, user, assistant", m.role),
            ));
        }
    }
    if messages.last().is_some_and(|m| m.role != "user") {
        return Err(JobError::invalid(
            field(".messages"),
            "the last message must be the user's (the model answers it)",
        ));
    }
    let bytes: usize = messages.iter().map(|m| m.content.len()).sum();
    if bytes == 0 || bytes > MAX_PROMPT_BYTES {
        return Err(JobError::invalid(
            field(""),
            format!("the messages hold {bytes} bytes; 1 to {MAX_PROMPT_BYTES}"),
        ));
    }
    if let Some(a) = &p.answer {
        if a.len() > MAX_ANSWER_BYTES {
            return Err(JobError::invalid(
                field(".answer"),
                format!("at most {MAX_ANSWER_BYTES} bytes"),
            ));
        }
    }
    let meta = match &p.meta {
        None => None,
        Some(v @ serde_json::Value::Object(_)) => {
            let text = canonical_json(v);
            if text.len() > MAX_META_BYTES {
                return Err(JobError::invalid(
                    field(".meta"),
                    format!("at most {MAX_META_BYTES} bytes of JSON"),
                ));
            }
            Some(text)
        }
        Some(_) => return Err(JobError::invalid(field(".meta"), "must be a JSON object")),
    };
    Ok(JobPrompt {
        messages,
        answer: p.answer.clone(),
        meta,
    })
}

/// Compact JSON with every object's keys sorted, whatever map order serde_json uses.
fn canonical_json(v: &serde_json::Value) -> String {
    fn sorted(v: &serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                serde_json::Value::Object(
                    keys.into_iter()
                        .map(|k| (k.clone(), sorted(&m[k])))
                        .collect(),
                )
            }
            serde_json::Value::Array(a) => serde_json::Value::Array(a.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    sorted(v).to_string()
}

/// Prompts from JSONL: each non-empty line is a JSON object in the [`PromptRequest`]
/// form or a JSON string (plain-text prompt). Errors carry the 1-based line number.
pub fn prompts_from_jsonl(text: &str) -> Result<Vec<PromptRequest>, JobError> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let json = |e: serde_json::Error| JobError::Json {
            line: Some(n + 1),
            message: e.to_string(),
        };
        let p = if line.starts_with('"') {
            PromptRequest {
                prompt: Some(serde_json::from_str(line).map_err(json)?),
                ..Default::default()
            }
        } else {
            serde_json::from_str(line).map_err(json)?
        };
        out.push(p);
        if out.len() > MAX_PROMPTS {
            return Err(JobError::invalid(
                "prompts",
                format!("more than {MAX_PROMPTS} prompts"),
            ));
        }
    }
    Ok(out)
}

/// Reads a submission body: at most [`MAX_JOB_BYTES`], JSON in the [`JobRequest`] form.
pub fn parse_request(body: &[u8]) -> Result<JobRequest, JobError> {
    if body.len() > MAX_JOB_BYTES {
        return Err(JobError::TooLarge {
            bytes: body.len(),
            max: MAX_JOB_BYTES,
        });
    }
    serde_json::from_slice(body).map_err(|e| JobError::Json {
        line: None,
        message: e.to_string(),
    })
}
