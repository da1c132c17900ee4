//! Job documents: checks with clear errors, one canonical form, built-in rewards, and the
//! job as an environment.

use grail_env::{Environment, PromptSpace};
use grail_jobs::spec::{parse_request, prompts_from_jsonl, Job, JobRequest, PromptRequest};
use grail_jobs::{JobEnvironment, JobError, RewardSpec};

const NOW: u64 = 1_800_000_000;

fn text(prompt: &str, answer: &str) -> PromptRequest {
    PromptRequest {
        prompt: Some(prompt.into()),
        answer: Some(answer.into()),
        ..Default::default()
    }
}

fn request(reward: RewardSpec, prompts: Vec<PromptRequest>) -> JobRequest {
    JobRequest {
        prompts,
        reward,
        group_size: 8,
        max_new_tokens: 128,
        temperature: 0.7,
        groups_per_prompt: 2,
        deadline_unix: NOW + 3_600,
        pass_threshold: 1.0,
    }
}

fn exact_job() -> JobRequest {
    request(
        RewardSpec::Exact,
        vec![text("Capital of France?", "Paris"), text("2+2?", "4")],
    )
}

/// A change to a valid request.
type Edit = Box<dyn Fn(&mut JobRequest)>;

/// The field named by a refusal.
fn refused_field(req: &JobRequest) -> String {
    match Job::from_request(req, NOW) {
        Err(JobError::Invalid { field, .. }) => field,
        Err(other) => panic!("refused for another reason: {other}"),
        Ok(_) => panic!("accepted"),
    }
}

#[test]
fn a_job_has_one_canonical_form_and_its_digest_names_it() {
    let (job, _) = Job::from_request(&exact_job(), NOW).unwrap();
    assert_eq!(job.temperature_milli, 700);
    assert_eq!(job.prompts[0].messages[0].role, "user");
    assert_eq!(job.groups_wanted(), 4);
    let bytes = job.canonical_bytes();
    let (again, _) = Job::from_canonical(&bytes).unwrap();
    assert_eq!(again, job);
    assert_eq!(again.id(), job.id());
    assert_eq!(
        job.id().to_string().parse::<grail_jobs::JobId>().unwrap(),
        job.id()
    );
    // The same job written as chat messages is the same job.
    let mut chat = exact_job();
    chat.prompts[0] = PromptRequest {
        messages: Some(vec![grail_env::template::Message::user(
            "Capital of France?",
        )]),
        answer: Some("Paris".into()),
        ..Default::default()
    };
    assert_eq!(Job::from_request(&chat, NOW).unwrap().0.id(), job.id());
    // Any change of content changes the name.
    let mut other = exact_job();
    other.prompts[1].answer = Some("5".into());
    assert_ne!(Job::from_request(&other, NOW).unwrap().0.id(), job.id());
    // Pretty-printed or reordered bytes of the same job are not its canonical form.
    let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let pretty = serde_json::to_vec_pretty(&value).unwrap();
    assert_eq!(
        Job::from_canonical(&pretty).unwrap_err(),
        JobError::NotCanonical
    );
}

#[test]
fn metadata_is_canonical_whatever_order_the_client_wrote() {
    let with_meta = |json: &str| {
        let mut r = exact_job();
        r.prompts[0].meta = Some(serde_json::from_str(json).unwrap());
        Job::from_request(&r, NOW).unwrap().0
    };
    let a = with_meta(r#"{"b": 1, "a": {"y": [1, 2], "x": "s"}}"#);
    let b = with_meta(r#"{"a": {"x": "s", "y": [1, 2]}, "b": 1}"#);
    assert_eq!(a.id(), b.id());
    assert_eq!(
        a.prompts[0].meta.as_deref(),
        Some(r#"{"a":{"x":"s","y":[1,2]},"b":1}"#)
    );
    // Canonical bytes whose metadata text is not canonical are refused.
    let forged = String::from_utf8(a.canonical_bytes()).unwrap().replace(
        r#"{\"a\":{\"x\":\"s\",\"y\":[1,2]},\"b\":1}"#,
        r#"{\"b\":1,\"a\":{\"x\":\"s\",\"y\":[1,2]}}"#,
    );
    assert_ne!(forged.as_bytes(), a.canonical_bytes());
    assert_eq!(
        Job::from_canonical(forged.as_bytes()).unwrap_err(),
        JobError::NotCanonical
    );
}

#[test]
fn malformed_jobs_are_refused_naming_the_field() {
    let cases: Vec<(&str, Edit)> = vec![
        ("prompts", Box::new(|r| r.prompts.clear())),
        ("group_size", Box::new(|r| r.group_size = 1)),
        ("group_size", Box::new(|r| r.group_size = 1_000)),
        ("max_new_tokens", Box::new(|r| r.max_new_tokens = 0)),
        ("temperature", Box::new(|r| r.temperature = 0.0)),
        ("temperature", Box::new(|r| r.temperature = f64::NAN)),
        ("groups_per_prompt", Box::new(|r| r.groups_per_prompt = 0)),
        ("deadline_unix", Box::new(|r| r.deadline_unix = NOW)),
        (
            "deadline_unix",
            Box::new(|r| r.deadline_unix = NOW + 365 * 86_400),
        ),
        ("pass_threshold", Box::new(|r| r.pass_threshold = 1.5)),
        (
            "prompts[1]",
            Box::new(|r| r.prompts[1].prompt = Some(String::new())),
        ),
        (
            "prompts[0]",
            Box::new(|r| {
                r.prompts[0].messages = Some(vec![grail_env::template::Message::user("x")])
            }),
        ),
        (
            "prompts[0].messages",
            Box::new(|r| {
                r.prompts[0] = PromptRequest {
                    messages: Some(vec![grail_env::template::Message::system(
                        "only a system message",
                    )]),
                    answer: Some("a".into()),
                    ..Default::default()
                }
            }),
        ),
        (
            "prompts[0].messages[0].role",
            Box::new(|r| {
                r.prompts[0] = PromptRequest {
                    messages: Some(vec![grail_env::template::Message {
                        role: "tool".into(),
                        content: "x".into(),
                    }]),
                    answer: Some("a".into()),
                    ..Default::default()
                }
            }),
        ),
        (
            "prompts[1].answer",
            Box::new(|r| r.prompts[1].answer = None),
        ),
        (
            "prompts[0].answer",
            Box::new(|r| r.prompts[0].answer = Some("x".repeat(5_000))),
        ),
        (
            "prompts[0].meta",
            Box::new(|r| r.prompts[0].meta = Some(serde_json::json!([1, 2]))),
        ),
        (
            "prompts[0].meta",
            Box::new(|r| r.prompts[0].meta = Some(serde_json::json!({ "k": "v".repeat(10_000) }))),
        ),
        (
            "prompts[0]",
            Box::new(|r| r.prompts[0].prompt = Some("x".repeat(40_000))),
        ),
        (
            "reward.tolerance",
            Box::new(|r| r.reward = RewardSpec::Numeric { tolerance: -1.0 }),
        ),
        (
            "prompts[0].answer",
            Box::new(|r| r.reward = RewardSpec::Numeric { tolerance: 0.0 }),
        ),
        (
            "reward.pattern",
            Box::new(|r| {
                r.reward = RewardSpec::Regex {
                    pattern: "(".into(),
                }
            }),
        ),
        (
            "reward.pattern",
            Box::new(|r| {
                r.reward = RewardSpec::Regex {
                    pattern: String::new(),
                }
            }),
        ),
        // A pattern whose compiled form is over the size cap.
        (
            "reward.pattern",
            Box::new(|r| {
                r.reward = RewardSpec::Regex {
                    pattern: "\\w{1000}{1000}".into(),
                }
            }),
        ),
        (
            "prompts[0].answer",
            Box::new(|r| {
                r.reward = RewardSpec::Choice {
                    choices: vec!["A".into(), "B".into()],
                }
            }),
        ),
        (
            "reward.choices[1]",
            Box::new(|r| {
                r.reward = RewardSpec::Choice {
                    choices: vec!["A".into(), "a".into()],
                }
            }),
        ),
        (
            "reward.choices",
            Box::new(|r| {
                r.reward = RewardSpec::Choice {
                    choices: vec!["Paris".into()],
                }
            }),
        ),
    ];
    for (field, edit) in cases {
        let mut r = exact_job();
        edit(&mut r);
        assert_eq!(refused_field(&r), field);
    }
}

#[test]
fn bodies_and_jsonl_are_read_with_clear_errors() {
    let body = serde_json::to_vec(&exact_job()).unwrap();
    assert_eq!(parse_request(&body).unwrap(), exact_job());
    let unknown = br#"{"prompts": [], "reward": {"kind": "exact"}, "group_size": 2,
        "max_new_tokens": 4, "deadline_unix": 5, "colour": "red"}"#;
    let e = parse_request(unknown).unwrap_err().to_string();
    assert!(e.contains("colour"), "{e}");
    let e = parse_request(br#"{"reward": {"kind": "telepathy"}}"#)
        .unwrap_err()
        .to_string();
    assert!(e.contains("telepathy"), "{e}");
    let big = vec![b' '; grail_jobs::limits::MAX_JOB_BYTES + 1];
    assert!(matches!(
        parse_request(&big),
        Err(JobError::TooLarge { .. })
    ));

    let jsonl = "\"plain text prompt\"\n\n{\"prompt\": \"p\", \"answer\": \"1\"}\n{\"messages\": [{\"role\": \"user\", \"content\": \"m\"}], \"meta\": {\"k\": 1}}\n";
    let prompts = prompts_from_jsonl(jsonl).unwrap();
    assert_eq!(prompts.len(), 3);
    assert_eq!(prompts[0].prompt.as_deref(), Some("plain text prompt"));
    assert_eq!(prompts[1].answer.as_deref(), Some("1"));
    match prompts_from_jsonl("\"ok\"\n{broken\n") {
        Err(JobError::Json { line: Some(2), .. }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn built_in_rewards_score_as_documented() {
    let score = |spec: RewardSpec, answer: &str, completion: &str| {
        let (job, scorer) =
            Job::from_request(&request(spec, vec![text("q", answer)]), NOW).unwrap();
        scorer
            .score(&job.prompts, 0, completion, &["<|im_end|>"])
            .reward
    };
    // exact: SOLUTION block, else boxed, else the last line; normalised.
    assert_eq!(
        score(
            RewardSpec::Exact,
            "Paris",
            "Thinking...\n<SOLUTION> paris </SOLUTION><|im_end|>"
        ),
        1.0
    );
    assert_eq!(score(RewardSpec::Exact, "Paris", "so \\boxed{Paris}"), 1.0);
    assert_eq!(score(RewardSpec::Exact, "Paris", "It is Lyon.\nParis"), 1.0);
    assert_eq!(
        score(RewardSpec::Exact, "Paris", "Paris\nor maybe Lyon"),
        0.0
    );
    assert_eq!(
        score(
            RewardSpec::Exact,
            "\\frac{1}{2}",
            "<SOLUTION>\\dfrac{1}{2}</SOLUTION>"
        ),
        1.0
    );
    // numeric: within the tolerance, fractions and decimals alike.
    let num = |t| RewardSpec::Numeric { tolerance: t };
    assert_eq!(score(num(0.0), "0.5", "the answer is 1/2"), 1.0);
    assert_eq!(score(num(0.001), "3.14159", "about 3.14"), 0.0);
    assert_eq!(score(num(0.001), "3.14159", "about 3.142"), 1.0);
    assert_eq!(score(num(0.0), "1000", "<SOLUTION>1,000</SOLUTION>"), 1.0);
    assert_eq!(score(num(0.0), "7", "no number here"), 0.0);
    // regex, with and without the answer.
    let re = |p: &str| RewardSpec::Regex { pattern: p.into() };
    assert_eq!(
        score(re("^<think>.*</think>"), "", "<think>x</think> y"),
        1.0
    );
    assert_eq!(
        score(re("^<think>.*</think>"), "", "y <think>x</think>"),
        0.0
    );
    assert_eq!(
        score(re("answer: {answer}$"), "a+b", "final answer: a+b"),
        1.0
    );
    assert_eq!(
        score(re("answer: {answer}$"), "a+b", "final answer: aab"),
        0.0
    );
    // choice: tags first, else the last standalone label.
    let abcd = || RewardSpec::Choice {
        choices: ["A", "B", "C", "D"].map(String::from).to_vec(),
    };
    assert_eq!(score(abcd(), "C", "A is wrong, B too, so (C)."), 1.0);
    assert_eq!(score(abcd(), "C", "Could it be C? No: D"), 0.0);
    assert_eq!(
        score(abcd(), "c", "<SOLUTION>(C)</SOLUTION> though D is close"),
        1.0
    );
    assert_eq!(score(abcd(), "C", "CAB DAD"), 0.0);
}

#[test]
fn a_job_is_an_environment() {
    let (job, scorer) = Job::from_request(&exact_job(), NOW).unwrap();
    let env = JobEnvironment::new(job.clone(), scorer);
    let id = env.id();
    assert_eq!(id.name, "job");
    assert_eq!(id.params, job.id().to_string());
    assert!(id.params.len() <= grail_proto::params::MAX_ENV_STRING_BYTES);
    assert_eq!(env.prompt_space(), PromptSpace::Finite(2));
    let p = env.problem(0).unwrap();
    assert_eq!(p.statement, "Capital of France?");
    assert_eq!(env.messages(&p), job.prompts[0].messages);
    let right = env.score(&p, "<SOLUTION>Paris</SOLUTION><|im_end|>", &["<|im_end|>"]);
    assert!(right.success && right.total == 1.0);
    let wrong = env.score(&env.problem(1).unwrap(), "<SOLUTION>Paris</SOLUTION>", &[]);
    assert!(!wrong.success && wrong.total == 0.0);
    assert!(env.problem(2).is_err());
    assert!(env.stratum(0).starts_with("job:"));
    // Loading the canonical bytes gives the same environment.
    let loaded = JobEnvironment::load(&job.canonical_bytes()).unwrap();
    assert_eq!(loaded.id(), id);
    // A partial pass threshold counts partial rewards as solved.
    let mut half = exact_job();
    half.reward = RewardSpec::Wasm {
        module: grail_jobs::reward::encode_module(
            &wat::parse_str(
                r#"(module (memory (export "memory") 1)
                     (func (export "alloc") (param i32) (result i32) (i32.const 64))
                     (func (export "reward") (param i32 i32 i32 i32 i32 i32) (result f64) (f64.const 0.6)))"#,
            )
            .unwrap(),
        ),
    };
    half.pass_threshold = 0.5;
    let (job, scorer) = Job::from_request(&half, NOW).unwrap();
    let env = JobEnvironment::new(job, scorer);
    let r = env.score(&env.problem(0).unwrap(), "anything", &[]);
    assert!(r.success && (r.total - 0.6).abs() < 1e-12);
}
