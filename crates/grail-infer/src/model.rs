//! The decoder: Llama, Qwen2 and Qwen3 as one transformer with switches.
//!
//! RMSNorm → attention (RoPE, grouped-query, optional qkv bias, optional per-head q/k
//! norm) → RMSNorm → SwiGLU MLP, repeated; final RMSNorm; LM head (tied or not). The
//! q/k/v and gate/up projections are fused into one matmul each at load time;
//! [`Model::hf_weights`] splits them back into the Hugging Face layout.

use std::collections::HashMap;

use tch::{Device, Kind, Tensor};

use crate::config::{Architecture, ModelConfig};
use crate::InferError;

struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    fn forward(&self, x: &Tensor) -> Tensor {
        project(x, &self.weight, self.bias.as_ref())
    }
}

/// Most rows (tokens × sequences) a CPU projection computes as `W · xᵀ`.
const FEW_ROWS: i64 = 32;

/// `x · Wᵀ (+ bias)` for `x` `[.., in]` and `weight` `[out, in]`.
///
/// On the CPU a decode step has only a few rows, and MKL's `x · Wᵀ` then copies (packs)
/// the whole weight matrix on every call; `W · xᵀ` reads it in place, and a single row is
/// doubled so MKL takes its GEMM path rather than a slower GEMV. Measured on SmolLM2 in
/// fp32: 25–45 % less time per decode step at 1–16 rows (`cargo xtask bench infer`); in
/// bf16 it is slower, so only fp32 takes it. Results differ from `linear` only in
/// summation order.
fn project(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Tensor {
    let sizes = x.size();
    let inner = sizes.last().copied().unwrap_or(0);
    let rows = sizes.iter().rev().skip(1).product::<i64>();
    if x.device() != Device::Cpu || x.kind() != Kind::Float || rows > FEW_ROWS || rows == 0 {
        return x.linear(weight, bias);
    }
    let flat = x.reshape([rows, inner]);
    let columns = if rows == 1 {
        flat.expand([2, inner], false).contiguous()
    } else {
        flat
    };
    let mut y = weight.mm(&columns.tr()).tr().narrow(0, 0, rows);
    if let Some(b) = bias {
        y += b;
    }
    let mut shape = sizes;
    if let Some(last) = shape.last_mut() {
        *last = weight.size()[0];
    }
    y.contiguous().view(shape.as_slice())
}

struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    /// Normalises in fp32 and scales in the model dtype, as Hugging Face does.
    fn forward(&self, x: &Tensor) -> Tensor {
        let kind = x.kind();
        let x = x.to_kind(Kind::Float);
        let variance = x.square().mean_dim(-1, true, Kind::Float);
        (x * (variance + self.eps).rsqrt()).to_kind(kind) * &self.weight
    }
}

struct Attention {
    qkv: Linear,
    out: Linear,
    q_norm: Option<RmsNorm>,
    k_norm: Option<RmsNorm>,
    heads: i64,
    kv_heads: i64,
    head_dim: i64,
}

struct Mlp {
    gate_up: Linear,
    down: Linear,
    width: i64,
}

impl Mlp {
    fn forward(&self, x: &Tensor) -> Tensor {
        let gate_up = self.gate_up.forward(x);
        let gate = gate_up.narrow(-1, 0, self.width);
        let up = gate_up.narrow(-1, self.width, self.width);
        self.down.forward(&(gate.silu() * up))
    }
}

struct Layer {
    input_norm: RmsNorm,
    attention: Attention,
    post_attention_norm: RmsNorm,
    mlp: Mlp,
}

/// Keys and values of every layer for a batch of rows, preallocated to a capacity.
pub struct KvCache {
    keys: Vec<Tensor>,
    values: Vec<Tensor>,
    len: i64,
    capacity: i64,
    /// Leading padding slots of each row (prompts of different lengths, left-padded to
    /// one); empty when no row has any.
    pads: Vec<i64>,
}

impl KvCache {
    /// Positions already in the cache.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether nothing has been written yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Rows in the batch.
    pub fn rows(&self) -> usize {
        self.keys.first().map_or(0, |k| k.size()[0] as usize)
    }

    /// Keeps only the given rows (in that order); used to drop finished completions and
    /// to fan one prefilled prompt out to M rows (`rows = [0; M]`).
    pub fn select_rows(&mut self, rows: &[i64]) {
        if !self.pads.is_empty() {
            self.pads = rows.iter().map(|&r| self.pads[r as usize]).collect();
        }
        let device = self.keys.first().map_or(Device::Cpu, Tensor::device);
        let index = Tensor::from_slice(rows).to_device(device);
        for t in self.keys.iter_mut().chain(self.values.iter_mut()) {
            *t = t.index_select(0, &index);
        }
    }
}

/// A loaded decoder on one device, in one dtype.
pub struct Model {
    config: ModelConfig,
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
        let hidden = config.hidden_size as i64;
        let heads = config.num_attention_heads as i64;
        let kv_heads = config.kv_heads() as i64;
        let head_dim = config.head_dim() as i64;
        let inter = config.intermediate_size as i64;
        let vocab = config.vocab_size as i64;
        let mut take = |name: &str, shape: &[i64]| -> Result<Tensor, InferError> {
            let t = weights
                .remove(name)
                .ok_or_else(|| InferError::Weights(format!("missing tensor `{name}`")))?;
            if t.size() != shape {
                return Err(InferError::Weights(format!(
                    "tensor `{name}` has shape {:?}, expected {shape:?}",
                    t.size()
                )));
            }
            Ok(t.to_kind(kind).to_device(device))
        };
        let norm = |weight, eps| RmsNorm { weight, eps };
        let eps = config.rms_norm_eps;
        let embed = take("model.embed_tokens.weight", &[vocab, hidden])?;
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let p = format!("model.layers.{i}");
            let q = take(
                &format!("{p}.self_attn.q_proj.weight"),
                &[heads * head_dim, hidden],
            )?;
            let k = take(
                &format!("{p}.self_attn.k_proj.weight"),
                &[kv_heads * head_dim, hidden],
            )?;
            let v = take(
                &format!("{p}.self_attn.v_proj.weight"),
                &[kv_heads * head_dim, hidden],
            )?;
            let bias = if config.qkv_bias() {
                let q = take(&format!("{p}.self_attn.q_proj.bias"), &[heads * head_dim])?;
                let k = take(
                    &format!("{p}.self_attn.k_proj.bias"),
                    &[kv_heads * head_dim],
                )?;
                let v = take(
                    &format!("{p}.self_attn.v_proj.bias"),
                    &[kv_heads * head_dim],
                )?;
                Some(Tensor::cat(&[q, k, v], 0))
            } else {
                None
            };
            let (q_norm, k_norm) = if arch == Architecture::Qwen3 {
                (
                    Some(norm(
                        take(&format!("{p}.self_attn.q_norm.weight"), &[head_dim])?,
                        eps,
                    )),
                    Some(norm(
                        take(&format!("{p}.self_attn.k_norm.weight"), &[head_dim])?,
                        eps,
                    )),
                )
            } else {
                (None, None)
            };
            let attention = Attention {
                qkv: Linear {
                    weight: Tensor::cat(&[q, k, v], 0),
                    bias,
                },
                out: Linear {
                    weight: take(
                        &format!("{p}.self_attn.o_proj.weight"),
                        &[hidden, heads * head_dim],
                    )?,
                    bias: None,
                },
                q_norm,
                k_norm,
                heads,
                kv_heads,
                head_dim,
            };
            let gate = take(&format!("{p}.mlp.gate_proj.weight"), &[inter, hidden])?;
            let up = take(&format!("{p}.mlp.up_proj.weight"), &[inter, hidden])?;
            let mlp = Mlp {
                gate_up: Linear {
                    weight: Tensor::cat(&[gate, up], 0),
                    bias: None,
                },
                down: Linear {
                    weight: take(&format!("{p}.mlp.down_proj.weight"), &[hidden, inter])?,
                    bias: None,
                },
                width: inter,
            };
            layers.push(Layer {
                input_norm: norm(
                    take(&format!("{p}.input_layernorm.weight"), &[hidden])?,
                    eps,
                ),
                attention,
                post_attention_norm: norm(
                    take(&format!("{p}.post_attention_layernorm.weight"), &[hidden])?,
                    eps,
                ),
                mlp,
            });
        }
        let final_norm = norm(take("model.norm.weight", &[hidden])?, eps);
        let (lm_head, tied) = if config.tie_word_embeddings {
            (embed.shallow_clone(), true)
        } else {
            (take("lm_head.weight", &[vocab, hidden])?, false)
        };
        let (cos, sin) = rope_tables(&config, device);
        Ok(Self {
            config,
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

    /// An empty cache for `rows` sequences of up to `capacity` positions.
    pub fn new_cache(&self, rows: usize, capacity: usize) -> KvCache {
        let c = &self.config;
        let shape = [
            rows as i64,
            c.kv_heads() as i64,
            capacity as i64,
            c.head_dim() as i64,
        ];
        let zeros = || Tensor::zeros(shape, (self.kind, self.device));
        KvCache {
            keys: (0..c.num_hidden_layers).map(|_| zeros()).collect(),
            values: (0..c.num_hidden_layers).map(|_| zeros()).collect(),
            len: 0,
            capacity: capacity as i64,
            pads: Vec::new(),
        }
    }

    /// A cache for rows whose first `pads[r]` slots are padding (left-padded prompts of
    /// different lengths): row `r`'s slot `j` holds position `j − pads[r]`, and no row
    /// attends to its padding. Results equal an unpadded run's up to summation order.
    pub fn new_padded_cache(&self, pads: &[usize], capacity: usize) -> KvCache {
        let mut cache = self.new_cache(pads.len(), capacity);
        if pads.iter().any(|&p| p > 0) {
            cache.pads = pads.iter().map(|&p| p as i64).collect();
        }
        cache
    }

    /// Rotary tables `[rows, 1, T, head_dim]` and the attention mask `[rows, 1, T, S]`
    /// for `t` new slots from `start` in rows with `pads` leading padding slots. A padding
    /// query attends to itself only (so its values stay finite); a real one to the real
    /// slots up to its own.
    fn padded_layout(&self, pads: &[i64], start: i64, t: i64) -> (Tensor, Tensor, Tensor) {
        let rows = pads.len() as i64;
        let pad = Tensor::from_slice(pads)
            .to_device(self.device)
            .view([rows, 1]);
        let slots = Tensor::arange_start(start, start + t, (Kind::Int64, self.device));
        let positions = (slots.view([1, t]) - &pad).clamp_min(0).view([-1]);
        let table = |full: &Tensor| {
            let d = full.size()[1];
            full.index_select(0, &positions)
                .view([rows, 1, t, d])
                .to_kind(self.kind)
        };
        let keys = Tensor::arange(start + t, (Kind::Int64, self.device)).view([1, 1, -1]);
        let queries = slots.view([1, t, 1]);
        let real = keys
            .ge_tensor(&pad.view([rows, 1, 1]))
            .logical_and(&keys.le_tensor(&queries));
        let mask = real.logical_or(&keys.eq_tensor(&queries)).unsqueeze(1);
        (table(&self.cos), table(&self.sin), mask)
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

    /// Checks that a sequence can be run: ids below the vocabulary size and length within
    /// the model's positions (and `capacity` when given).
    pub fn check_tokens(&self, tokens: &[u32], extra: usize) -> Result<(), InferError> {
        let vocab = self.config.vocab_size;
        if let Some(bad) = tokens.iter().find(|&&t| t as usize >= vocab) {
            return Err(InferError::Input(format!(
                "token id {bad} is outside the vocabulary ({vocab})"
            )));
        }
        let max = self.config.max_position_embeddings;
        if tokens.len() + extra > max {
            return Err(InferError::Input(format!(
                "sequence of {} tokens (+{extra}) exceeds the model's {max} positions",
                tokens.len()
            )));
        }
        if tokens.is_empty() {
            return Err(InferError::Input("empty token sequence".into()));
        }
        Ok(())
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
        let q = (c.num_attention_heads * c.head_dim()) as i64;
        let kv = (c.kv_heads() * c.head_dim()) as i64;
        let mut it = per_parameter.iter();
        let mut next = || {
            it.next()
                .map(Tensor::shallow_clone)
                .expect("one tensor per parameter")
        };
        let mut out = vec![("model.embed_tokens.weight".to_string(), next())];
        for (i, l) in self.layers.iter().enumerate() {
            let p = format!("model.layers.{i}");
            let a = &l.attention;
            let qkv = next();
            let qkv_bias = a.qkv.bias.as_ref().map(|_| next());
            let split = [("q_proj", 0, q), ("k_proj", q, kv), ("v_proj", q + kv, kv)];
            for (name, at, len) in split {
                out.push((
                    format!("{p}.self_attn.{name}.weight"),
                    qkv.narrow(0, at, len),
                ));
                if let Some(b) = &qkv_bias {
                    out.push((format!("{p}.self_attn.{name}.bias"), b.narrow(0, at, len)));
                }
            }
            out.push((format!("{p}.self_attn.o_proj.weight"), next()));
            if a.q_norm.is_some() {
                out.push((format!("{p}.self_attn.q_norm.weight"), next()));
            }
            if a.k_norm.is_some() {
                out.push((format!("{p}.self_attn.k_norm.weight"), next()));
            }
            let w = l.mlp.width;
            let gate_up = next();
            out.push((format!("{p}.mlp.gate_proj.weight"), gate_up.narrow(0, 0, w)));
            out.push((format!("{p}.mlp.up_proj.weight"), gate_up.narrow(0, w, w)));
            out.push((format!("{p}.mlp.down_proj.weight"), next()));
            out.push((format!("{p}.input_layernorm.weight"), next()));
            out.push((format!("{p}.post_attention_layernorm.weight"), next()));
        }
        out.push(("model.norm.weight".to_string(), next()));
        if !self.tied {
            out.push(("lm_head.weight".to_string(), next()));
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

/// Rotary tables for the new positions and, for padded rows, the attention mask.
struct Rope<'a> {
    cos: &'a Tensor,
    sin: &'a Tensor,
    mask: Option<&'a Tensor>,
}

impl Attention {
    fn forward(
        &self,
        x: &Tensor,
        rope: &Rope<'_>,
        start: i64,
        cache: Option<(&mut KvCache, usize)>,
    ) -> Tensor {
        let (cos, sin) = (rope.cos, rope.sin);
        let (b, t, _) = x.size3().expect("hidden is [rows, T, hidden]");
        let (h, kvh, d) = (self.heads, self.kv_heads, self.head_dim);
        let qkv = self.qkv.forward(x);
        let mut q = qkv.narrow(-1, 0, h * d).view([b, t, h, d]);
        let mut k = qkv.narrow(-1, h * d, kvh * d).view([b, t, kvh, d]);
        let v = qkv.narrow(-1, (h + kvh) * d, kvh * d).view([b, t, kvh, d]);
        if let (Some(qn), Some(kn)) = (&self.q_norm, &self.k_norm) {
            q = qn.forward(&q);
            k = kn.forward(&k);
        }
        let q = rotate(&q.transpose(1, 2), cos, sin);
        let mut k = rotate(&k.transpose(1, 2), cos, sin);
        let mut v = v.transpose(1, 2);
        if let Some((cache, layer)) = cache {
            assert!(start + t <= cache.capacity, "KV cache capacity exceeded");
            cache.keys[layer].narrow(2, start, t).copy_(&k);
            cache.values[layer].narrow(2, start, t).copy_(&v);
            k = cache.keys[layer].narrow(2, 0, start + t);
            v = cache.values[layer].narrow(2, 0, start + t);
        }
        let (mask, causal) = if let Some(m) = rope.mask {
            (Some(m.shallow_clone()), false)
        } else if t == 1 {
            (None, false)
        } else if start == 0 {
            (None, true)
        } else {
            // New rows attend to every cached position and causally among themselves.
            let rows = Tensor::arange_start(start, start + t, (Kind::Int64, x.device()));
            let cols = Tensor::arange(start + t, (Kind::Int64, x.device()));
            (Some(cols.unsqueeze(0).le_tensor(&rows.unsqueeze(1))), false)
        };
        let y = Tensor::scaled_dot_product_attention(&q, &k, &v, mask, 0.0, causal, None, kvh != h);
        self.out.forward(&y.transpose(1, 2).reshape([b, t, h * d]))
    }
}

/// Applies rotary embeddings in the Hugging Face (half-split) layout.
fn rotate(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Tensor {
    let half = x.size()[3] / 2;
    let x1 = x.narrow(-1, 0, half);
    let x2 = x.narrow(-1, half, half);
    let rotated = Tensor::cat(&[-x2, x1], -1);
    x * cos + rotated * sin
}

/// cos/sin tables `[max_positions, head_dim]` in fp32, with linear or llama3 scaling.
fn rope_tables(config: &ModelConfig, device: Device) -> (Tensor, Tensor) {
    let dim = config.head_dim();
    let base = config.rope_theta as f32;
    let mut inv_freq: Vec<f32> = (0..dim / 2)
        .map(|i| 1.0 / base.powf((2 * i) as f32 / dim as f32))
        .collect();
    if let Some(s) = &config.rope_scaling {
        let factor = s.factor as f32;
        match s.rope_type.as_str() {
            "linear" => inv_freq.iter_mut().for_each(|f| *f /= factor),
            "llama3" => {
                let low = s.low_freq_factor.unwrap_or(1.0) as f32;
                let high = s.high_freq_factor.unwrap_or(4.0) as f32;
                let old = s.original_max_position_embeddings.unwrap_or(8192) as f32;
                let (low_wavelen, high_wavelen) = (old / low, old / high);
                for f in inv_freq.iter_mut() {
                    let wavelen = 2.0 * std::f32::consts::PI / *f;
                    if wavelen > low_wavelen {
                        *f /= factor;
                    } else if wavelen >= high_wavelen {
                        let smooth = (old / wavelen - low) / (high - low);
                        *f = (1.0 - smooth) * *f / factor + smooth * *f;
                    }
                }
            }
            _ => {}
        }
    }
    let positions = config.max_position_embeddings as i64;
    let inv = Tensor::from_slice(&inv_freq);
    let t = Tensor::arange(positions, (Kind::Float, Device::Cpu));
    let freqs = t.unsqueeze(1) * inv.unsqueeze(0);
    let emb = Tensor::cat(&[&freqs, &freqs], -1);
    (emb.cos().to_device(device), emb.sin().to_device(device))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn max_difference(a: &Tensor, b: &Tensor) -> f64 {
        (a - b).abs().max().double_value(&[])
    }

    /// The few-rows path (`W · xᵀ`, one row doubled) gives `linear`'s values and shapes,
    /// with and without bias, for 2-D and 3-D inputs; bf16 and many rows take `linear`.
    #[test]
    fn projection_matches_linear_at_every_row_count() {
        tch::manual_seed(7);
        let weight = Tensor::randn([48, 24], (Kind::Float, Device::Cpu));
        let bias = Tensor::randn([48], (Kind::Float, Device::Cpu));
        for shape in [
            vec![1, 24],
            vec![5, 24],
            vec![3, 1, 24],
            vec![2, 20, 24],
            vec![1, 1, 24],
        ] {
            let x = Tensor::randn(shape.as_slice(), (Kind::Float, Device::Cpu));
            for b in [None, Some(&bias)] {
                let want = x.linear(&weight, b);
                let got = project(&x, &weight, b);
                assert_eq!(got.size(), want.size(), "{shape:?}");
                assert!(max_difference(&got, &want) < 1e-5, "{shape:?}");
            }
        }
        let x = Tensor::randn([2, 24], (Kind::BFloat16, Device::Cpu));
        let w = weight.to_kind(Kind::BFloat16);
        assert_eq!(
            max_difference(&project(&x, &w, None), &x.linear::<&Tensor>(&w, None)),
            0.0
        );
    }
}
