//! grail-infer: libtorch (tch) inference for rollouts and proofs.
//!
//! Miners sample rollouts with it, validators recompute hidden states and log-probs with
//! it, and the trainer trains through it. It owns the decoder models (Llama, Qwen2, Qwen3),
//! model-directory and GGUF loading, batched sampling with a KV cache, per-token log-probs
//! and the proof forward pass that implements grail-proto's `HiddenStates`. It knows
//! nothing of chain or storage.
//!
//! Status: the libtorch link is in place ([`device`]); the models land with their own issue.

pub mod device;
