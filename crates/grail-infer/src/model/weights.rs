//! Loading from and naming by a family's Hugging Face weight map: the q/k/v and gate/up
//! projections are fused at load time and split again for export and training.

use std::collections::HashMap;

use tch::{Device, Kind, Tensor};

use super::layers::{Attention, Layer, Linear, Mlp, RmsNorm};
use super::rope::rope_tables;
use super::{llama, qwen2, qwen3, Model};
use crate::config::{Architecture, ModelConfig};
use crate::InferError;

/// Every tensor of a model under its Hugging Face name.
pub(super) struct WeightNames {
    pub(super) embed: &'static str,
    pub(super) layers: Vec<LayerNames>,
    pub(super) norm: &'static str,
    /// Absent from the checkpoint when the embeddings are tied.
    pub(super) lm_head: &'static str,
}

/// One decoder layer's tensors under their Hugging Face names.
pub(super) struct LayerNames {
    /// q, k and v projection weights (fused into one at load time).
    pub(super) qkv: [String; 3],
    /// q, k and v biases, in families and configs that have them.
    pub(super) qkv_bias: Option<[String; 3]>,
    pub(super) out: String,
    /// Per-head q and k norms, in families that have them.
    pub(super) qk_norm: Option<[String; 2]>,
    /// gate and up projection weights (fused into one at load time).
    pub(super) gate_up: [String; 2],
    pub(super) down: String,
    pub(super) input_norm: String,
    pub(super) post_attention_norm: String,
}

impl WeightNames {
    /// The Llama layout's names (`model.layers.{i}.self_attn.q_proj.weight`, …), which
    /// every supported family shares: q/k/v biases and per-head q/k norms where the family
    /// has them.
    pub(super) fn llama_layout(config: &ModelConfig, qkv_bias: bool, qk_norm: bool) -> Self {
        let layer = |i: usize| {
            let p = format!("model.layers.{i}");
            let attn = |m: &str, what: &str| format!("{p}.self_attn.{m}.{what}");
            LayerNames {
                qkv: ["q_proj", "k_proj", "v_proj"].map(|m| attn(m, "weight")),
                qkv_bias: qkv_bias.then(|| ["q_proj", "k_proj", "v_proj"].map(|m| attn(m, "bias"))),
                out: attn("o_proj", "weight"),
                qk_norm: qk_norm.then(|| ["q_norm", "k_norm"].map(|m| attn(m, "weight"))),
                gate_up: ["gate_proj", "up_proj"].map(|m| format!("{p}.mlp.{m}.weight")),
                down: format!("{p}.mlp.down_proj.weight"),
                input_norm: format!("{p}.input_layernorm.weight"),
                post_attention_norm: format!("{p}.post_attention_layernorm.weight"),
            }
        };
        Self {
            embed: "model.embed_tokens.weight",
            layers: (0..config.num_hidden_layers).map(layer).collect(),
            norm: "model.norm.weight",
            lm_head: "lm_head.weight",
        }
    }
}

/// The weight map of `config`'s family.
fn weight_names(arch: Architecture, config: &ModelConfig) -> WeightNames {
    match arch {
        Architecture::Llama => llama::weight_names(config),
        Architecture::Qwen2 => qwen2::weight_names(config),
        Architecture::Qwen3 => qwen3::weight_names(config),
    }
}

impl Model {
    /// Builds the model from tensors named as in a Hugging Face checkpoint, converting
    /// them to `kind` on `device`. Missing tensors and wrong shapes are errors.
    pub fn from_hf_weights(
        config: ModelConfig,
        mut weights: HashMap<String, Tensor>,
        kind: Kind,
        device: Device,
    ) -> Result<Self, InferError> {
        config.validate()?;
        let arch = config.architecture()?;
        let names = weight_names(arch, &config);
        let hidden = config.hidden_size as i64;
        let heads = config.num_attention_heads as i64;
        let kv_heads = config.kv_heads() as i64;
        let head_dim = config.head_dim() as i64;
        let inter = config.intermediate_size as i64;
        let vocab = config.vocab_size as i64;
        let mut take = |name: &str, shape: &[i64]| -> Result<Tensor, InferError> {
            let t = weights
                .remove(name)
                .ok_or_else(|| InferError::MissingTensor { name: name.into() })?;
            if t.size() != shape {
                return Err(InferError::TensorShape {
                    name: name.into(),
                    shape: t.size(),
                    expected: shape.to_vec(),
                });
            }
            Ok(t.to_kind(kind).to_device(device))
        };
        let norm = |weight, eps| RmsNorm { weight, eps };
        let eps = config.rms_norm_eps;
        let (q_rows, kv_rows) = (heads * head_dim, kv_heads * head_dim);
        let embed = take(names.embed, &[vocab, hidden])?;
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for n in &names.layers {
            let [q, k, v] = &n.qkv;
            let q = take(q, &[q_rows, hidden])?;
            let k = take(k, &[kv_rows, hidden])?;
            let v = take(v, &[kv_rows, hidden])?;
            let bias = match &n.qkv_bias {
                Some([q, k, v]) => {
                    let q = take(q, &[q_rows])?;
                    let k = take(k, &[kv_rows])?;
                    let v = take(v, &[kv_rows])?;
                    Some(Tensor::cat(&[q, k, v], 0))
                }
                None => None,
            };
            let (q_norm, k_norm) = match &n.qk_norm {
                Some([q, k]) => (
                    Some(norm(take(q, &[head_dim])?, eps)),
                    Some(norm(take(k, &[head_dim])?, eps)),
                ),
                None => (None, None),
            };
            let attention = Attention {
                qkv: Linear {
                    weight: Tensor::cat(&[q, k, v], 0),
                    bias,
                },
                out: Linear {
                    weight: take(&n.out, &[hidden, q_rows])?,
                    bias: None,
                },
                q_norm,
                k_norm,
                heads,
                kv_heads,
                head_dim,
            };
            let [gate, up] = &n.gate_up;
            let gate = take(gate, &[inter, hidden])?;
            let up = take(up, &[inter, hidden])?;
            let mlp = Mlp {
                gate_up: Linear {
                    weight: Tensor::cat(&[gate, up], 0),
                    bias: None,
                },
                down: Linear {
                    weight: take(&n.down, &[hidden, inter])?,
                    bias: None,
                },
                width: inter,
            };
            layers.push(Layer {
                input_norm: norm(take(&n.input_norm, &[hidden])?, eps),
                attention,
                post_attention_norm: norm(take(&n.post_attention_norm, &[hidden])?, eps),
                mlp,
            });
        }
        let final_norm = norm(take(names.norm, &[hidden])?, eps);
        let (lm_head, tied) = if config.tie_word_embeddings {
            (embed.shallow_clone(), true)
        } else {
            (take(names.lm_head, &[vocab, hidden])?, false)
        };
        let (cos, sin) = rope_tables(&config, device);
        Ok(Self {
            config,
            arch,
            embed,
            layers,
            norm: final_norm,
            lm_head,
            tied,
            cos,
            sin,
            device,
            kind,
        })
    }

    /// The weights under their Hugging Face names (fused projections split again), for
    /// export and for training. The tensors share storage with the model.
    pub fn hf_weights(&self) -> Vec<(String, Tensor)> {
        self.hf_named(&self.parameters())
    }

    /// Names tensors given one per parameter, in [`Model::parameters`] order (the weights
    /// themselves, or their gradients or optimizer moments), under the Hugging Face names,
    /// splitting the fused q/k/v and gate/up projections.
    pub fn hf_named(&self, per_parameter: &[Tensor]) -> Vec<(String, Tensor)> {
        let c = &self.config;
        let names = weight_names(self.arch, c);
        let q = (c.num_attention_heads * c.head_dim()) as i64;
        let kv = (c.kv_heads() * c.head_dim()) as i64;
        let mut it = per_parameter.iter();
        let mut next = || {
            it.next()
                .map(Tensor::shallow_clone)
                .expect("one tensor per parameter")
        };
        let mut out = vec![(names.embed.to_string(), next())];
        // The model was built from these names: a bias or a q/k norm is a parameter
        // exactly where the names have one.
        for (l, n) in self.layers.iter().zip(&names.layers) {
            let qkv = next();
            let qkv_bias = n.qkv_bias.as_ref().map(|bias| (bias, next()));
            for (j, (at, len)) in [(0, q), (q, kv), (q + kv, kv)].into_iter().enumerate() {
                out.push((n.qkv[j].clone(), qkv.narrow(0, at, len)));
                if let Some((bias, b)) = &qkv_bias {
                    out.push((bias[j].clone(), b.narrow(0, at, len)));
                }
            }
            out.push((n.out.clone(), next()));
            if let Some([q_norm, k_norm]) = &n.qk_norm {
                out.push((q_norm.clone(), next()));
                out.push((k_norm.clone(), next()));
            }
            let w = l.mlp.width;
            let gate_up = next();
            out.push((n.gate_up[0].clone(), gate_up.narrow(0, 0, w)));
            out.push((n.gate_up[1].clone(), gate_up.narrow(0, w, w)));
            out.push((n.down.clone(), next()));
            out.push((n.input_norm.clone(), next()));
            out.push((n.post_attention_norm.clone(), next()));
        }
        out.push((names.norm.to_string(), next()));
        if !self.tied {
            out.push((names.lm_head.to_string(), next()));
        }
        out
    }

    /// The trainable tensors (each once, tied embeddings included once).
    pub fn parameters(&self) -> Vec<Tensor> {
        let mut out = vec![self.embed.shallow_clone()];
        for l in &self.layers {
            let a = &l.attention;
            out.push(a.qkv.weight.shallow_clone());
            out.extend(a.qkv.bias.as_ref().map(Tensor::shallow_clone));
            out.push(a.out.weight.shallow_clone());
            out.extend(a.q_norm.as_ref().map(|n| n.weight.shallow_clone()));
            out.extend(a.k_norm.as_ref().map(|n| n.weight.shallow_clone()));
            out.push(l.mlp.gate_up.weight.shallow_clone());
            out.push(l.mlp.down.weight.shallow_clone());
            out.push(l.input_norm.weight.shallow_clone());
            out.push(l.post_attention_norm.weight.shallow_clone());
        }
        out.push(self.norm.weight.shallow_clone());
        if !self.tied {
            out.push(self.lm_head.shallow_clone());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tiny::{tiny_config, tiny_weights, TinySpec};

    fn config(architecture: Architecture) -> ModelConfig {
        let spec = TinySpec {
            architecture,
            ..TinySpec::default()
        };
        tiny_config(&spec, 40)
    }

    /// Each family's weight map names exactly the tensors of a checkpoint of that family,
    /// and export gives them back under those names.
    #[test]
    fn every_family_loads_and_exports_its_checkpoint_names() {
        for arch in [
            Architecture::Llama,
            Architecture::Qwen2,
            Architecture::Qwen3,
        ] {
            let config = config(arch);
            let weights = tiny_weights(&config, 0);
            let mut want: Vec<String> = weights.iter().map(|(n, _)| n.clone()).collect();
            let model = Model::from_hf_weights(
                config,
                weights.into_iter().collect(),
                Kind::Float,
                Device::Cpu,
            )
            .unwrap();
            let mut got: Vec<String> = model.hf_weights().into_iter().map(|(n, _)| n).collect();
            want.sort();
            got.sort();
            assert_eq!(got, want, "{arch:?}");
        }
    }

    /// A caller can tell a missing tensor from a misshapen one.
    #[test]
    fn missing_and_misshapen_tensors_are_told_apart() {
        let config = config(Architecture::Qwen3);
        let weights =
            || -> HashMap<String, Tensor> { tiny_weights(&config, 0).into_iter().collect() };
        let name = "model.layers.1.self_attn.k_norm.weight";
        let mut missing = weights();
        missing.remove(name);
        let load = |w| Model::from_hf_weights(config.clone(), w, Kind::Float, Device::Cpu);
        match load(missing) {
            Err(InferError::MissingTensor { name: n }) => assert_eq!(n, name),
            other => panic!("{:?}", other.err()),
        }
        let mut misshapen = weights();
        misshapen.insert(name.into(), Tensor::ones([3], (Kind::Float, Device::Cpu)));
        match load(misshapen) {
            Err(InferError::TensorShape {
                name: n,
                shape,
                expected,
            }) => {
                assert_eq!((n.as_str(), shape, expected), (name, vec![3], vec![16]));
            }
            other => panic!("{:?}", other.err()),
        }
    }
}
