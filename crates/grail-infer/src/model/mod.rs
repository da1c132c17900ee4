//! The decoder: Llama, Qwen2 and Qwen3 as one transformer with switches.
//!
//! RMSNorm → attention (RoPE, grouped-query, optional qkv bias, optional per-head q/k
//! norm) → RMSNorm → SwiGLU MLP, repeated; final RMSNorm; LM head (tied or not). The
//! q/k/v and gate/up projections are fused into one matmul each at load time;
//! [`Model::hf_weights`] splits them back into the Hugging Face layout.
//!
//! Shared parts: the layers (`layers.rs`), RoPE (`rope.rs`), the KV cache (`cache.rs`)
//! and loading/naming by a weight map (`weights.rs`). Each family's file (`llama.rs`,
//! `qwen2.rs`, `qwen3.rs`) holds its config.json names, its switches and its Hugging
//! Face weight map.

mod cache;
mod layers;
pub(crate) mod llama;
pub(crate) mod qwen2;
pub(crate) mod qwen3;
mod rope;
mod weights;

use tch::{Device, Kind, Tensor};

pub use cache::KvCache;

use crate::config::{Architecture, ModelConfig};
use crate::InferError;
use layers::{project, Layer, RmsNorm};
use rope::Rope;

/// A loaded decoder on one device, in one dtype.
pub struct Model {
    config: ModelConfig,
    arch: Architecture,
    embed: Tensor,
    layers: Vec<Layer>,
    norm: RmsNorm,
    lm_head: Tensor,
    tied: bool,
    cos: Tensor,
    sin: Tensor,
    device: Device,
    kind: Kind,
}

impl Model {
    /// The configuration the model was built from.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The device the weights live on.
    pub fn device(&self) -> Device {
        self.device
    }

    /// The dtype of the weights and activations.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Runs `tokens` (`[rows, T]`, int64 on the model's device) through the decoder and
    /// returns the last-layer hidden states after the final norm, `[rows, T, hidden]`.
    /// With a cache the tokens continue the cached positions and are appended to it;
    /// without one they start at position 0. Callers check ids and lengths first
    /// ([`Model::check_tokens`]); libtorch would abort on an out-of-range id.
    pub fn hidden_states(&self, tokens: &Tensor, mut cache: Option<&mut KvCache>) -> Tensor {
        let (_, t) = tokens.size2().expect("tokens are [rows, T]");
        let start = cache.as_ref().map_or(0, |c| c.len);
        let (cos, sin, mask) = match cache.as_ref().filter(|c| !c.pads.is_empty()) {
            Some(c) => {
                let (cos, sin, mask) = self.padded_layout(&c.pads, start, t);
                (cos, sin, Some(mask))
            }
            None => (
                self.cos.narrow(0, start, t).to_kind(self.kind),
                self.sin.narrow(0, start, t).to_kind(self.kind),
                None,
            ),
        };
        let rope = Rope {
            cos: &cos,
            sin: &sin,
            mask: mask.as_ref(),
        };
        let mut x = Tensor::embedding(&self.embed, tokens, -1, false, false);
        for (i, layer) in self.layers.iter().enumerate() {
            let slot = cache.as_deref_mut().map(|c| (c, i));
            let h = layer.input_norm.forward(&x);
            // Out-of-place adds: the norms keep `x` for their backward pass.
            x = x.g_add(&layer.attention.forward(&h, &rope, start, slot));
            let h = layer.post_attention_norm.forward(&x);
            x = x.g_add(&layer.mlp.forward(&h));
        }
        if let Some(c) = cache {
            c.len = start + t;
        }
        self.norm.forward(&x)
    }

    /// fp32 logits for hidden states (`[.., hidden]` → `[.., vocab]`).
    pub fn logits(&self, hidden: &Tensor) -> Tensor {
        project(hidden, &self.lm_head, None).to_kind(Kind::Float)
    }

    /// Checks that a sequence can be run: non-empty, ids below the vocabulary size, and
    /// its length plus `extra` positions (room for a completion) within the model's.
    pub fn check_tokens(&self, tokens: &[u32], extra: usize) -> Result<(), InferError> {
        let vocab = self.config.vocab_size;
        if let Some(&id) = tokens.iter().find(|&&t| t as usize >= vocab) {
            return Err(InferError::TokenOutOfVocabulary { id, vocab });
        }
        let max = self.config.max_position_embeddings;
        if tokens.len() + extra > max {
            return Err(InferError::SequenceTooLong {
                tokens: tokens.len(),
                extra,
                max,
            });
        }
        if tokens.is_empty() {
            return Err(InferError::EmptyTokens {
                what: "token sequence",
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tiny::{tiny_config, tiny_weights, TinySpec};

    /// Out-of-vocabulary ids, sequences too long and empty ones are distinct errors.
    #[test]
    fn token_checks_are_typed() {
        let config = tiny_config(&TinySpec::default(), 40);
        let weights = tiny_weights(&config, 0).into_iter().collect();
        let model = Model::from_hf_weights(config, weights, Kind::Float, Device::Cpu).unwrap();
        assert!(model.check_tokens(&[0, 39], 2046).is_ok());
        assert!(matches!(
            model.check_tokens(&[3, 40], 0),
            Err(InferError::TokenOutOfVocabulary { id: 40, vocab: 40 })
        ));
        assert!(matches!(
            model.check_tokens(&[3, 4], 2047),
            Err(InferError::SequenceTooLong {
                tokens: 2,
                extra: 2047,
                max: 2048
            })
        ));
        assert!(matches!(
            model.check_tokens(&[], 0),
            Err(InferError::EmptyTokens { .. })
        ));
    }
}
