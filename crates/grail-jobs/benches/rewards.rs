//! What a reward costs per completion: the WebAssembly sandbox (fresh instance, inputs
//! copied in, one call) against the built-in it equals (`regex:{answer}`), and a module's
//! compile-and-check cost at job load. `cargo bench -p grail-jobs --bench rewards`.

use criterion::{criterion_group, criterion_main, Criterion};
use grail_jobs::reward::encode_module;
use grail_jobs::spec::{Job, JobRequest, PromptRequest};
use grail_jobs::wasm::RewardModule;
use grail_jobs::RewardSpec;

fn module() -> Vec<u8> {
    wat::parse_file(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/jobs/sums/contains.wat"
    ))
    .expect("example module")
}

fn job(reward: RewardSpec) -> (Job, grail_jobs::Scorer) {
    let req = JobRequest {
        prompts: vec![PromptRequest {
            prompt: Some("What is 17 + 25?".into()),
            answer: Some("42".into()),
            ..Default::default()
        }],
        reward,
        group_size: 8,
        max_new_tokens: 256,
        temperature: 1.0,
        groups_per_prompt: 1,
        deadline_unix: 2,
        pass_threshold: 1.0,
    };
    Job::from_request(&req, 1).expect("valid job")
}

fn rewards(c: &mut Criterion) {
    // A 256-token-like completion (about 1 KB) with the answer at the end.
    let completion = format!(
        "{} so the answer is 42.",
        "Let me add the tens, then the ones. ".repeat(28)
    );
    let (wj, ws) = job(RewardSpec::Wasm {
        module: encode_module(&module()),
    });
    let (rj, rs) = job(RewardSpec::Regex {
        pattern: "{answer}".into(),
    });
    assert_eq!(
        ws.score(&wj.prompts, 0, &completion, &[]),
        rs.score(&rj.prompts, 0, &completion, &[])
    );
    let mut g = c.benchmark_group("reward per completion (1 KB)");
    g.bench_function("wasm sandbox (contains.wat)", |b| {
        b.iter(|| ws.score(&wj.prompts, 0, &completion, &[]))
    });
    g.bench_function("built-in regex:{answer}", |b| {
        b.iter(|| rs.score(&rj.prompts, 0, &completion, &[]))
    });
    g.finish();
    let bytes = module();
    c.bench_function("compile and check a module (job load)", |b| {
        b.iter(|| RewardModule::compile(&bytes).expect("valid"))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(3));
    targets = rewards
}
criterion_main!(benches);
