//! SAT environment: generator ranges, solver/checker agreement, parser and rewards.

use grail_env::sat::{self, SatEnv, SatInstance};
use grail_env::{Environment, Target};

const EOS: &[&str] = &["<|im_end|>", "</s>"];

fn bits(a: &[bool]) -> String {
    a.iter()
        .map(|&b| if b { "1" } else { "0" })
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn generator_respects_ranges_and_is_deterministic() {
    for seed in 0..2000u64 {
        let i = SatInstance::generate(seed);
        assert!((3..=10).contains(&i.num_vars));
        assert!((5..=20).contains(&i.clauses.len()));
        for c in &i.clauses {
            assert!(c.iter().all(|l| (1..=i.num_vars).contains(&l.var)));
            assert!(c[0].var != c[1].var && c[1].var != c[2].var && c[0].var != c[2].var);
        }
        assert_eq!(i, SatInstance::generate(seed));
    }
}

#[test]
fn checker_agrees_with_solver_on_thousands_of_instances() {
    let (mut sat_count, mut unsat_count) = (0, 0);
    for seed in 0..5000u64 {
        let inst = SatInstance::generate(seed);
        let n = inst.num_vars as usize;
        // Brute force over all 2^n assignments is the ground truth.
        let brute = (0u32..1 << n).find_map(|m| {
            let a: Vec<bool> = (0..n).map(|i| m >> i & 1 == 1).collect();
            inst.satisfied_by(&a).then_some(a)
        });
        match sat::solve(&inst) {
            Some(witness) => {
                assert!(inst.satisfied_by(&witness), "seed {seed}: bad witness");
                sat_count += 1;
            }
            None => {
                assert!(
                    brute.is_none(),
                    "seed {seed}: solver says unsat, brute force found one"
                );
                unsat_count += 1;
            }
        }
        assert_eq!(brute.is_some(), sat::solve(&inst).is_some(), "seed {seed}");
    }
    // Both outcomes occur, so both branches were exercised.
    assert!(
        sat_count > 1000 && unsat_count > 0,
        "{sat_count} sat / {unsat_count} unsat"
    );
}

fn satisfiable_seed() -> (u64, SatInstance, Vec<bool>) {
    (0..)
        .find_map(|s| {
            let i = SatInstance::generate(s);
            sat::solve(&i).map(|w| (s, i, w))
        })
        .unwrap()
}

#[test]
fn eos_terminated_correct_answer_scores_as_correct() {
    let (seed, _, w) = satisfiable_seed();
    let env = SatEnv;
    let p = env.problem(seed).unwrap();
    let text = format!(
        "<start_working_out>try values</end_working_out>\n<SOLUTION>{}</SOLUTION><|im_end|>",
        bits(&w)
    );
    let r = env.score(&p, &text, EOS);
    assert!(r.success, "{r:?}");
    assert_eq!(r.component("correctness"), Some(1.0));
    assert_eq!(r.component("no_trailing"), Some(1.0));
    assert_eq!(r.component("format"), Some(1.0));
    let max: f64 = sat::WEIGHTS.iter().map(|w| w.1).sum();
    assert!((r.total - max).abs() < 1e-12);
    // Same with </s> as the EOS text.
    let text = text.replace("<|im_end|>", "</s>");
    assert!(env.score(&p, &text, EOS).success);
}

#[test]
fn wrong_and_malformed_answers() {
    let (seed, inst, w) = satisfiable_seed();
    let env = SatEnv;
    let p = env.problem(seed).unwrap();
    // Real trailing text (not EOS) blocks correctness and costs no_trailing.
    let r = env.score(
        &p,
        &format!("<SOLUTION>{}</SOLUTION> and more", bits(&w)),
        EOS,
    );
    assert!(!r.success);
    assert!(r.component("no_trailing").unwrap() < 1.0);
    // Wrong length.
    let short = bits(&w[..w.len() - 1]);
    let r = env.score(&p, &format!("<SOLUTION>{short}</SOLUTION>"), EOS);
    assert!(!r.success);
    assert_eq!(r.component("assignment_length"), Some(0.0));
    // Non-bits inside the block.
    let r = env.score(&p, &format!("<SOLUTION>x1={}</SOLUTION>", bits(&w)), EOS);
    assert_eq!(r.component("bits_only"), Some(0.0));
    assert!(!r.success);
    // No tags at all.
    let r = env.score(&p, &bits(&w), EOS);
    assert_eq!(r.total, 0.0);
    // An unsatisfying assignment of the right shape: format ok, not correct.
    let wrong: Vec<bool> = (0..1u32 << inst.num_vars)
        .map(|m| {
            (0..inst.num_vars)
                .map(|i| m >> i & 1 == 1)
                .collect::<Vec<_>>()
        })
        .find(|a| !inst.satisfied_by(a))
        .unwrap();
    let r = env.score(&p, &format!("<SOLUTION>{}</SOLUTION>", bits(&wrong)), EOS);
    assert!(!r.success);
    assert_eq!(r.component("format"), Some(1.0));
    match p.target {
        Target::Sat(ref i) => assert_eq!(i, &inst),
        _ => panic!("sat env made a non-sat target"),
    }
}
