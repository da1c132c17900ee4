//! Model files: GGUF, safetensors, config.json and tokenizer.json, each taken as far as a
//! forward pass, so libtorch only ever sees shapes and dtypes that were checked first.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use grail_infer::gguf::GgufFile;
use grail_infer::import::{convert_tokenizer, convert_weights};
use grail_infer::tiny::{
    tiny_config, tiny_gguf, tiny_tokenizer, tiny_weights, write_tiny_model, TinySpec,
};
use grail_infer::{no_progress, Model, ModelConfig, Tokenizer};
use tch::{Device, Kind, Tensor};

use super::{text, Target};

/// The smallest model that exercises every part: one layer, grouped-query attention.
pub fn spec() -> TinySpec {
    TinySpec {
        layers: 1,
        hidden: 16,
        heads: 2,
        kv_heads: 1,
        intermediate: 32,
        merges: 40,
        ..TinySpec::default()
    }
}

/// A folder holding the tiny model of [`spec`] (written once per process).
pub fn tiny_model_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = scratch().join("tiny-model");
        write_tiny_model(&spec(), &dir).expect("the tiny model is written");
        dir
    })
    .clone()
}

/// A scratch folder of this process ([`super::scratch_dir`]).
fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = super::scratch_dir(std::process::id());
        std::fs::create_dir_all(&dir).expect("a scratch folder in the temp dir");
        dir
    })
}

/// The tiny config and weights (HF names) of [`spec`].
fn tiny() -> &'static (ModelConfig, Vec<(String, Tensor)>) {
    // Tensors are not `Sync`: one leaked copy per thread (campaigns run on one thread).
    thread_local! {
        static LOCAL: &'static (ModelConfig, Vec<(String, Tensor)>) = {
            let spec = spec();
            let (_, vocab) = tiny_tokenizer(spec.merges);
            let config = tiny_config(&spec, vocab);
            let weights = tiny_weights(&config, spec.seed);
            Box::leak(Box::new((config, weights)))
        };
    }
    LOCAL.with(|t| *t)
}

/// Builds a model of `config` from `weights` and runs one scored sequence.
fn load_and_run(config: ModelConfig, weights: HashMap<String, Tensor>) -> &'static str {
    let model = match Model::from_hf_weights(config, weights, Kind::Float, Device::Cpu) {
        Ok(m) => m,
        Err(_) => return "model_rejected",
    };
    let vocab = model.config().vocab_size as u32;
    let tokens: Vec<u32> = [1u32, 7, 300, 2].iter().map(|t| t % vocab.max(1)).collect();
    // The validator's path: log-probs and sampling gaps of the tokens after the first.
    let sampling = grail_infer::SamplingCheck {
        temperature: 1.0,
        noise: vec![grail_proto::sampling::RolloutNoise::new(
            &[1; 32],
            &grail_proto::Hotkey([2; 32]),
            &tokens[..1],
            0,
        )],
    };
    match model.score_from(&[tokens.as_slice()], &[1], &[2], Some(&sampling)) {
        Ok(_) => "ran",
        Err(_) => "score_rejected",
    }
}

fn shallow(weights: &[(String, Tensor)]) -> HashMap<String, Tensor> {
    weights
        .iter()
        .map(|(n, t)| (n.clone(), t.shallow_clone()))
        .collect()
}

/// GGUF files: parse, dequantize, the tokenizer rebuilt from the vocabulary, the model.
pub fn gguf() -> Target {
    Target {
        name: "gguf",
        what: "GGUF model files: header, metadata, tensor table, dequantization, tokenizer, model",
        max_len: 256 << 10,
        seeds: || vec![tiny_gguf(&spec()).0],
        dictionary: &[
            &[0xff; 8],
            &[0; 8],
            &[8, 0, 0, 0],
            &[9, 0, 0, 0],
            &[0x7f, 0xff, 0xff, 0xff],
        ],
        mutate: None,
        run: |bytes| {
            let Ok(file) = GgufFile::parse(bytes.to_vec()) else {
                return "parse_rejected";
            };
            let Ok((config, weights)) = convert_weights(&file, &mut no_progress) else {
                return "weights_rejected";
            };
            match convert_tokenizer(&file) {
                Ok(json) => {
                    if Tokenizer::from_json(&json.to_string()).is_err() {
                        return "tokenizer_rejected";
                    }
                }
                Err(_) => return "tokenizer_rejected",
            }
            load_and_run(config, weights.into_iter().collect())
        },
    }
}

/// model.safetensors with the tiny config: libtorch's reader, then the shape checks.
pub fn safetensors() -> Target {
    Target {
        name: "safetensors",
        what: "model.safetensors (read by libtorch) into a model of a fixed config",
        max_len: 256 << 10,
        seeds: || {
            let path = scratch().join("seed.safetensors");
            Tensor::write_safetensors(&tiny().1, &path).expect("writes");
            vec![std::fs::read(&path).expect("reads back")]
        },
        dictionary: &[
            b"\"dtype\":\"F32\"",
            b"\"shape\":[",
            b"\"data_offsets\":[",
            b"BF16",
            b"F64",
            b"I64",
            &[0xff; 8],
        ],
        mutate: None,
        run: |bytes| {
            let path = scratch().join("input.safetensors");
            if std::fs::write(&path, bytes).is_err() {
                return "io";
            }
            let Ok(tensors) = Tensor::read_safetensors(&path) else {
                return "read_rejected";
            };
            load_and_run(tiny().0.clone(), tensors.into_iter().collect())
        },
    }
}

/// config.json with the tiny weights: validation must stop every config the weights or
/// libtorch cannot run.
pub fn config() -> Target {
    Target {
        name: "config",
        what: "config.json against fixed weights: validation, RoPE tables, forward pass",
        max_len: 4096,
        seeds: || vec![serde_json::to_vec_pretty(&tiny().0).expect("serializes")],
        dictionary: &[
            b"4294967295",
            b"-1",
            b"0",
            b"1e308",
            b"NaN",
            b"\"qwen2\"",
            b"\"llama\"",
            b"null",
            b"true",
        ],
        mutate: None,
        run: |bytes| match ModelConfig::from_json(&text(bytes)) {
            Ok(config) => load_and_run(config, shallow(&tiny().1)),
            Err(_) => "config_rejected",
        },
    }
}

/// tokenizer.json: construction, encoding chat text, decoding ids.
pub fn tokenizer() -> Target {
    Target {
        name: "tokenizer",
        what: "tokenizer.json: build, encode, decode",
        max_len: 64 << 10,
        seeds: || vec![tiny_tokenizer(spec().merges).0.to_string().into_bytes()],
        dictionary: &[
            b"\"merges\"",
            b"\"vocab\"",
            b"\"added_tokens\"",
            b"\"ByteLevel\"",
            b"\"Split\"",
            b"\"pattern\"",
            b"null",
            b"\"\\\\p{L}+\"",
        ],
        mutate: None,
        run: |bytes| {
            let Ok(tokenizer) = Tokenizer::from_json(&text(bytes)) else {
                return "rejected";
            };
            let ids = tokenizer
                .encode("<|im_start|>user\nWhat is 12 + 30? café 🙂<|im_end|>\n")
                .unwrap_or_default();
            let _ = tokenizer.decode(&ids, false);
            let all: Vec<u32> = (0..64).collect();
            match tokenizer.decode(&all, true) {
                Ok(_) => "round_trip",
                Err(_) => "decode_rejected",
            }
        },
    }
}
