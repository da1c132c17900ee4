//! The soundness audit on the tiny model, with assertions on the chosen protocol
//! parameters: honest fp32 recomputations never fail a position, and every substitute is
//! accepted with probability ≤ 2^-40 per rollout. (`cargo xtask audit-proof` runs the same
//! code on SmolLM2.)

use grail_audit::{self as audit, Corpus, Native, Reference, SketchRule};
use grail_infer::tiny::{write_tiny_model, TinySpec};
use grail_infer::{no_progress, ModelDir};
use grail_proto::SketchCoefficients;
use rand_chacha::rand_core::SeedableRng;
use tch::{Device, Kind};

#[test]
fn native_rule_separates_honest_drift_from_substitutes_on_the_tiny_model() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny");
    write_tiny_model(&TinySpec::default(), &path).unwrap();
    let files = ModelDir::open(&path).unwrap();
    let model = files
        .load_model(Kind::Float, Device::Cpu, &mut no_progress)
        .unwrap();
    let prompts: Vec<Vec<u32>> = (0..6)
        .map(|i| {
            let text = format!("<|im_start|>user\nWhat is {i} times {}? Think step by step.<|im_end|>\n<|im_start|>assistant\n", 7 + i);
            files.tokenizer.encode(&text).unwrap()
        })
        .collect();
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(11);
    let corpus = Corpus::sample(
        &model,
        &prompts,
        4,
        96,
        &files.eos_ids,
        &mut rng,
        &mut no_progress,
    )
    .unwrap();
    let hidden = model.config().hidden_size;
    let native = Native(SketchCoefficients::derive(&[0x5a; 32], hidden));
    let v5 = Reference::grail_v5(&"5a".repeat(32));
    let rules: [&dyn SketchRule; 2] = [&native, &v5];
    let load = |kind: Kind, device: Device| files.load_model(kind, device, &mut no_progress);
    let report = audit::run(&model, &load, &corpus, &rules, &mut |_| {}).unwrap();
    println!("{}", report.markdown());

    for row in report
        .drift
        .iter()
        .filter(|r| r.condition.starts_with("fp32"))
    {
        let d = &row.drift[0];
        assert!(d.positions >= corpus.positions());
        assert_eq!(
            d.failures, 0,
            "honest drift fails positions: {} (max distance {})",
            row.condition, d.max
        );
    }
    assert_eq!(report.forgery.len(), 7);
    for row in &report.forgery {
        let f = &row.forgery[0];
        assert!(f.positions > 0);
        assert!(
            f.log2_rollout_acceptance <= -40.0,
            "{} accepted with log2 p = {:.1}",
            row.substitute,
            f.log2_rollout_acceptance
        );
    }
    // The reference rule's weakness, kept visible: it accepts unrelated weights.
    let random = &report.forgery[0];
    assert!(random.substitute.starts_with("random"));
    assert!(
        random.forgery[1].log2_rollout_acceptance > -40.0,
        "compat v5 rejected random weights"
    );
}
