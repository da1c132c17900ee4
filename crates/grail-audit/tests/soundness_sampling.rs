//! The sampling audit on the tiny model, with assertions on the protocol's margin and
//! ambiguous cap: honest recomputations (batching, padding, threads, the miner's KV-cache
//! path) are never rejected, every off-policy rollout that differs from the honest one is
//! rejected, and bf16 sampling almost always is. (`cargo xtask audit-sampling` runs the
//! same code on SmolLM2.)

use grail_audit::sampling::{self, Corpus, Plan, Setup};
use grail_infer::tiny::{write_tiny_model, TinySpec};
use grail_infer::{no_progress, InferError, ModelDir};
use grail_proto::params::SAMPLING_MARGIN;
use grail_proto::Hotkey;
use tch::{Device, Kind};

#[test]
fn sampling_check_admits_honest_drift_and_rejects_off_policy_rollouts_on_the_tiny_model() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny");
    write_tiny_model(&TinySpec::default(), &path).unwrap();
    let files = ModelDir::open(&path).unwrap();
    let model = files
        .load_model(Kind::Float, Device::Cpu, &mut no_progress)
        .unwrap();
    let setup = Setup {
        window_randomness: [0x5a; 32],
        hotkey: Hotkey([0x17; 32]),
        rollouts_per_prompt: 4,
        max_new_tokens: 48,
        eos: files.eos_ids.clone(),
    };
    let corpus = Corpus::sample(
        &model,
        &setup,
        1_500,
        &mut |i| -> Result<Vec<u32>, InferError> {
            let text = format!("<|im_start|>user\nWhat is {i} times {}? Think step by step.<|im_end|>\n<|im_start|>assistant\n", 7 + i);
            files.tokenizer.encode(&text)
        },
        &mut |_| {},
    )
    .unwrap();
    let plan = Plan {
        setup: setup.clone(),
        attack_slots: corpus.completions.len(),
        best_of: 4,
        seed: 7,
        batch: 16,
        bf16: true,
        all_conditions: true,
    };
    let load = |kind: Kind, device: Device| files.load_model(kind, device, &mut no_progress);
    let report = sampling::run(&model, &load, &corpus, &plan, &mut |_| {}).unwrap();
    println!(
        "{}",
        report.markdown(SAMPLING_MARGIN, &[SAMPLING_MARGIN / 10.0, SAMPLING_MARGIN])
    );

    let drift = report.drift(SAMPLING_MARGIN);
    assert_eq!(drift.len(), 5);
    for d in &drift {
        assert_eq!(d.positions, corpus.positions(), "{}", d.condition);
        assert_eq!(
            (d.misses, d.rejected),
            (0, 0),
            "honest rollouts rejected: {} (max excess {:.2e}, max shift {:.2e})",
            d.condition,
            d.max_excess,
            d.max_shift
        );
    }
    // The margin is far above honest drift, and honest rollouts rarely need it.
    assert!(report.largest_honest_drift() * 10.0 <= SAMPLING_MARGIN);
    let strategies = report.strategies(SAMPLING_MARGIN);
    assert_eq!(strategies.len(), 7, "bf16 and six off-policy strategies");
    for st in &strategies {
        assert_eq!(st.rollouts, corpus.completions.len(), "{}", st.name);
        assert_eq!(
            st.identical_rejected, 0,
            "{}: a rollout identical to the honest one was rejected",
            st.name
        );
        assert!(
            st.differing > 0,
            "{}: no rollout differs, so nothing was tested",
            st.name
        );
    }
    // bf16 sampling is not admitted. A bf16 rollout that deviates only within the margin
    // (at most 2 + n/64 positions) is an m-close sample and may pass; that happens for
    // about 1 in 250 rollouts on this model, so only the bulk is asserted here.
    let bf16 = &strategies[0];
    assert!(bf16.name.starts_with("bf16"));
    assert!(
        bf16.accepted * 10 <= bf16.differing,
        "bf16: {} of {} differing rollouts accepted",
        bf16.accepted,
        bf16.differing
    );
    for st in &strategies[1..] {
        // Near-policy models (1 % weight noise, int8) diverge where the honest gap is
        // small: a rollout whose only divergence is one position within the margin is a
        // δ-close sample and passes (its group then earns no zone credit,
        // `rules::group::credited_in_zone`); on this model that is about 1 in 25. Whole-
        // distribution changes (temperature, best-of-n) and edits never pass.
        let near_policy = st.name.starts_with("weights") || st.name.starts_with("int8");
        if near_policy {
            assert!(
                st.accepted * 10 <= st.differing,
                "{}: {} of {} differing rollouts accepted",
                st.name,
                st.accepted,
                st.differing
            );
        } else {
            assert_eq!(
                st.accepted, 0,
                "{}: {} of {} differing rollouts accepted",
                st.name, st.accepted, st.differing
            );
        }
    }
}
