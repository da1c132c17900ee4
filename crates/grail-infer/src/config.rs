//! A model's `config.json` (Hugging Face layout) and what the decoder reads from it.

use serde::{Deserialize, Serialize};

use crate::model::{llama, qwen2, qwen3};
use crate::InferError;

/// The decoder families this crate runs. They differ only in switches of one transformer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    /// Llama (SmolLM2 and friends): optional attention bias, no q/k norm.
    Llama,
    /// Qwen2 / Qwen2.5: bias on q, k and v projections.
    Qwen2,
    /// Qwen3: per-head RMSNorm on q and k, no bias.
    Qwen3,
}

impl Architecture {
    /// Parses `model_type` from config.json.
    pub fn from_model_type(model_type: &str) -> Result<Self, InferError> {
        match model_type {
            llama::MODEL_TYPE => Ok(Self::Llama),
            qwen2::MODEL_TYPE => Ok(Self::Qwen2),
            qwen3::MODEL_TYPE => Ok(Self::Qwen3),
            other => Err(InferError::UnsupportedArchitecture {
                model_type: other.into(),
            }),
        }
    }

    /// The `architectures` entry Hugging Face expects for this family.
    pub fn hf_class(self) -> &'static str {
        match self {
            Self::Llama => llama::HF_CLASS,
            Self::Qwen2 => qwen2::HF_CLASS,
            Self::Qwen3 => qwen3::HF_CLASS,
        }
    }

    /// The `model_type` string of this family.
    pub fn model_type(self) -> &'static str {
        match self {
            Self::Llama => llama::MODEL_TYPE,
            Self::Qwen2 => qwen2::MODEL_TYPE,
            Self::Qwen3 => qwen3::MODEL_TYPE,
        }
    }
}

/// `rope_scaling` from config.json (the kinds we implement).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RopeScaling {
    /// `rope_type` (older files say `type`): `linear`, `llama3` or `default`.
    #[serde(alias = "type")]
    pub rope_type: String,
    /// Scaling factor.
    #[serde(default = "one")]
    pub factor: f64,
    /// llama3: low-frequency factor.
    #[serde(default)]
    pub low_freq_factor: Option<f64>,
    /// llama3: high-frequency factor.
    #[serde(default)]
    pub high_freq_factor: Option<f64>,
    /// llama3: context length the model was trained with.
    #[serde(default)]
    pub original_max_position_embeddings: Option<u64>,
}

fn one() -> f64 {
    1.0
}

/// One EOS id or a list of them (both appear in the wild).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TokenIds {
    /// A single id.
    One(u32),
    /// Several ids.
    Many(Vec<u32>),
}

impl TokenIds {
    /// The ids as a list.
    pub fn to_vec(&self) -> Vec<u32> {
        match self {
            Self::One(id) => vec![*id],
            Self::Many(ids) => ids.clone(),
        }
    }
}

/// The fields of config.json the decoder needs. Unknown fields are ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// `llama`, `qwen2` or `qwen3`.
    pub model_type: String,
    /// The Hugging Face class names (written back unchanged).
    #[serde(default)]
    pub architectures: Vec<String>,
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Width of the MLP.
    pub intermediate_size: usize,
    /// Number of decoder layers.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads (grouped-query attention); defaults to the query heads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_key_value_heads: Option<usize>,
    /// Per-head width; defaults to hidden_size / heads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_dim: Option<usize>,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f64,
    /// RoPE base.
    #[serde(default = "default_rope_theta")]
    pub rope_theta: f64,
    /// RoPE scaling, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_scaling: Option<RopeScaling>,
    /// Longest sequence the model supports.
    #[serde(default = "default_max_positions")]
    pub max_position_embeddings: usize,
    /// Vocabulary size (rows of the embedding).
    pub vocab_size: usize,
    /// Whether the LM head shares the embedding matrix.
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Llama: bias on the attention projections.
    #[serde(default)]
    pub attention_bias: bool,
    /// BOS id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bos_token_id: Option<u32>,
    /// EOS id(s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eos_token_id: Option<TokenIds>,
    /// Storage dtype name (`float32`, `bfloat16`, `float16`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub torch_dtype: Option<String>,
}

/// Most positions a config may declare (`max_position_embeddings`).
pub const MAX_POSITIONS: usize = 1 << 20;

/// Most values in one RoPE table (`max_position_embeddings × head_dim`): the cos and sin
/// tables are built in fp32 when a model loads, so the bound keeps a config from making
/// libtorch allocate gigabytes (4294967295 positions asked for 17 GB, then panicked).
/// 2^25 covers 131072 positions of 128-wide heads.
pub const MAX_ROPE_VALUES: usize = 1 << 25;

/// True for finite numbers above zero (false for NaN).
fn positive(x: f64) -> bool {
    x.is_finite() && x > 0.0
}

fn default_rope_theta() -> f64 {
    10_000.0
}

fn default_max_positions() -> usize {
    2048
}

impl ModelConfig {
    /// Parses config.json text and checks that the shapes are consistent.
    pub fn from_json(text: &str) -> Result<Self, InferError> {
        let config: Self = serde_json::from_str(text)
            .map_err(|e| InferError::json("model config: parsing config.json", e))?;
        config.validate()?;
        Ok(config)
    }

    /// The decoder family.
    pub fn architecture(&self) -> Result<Architecture, InferError> {
        Architecture::from_model_type(&self.model_type)
    }

    /// Key/value heads.
    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    /// Per-head width.
    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    /// Whether q, k and v projections carry a bias.
    pub fn qkv_bias(&self) -> bool {
        match self.architecture() {
            Ok(Architecture::Llama) => llama::qkv_bias(self),
            Ok(Architecture::Qwen2) => qwen2::qkv_bias(self),
            Ok(Architecture::Qwen3) => qwen3::qkv_bias(self),
            Err(_) => false,
        }
    }

    /// Rejects configurations the decoder cannot run (instead of failing mid-forward).
    pub fn validate(&self) -> Result<(), InferError> {
        self.architecture()?;
        let bad = |field: &'static str, requirement: &str| {
            Err(InferError::ConfigField {
                field,
                requirement: requirement.into(),
            })
        };
        let heads = self.num_attention_heads;
        let kv = self.kv_heads();
        let max_hidden = grail_proto::params::MAX_HIDDEN_SIZE;
        if self.hidden_size == 0 || self.hidden_size > max_hidden {
            return bad("hidden_size", &format!("must be 1..={max_hidden}"));
        }
        if heads == 0 || kv == 0 || !heads.is_multiple_of(kv) {
            return bad(
                "num_attention_heads",
                "must be a positive multiple of num_key_value_heads",
            );
        }
        if self.head_dim() == 0 || !self.head_dim().is_multiple_of(2) || self.head_dim() > 1024 {
            return bad("head_dim", "must be even, positive and at most 1024");
        }
        if self.num_hidden_layers == 0 || self.num_hidden_layers > 1024 {
            return bad("num_hidden_layers", "must be 1..=1024");
        }
        if self.vocab_size == 0 || self.vocab_size > 4_000_000 {
            return bad("vocab_size", "must be 1..=4000000");
        }
        if self.intermediate_size == 0 {
            return bad("intermediate_size", "must be positive");
        }
        let positions = self.max_position_embeddings;
        if positions == 0
            || positions > MAX_POSITIONS
            || positions.saturating_mul(self.head_dim()) > MAX_ROPE_VALUES
        {
            return bad(
                "max_position_embeddings",
                &format!(
                    "must be 1..={MAX_POSITIONS} with at most {MAX_ROPE_VALUES} RoPE values \
                     (positions × head_dim)"
                ),
            );
        }
        if !positive(self.rms_norm_eps) {
            return bad("rms_norm_eps", "must be positive");
        }
        if !positive(self.rope_theta) {
            return bad("rope_theta", "must be positive");
        }
        if let Some(scaling) = &self.rope_scaling {
            match scaling.rope_type.as_str() {
                "default" | "linear" => {}
                "llama3" => {
                    if scaling.low_freq_factor.is_none()
                        || scaling.high_freq_factor.is_none()
                        || scaling.original_max_position_embeddings.is_none()
                    {
                        return bad(
                            "rope_scaling",
                            "of type llama3 needs low_freq_factor, high_freq_factor and \
                             original_max_position_embeddings",
                        );
                    }
                }
                other => {
                    return Err(InferError::UnsupportedRopeScaling {
                        rope_type: other.into(),
                    })
                }
            }
            if !positive(scaling.factor) {
                return bad("rope_scaling.factor", "must be positive");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smollm2_style_config_parses() {
        let text = r#"{"architectures":["LlamaForCausalLM"],"model_type":"llama",
            "hidden_size":576,"intermediate_size":1536,"num_hidden_layers":30,
            "num_attention_heads":9,"num_key_value_heads":3,"rms_norm_eps":1e-5,
            "rope_theta":100000,"vocab_size":49152,"tie_word_embeddings":true,
            "eos_token_id":2,"bos_token_id":1,"rope_scaling":null}"#;
        let c = ModelConfig::from_json(text).unwrap();
        assert_eq!(c.head_dim(), 64);
        assert_eq!(c.kv_heads(), 3);
        assert!(!c.qkv_bias());
        assert_eq!(c.eos_token_id.unwrap().to_vec(), vec![2]);
    }

    #[test]
    fn bad_configs_are_errors_not_panics() {
        for text in [
            "{",
            r#"{"model_type":"gpt2"}"#,
            r#"{"model_type":"llama","hidden_size":64,"intermediate_size":8,"num_hidden_layers":1,
               "num_attention_heads":3,"num_key_value_heads":2,"rms_norm_eps":1e-5,"vocab_size":10}"#,
            r#"{"model_type":"qwen3","hidden_size":64,"intermediate_size":8,"num_hidden_layers":1,
               "num_attention_heads":0,"rms_norm_eps":1e-5,"vocab_size":10}"#,
            r#"{"model_type":"llama","hidden_size":64,"intermediate_size":8,"num_hidden_layers":1,
               "num_attention_heads":4,"rms_norm_eps":1e-5,"vocab_size":10,
               "rope_scaling":{"type":"yarn","factor":4}}"#,
        ] {
            assert!(ModelConfig::from_json(text).is_err(), "{text}");
        }
    }

    /// Found by `cargo xtask fuzz --target config` (docs/reliability.md): 4294967295
    /// positions passed validation; loading built RoPE tables for all of them (17 GB
    /// resident, then a panic in tch when the next 68 GB allocation failed).
    #[test]
    fn positions_are_bounded_before_libtorch_sees_them() {
        let config = |positions: u64, head_dim: usize| {
            format!(
                r#"{{"model_type":"llama","hidden_size":{h},"intermediate_size":8,
                "num_hidden_layers":1,"num_attention_heads":2,"rms_norm_eps":1e-5,
                "vocab_size":10,"max_position_embeddings":{positions}}}"#,
                h = 2 * head_dim
            )
        };
        for (positions, head_dim) in [(4_294_967_295, 8), (0, 8), (1 << 21, 8), (1 << 20, 64)] {
            let err = ModelConfig::from_json(&config(positions, head_dim)).unwrap_err();
            assert!(err.to_string().contains("max_position_embeddings"), "{err}");
        }
        // Real models stay well inside: Llama 3.1 (131072 × 128), Qwen3 (40960 × 128).
        for (positions, head_dim) in [(131_072, 128), (40_960, 128), (8192, 64)] {
            assert!(ModelConfig::from_json(&config(positions, head_dim)).is_ok());
        }
    }
}
