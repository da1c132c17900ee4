//! The layers every family shares: linear projections (with the CPU few-rows path),
//! RMSNorm, the SwiGLU MLP and grouped-query attention over the KV cache.

use tch::{Device, Kind, Tensor};

use super::cache::KvCache;
use super::rope::{rotate, Rope};

/// `x · Wᵀ (+ bias)`; q/k/v and gate/up are each one fused `Linear`.
pub(super) struct Linear {
    pub(super) weight: Tensor,
    pub(super) bias: Option<Tensor>,
}

impl Linear {
    pub(super) fn forward(&self, x: &Tensor) -> Tensor {
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
pub(super) fn project(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Tensor {
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

pub(super) struct RmsNorm {
    pub(super) weight: Tensor,
    pub(super) eps: f64,
}

impl RmsNorm {
    /// Normalises in fp32 and scales in the model dtype, as Hugging Face does.
    pub(super) fn forward(&self, x: &Tensor) -> Tensor {
        let kind = x.kind();
        let x = x.to_kind(Kind::Float);
        let variance = x.square().mean_dim(-1, true, Kind::Float);
        (x * (variance + self.eps).rsqrt()).to_kind(kind) * &self.weight
    }
}

/// SwiGLU: `down(silu(gate(x)) · up(x))`, gate and up fused.
pub(super) struct Mlp {
    pub(super) gate_up: Linear,
    pub(super) down: Linear,
    pub(super) width: i64,
}

impl Mlp {
    pub(super) fn forward(&self, x: &Tensor) -> Tensor {
        let gate_up = self.gate_up.forward(x);
        let gate = gate_up.narrow(-1, 0, self.width);
        let up = gate_up.narrow(-1, self.width, self.width);
        self.down.forward(&(gate.silu() * up))
    }
}

/// Grouped-query attention with RoPE, optional q/k/v bias and optional per-head q/k norm.
pub(super) struct Attention {
    pub(super) qkv: Linear,
    pub(super) out: Linear,
    pub(super) q_norm: Option<RmsNorm>,
    pub(super) k_norm: Option<RmsNorm>,
    pub(super) heads: i64,
    pub(super) kv_heads: i64,
    pub(super) head_dim: i64,
}

impl Attention {
    pub(super) fn forward(
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

/// One decoder layer: RMSNorm → attention → RMSNorm → MLP, each with a residual add.
pub(super) struct Layer {
    pub(super) input_norm: RmsNorm,
    pub(super) attention: Attention,
    pub(super) post_attention_norm: RmsNorm,
    pub(super) mlp: Mlp,
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
