//! GGUF import of the tiny model as `tiny_gguf` writes it: llama.cpp's tensor names and
//! Q/K row permutation, F32 and Q8_0/Q4_1 storage, and the tokenizer rebuilt from the
//! GGUF vocabulary must give back the same model and the same token ids.

use std::collections::HashMap;

use grail_infer::gguf::TensorType;
use grail_infer::import::import_gguf;
use grail_infer::tiny::{gguf_storage, tiny_gguf, tiny_tokenizer, TinySpec, CHATML_TEMPLATE};
use grail_infer::{no_progress, ModelDir, Tokenizer};
use tch::{Device, Kind, Tensor};

#[test]
fn gguf_import_recovers_weights_and_tokenizer() {
    let spec = TinySpec::default();
    let (tokenizer_json, vocab_size) = tiny_tokenizer(spec.merges);
    let (file, weights) = tiny_gguf(&spec);

    let dir = tempfile::tempdir().unwrap();
    let gguf = dir.path().join("tiny.gguf");
    std::fs::write(&gguf, &file).unwrap();
    let out = dir.path().join("imported");
    import_gguf(&gguf, &out, &mut no_progress).unwrap();

    // Weights: F32 tensors exact, quantized ones within one quantization step.
    let imported: HashMap<String, Tensor> = Tensor::read_safetensors(out.join("model.safetensors"))
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(imported.len(), weights.len());
    for (name, original) in &weights {
        let got = &imported[name];
        assert_eq!(got.size(), original.size(), "{name}");
        let err = f64::try_from((got - original).abs().max()).unwrap();
        let range = f64::try_from(original.abs().max()).unwrap();
        let bound = match gguf_storage(name) {
            TensorType::F32 => 0.0,
            TensorType::Q8_0 => range / 127.0,
            _ => 2.0 * range / 15.0,
        };
        assert!(err <= bound + 1e-6, "{name}: error {err} > {bound}");
    }

    // The model runs, and agrees with the original on the same tokens (up to quantization).
    let files = ModelDir::open(&out).unwrap();
    assert_eq!(files.eos_ids, vec![2]);
    assert_eq!(files.chat_template(), Some(CHATML_TEMPLATE));
    let model = files
        .load_model(Kind::Float, Device::Cpu, &mut no_progress)
        .unwrap();
    assert_eq!(model.config().vocab_size, vocab_size);
    assert!(model.config().tie_word_embeddings);

    // The tokenizer rebuilt from GGUF tokenizes like the original tokenizer.json.
    let original = Tokenizer::from_json(&tokenizer_json.to_string()).unwrap();
    for text in [
        "<|im_start|>user\nWhat is 12 + 30?<|im_end|>\n<|im_start|>assistant\n",
        "The answer is 42. SOLUTION: x1=T x2=F",
        "café 中文 🙂 \t\n  spaces   and 007 digits",
    ] {
        assert_eq!(
            files.tokenizer.encode(text).unwrap(),
            original.encode(text).unwrap(),
            "{text:?}"
        );
    }

    // A truncated file is an error naming the file, not a panic.
    std::fs::write(&gguf, &file[..file.len() / 2]).unwrap();
    let err = import_gguf(&gguf, &dir.path().join("bad"), &mut no_progress).unwrap_err();
    assert!(err.to_string().contains("tiny.gguf"), "{err}");
    assert!(
        !dir.path().join("bad").exists(),
        "nothing is written for a bad file"
    );
}
