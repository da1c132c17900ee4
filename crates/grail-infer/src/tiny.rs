//! A deterministic tiny random model for tests: a byte-level BPE tokenizer trained on a
//! built-in text, and seeded random weights, written as a Hugging Face directory.

use std::collections::HashMap;
use std::path::Path;

use rand_core::RngCore;
use serde_json::json;
use tch::Tensor;

use crate::config::{Architecture, ModelConfig, TokenIds};
use crate::files::NewModelDir;
use crate::gguf::{quantize, TensorType};
use crate::tokenizer::{byte_level_bpe_json, bytes_to_token, PreTokenizer, SpecialToken};
use crate::InferError;

/// Text the tiny tokenizer learns its merges from: chat, math and SAT words.
const CORPUS: &str = "You are a helpful assistant. Solve the problem and give the final answer. \
The answer is 42. Think step by step. What is the sum of the numbers? The product of two \
numbers is the result of multiplication. Find the value of x. SOLUTION: the assignment \
satisfies every clause. Variables are true or false. A clause is satisfied when one of its \
literals is true. Give your answer between the tags. user assistant system The model \
answers the question with a number. Let us compute the total, then divide by the count. \
Therefore the final answer is the value we computed. If the formula is satisfiable, list \
the values of all variables in order. There are several clauses and variables here.";

/// Special tokens of the tiny vocabulary (ids 0, 1, 2), as in SmolLM2.
pub const TINY_SPECIALS: [&str; 3] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];

/// ChatML, the template of SmolLM2 and Qwen.
pub const CHATML_TEMPLATE: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/// Shape and seed of a tiny model.
#[derive(Debug, Clone)]
pub struct TinySpec {
    /// Decoder family.
    pub architecture: Architecture,
    /// Seed of every weight.
    pub seed: u64,
    /// Decoder layers.
    pub layers: usize,
    /// Residual width.
    pub hidden: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads.
    pub kv_heads: usize,
    /// MLP width.
    pub intermediate: usize,
    /// BPE merges learned from the built-in text.
    pub merges: usize,
}

impl Default for TinySpec {
    fn default() -> Self {
        Self {
            architecture: Architecture::Llama,
            seed: 0,
            layers: 2,
            hidden: 64,
            heads: 4,
            kv_heads: 2,
            intermediate: 128,
            merges: 200,
        }
    }
}

/// Learns `merges` byte-level BPE merges from a built-in text; returns tokenizer.json and the
/// vocabulary size (specials first, then the 256 bytes, then merged tokens).
pub fn tiny_tokenizer(merges: usize) -> (serde_json::Value, usize) {
    let mut words: HashMap<Vec<String>, usize> = HashMap::new();
    for (i, word) in CORPUS.split(' ').enumerate() {
        let text = if i == 0 {
            word.to_string()
        } else {
            format!(" {word}")
        };
        let symbols = text.bytes().map(|b| bytes_to_token(&[b])).collect();
        *words.entry(symbols).or_default() += 1;
    }
    let mut vocab: Vec<String> = TINY_SPECIALS.iter().map(|s| s.to_string()).collect();
    vocab.extend((0..=255u8).map(|b| bytes_to_token(&[b])));
    let mut learned = Vec::new();
    for _ in 0..merges {
        let mut counts: HashMap<(&str, &str), usize> = HashMap::new();
        for (symbols, n) in &words {
            for pair in symbols.windows(2) {
                *counts.entry((&pair[0], &pair[1])).or_default() += n;
            }
        }
        // Most frequent pair; ties broken by the pair itself so the result is fixed.
        let Some((best, _)) = counts
            .into_iter()
            .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
        else {
            break;
        };
        let (a, b) = (best.0.to_string(), best.1.to_string());
        let merged = format!("{a}{b}");
        words = words
            .into_iter()
            .map(|(symbols, n)| {
                let mut out: Vec<String> = Vec::with_capacity(symbols.len());
                for s in symbols {
                    if out.last() == Some(&a) && s == b {
                        out.pop();
                        out.push(merged.clone());
                    } else {
                        out.push(s);
                    }
                }
                (out, n)
            })
            .fold(HashMap::new(), |mut acc, (k, n)| {
                *acc.entry(k).or_default() += n;
                acc
            });
        vocab.push(merged);
        learned.push((a, b));
    }
    let specials: Vec<SpecialToken> = TINY_SPECIALS
        .iter()
        .enumerate()
        .map(|(id, s)| SpecialToken {
            id: id as u32,
            content: s.to_string(),
        })
        .collect();
    let size = vocab.len();
    (
        byte_level_bpe_json(&vocab, &learned, &specials, PreTokenizer::SmolLm),
        size,
    )
}

/// config.json of a tiny model with `vocab` ids.
pub fn tiny_config(spec: &TinySpec, vocab: usize) -> ModelConfig {
    ModelConfig {
        model_type: spec.architecture.model_type().into(),
        architectures: vec![spec.architecture.hf_class().into()],
        hidden_size: spec.hidden,
        intermediate_size: spec.intermediate,
        num_hidden_layers: spec.layers,
        num_attention_heads: spec.heads,
        num_key_value_heads: Some(spec.kv_heads),
        head_dim: Some(spec.hidden / spec.heads),
        rms_norm_eps: 1e-5,
        rope_theta: 10_000.0,
        rope_scaling: None,
        max_position_embeddings: 2048,
        vocab_size: vocab,
        tie_word_embeddings: spec.architecture == Architecture::Llama,
        attention_bias: false,
        bos_token_id: Some(1),
        eos_token_id: Some(TokenIds::One(2)),
        torch_dtype: Some("float32".into()),
    }
}

/// Standard deviation of the tiny embedding: with tied weights, logits then spread by
/// about 2 nats (peaked enough to be a language model, random enough to sample).
const EMBED_STD: f64 = 0.25;

/// Seeded weights for `config`: norms 1, matrices N(0, 1/fan_in), embeddings N(0, 0.25²).
pub fn tiny_weights(config: &ModelConfig, seed: u64) -> Vec<(String, Tensor)> {
    let (h, i, v) = (
        config.hidden_size as i64,
        config.intermediate_size as i64,
        config.vocab_size as i64,
    );
    let (q, kv) = (
        (config.num_attention_heads * config.head_dim()) as i64,
        (config.kv_heads() * config.head_dim()) as i64,
    );
    let d = config.head_dim() as i64;
    let arch = config.architecture().unwrap_or(Architecture::Llama);
    let mut shapes: Vec<(String, Vec<i64>)> =
        vec![("model.embed_tokens.weight".into(), vec![v, h])];
    for l in 0..config.num_hidden_layers {
        let p = format!("model.layers.{l}");
        let mut add = |n: &str, s: &[i64]| shapes.push((format!("{p}.{n}"), s.to_vec()));
        add("self_attn.q_proj.weight", &[q, h]);
        add("self_attn.k_proj.weight", &[kv, h]);
        add("self_attn.v_proj.weight", &[kv, h]);
        if config.qkv_bias() {
            add("self_attn.q_proj.bias", &[q]);
            add("self_attn.k_proj.bias", &[kv]);
            add("self_attn.v_proj.bias", &[kv]);
        }
        if arch == Architecture::Qwen3 {
            add("self_attn.q_norm.weight", &[d]);
            add("self_attn.k_norm.weight", &[d]);
        }
        add("self_attn.o_proj.weight", &[h, q]);
        add("mlp.gate_proj.weight", &[i, h]);
        add("mlp.up_proj.weight", &[i, h]);
        add("mlp.down_proj.weight", &[h, i]);
        add("input_layernorm.weight", &[h]);
        add("post_attention_layernorm.weight", &[h]);
    }
    shapes.push(("model.norm.weight".into(), vec![h]));
    if !config.tie_word_embeddings {
        shapes.push(("lm_head.weight".into(), vec![v, h]));
    }
    shapes
        .into_iter()
        .map(|(name, shape)| {
            let tensor = if name.ends_with("norm.weight") {
                Tensor::ones(shape.as_slice(), (tch::Kind::Float, tch::Device::Cpu))
            } else {
                let std = if name.contains("embed") {
                    EMBED_STD
                } else if name.ends_with(".bias") {
                    0.1
                } else {
                    1.0 / (shape[1] as f64).sqrt()
                };
                let n: i64 = shape.iter().product();
                let mut rng = grail_proto::prf::stream(
                    b"grail-rs/tiny-model/v1",
                    &[&seed.to_le_bytes(), name.as_bytes()],
                );
                Tensor::from_slice(&gaussian(&mut rng, n as usize, std)).reshape(shape.as_slice())
            };
            (name, tensor)
        })
        .collect()
}

/// `n` normal samples with standard deviation `std` (Box–Muller on 53-bit uniforms).
fn gaussian(rng: &mut impl RngCore, n: usize, std: f64) -> Vec<f32> {
    let uniform =
        |rng: &mut dyn RngCore| ((rng.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    (0..n)
        .map(|_| {
            let (u1, u2) = (uniform(rng), uniform(rng));
            ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos() * std) as f32
        })
        .collect()
}

/// Writes the tiny model described by `spec` to `out` (atomically).
pub fn write_tiny_model(spec: &TinySpec, out: &Path) -> Result<(), InferError> {
    let (tokenizer, vocab) = tiny_tokenizer(spec.merges);
    let config = tiny_config(spec, vocab);
    config.validate()?;
    let weights = tiny_weights(&config, spec.seed);
    NewModelDir {
        config: &config,
        weights: &weights,
        tokenizer: &tokenizer,
        tokenizer_config: &json!({
            "bos_token": "<|im_start|>", "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
            "add_bos_token": false, "chat_template": CHATML_TEMPLATE,
        }),
        generation_config: &json!({"bos_token_id": 1, "eos_token_id": 2}),
    }
    .write(out)
}

/// A tiny model as llama.cpp's converter would write it: a GGUF v3 file with the llama
/// metadata, the byte-level BPE vocabulary and merges, the ChatML template and llama.cpp's
/// tensor names and q/k row permutation; norms and embeddings F32, attention Q8_0, MLP
/// Q4_1. Returns the file's bytes and the original weights (for comparisons).
pub fn tiny_gguf(spec: &TinySpec) -> (Vec<u8>, Vec<(String, Tensor)>) {
    let (tokenizer, vocab_size) = tiny_tokenizer(spec.merges);
    let config = tiny_config(spec, vocab_size);
    let weights = tiny_weights(&config, spec.seed);
    let model = &tokenizer["model"];
    let mut vocab = vec![String::new(); vocab_size];
    for (token, id) in model["vocab"].as_object().into_iter().flatten() {
        if let Some(slot) = id.as_u64().and_then(|i| vocab.get_mut(i as usize)) {
            *slot = token.clone();
        }
    }
    let merges: Vec<String> = model["merges"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            format!(
                "{} {}",
                m[0].as_str().unwrap_or(""),
                m[1].as_str().unwrap_or("")
            )
        })
        .collect();
    let types: Vec<i32> = (0..vocab_size).map(|i| if i < 3 { 3 } else { 1 }).collect();
    let u32_of = |v: usize| GgufMeta::U32(v as u32);
    let meta: Vec<(&str, GgufMeta)> = vec![
        ("general.architecture", GgufMeta::Str("llama".into())),
        ("llama.block_count", u32_of(config.num_hidden_layers)),
        ("llama.context_length", GgufMeta::U32(2048)),
        ("llama.embedding_length", u32_of(config.hidden_size)),
        (
            "llama.feed_forward_length",
            u32_of(config.intermediate_size),
        ),
        (
            "llama.attention.head_count",
            u32_of(config.num_attention_heads),
        ),
        ("llama.attention.head_count_kv", u32_of(config.kv_heads())),
        (
            "llama.attention.layer_norm_rms_epsilon",
            GgufMeta::F32(1e-5),
        ),
        ("llama.rope.freq_base", GgufMeta::F32(10_000.0)),
        ("general.alignment", GgufMeta::U32(32)),
        ("tokenizer.ggml.model", GgufMeta::Str("gpt2".into())),
        ("tokenizer.ggml.pre", GgufMeta::Str("smollm".into())),
        ("tokenizer.ggml.tokens", GgufMeta::Strs(vocab)),
        ("tokenizer.ggml.token_type", GgufMeta::I32s(types)),
        ("tokenizer.ggml.merges", GgufMeta::Strs(merges)),
        ("tokenizer.ggml.bos_token_id", GgufMeta::U32(1)),
        ("tokenizer.ggml.eos_token_id", GgufMeta::U32(2)),
        (
            "tokenizer.chat_template",
            GgufMeta::Str(CHATML_TEMPLATE.into()),
        ),
    ];
    let heads = config.num_attention_heads as i64;
    let kv = config.kv_heads() as i64;
    let mut blobs = Vec::new();
    for (name, tensor) in &weights {
        let stored = if name.ends_with("q_proj.weight") {
            gguf_permute(tensor, heads)
        } else if name.ends_with("k_proj.weight") {
            gguf_permute(tensor, kv)
        } else {
            tensor.shallow_clone()
        };
        let values = Vec::<f32>::try_from(stored.contiguous().view([-1])).unwrap_or_default();
        let dims: Vec<u64> = tensor.size().iter().rev().map(|&d| d as u64).collect();
        let kind = gguf_storage(name);
        blobs.push((gguf_name(name), dims, kind, quantize(kind, &values)));
    }
    let mut file = b"GGUF".to_vec();
    file.extend(3u32.to_le_bytes());
    file.extend((blobs.len() as u64).to_le_bytes());
    file.extend((meta.len() as u64).to_le_bytes());
    for (key, value) in &meta {
        put_gguf_str(&mut file, key);
        value.put(&mut file);
    }
    let mut offset = 0u64;
    for (name, dims, kind, data) in &blobs {
        put_gguf_str(&mut file, name);
        file.extend((dims.len() as u32).to_le_bytes());
        dims.iter().for_each(|d| file.extend(d.to_le_bytes()));
        let code: u32 = match kind {
            TensorType::F32 => 0,
            TensorType::Q4_1 => 3,
            _ => 8,
        };
        file.extend(code.to_le_bytes());
        file.extend(offset.to_le_bytes());
        offset += (data.len() as u64).div_ceil(32) * 32;
    }
    file.resize(file.len().div_ceil(32) * 32, 0);
    for (_, _, _, data) in &blobs {
        file.extend(data);
        file.resize(file.len().div_ceil(32) * 32, 0);
    }
    (file, weights)
}

/// Storage of each tiny tensor in [`tiny_gguf`]: norms and embeddings F32, MLP Q4_1, the
/// rest Q8_0.
pub fn gguf_storage(hf: &str) -> TensorType {
    if hf.contains("norm") || hf.contains("embed") {
        TensorType::F32
    } else if hf.contains("mlp") {
        TensorType::Q4_1
    } else {
        TensorType::Q8_0
    }
}

/// A GGUF metadata value of the kinds [`tiny_gguf`] writes.
enum GgufMeta {
    U32(u32),
    F32(f32),
    Str(String),
    Strs(Vec<String>),
    I32s(Vec<i32>),
}

impl GgufMeta {
    fn put(&self, out: &mut Vec<u8>) {
        match self {
            GgufMeta::U32(v) => {
                out.extend(4u32.to_le_bytes());
                out.extend(v.to_le_bytes());
            }
            GgufMeta::F32(v) => {
                out.extend(6u32.to_le_bytes());
                out.extend(v.to_le_bytes());
            }
            GgufMeta::Str(s) => {
                out.extend(8u32.to_le_bytes());
                put_gguf_str(out, s);
            }
            GgufMeta::Strs(items) => {
                out.extend(9u32.to_le_bytes());
                out.extend(8u32.to_le_bytes());
                out.extend((items.len() as u64).to_le_bytes());
                items.iter().for_each(|s| put_gguf_str(out, s));
            }
            GgufMeta::I32s(items) => {
                out.extend(9u32.to_le_bytes());
                out.extend(5u32.to_le_bytes());
                out.extend((items.len() as u64).to_le_bytes());
                items.iter().for_each(|v| out.extend(v.to_le_bytes()));
            }
        }
    }
}

fn put_gguf_str(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

/// llama.cpp's `permute` of q/k rows (what its converter writes).
fn gguf_permute(w: &Tensor, heads: i64) -> Tensor {
    let size = w.size();
    let (rows, cols) = (size[0], size[1]);
    w.reshape([heads, 2, rows / heads / 2, cols])
        .transpose(1, 2)
        .reshape([rows, cols])
}

/// llama.cpp's name of a Hugging Face tensor name of the tiny model.
fn gguf_name(hf: &str) -> String {
    let fixed = [
        ("model.embed_tokens.weight", "token_embd.weight"),
        ("model.norm.weight", "output_norm.weight"),
        ("lm_head.weight", "output.weight"),
    ];
    if let Some((_, g)) = fixed.iter().find(|(h, _)| *h == hf) {
        return g.to_string();
    }
    let map = [
        ("input_layernorm", "attn_norm"),
        ("post_attention_layernorm", "ffn_norm"),
        ("self_attn.q_proj", "attn_q"),
        ("self_attn.k_proj", "attn_k"),
        ("self_attn.v_proj", "attn_v"),
        ("self_attn.o_proj", "attn_output"),
        ("mlp.gate_proj", "ffn_gate"),
        ("mlp.up_proj", "ffn_up"),
        ("mlp.down_proj", "ffn_down"),
    ];
    let rest = hf.strip_prefix("model.layers.").unwrap_or(hf);
    let (layer, part) = rest.split_once('.').unwrap_or((rest, ""));
    let (module, kind) = part.rsplit_once('.').unwrap_or((part, ""));
    let g = map
        .iter()
        .find(|(h, _)| *h == module)
        .map_or(module, |(_, g)| *g);
    format!("blk.{layer}.{g}.{kind}")
}
