//! Conformance with the Python references: every value in `tests/vectors/*.json`
//! (copied from the project's shared vectors, computed by running the reference code).

use grail_proto::compat::{self, grail_v5, pyrandom::PyRandom, reliquary_v7};
use serde_json::Value;

/// Embedded at compile time: a build reused from another checkout (shared target
/// folder) must not point at that checkout's files.
fn load(name: &str) -> Value {
    let text = match name {
        "grail_v5.json" => include_str!("vectors/grail_v5.json"),
        "reliquary_v7.json" => include_str!("vectors/reliquary_v7.json"),
        other => panic!("no vector file {other}"),
    };
    serde_json::from_str(text).unwrap()
}

fn ints(v: &Value) -> Vec<i64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect()
}

fn usizes(v: &Value) -> Vec<usize> {
    ints(v).into_iter().map(|x| x as usize).collect()
}

fn check_buckets(v: &Value, bucket: fn(f32) -> i8) {
    let table = v.as_object().unwrap();
    assert!(table.len() >= 9);
    for (x, want) in table {
        let x: f32 = x.parse().unwrap();
        assert_eq!(i64::from(bucket(x)), want.as_i64().unwrap(), "bucket({x})");
    }
}

fn check_tolerance(v: &Value, tolerance: fn(usize) -> u32) {
    let mut n = 0;
    for (pos, want) in v.as_object().unwrap() {
        let Ok(pos) = pos.parse::<usize>() else {
            continue;
        };
        assert_eq!(
            i64::from(tolerance(pos)),
            want.as_i64().unwrap(),
            "tolerance({pos})"
        );
        n += 1;
    }
    assert!(n >= 3);
}

#[test]
fn grail_v5_vectors() {
    let v = load("grail_v5.json");
    let r = v["R"].as_str().unwrap();

    let prf = &v["prf"];
    let part = hex::decode(prf["parts_hex"][0].as_str().unwrap()).unwrap();
    let got = grail_v5::prf(b"sketch", &[&part], 32);
    assert_eq!(hex::encode(got), prf["expect_hex"].as_str().unwrap());

    let tokens: Vec<u32> = (1000..=1063).collect();
    let th = compat::hash_tokens(&tokens);
    assert_eq!(
        hex::encode(th),
        v["hash_tokens"]["expect_hex"].as_str().unwrap()
    );

    let open = grail_v5::prf(b"open", &[&th, &compat::hexbytes(r).unwrap()], 32);
    assert_eq!(
        hex::encode(open),
        v["prf_open"]["expect_hex"].as_str().unwrap()
    );

    let coeffs =
        grail_v5::coefficients(v["coefficients_topk16"]["randomness"].as_str().unwrap()).unwrap();
    let want = ints(&v["coefficients_topk16"]["expect"]);
    assert_eq!(
        coeffs.iter().map(|&c| i64::from(c)).collect::<Vec<_>>(),
        want
    );

    check_buckets(&v["bucket_nb8"], grail_v5::bucket);
    check_tolerance(&v["tolerance"], grail_v5::tolerance);

    let c = &v["challenge_indices_sample_path"];
    let tokens: Vec<u32> = (5000..=5449).collect();
    let got = grail_v5::challenge_indices(
        &tokens,
        c["randomness"].as_str().unwrap(),
        c["start"].as_u64().unwrap() as usize,
        c["end"].as_u64().unwrap() as usize,
        c["k"].as_u64().unwrap() as usize,
    )
    .unwrap();
    assert_eq!(got, usizes(&c["expect"]));

    let py = &v["python_random"];
    let mut a = PyRandom::from_bytes(&[0u8; 32]);
    let got: Vec<i64> = (0..3).map(|_| a.getrandbits(32) as i64).collect();
    assert_eq!(got, ints(&py["Random(bytes(32)).getrandbits(32) x3"]));
    let mut b = PyRandom::from_int(42);
    let got: Vec<i64> = (0..3).map(|_| b.getrandbits(32) as i64).collect();
    assert_eq!(got, ints(&py["Random(42).getrandbits(32) x3"]));
}

#[test]
fn reliquary_v7_vectors() {
    let v = load("reliquary_v7.json");
    let r = v["R"].as_str().unwrap();

    let prf = &v["prf"];
    let part = hex::decode(prf["parts_hex"][0].as_str().unwrap()).unwrap();
    let got = reliquary_v7::prf(b"sketch", &[&part], 32);
    assert_eq!(hex::encode(got), prf["expect_hex"].as_str().unwrap());

    let prf2 = &v["prf2"];
    let got = reliquary_v7::prf(b"open", &[b"a", b""], 16);
    assert_eq!(hex::encode(got), prf2["expect_hex"].as_str().unwrap());

    let coeffs = reliquary_v7::coefficients(r).unwrap();
    let want = ints(&v["coefficients_topk16"]["expect"]);
    assert_eq!(
        coeffs.iter().map(|&c| i64::from(c)).collect::<Vec<_>>(),
        want
    );

    check_buckets(&v["bucket_nb8"], reliquary_v7::bucket);
    check_tolerance(&v["tolerance"], reliquary_v7::tolerance);

    let c = &v["challenge_indices_sample_path"];
    let tokens: Vec<u32> = (0..1000).collect();
    let got = reliquary_v7::challenge_indices(&tokens, r, 0, 1000, 32).unwrap();
    assert_eq!(got, usizes(&c["expect"]));

    let rh = &v["rollout_hash"];
    assert_eq!(
        hex::encode(compat::hash_tokens(&[1, 2, 3])),
        rh["expect_hex"].as_str().unwrap()
    );
}

#[test]
fn reference_quirks() {
    // numpy int16 abs(-32768) stays negative: -32768 mod 255 = 127, minus 127 = 0.
    let raw = [0x80u8, 0x00].repeat(16);
    assert_eq!(compat::coefficients_from_raw(&raw), [0i8; 16]);
    // Hex normalisation: every 0x removed, odd length padded, spaces between pairs.
    assert_eq!(compat::hexbytes(" 0xabc ").unwrap(), vec![0x0a, 0xbc]);
    assert_eq!(
        compat::hexbytes("ab cd ef").unwrap(),
        vec![0xab, 0xcd, 0xef]
    );
    // Odd length (5) gets a leading 0, which Python then rejects as "0a" "b " …
    assert!(compat::hexbytes("ab cd").is_err());
    assert!(compat::hexbytes("zz").is_err());
    // json.dumps(sort_keys, compact) of the commitment list.
    assert_eq!(
        compat::commitments_json(&[1, 22]),
        r#"[{"sketch":1},{"sketch":22}]"#
    );
    assert_eq!(compat::commitments_json(&[]), "[]");
    // The shuffle path (k >= 0.1 n) and short ranges.
    let t = [7u32; 40];
    let idx = grail_v5::challenge_indices(&t, "ab", 10, 30, 32).unwrap();
    assert_eq!(idx, (10..30).collect::<Vec<_>>());
    assert!(grail_v5::challenge_indices(&t, "ab", 5, 5, 32)
        .unwrap()
        .is_empty());
}

#[test]
fn reference_sketch_uses_sorted_top16_and_wraps_negative_sums() {
    let coeffs = [1i8; 16];
    let mut h = vec![0.0f32; 64];
    for (i, x) in h.iter_mut().enumerate().take(16) {
        *x = -(100.0 + i as f32); // bucket -5 each (log2(101)·0.8 = 5.3)
    }
    let s = compat::sketch(&h, &coeffs);
    assert_eq!(s, 2_147_483_647 - 16 * 5);
    // A smaller coordinate elsewhere does not enter the top 16.
    h[40] = 50.0;
    assert_eq!(compat::sketch(&h, &coeffs), s);
}

#[test]
fn commit_binding_changes_with_every_input() {
    let base = compat::commit_binding(&[1, 2], "ab", "m", -1, &[5]).unwrap();
    assert_ne!(
        base,
        compat::commit_binding(&[1, 3], "ab", "m", -1, &[5]).unwrap()
    );
    assert_ne!(
        base,
        compat::commit_binding(&[1, 2], "ac", "m", -1, &[5]).unwrap()
    );
    assert_ne!(
        base,
        compat::commit_binding(&[1, 2], "ab", "n", -1, &[5]).unwrap()
    );
    assert_ne!(
        base,
        compat::commit_binding(&[1, 2], "ab", "m", 0, &[5]).unwrap()
    );
    assert_ne!(
        base,
        compat::commit_binding(&[1, 2], "ab", "m", -1, &[6]).unwrap()
    );
}
