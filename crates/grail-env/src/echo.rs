//! The echo environment: "say the word W". A warm-up task that even a
//! 135M-parameter model solves part of the time, so a local network on a small model sees
//! reward spread (the learning zone), training steps and checkpoint rotation. Not a
//! benchmark of anything.
//!
//! Word of prompt id `i`: `WORDS[uniform_below(stream("grail/env/echo/v1", [u64be(i)]), 64)]`.
//! Rewards (in order): `contains` 0.6 (the word appears as a whole word, any case),
//! `first` 0.3 (it is the first word), `brief` 0.1 (at most 5 words). Success: contains and
//! first.

use grail_proto::prf::{stream, uniform_below};

use crate::answer::strip_eos;
use crate::{EnvError, Environment, EnvironmentId, Problem, PromptSpace, RewardVector, Target};

/// Reward weights `(component, weight)`, in scoring order.
pub const WEIGHTS: [(&str, f64); 3] = [("contains", 0.6), ("first", 0.3), ("brief", 0.1)];

/// The words, in order (changing them changes every problem: bump the params string).
pub const WORDS: [&str; 64] = [
    "apple", "river", "stone", "cloud", "garden", "silver", "window", "forest", "candle", "bridge",
    "orange", "pencil", "thunder", "mirror", "planet", "rabbit", "harbor", "violet", "engine",
    "basket", "lantern", "meadow", "copper", "falcon", "island", "jacket", "kettle", "lemon",
    "marble", "needle", "ocean", "pepper", "quartz", "rocket", "saddle", "tiger", "umbrella",
    "velvet", "walnut", "yellow", "anchor", "butter", "castle", "desert", "feather", "glacier",
    "hammer", "insect", "jungle", "kitten", "ladder", "magnet", "nectar", "oyster", "puzzle",
    "ribbon", "sunset", "tunnel", "valley", "wizard", "zebra", "summer", "winter", "autumn",
];

/// The word of a prompt id.
pub fn word(prompt_id: u64) -> &'static str {
    let mut rng = stream(b"grail/env/echo/v1", &[&prompt_id.to_be_bytes()]);
    WORDS[uniform_below(&mut rng, WORDS.len() as u64) as usize]
}

/// Words of a text: maximal runs of ASCII letters, lower-cased.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_ascii_alphabetic())
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .collect()
}

/// Scores a completion against the word.
pub fn score(target: &str, completion: &str, eos_markers: &[&str]) -> RewardVector {
    let ws = words(strip_eos(completion, eos_markers));
    let contains = ws.iter().any(|w| w == target);
    let first = ws.first().is_some_and(|w| w == target);
    let brief = !ws.is_empty() && ws.len() <= 5;
    let values = [contains, first, brief].map(|b| f64::from(u8::from(b)));
    RewardVector::from_table(&WEIGHTS, &values, contains && first)
}

/// The echo environment.
#[derive(Debug, Clone, Default)]
pub struct EchoEnv;

impl Environment for EchoEnv {
    fn id(&self) -> EnvironmentId {
        EnvironmentId {
            name: "echo".into(),
            params: "words=v1;reward=v1".into(),
        }
    }

    fn prompt_space(&self) -> PromptSpace {
        PromptSpace::Unbounded
    }

    fn problem(&self, prompt_id: u64) -> Result<Problem, EnvError> {
        let w = word(prompt_id);
        Ok(Problem {
            prompt_id,
            statement: format!("Say the word {w}."),
            target: Target::Word(w.to_string()),
        })
    }

    fn score(&self, problem: &Problem, completion: &str, eos_markers: &[&str]) -> RewardVector {
        match &problem.target {
            Target::Word(w) => score(w, completion, eos_markers),
            _ => RewardVector::weighted(&[("contains", 1.0, 0.0)], false),
        }
    }

    fn messages(&self, problem: &Problem) -> Vec<crate::template::Message> {
        // No reasoning format asked for: the answer is one word.
        vec![crate::template::Message::user(&problem.statement)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewards_and_words() {
        assert!((score("apple", "Apple.", &[]).total - 1.0).abs() < 1e-12);
        assert!(score("apple", "apple<|im_end|>", &["<|im_end|>"]).success);
        let r = score(
            "apple",
            "Sure! The word is apple, as you asked me to say here",
            &[],
        );
        assert_eq!((r.total, r.success), (0.6, false));
        assert_eq!(score("apple", "pineapple", &[]).total, 0.1);
        assert_eq!(score("apple", "", &[]).total, 0.0);
        // Deterministic and spread over the list.
        assert_eq!(word(7), word(7));
        let distinct: std::collections::BTreeSet<_> = (0..200).map(word).collect();
        assert!(distinct.len() > 40);
        let p = EchoEnv.problem(3).unwrap();
        assert_eq!(p.statement, format!("Say the word {}.", word(3)));
    }
}
