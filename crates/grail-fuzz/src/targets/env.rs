//! The environments' parsers: answer extraction and rewards (math, SAT) and datasets.

use grail_env::answer::{last_boxed, last_number, strip_eos, tagged, Answer, Rational};
use grail_env::math::{self, DatasetFormat, DatasetMath};
use grail_env::sat::{self, SatInstance};

use super::{text, Target};

const EOS: &[&str] = &["<|im_end|>", "<|endoftext|>"];

/// Math completions: answer extraction, exact rationals, the reward.
pub fn math() -> Target {
    Target {
        name: "math",
        what: "math completions: answer tags, \\boxed{}, numbers, rationals, reward",
        max_len: 4096,
        seeds: || {
            (0..8u64)
                .map(|id| {
                    let problem = math::generate(id);
                    let text = format!(
                        "Let me think. {} <answer>\\boxed{{{}}}</answer><|im_end|>",
                        problem.statement, problem.answer
                    );
                    [&[id as u8][..], text.as_bytes()].concat()
                })
                .chain([b"\0The answer is -12/4 or 3.5e2, 1,000.25".to_vec()])
                .collect()
        },
        dictionary: &[
            b"<answer>",
            b"</answer>",
            b"\\boxed{",
            b"}",
            b"{",
            b"/",
            b"-",
            b".",
            b"e9",
            b",",
            b"\\frac{",
            b"<|im_end|>",
            b"99999999999999999999999",
        ],
        // The first byte picks the problem (of 8), the rest is the completion.
        mutate: None,
        run: |bytes| {
            let id = u64::from(bytes.first().copied().unwrap_or(0) % 8);
            let text = text(bytes.get(1..).unwrap_or_default());
            let body = strip_eos(&text, EOS);
            let _ = tagged(body);
            let _ = last_boxed(body);
            let _ = last_number(body);
            let _ = Rational::parse(body);
            let extracted = math::extract_answer(body);
            let answer = math::generate(id).answer;
            let reward = math::score(&Answer::Number(answer), &text, EOS);
            match (extracted, reward.success) {
                (_, true) => "correct",
                (Some(_), false) => "answered",
                (None, false) => "no answer",
            }
        },
    }
}

/// SAT completions: the assignment parser and the reward.
pub fn sat() -> Target {
    Target {
        name: "sat",
        what: "SAT completions: assignment parsing and reward",
        max_len: 4096,
        seeds: || {
            (0..6u64)
                .map(|seed| {
                    let instance = SatInstance::generate(seed);
                    let solution = sat::solve(&instance).unwrap_or_default();
                    let bits: Vec<&str> = solution
                        .iter()
                        .map(|&v| if v { "1" } else { "0" })
                        .collect();
                    let text =
                        format!("Thinking.<SOLUTION>{}</SOLUTION><|im_end|>", bits.join(" "));
                    [&[seed as u8][..], text.as_bytes()].concat()
                })
                .collect()
        },
        dictionary: &[
            b"<SOLUTION>",
            b"</SOLUTION>",
            b" ",
            b"0",
            b"1",
            b"\t",
            b"<|im_end|>",
        ],
        // The first byte picks the instance (of 8), the rest is the completion.
        mutate: None,
        run: |bytes| {
            let seed = u64::from(bytes.first().copied().unwrap_or(0) % 8);
            let text = text(bytes.get(1..).unwrap_or_default());
            let _ = sat::parse_assignment(&text);
            let instance = SatInstance::generate(seed);
            if sat::score(&instance, &text, EOS).success {
                "satisfied"
            } else {
                "unsatisfied"
            }
        },
    }
}

/// JSONL math datasets (GSM8K and Hendrycks MATH formats).
pub fn dataset() -> Target {
    Target {
        name: "dataset",
        what: "math datasets (JSONL: GSM8K, Hendrycks MATH)",
        max_len: 8192,
        seeds: || {
            vec![
                br#####"{"question": "What is 2 + 3?", "answer": "2 + 3 = 5\n#### 5"}
{"question": "Half of 9?", "answer": "#### 4.5"}"#####
                    .to_vec(),
                br##"{"problem": "Compute $\frac{1}{2}+\frac{1}{3}$.", "solution": "It is $\boxed{\frac{5}{6}}$."}
{"problem": "x?", "solution": "\boxed{-7}"}"##
                    .to_vec(),
            ]
        },
        dictionary: &[
            b"\"answer\"",
            b"\"solution\"",
            b"####",
            b"\\boxed{",
            b"\n",
            b"\\u0000",
            b"{}",
        ],
        mutate: None,
        run: |bytes| {
            let format = if bytes.len() % 2 == 0 {
                DatasetFormat::Gsm8k
            } else {
                DatasetFormat::HendrycksMath
            };
            match DatasetMath::parse(bytes, "fuzz.jsonl", format) {
                Ok(d) if d.is_empty() => "empty",
                Ok(_) => "parsed",
                Err(_) => "rejected",
            }
        },
    }
}
