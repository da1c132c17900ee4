//! Substitute models shared by both audits: perturbed, noisy, int8-quantized weights and
//! a model with its last layer dropped.

use rand_core::RngCore;
use tch::{Kind, Tensor};

use grail_infer::model::Model;
use grail_infer::InferError;

/// Substitute weights derived from a model's own (Hugging Face names).
pub fn perturbed_weights(
    model: &Model,
    mut change: impl FnMut(&str, &Tensor) -> Tensor,
) -> Vec<(String, Tensor)> {
    tch::no_grad(|| {
        model
            .hf_weights()
            .into_iter()
            .map(|(n, t)| {
                let changed = change(&n, &t.to_kind(Kind::Float));
                (n, changed)
            })
            .collect()
    })
}

/// `w + N(0, (relative · rms(w))²)` with noise from a ChaCha stream.
pub fn add_noise(name: &str, w: &Tensor, relative: f64, seed: u64) -> Tensor {
    let rms = f64::try_from(w.square().mean(Kind::Float).sqrt()).unwrap_or(0.0);
    let n = w.numel();
    let mut rng = grail_proto::prf::stream(
        b"grail-rs/audit-noise/v1",
        &[&seed.to_le_bytes(), name.as_bytes()],
    );
    let mut noise = Vec::with_capacity(n);
    while noise.len() < n {
        let u1 = ((rng.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        let u2 = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let r = (-2.0 * u1.ln()).sqrt();
        let t = 2.0 * std::f64::consts::PI * u2;
        noise.push((r * t.cos()) as f32);
        noise.push((r * t.sin()) as f32);
    }
    noise.truncate(n);
    w + Tensor::from_slice(&noise)
        .view(w.size().as_slice())
        .to_device(w.device())
        * (relative * rms)
}

/// Symmetric per-row int8 quantization of matrices (vectors are kept).
pub fn int8_roundtrip(w: &Tensor) -> Tensor {
    if w.dim() != 2 {
        return w.shallow_clone();
    }
    let scale = w.abs().amax([1], true).clamp_min(1e-12) / 127.0;
    (w / &scale).round().clamp(-127.0, 127.0) * scale
}

/// Drops the last decoder layer (a cheaper, wrong model).
pub fn without_last_layer(model: &Model) -> Result<Model, InferError> {
    let mut config = model.config().clone();
    let last = config.num_hidden_layers - 1;
    if last == 0 {
        return Err(InferError::Input(
            "a one-layer model has no layer to drop".into(),
        ));
    }
    config.num_hidden_layers = last;
    let prefix = format!("model.layers.{last}.");
    let weights = model
        .hf_weights()
        .into_iter()
        .filter(|(n, _)| !n.starts_with(&prefix))
        .collect();
    Model::from_hf_weights(config, weights, Kind::Float, model.device())
}
