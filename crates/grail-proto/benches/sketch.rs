//! Sketch commitments per second and proof verification cost.
//!
//! `cargo bench -p grail-proto --bench sketch`; numbers go to docs/benchmarks.md.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use grail_proto::params::CHALLENGE_K;
use grail_proto::{check_positions, SketchCoefficients, SketchDigest};
use rand_chacha::rand_core::{RngCore, SeedableRng};

const POSITIONS: usize = 1024;

/// Hidden states shaped like a real last layer: mostly |x| < 1.4, a few large outliers.
fn hidden(d: usize, n: usize) -> Vec<f32> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    (0..d * n)
        .map(|_| {
            let u = rng.next_u32();
            let x = (u % 20_000) as f32 / 10_000.0 - 1.0;
            if u.is_multiple_of(97) {
                x * 300.0
            } else {
                x * 1.5
            }
        })
        .collect()
}

fn bench_sketch(c: &mut Criterion) {
    let mut group = c.benchmark_group("sketch_1024_positions");
    for d in [576usize, 2048, 4096] {
        let coeffs = SketchCoefficients::derive(&[1; 32], d);
        let h = hidden(d, POSITIONS);
        group.throughput(Throughput::Elements(POSITIONS as u64));
        group.bench_with_input(BenchmarkId::from_parameter(d), &h, |b, h| {
            b.iter(|| coeffs.sketch_rows(h))
        });
    }
    group.finish();
}

fn bench_verify(c: &mut Criterion) {
    let mut group = c.benchmark_group("verify_k_positions");
    for d in [576usize, 2048, 4096] {
        let coeffs = SketchCoefficients::derive(&[1; 32], d);
        let h = hidden(d, CHALLENGE_K);
        let rows: Vec<Vec<f32>> = h.chunks(d).map(<[f32]>::to_vec).collect();
        let claimed: Vec<SketchDigest> =
            coeffs.sketch_rows(&h).iter().map(|s| s.digest()).collect();
        let positions: Vec<usize> = (0..CHALLENGE_K).collect();
        group.throughput(Throughput::Elements(CHALLENGE_K as u64));
        group.bench_with_input(BenchmarkId::from_parameter(d), &rows, |b, rows| {
            b.iter(|| check_positions(&claimed, &positions, rows, &coeffs).unwrap())
        });
    }
    group.finish();
}

fn bench_coefficients(c: &mut Criterion) {
    c.bench_function("derive_coefficients_4096", |b| {
        b.iter(|| SketchCoefficients::derive(&[1; 32], 4096))
    });
}

criterion_group!(benches, bench_sketch, bench_verify, bench_coefficients);
criterion_main!(benches);
