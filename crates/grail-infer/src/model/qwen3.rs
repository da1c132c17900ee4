//! Qwen3: `model_type` `qwen3`. Llama's layout with a per-head RMSNorm on q and k (before
//! RoPE) and no bias on the q, k and v projections.

use super::weights::WeightNames;
use crate::config::ModelConfig;

/// `model_type` in config.json.
pub(crate) const MODEL_TYPE: &str = "qwen3";

/// The `architectures` class Hugging Face loads it with.
pub(crate) const HF_CLASS: &str = "Qwen3ForCausalLM";

/// Whether the q, k and v projections carry a bias: never (`attention_bias` is not read).
pub(crate) fn qkv_bias(_: &ModelConfig) -> bool {
    false
}

/// Every tensor under its Hugging Face name.
pub(super) fn weight_names(config: &ModelConfig) -> WeightNames {
    WeightNames::llama_layout(config, qkv_bias(config), true)
}
