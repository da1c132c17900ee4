//! AdamW with decoupled weight decay, global-norm gradient clipping, and the learning-rate
//! schedule (linear warmup, cosine decay to a floor).

use std::f64::consts::PI;

use tch::{Kind, Tensor};

use crate::config::GrpoConfig;

/// The learning rate of step `step` (0-based).
pub fn learning_rate(config: &GrpoConfig, step: u64) -> f64 {
    let peak = config.learning_rate;
    if step < config.warmup_steps {
        return peak * (step + 1) as f64 / config.warmup_steps as f64;
    }
    let span = config
        .total_steps
        .saturating_sub(config.warmup_steps)
        .max(1);
    let progress = ((step - config.warmup_steps) as f64 / span as f64).min(1.0);
    let floor = peak * config.min_lr_ratio;
    floor + 0.5 * (peak - floor) * (1.0 + (PI * progress).cos())
}

/// The global L2 norm of the gradients (0 for parameters without one).
pub fn grad_norm(params: &[Tensor]) -> f64 {
    let mut sum = 0.0;
    for p in params {
        let g = p.grad();
        if g.defined() {
            sum += g
                .to_kind(Kind::Double)
                .square()
                .sum(Kind::Double)
                .double_value(&[]);
        }
    }
    sum.sqrt()
}

/// Clears every parameter's gradient.
pub fn zero_grads(params: &[Tensor]) {
    for p in params {
        let mut g = p.grad();
        if g.defined() {
            let _ = g.zero_();
        }
    }
}

/// AdamW state: first and second moments per parameter, and the step count.
pub struct AdamW {
    /// First moments.
    pub m: Vec<Tensor>,
    /// Second moments.
    pub v: Vec<Tensor>,
    /// Updates taken.
    pub step: u64,
}

impl AdamW {
    /// Zero state for `params`.
    pub fn new(params: &[Tensor]) -> Self {
        Self {
            m: params
                .iter()
                .map(|p| p.zeros_like().to_kind(Kind::Float))
                .collect(),
            v: params
                .iter()
                .map(|p| p.zeros_like().to_kind(Kind::Float))
                .collect(),
            step: 0,
        }
    }

    /// One update of `params` from their gradients at learning rate `lr`, after scaling
    /// the gradients so their global norm is at most `config.max_grad_norm`.
    pub fn update(&mut self, params: &[Tensor], config: &GrpoConfig, lr: f64, norm: f64) {
        let scale = if config.max_grad_norm > 0.0 && norm > config.max_grad_norm {
            config.max_grad_norm / (norm + 1e-6)
        } else {
            1.0
        };
        self.step += 1;
        let (b1, b2) = (config.beta1, config.beta2);
        let c1 = 1.0 - b1.powi(self.step as i32);
        let c2 = 1.0 - b2.powi(self.step as i32);
        tch::no_grad(|| {
            for ((p, m), v) in params.iter().zip(&mut self.m).zip(&mut self.v) {
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                let g = g.to_kind(Kind::Float) * scale;
                let _ = m.g_mul_scalar_(b1).g_add_(&(&g * (1.0 - b1)));
                let _ = v.g_mul_scalar_(b2).g_add_(&(g.square() * (1.0 - b2)));
                let mut p = p.shallow_clone();
                if config.weight_decay > 0.0 && p.dim() >= 2 {
                    let _ = p.g_mul_scalar_(1.0 - lr * config.weight_decay);
                }
                let update = (&*m / c1) / ((&*v / c2).sqrt() + config.eps) * lr;
                let _ = p.g_sub_(&update.to_kind(p.kind()));
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_warms_up_then_decays_to_the_floor() {
        let c = GrpoConfig {
            learning_rate: 1.0,
            warmup_steps: 4,
            total_steps: 14,
            min_lr_ratio: 0.1,
            ..GrpoConfig::default()
        };
        assert_eq!(learning_rate(&c, 0), 0.25);
        assert_eq!(learning_rate(&c, 3), 1.0);
        assert_eq!(learning_rate(&c, 4), 1.0);
        assert!((learning_rate(&c, 9) - 0.55).abs() < 1e-12);
        assert!((learning_rate(&c, 14) - 0.1).abs() < 1e-12);
        assert!((learning_rate(&c, 100) - 0.1).abs() < 1e-12);
    }

    #[test]
    fn adamw_first_step_moves_each_weight_by_lr() {
        let p = Tensor::from_slice(&[1.0f32, -2.0, 3.0, 0.5])
            .view([2, 2])
            .set_requires_grad(true);
        let loss =
            (&p * Tensor::from_slice(&[1.0f32, -1.0, 2.0, 0.0]).view([2, 2])).sum(Kind::Float);
        loss.backward();
        let c = GrpoConfig {
            weight_decay: 0.0,
            max_grad_norm: 0.0,
            ..GrpoConfig::default()
        };
        let params = [p.shallow_clone()];
        let mut opt = AdamW::new(&params);
        opt.update(&params, &c, 0.1, grad_norm(&params));
        let after: Vec<f32> = p.detach().view([-1]).try_into().unwrap();
        // Adam's first step is lr · sign(g) (zero gradient: no move).
        let want = [0.9f32, -1.9, 2.9, 0.5];
        for (a, w) in after.iter().zip(want) {
            assert!((a - w).abs() < 1e-5, "{after:?}");
        }
        assert!((grad_norm(&params) - 6f64.sqrt()).abs() < 1e-9);
    }
}
