//! A job as an [`Environment`]: miners mine it and validators verify it with the same
//! machinery as `math:1`, its reward recomputed from the job's canonical bytes.

use std::sync::Arc;

use grail_env::template::Message;
use grail_env::{EnvError, Environment, EnvironmentId, Problem, PromptSpace, RewardVector, Target};
use grail_proto::rules::WindowPlan;
use grail_proto::GenerationParams;

use crate::reward::Scorer;
use crate::spec::{Job, JobId};
use crate::JobError;

/// Name of the environment every job is (its `params` are the job id in hex).
pub const JOB_ENVIRONMENT: &str = "job";

/// One job, ready to render prompts and score completions.
#[derive(Debug, Clone)]
pub struct JobEnvironment {
    id: JobId,
    job: Arc<Job>,
    scorer: Scorer,
}

impl JobEnvironment {
    /// The environment of a checked job and its prepared reward.
    pub fn new(job: Job, scorer: Scorer) -> Self {
        Self {
            id: job.id(),
            job: Arc::new(job),
            scorer,
        }
    }

    /// Loads canonical job bytes (see [`Job::from_canonical`]).
    pub fn load(bytes: &[u8]) -> Result<Self, JobError> {
        let (job, scorer) = Job::from_canonical(bytes)?;
        Ok(Self::new(job, scorer))
    }

    /// The job.
    pub fn job(&self) -> &Job {
        &self.job
    }

    /// The job's name.
    pub fn job_id(&self) -> JobId {
        self.id
    }

    /// The plan of this job's lane in a window: the window's randomness and checkpoint
    /// (`base`, the subnet's plan), with the job's environment, sampling parameters and
    /// group size. Job groups are bound to it, sampled by it and verified against it by
    /// the protocol's ordinary rules.
    pub fn lane_plan(&self, base: &WindowPlan) -> WindowPlan {
        WindowPlan {
            window: base.window,
            window_randomness: base.window_randomness,
            checkpoint: base.checkpoint,
            environment: self.id(),
            generation: GenerationParams {
                max_new_tokens: self.job.max_new_tokens,
                temperature_milli: self.job.temperature_milli,
            },
            group_size: self.job.group_size as usize,
        }
    }

    /// The reward of a completion of prompt `index` with the reason it is 0 without
    /// being judged, if any (a module that trapped or ran out of fuel).
    pub fn reward(&self, index: usize, completion: &str, eos: &[&str]) -> crate::reward::Scored {
        self.scorer.score(&self.job.prompts, index, completion, eos)
    }
}

impl Environment for JobEnvironment {
    fn id(&self) -> EnvironmentId {
        EnvironmentId {
            name: JOB_ENVIRONMENT.into(),
            params: self.id.to_string(),
        }
    }

    fn prompt_space(&self) -> PromptSpace {
        PromptSpace::Finite(self.job.prompts.len() as u64)
    }

    fn problem(&self, prompt_id: u64) -> Result<Problem, EnvError> {
        let prompt = usize::try_from(prompt_id)
            .ok()
            .and_then(|i| self.job.prompts.get(i))
            .ok_or_else(|| EnvError::PromptOutOfRange {
                env: format!("{JOB_ENVIRONMENT}:{}", self.id),
                id: prompt_id,
                size: self.job.prompts.len() as u64,
            })?;
        Ok(Problem {
            prompt_id,
            statement: prompt
                .messages
                .last()
                .map(|m| m.content.clone())
                .unwrap_or_default(),
            target: Target::Held,
        })
    }

    fn score(&self, problem: &Problem, completion: &str, eos_markers: &[&str]) -> RewardVector {
        let index = usize::try_from(problem.prompt_id).unwrap_or(usize::MAX);
        let reward = self.reward(index, completion, eos_markers).reward;
        let solved = reward * 1000.0 >= f64::from(self.job.pass_threshold_milli);
        RewardVector::weighted(&[("reward", 1.0, reward)], solved)
    }

    fn stratum(&self, _prompt_id: u64) -> String {
        format!("{JOB_ENVIRONMENT}:{}", &self.id.to_string()[..12])
    }

    fn messages(&self, problem: &Problem) -> Vec<Message> {
        usize::try_from(problem.prompt_id)
            .ok()
            .and_then(|i| self.job.prompts.get(i))
            .map(|p| p.messages.clone())
            .unwrap_or_default()
    }
}
