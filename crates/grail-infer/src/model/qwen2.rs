//! Qwen2 / Qwen2.5: `model_type` `qwen2`. Llama's layout with a bias on the q, k and v
//! projections always (Qwen2 configs carry no `attention_bias`); no q/k norm.

use super::weights::{LayerNames, WeightNames};
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
    let layer = |i: usize| {
        let p = format!("model.layers.{i}");
        LayerNames {
            qkv: ["q_proj", "k_proj", "v_proj"].map(|m| format!("{p}.self_attn.{m}.weight")),
            qkv_bias: Some(
                ["q_proj", "k_proj", "v_proj"].map(|m| format!("{p}.self_attn.{m}.bias")),
            ),
            out: format!("{p}.self_attn.o_proj.weight"),
            qk_norm: None,
            gate_up: ["gate_proj", "up_proj"].map(|m| format!("{p}.mlp.{m}.weight")),
            down: format!("{p}.mlp.down_proj.weight"),
            input_norm: format!("{p}.input_layernorm.weight"),
            post_attention_norm: format!("{p}.post_attention_layernorm.weight"),
        }
    };
    WeightNames {
        embed: "model.embed_tokens.weight",
        layers: (0..config.num_hidden_layers).map(layer).collect(),
        norm: "model.norm.weight",
        lm_head: "lm_head.weight",
    }
}
