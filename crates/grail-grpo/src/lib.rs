//! grail-grpo: GRPO training on verified rollout groups.
//!
//! It owns advantages, the clipped policy loss, the optimizer and checkpoint export, on
//! top of grail-infer's models. The trainer role in grail-node drives it.
//!
//! Status: scaffold; training lands with its own issue.
