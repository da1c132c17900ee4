//! The WebAssembly reward sandbox: a good module, and every kind of bad one, each refused
//! or contained with a clear error.

use grail_jobs::reward::encode_module;
use grail_jobs::spec::{Job, JobRequest, PromptRequest};
use grail_jobs::wasm::{CallError, ModuleError, RewardInput, RewardModule};
use grail_jobs::{JobError, RewardSpec};

/// The allocator and memory every test module shares; `body` adds a `reward` export.
fn module(body: &str) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module
  (memory (export "memory") 1)
  (global $top (mut i32) (i32.const 1024))
  (func (export "alloc") (param $n i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $top))
    (global.set $top (i32.add (global.get $top) (local.get $n)))
    (local.get $p))
  {body})"#
    ))
    .expect("test module is valid text")
}

const REWARD: &str = r#"(func (export "reward") (param i32 i32 i32 i32 i32 i32) (result f64)"#;

fn input() -> RewardInput<'static> {
    RewardInput {
        completion: "the answer is 42",
        answer: "42",
        meta: "{}",
    }
}

fn job_with(module: &[u8]) -> JobRequest {
    JobRequest {
        prompts: vec![PromptRequest {
            prompt: Some("What is six times seven?".into()),
            answer: Some("42".into()),
            ..Default::default()
        }],
        reward: RewardSpec::Wasm {
            module: encode_module(module),
        },
        group_size: 4,
        max_new_tokens: 64,
        temperature: 1.0,
        groups_per_prompt: 1,
        deadline_unix: 2_000,
        pass_threshold: 1.0,
    }
}

/// The error a job with this module is refused with.
fn refusal(module: &[u8]) -> String {
    match Job::from_request(&job_with(module), 1_000) {
        Ok(_) => panic!("the job was accepted"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_well_behaved_module_gives_its_reward() {
    let m = RewardModule::compile(&module(&format!("{REWARD} (f64.const 0.75))"))).unwrap();
    assert_eq!(m.call(input()), Ok(0.75));
    assert!(Job::from_request(
        &job_with(&module(&format!("{REWARD} (f64.const 1))"))),
        1_000
    )
    .is_ok());
}

#[test]
fn an_infinite_loop_runs_out_of_fuel_and_the_job_is_refused() {
    let looping = module(&format!("{REWARD} (loop $l (br $l)) (f64.const 1))"));
    let m = RewardModule::compile(&looping).unwrap();
    assert_eq!(m.call(input()), Err(CallError::OutOfFuel));
    let e = refusal(&looping);
    assert!(
        e.contains("reward.module") && e.contains("out of fuel"),
        "{e}"
    );
}

#[test]
fn a_memory_bomb_is_refused() {
    // Declares 1 GiB of memory: cannot be instantiated under the 16 MiB cap.
    let declared = wat::parse_str(format!(
        r#"(module (memory (export "memory") 16384)
             (func (export "alloc") (param i32) (result i32) (i32.const 0))
             {REWARD} (f64.const 1)))"#
    ))
    .unwrap();
    match RewardModule::compile(&declared) {
        Err(ModuleError::Instantiate { .. }) => {}
        other => panic!("{other:?}"),
    }
    assert!(refusal(&declared).contains("cannot be instantiated"));
    // Grows page by page until refused: memory.grow fails (-1) at the cap, so the module
    // sees the limit and returns the number of pages it got, never more than 256.
    let grower = module(&format!(
        r#"{REWARD} (local $n i32)
             (block $full (loop $l
               (br_if $full (i32.eq (memory.grow (i32.const 1)) (i32.const -1)))
               (local.set $n (i32.add (local.get $n) (i32.const 1)))
               (br $l)))
             (f64.convert_i32_u (memory.size)))"#
    ));
    let m = RewardModule::compile(&grower).unwrap();
    assert_eq!(m.call(input()), Ok(256.0));
}

#[test]
fn a_trap_is_a_zero_reward_at_scoring_and_a_refusal_at_submission() {
    let trapping = module(&format!("{REWARD} unreachable)"));
    let m = RewardModule::compile(&trapping).unwrap();
    assert!(matches!(m.call(input()), Err(CallError::Trap { .. })));
    let e = refusal(&trapping);
    assert!(e.contains("trapped"), "{e}");
    // Deep recursion is a trap too, not a crash of the host.
    let recursing = module(&format!(
        r#"(func $down (param i32) (result i32) (call $down (i32.add (local.get 0) (i32.const 1))))
           {REWARD} (f64.convert_i32_s (call $down (i32.const 0))))"#
    ));
    let m = RewardModule::compile(&recursing).unwrap();
    assert!(matches!(m.call(input()), Err(CallError::Trap { .. })));
}

#[test]
fn missing_or_mistyped_exports_are_named() {
    let no_reward = module("");
    let e = RewardModule::compile(&no_reward).unwrap_err().to_string();
    assert!(
        e.contains("`reward: (i32, i32, i32, i32, i32, i32) -> f64`"),
        "{e}"
    );
    let wrong_type = module(r#"(func (export "reward") (param i32) (result f64) (f64.const 1))"#);
    assert!(matches!(
        RewardModule::compile(&wrong_type),
        Err(ModuleError::Export { .. })
    ));
    let no_memory = wat::parse_str(format!(
        r#"(module (func (export "alloc") (param i32) (result i32) (i32.const 0)) {REWARD} (f64.const 1)))"#
    ))
    .unwrap();
    let e = RewardModule::compile(&no_memory).unwrap_err().to_string();
    assert!(e.contains("`memory`"), "{e}");
}

#[test]
fn imports_are_refused_whatever_they_name() {
    for (module_name, item) in [
        ("wasi_snapshot_preview1", "fd_write"),
        ("env", "now"),
        ("env", "random"),
    ] {
        let bytes = wat::parse_str(format!(
            r#"(module (import "{module_name}" "{item}" (func (param i32) (result i32)))
                 (memory (export "memory") 1)
                 (func (export "alloc") (param i32) (result i32) (i32.const 0))
                 {REWARD} (f64.const 1)))"#
        ))
        .unwrap();
        match RewardModule::compile(&bytes) {
            Err(ModuleError::Import { module, name }) => {
                assert_eq!((module.as_str(), name.as_str()), (module_name, item))
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn a_huge_module_and_non_wasm_bytes_are_refused() {
    let huge = vec![0u8; grail_jobs::limits::MAX_MODULE_BYTES + 1];
    assert!(matches!(
        RewardModule::compile(&huge),
        Err(ModuleError::TooLarge { .. })
    ));
    assert!(refusal(&huge).contains("the limit is"));
    assert!(matches!(
        RewardModule::compile(b"\0asm not really"),
        Err(ModuleError::Invalid { .. })
    ));
    // A start function would run before any limit applies to a call: refused.
    let start = module(&format!("(func $s) (start $s) {REWARD} (f64.const 1))"));
    assert!(RewardModule::compile(&start).is_err());
    let mut bad = job_with(&module(&format!("{REWARD} (f64.const 1))")));
    bad.reward = RewardSpec::Wasm {
        module: "not base64!".into(),
    };
    let e = Job::from_request(&bad, 1_000).unwrap_err();
    assert!(
        matches!(e, JobError::Invalid { ref field, .. } if field == "reward.module"),
        "{e}"
    );
}

#[test]
fn nan_is_refused_at_submission_and_zero_when_scoring() {
    let nan = module(&format!("{REWARD} (f64.div (f64.const 0) (f64.const 0)))"));
    assert!(refusal(&nan).contains("NaN"));
    // NaN only when the completion is long: passes the probe, scores 0 on such input.
    let sometimes = module(&format!(
        r#"{REWARD} (if (result f64) (i32.gt_u (local.get 1) (i32.const 100))
                      (then (f64.div (f64.const 0) (f64.const 0)))
                      (else (f64.const 2))))"#
    ));
    let (job, scorer) = Job::from_request(&job_with(&sometimes), 1_000).unwrap();
    let long = "x".repeat(200);
    assert_eq!(scorer.score(&job.prompts, 0, &long, &[]).reward, 0.0);
    // Above 1 is clamped.
    assert_eq!(scorer.score(&job.prompts, 0, "short", &[]).reward, 1.0);
}

#[test]
fn nan_bits_are_canonical_so_no_module_can_tell_the_hardware() {
    // Returns the sign bit of 0/0. x86 hardware makes a negative NaN (sign 1), ARM a
    // positive one; the deterministic sandbox makes the canonical positive NaN on both.
    let m = RewardModule::compile(&module(&format!(
        r#"{REWARD} (local $z f64) (f64.convert_i64_u (i64.shr_u
             (i64.reinterpret_f64 (f64.div (local.get $z) (local.get $z)))
             (i64.const 63))))"#
    )))
    .unwrap();
    assert_eq!(m.call(input()), Ok(0.0));
}

#[test]
fn every_call_starts_from_a_fresh_instance() {
    // Counts its calls in a global: 1 on the first call of an instance.
    let counter = module(&format!(
        r#"(global $calls (mut i32) (i32.const 0))
           {REWARD} (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
                    (f64.convert_i32_u (global.get $calls)))"#
    ));
    let m = RewardModule::compile(&counter).unwrap();
    for _ in 0..3 {
        assert_eq!(m.call(input()), Ok(1.0));
    }
}

#[test]
fn the_inputs_arrive_as_documented() {
    // Returns completion length + 1000 × answer length + 1e6 × metadata length.
    let lengths = module(&format!(
        r#"{REWARD} (f64.add (f64.convert_i32_u (local.get 1))
             (f64.add (f64.mul (f64.const 1000) (f64.convert_i32_u (local.get 3)))
                      (f64.mul (f64.const 1000000) (f64.convert_i32_u (local.get 5))))))"#
    ));
    let m = RewardModule::compile(&lengths).unwrap();
    assert_eq!(
        m.call(RewardInput {
            completion: "abcde",
            answer: "42",
            meta: "{\"a\":1}",
        }),
        Ok(5.0 + 2000.0 + 7_000_000.0)
    );
}

/// Scores every completion for every answer with the module and with the built-in
/// `regex` twin, asserts equal rewards, and that both 0 and 1 occur often enough for the
/// comparison to tell rewards apart.
fn assert_twins(module: &[u8], pattern: &str, answers: &[&str], completions: &[&str]) {
    let prompts: Vec<PromptRequest> = answers
        .iter()
        .map(|a| PromptRequest {
            prompt: Some(format!("question with answer {a}")),
            answer: Some(a.to_string()),
            ..Default::default()
        })
        .collect();
    let mut wasm_job = job_with(module);
    wasm_job.prompts = prompts.clone();
    let mut regex_job = wasm_job.clone();
    regex_job.reward = RewardSpec::Regex {
        pattern: pattern.into(),
    };
    let (wj, ws) = Job::from_request(&wasm_job, 1_000).unwrap();
    let (rj, rs) = Job::from_request(&regex_job, 1_000).unwrap();
    let mut ones = 0;
    for i in 0..prompts.len() {
        for c in completions {
            let w = ws.score(&wj.prompts, i, c, &["<|im_end|>"]);
            let r = rs.score(&rj.prompts, i, c, &["<|im_end|>"]);
            assert_eq!(w, r, "prompt {i}, completion {c:?}");
            ones += usize::from(w.reward == 1.0);
        }
    }
    let all = prompts.len() * completions.len();
    assert!(ones > 5 && ones < all - 5, "{ones} of {all}");
}

#[test]
fn the_contains_module_equals_its_built_in_twin() {
    let bytes = wat::parse_file(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/jobs/sums/contains.wat"
    ))
    .unwrap();
    let answers = ["42", "Paris", "x^2+1", "", "ünïcode", "a.b*c"];
    let completions = [
        "The answer is 42.",
        "It is paris",
        "Paris<|im_end|>",
        "x^2+1",
        "x^2 + 1",
        "",
        "ünïcode!",
        "abc",
        "a.b*c and a.bbc",
        "4 2",
    ];
    assert_twins(&bytes, "{answer}", &answers, &completions);
}

/// `examples/rewards/whole-answer`: a Rust crate built for wasm32 (`cargo xtask
/// reward-example` rebuilds the committed module and checks it is the source's).
#[test]
fn the_rust_crate_module_equals_its_built_in_twin() {
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/rewards/whole-answer/whole_answer.wasm"
    ))
    .unwrap();
    let answers = ["42", "7", "-3", "3.5", "Paris", "", "ünï"];
    let completions = [
        "The answer is 42.",
        "142",
        "420 or 42",
        "42<|im_end|>",
        "7",
        "77 is not 7",
        "x=-3;",
        "--3",
        "3.50",
        "it is 3.5!",
        "Paris2",
        "in Paris",
        "",
        "123",
        "ünï1",
        "ünïcode",
        "4 2",
    ];
    assert_twins(
        &bytes,
        "(?:^|[^0-9]){answer}(?:[^0-9]|$)",
        &answers,
        &completions,
    );
}
