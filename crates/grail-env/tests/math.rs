//! Math environments: answers, datasets, registry.

use std::io::Write;

use grail_env::math::{self, DatasetFormat, DatasetMath, ProceduralMath};
use grail_env::{by_name, EnvError, Environment, PromptSpace, Target};

const EOS: &[&str] = &["<|im_end|>"];

#[test]
fn procedural_answers_score_correct_in_every_accepted_form() {
    let env = ProceduralMath;
    let mut levels = [0usize; 4];
    for id in 0..400u64 {
        let p = env.problem(id).unwrap();
        let Target::Math(ref a) = p.target else {
            panic!("math target")
        };
        let g = math::generate(id);
        levels[g.level as usize] += 1;
        let good =
            format!("<start_working_out>..</end_working_out><SOLUTION>{a}</SOLUTION><|im_end|>");
        let r = env.score(&p, &good, EOS);
        assert!(r.success, "id {id}: {good} -> {r:?}");
        let boxed = format!("so the answer is \\boxed{{{a}}}");
        assert!(env.score(&p, &boxed, EOS).success, "id {id} boxed");
        let wrong = format!("<SOLUTION>{}</SOLUTION>", g.answer.num + 1);
        if g.answer.den == 1 {
            assert!(!env.score(&p, &wrong, EOS).success, "id {id} wrong");
        }
    }
    assert!(
        levels.iter().all(|&n| n > 50),
        "all levels occur: {levels:?}"
    );
}

#[test]
fn equivalent_forms_by_value() {
    let env = ProceduralMath;
    // Find a fraction answer.
    let id = (0..).find(|&i| math::generate(i).answer.den > 1).unwrap();
    let p = env.problem(id).unwrap();
    let a = math::generate(id).answer;
    for form in [
        format!("\\frac{{{}}}{{{}}}", a.num, a.den),
        format!("\\dfrac{{{}}}{{{}}}", a.num, a.den),
        format!("{}/{}", a.num * 3, a.den * 3),
    ] {
        let r = env.score(&p, &format!("<SOLUTION>{form}</SOLUTION>"), EOS);
        assert!(r.success, "{form}");
    }
}

fn write_tmp(name: &str, body: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("grail-env-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::File::create(&path)
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    path
}

#[test]
fn gsm8k_and_math_files_load_and_score() {
    let gsm = write_tmp(
        "gsm.jsonl",
        concat!(
            "{\"question\": \"Tom has 3 apples and buys 4. How many?\", \"answer\": \"3+4=7\\n#### 7\"}",
            "\n\n",
            "{\"question\": \"Big\", \"answer\": \"#### 1,234\"}",
            "\n"
        ),
    );
    let env = by_name("gsm8k", Some(&gsm)).unwrap();
    assert_eq!(env.prompt_space(), PromptSpace::Finite(2));
    let p = env.problem(1).unwrap();
    assert!(env.score(&p, "<SOLUTION>1234</SOLUTION>", EOS).success);
    assert!(env.score(&p, "the total is 1,234.", EOS).success);
    assert!(matches!(
        env.problem(2),
        Err(EnvError::PromptOutOfRange { size: 2, .. })
    ));
    assert!(env.id().params.starts_with("sha256="));

    let m = write_tmp(
        "math.jsonl",
        r#"{"problem": "Half of one?", "solution": "It is $\\boxed{\\frac{1}{2}}$."}"#,
    );
    let env = DatasetMath::load(&m, DatasetFormat::HendrycksMath).unwrap();
    let p = env.problem(0).unwrap();
    assert!(env.score(&p, "<SOLUTION>0.5</SOLUTION>", EOS).success);
    assert!(
        env.score(&p, "<SOLUTION>\\boxed{\\dfrac{1}{2}}</SOLUTION>", EOS)
            .success
    );
}

#[test]
fn malformed_dataset_lines_name_file_and_line() {
    let bad = write_tmp(
        "bad.jsonl",
        "{\"question\": \"q\", \"answer\": \"#### 1\"}\n{\"question\": \"q\"}\n",
    );
    let err = DatasetMath::load(&bad, DatasetFormat::Gsm8k)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("bad.jsonl:2") && err.contains("answer"),
        "{err}"
    );
    let bad = write_tmp("bad2.jsonl", "not json\n");
    let err = DatasetMath::load(&bad, DatasetFormat::Gsm8k)
        .unwrap_err()
        .to_string();
    assert!(err.contains(":1: invalid JSON"), "{err}");
    let err = DatasetMath::load(
        std::path::Path::new("/nonexistent/x.jsonl"),
        DatasetFormat::Gsm8k,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("cannot read dataset /nonexistent/x.jsonl"),
        "{err}"
    );
    assert!(by_name("gsm8k", None).is_err());
    let err = by_name("nope", None)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("known: sat"), "{err}");
}
