//! Qwen2 / Qwen2.5: `model_type` `qwen2`. Llama's layout with a bias on the q, k and v
//! projections always (Qwen2 configs carry no `attention_bias`); no q/k norm.

use super::weights::WeightNames;
use crate::config::ModelConfig;

/// `model_type` in config.json.
pub(crate) const MODEL_TYPE: &str = "qwen2";

/// The `architectures` class Hugging Face loads it with.
pub(crate) const HF_CLASS: &str = "Qwen2ForCausalLM";

/// Whether the q, k and v projections carry a bias: always.
pub(crate) fn qkv_bias(_: &ModelConfig) -> bool {
    true
}

/// Every tensor under its Hugging Face name.
pub(super) fn weight_names(config: &ModelConfig) -> WeightNames {
    WeightNames::llama_layout(config, qkv_bias(config), false)
}
