//! Parsers never panic on arbitrary input and stay bounded on huge input.

use grail_env::answer::{self, Rational};
use grail_env::{math, sat, Environment};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn scoring_arbitrary_text_never_panics(s in ".{0,300}", seed in 0u64..100) {
        let env = sat::SatEnv;
        let p = env.problem(seed).unwrap();
        let r = env.score(&p, &s, &["<|im_end|>", ""]);
        prop_assert!(r.total.is_finite());
        let m = math::ProceduralMath;
        let p = m.problem(seed).unwrap();
        prop_assert!(m.score(&p, &s, &["<|im_end|>"]).total.is_finite());
        let _ = answer::last_boxed(&s);
        let _ = answer::last_number(&s);
        let _ = Rational::parse(&s);
        let _ = answer::normalize(&s);
    }

    #[test]
    fn tag_soup_never_panics(parts in proptest::collection::vec(
        prop_oneof![
            Just("<SOLUTION>".to_string()), Just("</SOLUTION>".to_string()),
            Just("<solution>".to_string()), Just("\\boxed{".to_string()), Just("}".to_string()),
            Just("</end_working_out>".to_string()), "[01 ]{0,5}", "[0-9./,-]{0,6}", ".{0,4}",
        ], 0..30)) {
        let s = parts.concat();
        let _ = answer::tagged(&s);
        let _ = math::extract_answer(&s);
        let _ = sat::parse_assignment(&s);
    }
}

#[test]
fn huge_inputs_are_bounded() {
    let huge = "<SOLUTION>1 ".to_string() + &"0 ".repeat(2_000_000) + "</SOLUTION>";
    let env = sat::SatEnv;
    let p = env.problem(1).unwrap();
    let r = env.score(&p, &huge, &[]);
    assert!(!r.success);
    // Cut at MAX_COMPLETION_CHARS: the closing tag is beyond it.
    assert!(answer::tagged(&huge).solution.is_none());
    assert!(Rational::parse(&"9".repeat(100_000)).is_none());
}

/// Found by `cargo xtask fuzz --target answers` (docs/reliability.md): `Rational::parse`
/// recursed once per `/` (and per nested `\frac`), normalising the rest of the text at
/// each level: on a completion of `1/1/1/…` scoring took quadratic time and memory (125 KB:
/// 39 s and 481 MiB of heap) and then overflowed the stack (131 KB: the process aborted
/// after 50 s at 2.6 GB resident). Text longer than `MAX_NUMBER_CHARS` is not a number
/// now; this test runs on a 256 KiB stack.
#[test]
fn long_fraction_chains_are_bounded() {
    let run = || {
        let chain = "1/".repeat(answer::MAX_COMPLETION_CHARS / 2) + "1";
        assert_eq!(Rational::parse(&chain), None);
        let nested = "\\frac{1}{".repeat(100_000) + "2" + &"}".repeat(100_000);
        assert_eq!(Rational::parse(&nested), None);
        let negative = "-\\frac{1}{".repeat(100_000) + "2" + &"}".repeat(100_000);
        assert_eq!(Rational::parse(&negative), None);
        // What the scoring path does with such a completion.
        let m = math::ProceduralMath;
        let p = m.problem(1).unwrap();
        let text = format!("<SOLUTION>{chain}</SOLUTION>");
        assert!(!m.score(&p, &text, &[]).success);
        // Short chains and nested fractions still parse (right to left, as before).
        let short = "1/".repeat(100) + "1";
        assert_eq!(Rational::parse(&short), Some(Rational::int(1)));
        assert_eq!(Rational::parse("2/3/4"), Rational::new(8, 3));
        assert_eq!(
            Rational::parse("\\frac{1}{\\frac{1}{\\frac{1}{2}}}"),
            Some(Rational::new(1, 2).unwrap())
        );
    };
    std::thread::Builder::new()
        .stack_size(256 << 10)
        .spawn(run)
        .unwrap()
        .join()
        .unwrap();
}
