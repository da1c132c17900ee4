//! GGUF → Hugging Face directory: dequantized weights under HF names, config.json and
//! a rebuilt tokenizer.json, tokenizer_config.json (chat template) and
//! generation_config.json.

use std::path::Path;

use serde_json::json;
use tch::Tensor;

use crate::config::{Architecture, ModelConfig, RopeScaling, TokenIds};
use crate::files::NewModelDir;
use crate::gguf::{GgufFile, Value};
use crate::tokenizer::{byte_level_bpe_json, PreTokenizer, SpecialToken};
use crate::{InferError, Progress};

/// GGUF token types that are matched whole (control and user-defined tokens).
const TOKEN_TYPE_CONTROL: u64 = 3;
const TOKEN_TYPE_USER_DEFINED: u64 = 4;

/// Reads `gguf` and writes an HF-style model directory to `out` (atomically).
pub fn import_gguf(
    gguf: &Path,
    out: &Path,
    progress: &mut dyn FnMut(Progress),
) -> Result<(), InferError> {
    progress(Progress::new("reading gguf", 0, 1));
    let bytes = std::fs::read(gguf)
        .map_err(|e| InferError::io(format!("reading {}", gguf.display()), e))?;
    let file = GgufFile::parse(bytes).map_err(|e| e.context(gguf.display().to_string()))?;
    let (config, weights) = convert_weights(&file, progress)?;
    let tokenizer = convert_tokenizer(&file)?;
    let tokens = file.require_strings("tokenizer.ggml.tokens")?;
    let name_of = |key: &str| {
        file.get(key)
            .and_then(Value::as_u64)
            .and_then(|id| tokens.get(id as usize))
            .map(|t| t.to_string())
    };
    let mut tokenizer_config = json!({
        "bos_token": name_of("tokenizer.ggml.bos_token_id"),
        "eos_token": name_of("tokenizer.ggml.eos_token_id"),
        "pad_token": name_of("tokenizer.ggml.padding_token_id"),
        "unk_token": name_of("tokenizer.ggml.unknown_token_id"),
        "add_bos_token": false,
        "model_max_length": config.max_position_embeddings,
        "tokenizer_class": "GPT2Tokenizer",
        "clean_up_tokenization_spaces": false,
    });
    if let Some(template) = file.get("tokenizer.chat_template").and_then(Value::as_str) {
        tokenizer_config["chat_template"] = json!(template);
    }
    let generation_config = json!({
        "bos_token_id": config.bos_token_id,
        "eos_token_id": config.eos_token_id,
        "pad_token_id": file.get("tokenizer.ggml.padding_token_id").and_then(Value::as_u64),
    });
    progress(Progress::new("writing model", 0, 1));
    NewModelDir {
        config: &config,
        weights: &weights,
        tokenizer: &tokenizer,
        tokenizer_config: &tokenizer_config,
        generation_config: &generation_config,
    }
    .write(out)?;
    progress(Progress::new("writing model", 1, 1));
    Ok(())
}

/// Builds config.json from the GGUF metadata and the weights under HF names (fp32).
pub fn convert_weights(
    file: &GgufFile,
    progress: &mut dyn FnMut(Progress),
) -> Result<(ModelConfig, Vec<(String, Tensor)>), InferError> {
    let arch_name = file
        .get("general.architecture")
        .and_then(Value::as_str)
        .ok_or_else(|| InferError::GgufMetadata {
            key: "general.architecture".into(),
            expected: "a string",
        })?;
    let arch = Architecture::from_model_type(arch_name).map_err(|e| e.context("gguf"))?;
    let key = |k: &str| format!("{arch_name}.{k}");
    let u = |k: &str| file.require_u64(&key(k)).map(|v| v as usize);
    let f = |k: &str| file.get(&key(k)).and_then(Value::as_f64);
    let heads = u("attention.head_count")?;
    let hidden = u("embedding_length")?;
    let vocab = file.require_strings("tokenizer.ggml.tokens")?.len();
    let has_output = file.tensors.iter().any(|t| t.name == "output.weight");
    let head_dim = file
        .get(&key("attention.key_length"))
        .and_then(Value::as_u64)
        .map(|v| v as usize);
    let rope_scaling = match file.get(&key("rope.scaling.type")).and_then(Value::as_str) {
        Some("linear") => Some(RopeScaling {
            rope_type: "linear".into(),
            factor: f("rope.scaling.factor").unwrap_or(1.0),
            low_freq_factor: None,
            high_freq_factor: None,
            original_max_position_embeddings: None,
        }),
        Some("none") | None => None,
        Some(other) => {
            let unsupported = InferError::UnsupportedRopeScaling {
                rope_type: other.into(),
            };
            return Err(unsupported.context("gguf"));
        }
    };
    let config = ModelConfig {
        model_type: arch.model_type().into(),
        architectures: vec![arch.hf_class().into()],
        hidden_size: hidden,
        intermediate_size: u("feed_forward_length")?,
        num_hidden_layers: u("block_count")?,
        num_attention_heads: heads,
        num_key_value_heads: Some(u("attention.head_count_kv").unwrap_or(heads)),
        head_dim: head_dim.filter(|&d| d != hidden / heads.max(1)),
        rms_norm_eps: f("attention.layer_norm_rms_epsilon").unwrap_or(1e-5),
        rope_theta: f("rope.freq_base").unwrap_or(10_000.0),
        rope_scaling,
        max_position_embeddings: u("context_length").unwrap_or(2048),
        vocab_size: vocab,
        tie_word_embeddings: !has_output,
        attention_bias: false,
        bos_token_id: file
            .get("tokenizer.ggml.bos_token_id")
            .and_then(Value::as_u64)
            .map(|v| v as u32),
        eos_token_id: file
            .get("tokenizer.ggml.eos_token_id")
            .and_then(Value::as_u64)
            .map(|v| TokenIds::One(v as u32)),
        torch_dtype: Some("float32".into()),
    };
    config.validate().map_err(|e| e.context("gguf"))?;
    let kv_heads = config.kv_heads() as i64;
    let total = file.tensors.len() as u64;
    let mut weights = Vec::with_capacity(file.tensors.len());
    for (i, info) in file.tensors.iter().enumerate() {
        progress(Progress::new("dequantizing", i as u64, total));
        let name = hf_name(&info.name).ok_or_else(|| InferError::UnknownGgufTensor {
            name: info.name.clone(),
        })?;
        let mut tensor = Tensor::from_slice(&file.dequantize(info))
            .f_reshape(info.shape())
            .map_err(|e| InferError::torch(format!("gguf: tensor `{}`", info.name), e))?;
        // llama.cpp interleaves the rotary halves of q and k rows for Llama; undo it.
        if arch == Architecture::Llama {
            if name.ends_with("q_proj.weight") {
                tensor = unpermute(&tensor, heads as i64, &name)?;
            } else if name.ends_with("k_proj.weight") {
                tensor = unpermute(&tensor, kv_heads, &name)?;
            }
        }
        weights.push((name, tensor));
    }
    progress(Progress::new("dequantizing", total, total));
    Ok((config, weights))
}

/// Inverse of llama.cpp's `permute(w, n_head)` on q/k projection rows.
/// Errors (instead of letting libtorch abort) when the tensor from an untrusted file is
/// not a matrix whose rows split into `heads` heads of even width.
fn unpermute(w: &Tensor, heads: i64, name: &str) -> Result<Tensor, InferError> {
    let size = w.size();
    let (rows, cols) = match size.as_slice() {
        &[rows, cols] if heads > 0 && rows % (2 * heads) == 0 => (rows, cols),
        _ => {
            return Err(InferError::Gguf(format!(
                "tensor `{name}` has shape {size:?}, not rows of {heads} heads of even width"
            )))
        }
    };
    // Fallible calls: an empty tensor may still have sizes whose strides overflow once
    // split into heads (rows 0, cols 2^62), which libtorch refuses.
    w.f_reshape([heads, rows / heads / 2, 2, cols])
        .and_then(|t| t.f_transpose(1, 2))
        .and_then(|t| t.f_reshape([rows, cols]))
        .map_err(|e| InferError::torch(format!("gguf: tensor `{name}`"), e))
}

/// Maps a GGUF tensor name to its Hugging Face name.
pub fn hf_name(gguf: &str) -> Option<String> {
    let fixed = match gguf {
        "token_embd.weight" => Some("model.embed_tokens.weight"),
        "output_norm.weight" => Some("model.norm.weight"),
        "output.weight" => Some("lm_head.weight"),
        _ => None,
    };
    if let Some(name) = fixed {
        return Some(name.to_string());
    }
    let rest = gguf.strip_prefix("blk.")?;
    let (layer, part) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (module, kind) = part.rsplit_once('.')?;
    let hf = match module {
        "attn_norm" => "input_layernorm",
        "ffn_norm" => "post_attention_layernorm",
        "attn_q" => "self_attn.q_proj",
        "attn_k" => "self_attn.k_proj",
        "attn_v" => "self_attn.v_proj",
        "attn_output" => "self_attn.o_proj",
        "attn_q_norm" => "self_attn.q_norm",
        "attn_k_norm" => "self_attn.k_norm",
        "ffn_gate" => "mlp.gate_proj",
        "ffn_up" => "mlp.up_proj",
        "ffn_down" => "mlp.down_proj",
        _ => return None,
    };
    matches!(kind, "weight" | "bias").then(|| format!("model.layers.{layer}.{hf}.{kind}"))
}

/// Rebuilds tokenizer.json from GGUF's byte-level BPE vocabulary, merges and token types.
pub fn convert_tokenizer(file: &GgufFile) -> Result<serde_json::Value, InferError> {
    let model = file
        .get("tokenizer.ggml.model")
        .and_then(Value::as_str)
        .unwrap_or("");
    if model != "gpt2" {
        return Err(InferError::UnsupportedTokenizer {
            model: model.into(),
        });
    }
    let pre = PreTokenizer::from_gguf_name(
        file.get("tokenizer.ggml.pre")
            .and_then(Value::as_str)
            .unwrap_or("default"),
    )?;
    let tokens = file.require_strings("tokenizer.ggml.tokens")?;
    let merges = file
        .require_strings("tokenizer.ggml.merges")?
        .into_iter()
        .map(|m| {
            m.split_once(' ')
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .ok_or_else(|| InferError::Gguf(format!("merge `{m}` has no space")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let types: Vec<u64> = match file.get("tokenizer.ggml.token_type") {
        Some(Value::Array(items)) => items.iter().map(|v| v.as_u64().unwrap_or(1)).collect(),
        _ => Vec::new(),
    };
    let specials: Vec<SpecialToken> = types
        .iter()
        .enumerate()
        .filter(|(_, &t)| t == TOKEN_TYPE_CONTROL || t == TOKEN_TYPE_USER_DEFINED)
        .filter_map(|(id, _)| {
            tokens.get(id).map(|t| SpecialToken {
                id: id as u32,
                content: t.to_string(),
            })
        })
        .collect();
    let vocab: Vec<String> = tokens.iter().map(|t| t.to_string()).collect();
    Ok(byte_level_bpe_json(&vocab, &merges, &specials, pre))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_hf_layout() {
        assert_eq!(
            hf_name("blk.3.attn_q.weight").unwrap(),
            "model.layers.3.self_attn.q_proj.weight"
        );
        assert_eq!(
            hf_name("blk.0.attn_k.bias").unwrap(),
            "model.layers.0.self_attn.k_proj.bias"
        );
        assert_eq!(
            hf_name("blk.1.ffn_down.weight").unwrap(),
            "model.layers.1.mlp.down_proj.weight"
        );
        assert_eq!(
            hf_name("token_embd.weight").unwrap(),
            "model.embed_tokens.weight"
        );
        assert!(hf_name("blk.x.attn_q.weight").is_none());
        assert!(hf_name("rope_freqs.weight").is_none());
    }

    #[test]
    fn unpermute_inverts_llama_cpp_permute() {
        let (heads, head_dim, cols) = (3i64, 4i64, 5i64);
        let w = Tensor::arange(
            heads * head_dim * cols,
            (tch::Kind::Float, tch::Device::Cpu),
        )
        .reshape([heads * head_dim, cols]);
        // llama.cpp: reshape(n_head, 2, rows/n_head/2, cols).swapaxes(1, 2).reshape(rows, cols)
        let permuted = w
            .reshape([heads, 2, head_dim / 2, cols])
            .transpose(1, 2)
            .reshape([heads * head_dim, cols]);
        assert!(unpermute(&permuted, heads, "q").unwrap().equal(&w));
        assert!(unpermute(&w.narrow(0, 0, 5), heads, "q").is_err());
        // Found by `cargo xtask fuzz --target gguf` (docs/reliability.md): an empty q
        // projection whose other size passes the file's checks but overflows libtorch's
        // strides once split into heads panicked in reshape.
        let empty = Tensor::zeros([0, 1i64 << 62], (tch::Kind::Float, tch::Device::Cpu));
        assert!(unpermute(&empty, 4, "q").is_err());
        assert!(!permuted.equal(&w));
    }
}
