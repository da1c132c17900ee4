//! Rotary position embeddings: cos/sin tables (with linear or llama3 scaling), the
//! half-split rotation, and the tables and attention mask of left-padded rows.

use tch::{Device, Kind, Tensor};

use super::Model;
use crate::config::ModelConfig;

/// Rotary tables for the new positions and, for padded rows, the attention mask.
pub(super) struct Rope<'a> {
    pub(super) cos: &'a Tensor,
    pub(super) sin: &'a Tensor,
    pub(super) mask: Option<&'a Tensor>,
}

/// Applies rotary embeddings in the Hugging Face (half-split) layout.
pub(super) fn rotate(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Tensor {
    let half = x.size()[3] / 2;
    let x1 = x.narrow(-1, 0, half);
    let x2 = x.narrow(-1, half, half);
    let rotated = Tensor::cat(&[-x2, x1], -1);
    x * cos + rotated * sin
}

/// cos/sin tables `[max_positions, head_dim]` in fp32, with linear or llama3 scaling.
pub(super) fn rope_tables(config: &ModelConfig, device: Device) -> (Tensor, Tensor) {
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

impl Model {
    /// Rotary tables `[rows, 1, T, head_dim]` and the attention mask `[rows, 1, T, S]`
    /// for `t` new slots from `start` in rows with `pads` leading padding slots. A padding
    /// query attends to itself only (so its values stay finite); a real one to the real
    /// slots up to its own.
    pub(super) fn padded_layout(
        &self,
        pads: &[i64],
        start: i64,
        t: i64,
    ) -> (Tensor, Tensor, Tensor) {
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
}
