//! Llama (SmolLM2 and friends): `model_type` `llama`. The q, k and v projections carry a
//! bias only when config.json sets `attention_bias`; no q/k norm.

use super::weights::WeightNames;
use crate::config::ModelConfig;

/// `model_type` in config.json.
pub(crate) const MODEL_TYPE: &str = "llama";

/// The `architectures` class Hugging Face loads it with.
pub(crate) const HF_CLASS: &str = "LlamaForCausalLM";

/// Whether the q, k and v projections carry a bias.
pub(crate) fn qkv_bias(config: &ModelConfig) -> bool {
    config.attention_bias
}

/// Every tensor under its Hugging Face name.
pub(super) fn weight_names(config: &ModelConfig) -> WeightNames {
    WeightNames::llama_layout(config, qkv_bias(config), false)
}
