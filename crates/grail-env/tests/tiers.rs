//! Difficulty tiers and weighted mixes: ranges, determinism, the spec grammar.

use grail_env::math::{generate, generate_tier, MathTier};
use grail_env::sat::{SatInstance, SatTier};
use grail_env::{by_name, EnvError, Environment, Target};

#[test]
fn math_tiers_stay_in_their_ranges() {
    for id in 0..500u64 {
        let t0 = generate_tier(id, 0).unwrap();
        let v: i64 = t0.answer.to_string().parse().unwrap();
        assert!((2..=18).contains(&v), "tier 0 answer {v}: {}", t0.statement);
        assert!(t0.statement.starts_with("What is ") && t0.statement.contains(" + "));
        let t1 = generate_tier(id, 1).unwrap();
        let v: i64 = t1.answer.to_string().parse().unwrap();
        assert!((-89..=198).contains(&v), "tier 1 answer {v}");
        // Tiers 2-5 are the levels of the untiered generator, drawn from their own stream.
        for tier in 2..6 {
            assert_eq!(generate_tier(id, tier).unwrap().level, tier);
        }
        assert_eq!(generate_tier(id, 3), generate_tier(id, 3), "deterministic");
    }
    assert!(generate_tier(0, 6).is_none());
    assert!(matches!(
        MathTier::new(6),
        Err(EnvError::NoSuchTier {
            tier: 6,
            tiers: 6,
            ..
        })
    ));
    // The untiered generator is unchanged by the tiers (its golden files also pin it).
    assert_eq!(generate(7).level, generate(7).level);
}

#[test]
fn sat_tiers_have_their_sizes() {
    for tier in 0..4u8 {
        for seed in 0..200u64 {
            let inst = SatInstance::generate_tier(seed, tier).unwrap();
            let lo = 3 + 2 * u32::from(tier);
            assert!((lo..=lo + 1).contains(&inst.num_vars));
            let n = inst.clauses.len() as u32;
            assert!((inst.num_vars + 2..=2 * inst.num_vars + 2).contains(&n));
        }
    }
    assert!(SatTier::new(4).is_err());
    let env = SatTier::new(1).unwrap();
    assert_eq!(env.stratum(5), "sat:1");
    assert!(env.id().params.contains("tier=1"));
}

#[test]
fn specs_make_tiers_and_mixes() {
    let env = by_name("math:0", None).unwrap();
    assert_eq!(env.stratum(3), "math:0");
    let p = env.problem(3).unwrap();
    let Target::Math(answer) = &p.target else {
        panic!("math target")
    };
    let right = format!("<SOLUTION>{answer}</SOLUTION>");
    assert!(env.score(&p, &right, &[]).success);
    assert!(!env.score(&p, "<SOLUTION>1000</SOLUTION>", &[]).success);

    let mix = by_name("3*math:0 + math:2", None).unwrap();
    assert_eq!(mix.id().name, "mix");
    assert!(mix.id().params.starts_with("v1;3*math:0+1*math:2;sha256="));
    let strata: Vec<String> = (0..4000u64).map(|id| mix.stratum(id)).collect();
    let tier0 = strata.iter().filter(|s| *s == "math:0").count();
    let tier2 = strata.iter().filter(|s| *s == "math:2").count();
    assert_eq!(tier0 + tier2, 4000);
    assert!(
        (2850..=3150).contains(&tier0),
        "3:1 weights gave {tier0} of 4000"
    );
    // A mix problem keeps the mix's id and is scored by its part.
    let id = (0..100u64).find(|&i| mix.stratum(i) == "math:2").unwrap();
    let p = mix.problem(id).unwrap();
    assert_eq!(p.prompt_id, id);
    assert_eq!(p, {
        let mut q = by_name("math:2", None).unwrap().problem(id).unwrap();
        q.prompt_id = id;
        q
    });
    let Target::Math(answer) = &p.target else {
        panic!("math target")
    };
    assert!(
        mix.score(&p, &format!("<SOLUTION>{answer}</SOLUTION>"), &[])
            .success
    );
    // Spacing and zero-padding do not change the id (it is bound into every group).
    assert_eq!(
        by_name(" 3 * math:00+math: 2 ", None).unwrap().id(),
        mix.id()
    );
    assert_eq!(mix.strata(), ["math:0", "math:2"]);
    // Another weighting is another environment.
    assert_ne!(by_name("2*math:0 + math:2", None).unwrap().id(), mix.id());
}

#[test]
fn tier_and_mix_ids_are_frozen() {
    // These strings are bound into every signed group: changing one splits the subnet.
    let id = |spec: &str| {
        let i = by_name(spec, None).unwrap().id();
        format!("{}/{}", i.name, i.params)
    };
    assert_eq!(id("math:1"), "math/gen=tiers-v1;tier=1;reward=v2");
    assert_eq!(id("sat:2"), "sat/gen=tiers-v1;tier=2;k=3;reward=v1");
    assert_eq!(
        id("math:0 + math:1 + math:2 + math:3"),
        "mix/v1;1*math:0+1*math:1+1*math:2+1*math:3;sha256=f86bab180ec934e8fe398a5b42d09725"
    );
    // The first problems of a tier are frozen too.
    assert_eq!(generate_tier(0, 0).unwrap().statement, "What is 6 + 3?");
}

#[test]
fn bad_specs_are_refused_with_a_reason() {
    for (spec, needle) in [
        ("math:9", "tiers"),
        ("echo:1", "only `math` and `sat` have tiers"),
        ("0*math + sat", "weight"),
        ("2*math", "mix of several parts"),
        ("math + nope", "unknown environment"),
        ("gsm8k", "dataset file"),
        ("math:x", "tier must be"),
    ] {
        let err = by_name(spec, None)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains(needle), "`{spec}`: {err}");
    }
    // The same refusals, as values a caller can act on.
    let refusal = |spec: &str| by_name(spec, None).err();
    assert!(matches!(
        refusal("math:9"),
        Some(EnvError::NoSuchTier {
            tier: 9,
            tiers: 6,
            ..
        })
    ));
    assert!(matches!(refusal("echo:1"), Some(EnvError::Untiered { .. })));
    assert!(matches!(
        refusal("0*math + sat"),
        Some(EnvError::BadWeight { .. })
    ));
    assert!(matches!(
        refusal("2*math"),
        Some(EnvError::LoneWeight { .. })
    ));
    assert!(matches!(
        refusal("math + nope"),
        Some(EnvError::UnknownEnvironment { name, .. }) if name == "nope"
    ));
    assert!(matches!(
        refusal("gsm8k"),
        Some(EnvError::NeedsDataset { env }) if env == "gsm8k"
    ));
    assert!(matches!(refusal("math:x"), Some(EnvError::BadTier { .. })));
}
