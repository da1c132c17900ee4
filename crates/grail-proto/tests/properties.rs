//! Property tests of the native protocol's pure functions.

use grail_proto::params::SKETCH_MODULUS;
use grail_proto::sketch::modular_distance;
use grail_proto::*;
use proptest::prelude::*;

fn arb_rollout() -> impl Strategy<Value = Rollout> {
    (2usize..40, 1usize..30).prop_flat_map(|(p, c)| {
        let n = p + c;
        (
            proptest::collection::vec(any::<u32>(), n),
            proptest::collection::vec((0..=SketchDigest::MAX, 0..=SketchDigest::MAX), n),
            proptest::collection::vec(-50.0f32..=0.0, c),
            -10.0f64..10.0,
            -3.0f64..3.0,
            any::<bool>(),
        )
            .prop_map(
                move |(tokens, sk, logprobs, reward, advantage, success)| Rollout {
                    tokens,
                    prompt_len: p as u32,
                    sketches: sk.into_iter().map(|(a, b)| SketchDigest([a, b])).collect(),
                    logprobs,
                    reward,
                    advantage,
                    success,
                },
            )
    })
}

fn arb_bundle() -> impl Strategy<Value = WindowBundle> {
    (
        any::<[u8; 32]>(),
        any::<u64>(),
        proptest::collection::vec(proptest::collection::vec(arb_rollout(), 1..4), 0..3),
        any::<u64>(),
        "[a-z]{1,8}",
    )
        .prop_map(|(hk, window, groups, prompt_id, env)| WindowBundle {
            hotkey: Hotkey(hk),
            window,
            groups: groups
                .into_iter()
                .map(|rollouts| Group {
                    header: GroupHeader {
                        protocol_version: params::PROTOCOL_VERSION,
                        hotkey: Hotkey(hk),
                        window,
                        environment: EnvironmentId {
                            name: env.clone(),
                            params: String::new(),
                        },
                        prompt_id,
                        checkpoint: [1; 32],
                        window_randomness: [2; 32],
                        generation: GenerationParams {
                            max_new_tokens: 32,
                            temperature_milli: 1000,
                        },
                    },
                    rollouts,
                    signature: Signature([5; 64]),
                })
                .collect(),
        })
}

proptest! {
    #[test]
    fn positions_are_distinct_sorted_in_range_and_deterministic(
        cr in any::<[u8; 32]>(), rd in any::<[u8; 32]>(),
        prompt in 0usize..500, span in 0usize..2000, k in 0usize..64,
    ) {
        let total = prompt + span;
        let a = challenge_positions(&cr, &rd, prompt, total, k);
        prop_assert_eq!(&a, &challenge_positions(&cr, &rd, prompt, total, k));
        prop_assert_eq!(a.len(), k.min(span));
        prop_assert!(a.windows(2).all(|w| w[0] < w[1]));
        prop_assert!(a.iter().all(|&p| p >= prompt && p < total));
    }

    #[test]
    fn sketches_are_reduced(h in proptest::collection::vec(any::<f32>(), 64), wr in any::<[u8; 32]>()) {
        let c = SketchCoefficients::derive(&wr, 64);
        let s = c.sketch(&h);
        prop_assert!(s.0.iter().all(|&v| v < SKETCH_MODULUS));
    }

    #[test]
    fn modular_distance_is_a_symmetric_bounded_metric(a in 0..SKETCH_MODULUS, b in 0..SKETCH_MODULUS) {
        prop_assert_eq!(modular_distance(a, b), modular_distance(b, a));
        prop_assert!(modular_distance(a, b) <= SKETCH_MODULUS / 2);
        prop_assert_eq!(modular_distance(a, a), 0);
    }

    /// A residue's wire digest stands for a residue at most SKETCH_DIGEST_ROUNDING away,
    /// on the 2^16 grid, and digests of grid points are exact.
    #[test]
    fn digests_round_to_the_nearest_grid_point(a in 0..SKETCH_MODULUS, b in 0..SKETCH_MODULUS) {
        let s = PositionSketch([a, b]);
        let d = s.digest();
        prop_assert!(d.0.iter().all(|&v| v <= SketchDigest::MAX));
        let back = d.residues();
        for k in 0..2 {
            prop_assert!(modular_distance(s.0[k], back.0[k]) <= params::SKETCH_DIGEST_ROUNDING);
            prop_assert_eq!(back.0[k] % (1 << params::SKETCH_DIGEST_SHIFT), 0);
        }
        prop_assert_eq!(back.digest(), d);
        prop_assert_eq!(SketchDigest::from_bytes(d.to_bytes()), Some(d));
    }

    #[test]
    fn bundles_round_trip(b in arb_bundle()) {
        let bytes = encode_bundle(&b).unwrap();
        prop_assert_eq!(decode_bundle(&bytes).unwrap(), b);
    }

    #[test]
    fn decoding_random_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_bundle(&bytes);
        let mut framed = wire::BUNDLE_MAGIC.to_vec();
        framed.extend_from_slice(&wire::BUNDLE_FORMAT_VERSION.to_le_bytes());
        framed.extend_from_slice(&bytes);
        let _ = decode_bundle(&framed);
    }

    #[test]
    fn corrupting_an_encoded_bundle_never_panics(b in arb_bundle(), at in any::<usize>(), x in 1u8..) {
        let mut bytes = encode_bundle(&b).unwrap();
        let i = at % bytes.len();
        bytes[i] ^= x;
        let _ = decode_bundle(&bytes);
        bytes.truncate(i);
        let _ = decode_bundle(&bytes);
    }

    #[test]
    fn pyrandom_randbelow_in_range(seed in any::<[u8; 16]>(), n in 1u64..u64::MAX) {
        let mut r = compat::pyrandom::PyRandom::from_bytes(&seed);
        prop_assert!(r.randbelow(n) < n);
        let f = r.random();
        prop_assert!((0.0..1.0).contains(&f));
    }

    #[test]
    fn compat_indices_distinct_sorted_in_range(
        tokens in proptest::collection::vec(0u32..1000, 1..50),
        start in 0usize..100, span in 0usize..600, k in 1usize..40,
    ) {
        let idx = compat::grail_v5::challenge_indices(&tokens, "feedbeef", start, start + span, k).unwrap();
        prop_assert_eq!(idx.len(), k.min(span));
        prop_assert!(idx.windows(2).all(|w| w[0] < w[1]));
        prop_assert!(idx.iter().all(|&i| i >= start && i < start + span));
    }
}
