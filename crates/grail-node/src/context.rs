//! A loaded model with everything needed to render prompts and score completions the
//! same way on every node.

use std::path::Path;

use grail_env::template::ChatTemplate;
use grail_env::{Environment, Problem, RewardVector};
use grail_infer::{no_progress, Model, ModelDir, Progress};
use tch::{Device, Kind};

use crate::NodeError;

/// The device `choice` names (`auto`: CUDA when libtorch sees a GPU, else the CPU), for
/// every role, eval and the experiment.
///
/// # Errors
/// A CUDA device libtorch does not see.
pub fn device(choice: grail_infer::DeviceChoice) -> Result<Device, NodeError> {
    let device = grail_infer::resolve_device(choice)?;
    tracing::info!(%choice, ?device, "model device");
    Ok(device)
}

/// The tokenizer and chat template of a model: renders canonical prompts. Unlike the
/// model it is `Sync`, so the checks without a forward pass run on every core.
#[derive(Clone, Copy)]
pub struct Prompter<'a> {
    /// The model's files (tokenizer, config).
    pub files: &'a ModelDir,
    /// The chat template.
    pub template: &'a ChatTemplate,
}

impl Prompter<'_> {
    /// The canonical prompt tokens of `prompt_id`: the environment's problem, rendered
    /// with the chat template, tokenized.
    ///
    /// # Errors
    /// The environment has no such problem, or rendering or tokenizing fails.
    pub fn prompt(
        &self,
        env: &dyn Environment,
        prompt_id: u64,
    ) -> Result<(Problem, Vec<u32>), NodeError> {
        let problem = env.problem(prompt_id)?;
        let text = env.render(&problem, self.template)?;
        let tokens = self.files.tokenizer.encode(&text)?;
        Ok((problem, tokens))
    }
}

/// A model directory, its model (fp32: proofs are computed in fp32), chat template and EOS.
pub struct ModelContext {
    /// The parsed directory.
    pub files: ModelDir,
    /// The model.
    pub model: Model,
    /// The chat template prompts are rendered with.
    pub template: ChatTemplate,
    /// Token ids that end a completion.
    pub eos_ids: Vec<u32>,
    /// Their text (stripped before scoring).
    pub eos_markers: Vec<String>,
}

impl ModelContext {
    /// Loads `dir` on `device` in fp32.
    ///
    /// # Errors
    /// The folder is not a model this crate runs, or its files cannot be read.
    pub fn load(dir: &Path, device: Device) -> Result<Self, NodeError> {
        Self::load_with_progress(dir, device, &mut no_progress)
    }

    /// [`Self::load`], reporting the weights read to `progress`.
    ///
    /// # Errors
    /// As [`Self::load`].
    pub fn load_with_progress(
        dir: &Path,
        device: Device,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Self, NodeError> {
        let files = ModelDir::open(dir)?;
        let model = files.load_model(Kind::Float, device, progress)?;
        let template = ChatTemplate::from_tokenizer_config(
            &files.tokenizer_config.to_string(),
            ChatTemplate::ChatMl,
        )?;
        let mut eos_markers = template.eos_markers();
        for &id in &files.eos_ids {
            if let Ok(text) = files.tokenizer.decode(&[id], false) {
                if !text.is_empty() && !eos_markers.contains(&text) {
                    eos_markers.push(text);
                }
            }
        }
        Ok(Self {
            eos_ids: files.eos_ids.clone(),
            files,
            model,
            template,
            eos_markers,
        })
    }

    /// The canonical prompt tokens of `prompt_id`: the environment's problem, rendered
    /// with the chat template, tokenized. Miners and validators both call this.
    ///
    /// # Errors
    /// As [`Prompter::prompt`].
    pub fn prompt(
        &self,
        env: &dyn Environment,
        prompt_id: u64,
    ) -> Result<(Problem, Vec<u32>), NodeError> {
        self.prompter().prompt(env, prompt_id)
    }

    /// What renders prompts, without the model (it can be shared between threads).
    pub fn prompter(&self) -> Prompter<'_> {
        Prompter {
            files: &self.files,
            template: &self.template,
        }
    }

    /// The environment's reward for completion tokens (decoded with special tokens kept;
    /// the environment strips a trailing EOS marker).
    pub fn reward(
        &self,
        env: &dyn Environment,
        problem: &Problem,
        completion: &[u32],
    ) -> Result<RewardVector, NodeError> {
        let text = self.files.tokenizer.decode(completion, false)?;
        let markers: Vec<&str> = self.eos_markers.iter().map(String::as_str).collect();
        Ok(env.score(problem, &text, &markers))
    }
}
