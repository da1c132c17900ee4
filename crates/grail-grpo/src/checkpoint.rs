//! Checkpoints: the policy as a Hugging Face model directory (loadable by `transformers`
//! and grail-infer), and the training state (step counts, AdamW moments, configuration)
//! to resume from.

use std::path::Path;

use grail_infer::files::{ModelDir, NewModelDir};
use grail_infer::model::Model;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tch::{Device, Tensor};

use crate::config::GrpoConfig;
use crate::optim::AdamW;
use crate::trainer::Trainer;
use crate::GrpoError;

const STATE_JSON: &str = "trainer_state.json";
const MOMENTS: &str = "optimizer.safetensors";

fn read_json_or_empty(path: &Path) -> Result<Value, GrpoError> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map_err(|source| GrpoError::Json {
            context: format!("parsing {}", path.display()),
            source,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Value::Object(Default::default())),
        Err(e) => Err(GrpoError::io(format!("reading {}", path.display()), e)),
    }
}

/// Writes `model` as a Hugging Face directory at `out` (atomically), with the tokenizer
/// and generation settings of `source`.
pub fn export_model(model: &Model, source: &ModelDir, out: &Path) -> Result<(), GrpoError> {
    let weights: Vec<(String, Tensor)> = tch::no_grad(|| {
        model
            .hf_weights()
            .into_iter()
            .map(|(name, t)| (name, t.detach().to_device(Device::Cpu).contiguous()))
            .collect()
    });
    let tokenizer_path = source.path.join("tokenizer.json");
    let tokenizer = read_json_or_empty(&tokenizer_path)?;
    if tokenizer.as_object().is_some_and(|o| o.is_empty()) {
        return Err(GrpoError::MissingTokenizer {
            path: tokenizer_path,
        });
    }
    NewModelDir {
        config: model.config(),
        weights: &weights,
        tokenizer: &tokenizer,
        tokenizer_config: &source.tokenizer_config,
        generation_config: &read_json_or_empty(&source.path.join("generation_config.json"))?,
    }
    .write(out)?;
    Ok(())
}

#[derive(Serialize, Deserialize)]
struct TrainingState {
    steps: u64,
    updates: u64,
    parameters: usize,
    config: GrpoConfig,
}

impl Trainer {
    /// Saves the training state (not the weights: see [`export_model`]) into the folder
    /// `dir`, replacing it atomically and durably ([`grail_fs::StagedDir`]).
    pub fn save_state(&self, dir: &Path) -> Result<(), GrpoError> {
        let staged = grail_fs::StagedDir::new(dir).map_err(|e| {
            GrpoError::io(
                format!("creating a staging folder for {}", dir.display()),
                e,
            )
        })?;
        // On an error the staging folder is removed when `staged` drops.
        let (steps, updates) = self.progress();
        let opt = self.optimizer();
        let tensors: Vec<(String, Tensor)> = opt
            .m
            .iter()
            .enumerate()
            .map(|(i, t)| (format!("m.{i}"), t.to_device(Device::Cpu)))
            .chain(
                opt.v
                    .iter()
                    .enumerate()
                    .map(|(i, t)| (format!("v.{i}"), t.to_device(Device::Cpu))),
            )
            .collect();
        let moments = staged.path().join(MOMENTS);
        Tensor::write_safetensors(&tensors, &moments).map_err(|source| GrpoError::TorchFile {
            context: format!("writing {}", moments.display()),
            source,
        })?;
        let state = TrainingState {
            steps,
            updates,
            parameters: opt.m.len(),
            config: self.config().clone(),
        };
        let json = serde_json::to_vec_pretty(&state).map_err(|source| GrpoError::Json {
            context: "serializing the trainer state".into(),
            source,
        })?;
        let state_path = staged.path().join(STATE_JSON);
        std::fs::write(&state_path, json)
            .map_err(|e| GrpoError::io(format!("writing {}", state_path.display()), e))?;
        staged
            .commit()
            .map_err(|e| GrpoError::io(format!("replacing {}", dir.display()), e))
    }

    /// A trainer for `model` that continues from the state saved in `dir` (the model must
    /// be the checkpoint exported alongside it). The saved configuration is used.
    pub fn resume(model: Model, reference: Option<Model>, dir: &Path) -> Result<Self, GrpoError> {
        Self::resume_with(model, reference, dir, None)
    }

    /// [`Trainer::resume`] with new coefficients (`config`, e.g. from an edited
    /// configuration file) instead of the saved ones; the moments and step counts stay.
    ///
    /// # Errors
    /// An unreadable or mismatched state, an invalid configuration, or `kl_coef > 0`
    /// without a reference model.
    pub fn resume_with(
        model: Model,
        reference: Option<Model>,
        dir: &Path,
        config: Option<GrpoConfig>,
    ) -> Result<Self, GrpoError> {
        let path = dir.join(STATE_JSON);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| GrpoError::io(format!("reading {}", path.display()), e))?;
        let state: TrainingState =
            serde_json::from_str(&text).map_err(|source| GrpoError::Json {
                context: format!("parsing {}", path.display()),
                source,
            })?;
        let mut trainer = Trainer::new(model, reference, config.unwrap_or(state.config))?;
        if trainer.parameters().len() != state.parameters {
            return Err(GrpoError::StateTensorCount {
                dir: dir.to_path_buf(),
                saved: state.parameters,
                model: trainer.parameters().len(),
            });
        }
        let device = trainer.model().device();
        let shapes: Vec<Vec<i64>> = trainer.parameters().iter().map(Tensor::size).collect();
        let moments_path = dir.join(MOMENTS);
        let mut moments: std::collections::HashMap<String, Tensor> =
            Tensor::read_safetensors(&moments_path)
                .map_err(|source| GrpoError::TorchFile {
                    context: format!("reading {}", moments_path.display()),
                    source,
                })?
                .into_iter()
                .collect();
        let mut take = |name: String, shape: &[i64]| -> Result<Tensor, GrpoError> {
            let Some(t) = moments.remove(&name) else {
                return Err(GrpoError::MissingMoment {
                    path: moments_path.clone(),
                    name,
                });
            };
            if t.size() != shape {
                return Err(GrpoError::MomentShape {
                    path: moments_path.clone(),
                    name,
                    shape: t.size(),
                    expected: shape.to_vec(),
                });
            }
            Ok(t.to_device(device))
        };
        let mut fresh = AdamW {
            m: Vec::new(),
            v: Vec::new(),
            step: state.updates,
        };
        for (i, shape) in shapes.iter().enumerate() {
            fresh.m.push(take(format!("m.{i}"), shape)?);
            fresh.v.push(take(format!("v.{i}"), shape)?);
        }
        let (opt, steps) = trainer.optimizer_mut();
        *opt = fresh;
        *steps = state.steps;
        Ok(trainer)
    }
}
