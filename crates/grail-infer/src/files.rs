//! Hugging Face model directories: read (config, safetensors shards, tokenizer, chat
//! template, EOS set, generation defaults) and write (atomically).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde_json::Value;
use tch::{Device, Kind, Tensor};

use crate::config::ModelConfig;
use crate::model::Model;
use crate::tokenizer::Tokenizer;
use crate::{InferError, Progress};

/// Sampling defaults from `generation_config.json` (absent fields stay `None`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GenerationDefaults {
    /// Temperature.
    pub temperature: Option<f32>,
    /// Nucleus mass.
    pub top_p: Option<f32>,
    /// Top-k cut.
    pub top_k: Option<usize>,
}

/// A model directory whose small files are parsed; weights load on demand.
pub struct ModelDir {
    /// The folder.
    pub path: PathBuf,
    /// config.json.
    pub config: ModelConfig,
    /// tokenizer.json.
    pub tokenizer: Tokenizer,
    /// tokenizer_config.json as written (chat template, special token names), or `{}`.
    pub tokenizer_config: Value,
    /// Every id that ends a completion: config, generation config and tokenizer config.
    pub eos_ids: Vec<u32>,
    /// generation_config.json defaults.
    pub generation: GenerationDefaults,
}

fn read_json(path: &Path) -> Result<Option<Value>, InferError> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| InferError::json(format!("parsing {}", path.display()), e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(InferError::io(format!("reading {}", path.display()), e)),
    }
}

fn ids_of(value: Option<&Value>) -> Vec<u32> {
    match value {
        Some(Value::Number(n)) => n.as_u64().map(|n| n as u32).into_iter().collect(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_u64)
            .map(|n| n as u32)
            .collect(),
        _ => Vec::new(),
    }
}

/// A special-token field of tokenizer_config.json: a string or `{"content": ..}`.
pub fn special_token_text(value: Option<&Value>) -> Option<&str> {
    match value? {
        Value::String(s) => Some(s),
        Value::Object(o) => o.get("content")?.as_str(),
        _ => None,
    }
}

impl ModelDir {
    /// Opens a model directory: config.json and tokenizer.json are required.
    pub fn open(path: &Path) -> Result<Self, InferError> {
        let config_path = path.join("config.json");
        let config_text = std::fs::read_to_string(&config_path)
            .map_err(|e| InferError::io(format!("reading {}", config_path.display()), e))?;
        let config = ModelConfig::from_json(&config_text)
            .map_err(|e| e.context(path.display().to_string()))?;
        let tokenizer = Tokenizer::from_file(&path.join("tokenizer.json"))?;
        let tokenizer_config =
            read_json(&path.join("tokenizer_config.json"))?.unwrap_or(Value::Null);
        let generation_config =
            read_json(&path.join("generation_config.json"))?.unwrap_or(Value::Null);
        let mut eos: BTreeSet<u32> = config
            .eos_token_id
            .iter()
            .flat_map(|e| e.to_vec())
            .collect();
        eos.extend(ids_of(generation_config.get("eos_token_id")));
        if let Some(id) = special_token_text(tokenizer_config.get("eos_token"))
            .and_then(|t| tokenizer.token_id(t))
        {
            eos.insert(id);
        }
        if eos.is_empty() {
            return Err(InferError::NoEosToken {
                dir: path.to_path_buf(),
            });
        }
        let float = |k: &str| {
            generation_config
                .get(k)
                .and_then(Value::as_f64)
                .map(|v| v as f32)
        };
        let generation = GenerationDefaults {
            temperature: float("temperature"),
            top_p: float("top_p"),
            top_k: generation_config
                .get("top_k")
                .and_then(Value::as_u64)
                .map(|v| v as usize),
        };
        Ok(Self {
            path: path.to_path_buf(),
            config,
            tokenizer,
            tokenizer_config,
            eos_ids: eos.into_iter().collect(),
            generation,
        })
    }

    /// The chat template of tokenizer_config.json, if any.
    pub fn chat_template(&self) -> Option<&str> {
        self.tokenizer_config
            .get("chat_template")
            .and_then(Value::as_str)
    }

    /// The safetensors files holding the weights (one file, or the shards of the index).
    pub fn weight_files(&self) -> Result<Vec<PathBuf>, InferError> {
        let index_path = self.path.join("model.safetensors.index.json");
        if let Some(index) = read_json(&index_path)? {
            let map = index
                .get("weight_map")
                .and_then(Value::as_object)
                .ok_or_else(|| InferError::NoWeightMap { path: index_path })?;
            let files: BTreeSet<&str> = map.values().filter_map(Value::as_str).collect();
            files
                .into_iter()
                .map(|f| {
                    if f.contains('/') || f.contains("..") {
                        return Err(InferError::ShardOutsideFolder { shard: f.into() });
                    }
                    Ok(self.path.join(f))
                })
                .collect()
        } else {
            Ok(vec![self.path.join("model.safetensors")])
        }
    }

    /// Loads the weights and builds the model in `kind` on `device`.
    pub fn load_model(
        &self,
        kind: Kind,
        device: Device,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Model, InferError> {
        let files = self.weight_files()?;
        let mut weights = HashMap::new();
        for (i, file) in files.iter().enumerate() {
            progress(Progress::new(
                "loading weights",
                i as u64,
                files.len() as u64,
            ));
            for (name, tensor) in Tensor::read_safetensors(file).map_err(|e| {
                InferError::torch(format!("model weights: reading {}", file.display()), e)
            })? {
                weights.insert(name, tensor);
            }
        }
        progress(Progress::new(
            "loading weights",
            files.len() as u64,
            files.len() as u64,
        ));
        Model::from_hf_weights(self.config.clone(), weights, kind, device)
    }
}

/// What a new model directory holds.
pub struct NewModelDir<'a> {
    /// config.json.
    pub config: &'a ModelConfig,
    /// Tensors under their Hugging Face names.
    pub weights: &'a [(String, Tensor)],
    /// tokenizer.json.
    pub tokenizer: &'a Value,
    /// tokenizer_config.json.
    pub tokenizer_config: &'a Value,
    /// generation_config.json.
    pub generation_config: &'a Value,
}

impl NewModelDir<'_> {
    /// Writes the directory at `out` atomically: everything goes into a sibling staging
    /// folder that is fsynced and swapped into place last ([`grail_fs::StagedDir`]), so a
    /// crash never leaves a half model at `out`. An existing `out` is replaced.
    pub fn write(&self, out: &Path) -> Result<(), InferError> {
        let staged = grail_fs::StagedDir::new(out).map_err(|e| {
            InferError::io(
                format!("creating a staging folder for {}", out.display()),
                e,
            )
        })?;
        // On an error the staging folder is removed when `staged` drops.
        self.write_into(staged.path())?;
        staged
            .commit()
            .map_err(|e| InferError::io(format!("replacing {}", out.display()), e))
    }

    fn write_into(&self, dir: &Path) -> Result<(), InferError> {
        let json = |file: &str, value: &Value| -> Result<(), InferError> {
            let text = serde_json::to_string_pretty(value)
                .map_err(|e| InferError::json(format!("serializing {file}"), e))?;
            let path = dir.join(file);
            std::fs::write(&path, text)
                .map_err(|e| InferError::io(format!("writing {}", path.display()), e))
        };
        let config = serde_json::to_value(self.config)
            .map_err(|e| InferError::json("serializing config.json", e))?;
        json("config.json", &config)?;
        json("tokenizer.json", self.tokenizer)?;
        json("tokenizer_config.json", self.tokenizer_config)?;
        json("generation_config.json", self.generation_config)?;
        let cpu: Vec<(String, Tensor)> = self
            .weights
            .iter()
            .map(|(n, t)| (n.clone(), t.detach().to_device(Device::Cpu).contiguous()))
            .collect();
        let path = dir.join("model.safetensors");
        Tensor::write_safetensors(&cpu, &path)
            .map_err(|e| InferError::torch(format!("model weights: writing {}", path.display()), e))
    }
}
