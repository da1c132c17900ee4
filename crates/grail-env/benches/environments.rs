//! Problems generated and completions scored per second.
//!
//! `cargo bench -p grail-env --bench environments`; numbers go to docs/benchmarks.md.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use grail_env::math::ProceduralMath;
use grail_env::sat::{self, SatEnv, SatInstance};
use grail_env::Environment;

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("environments");
    g.throughput(Throughput::Elements(1000));
    g.bench_function("sat_generate_1000", |b| {
        b.iter(|| (0..1000u64).map(SatInstance::generate).count())
    });
    g.bench_function("math_generate_1000", |b| {
        b.iter(|| (0..1000u64).map(grail_env::math::generate).count())
    });
    let env = SatEnv;
    let problems: Vec<_> = (0..1000u64).map(|i| env.problem(i).unwrap()).collect();
    let completions: Vec<String> = problems
        .iter()
        .map(|p| {
            let grail_env::Target::Sat(i) = &p.target else { unreachable!() };
            let w = sat::solve(i).unwrap_or_else(|| vec![false; i.num_vars as usize]);
            let bits: Vec<&str> = w.iter().map(|&b| if b { "1" } else { "0" }).collect();
            format!("<start_working_out>reasoning about clauses</end_working_out><SOLUTION>{}</SOLUTION><|im_end|>", bits.join(" "))
        })
        .collect();
    g.bench_function("sat_score_1000", |b| {
        b.iter(|| {
            problems
                .iter()
                .zip(&completions)
                .filter(|(p, c)| env.score(p, c, &["<|im_end|>"]).success)
                .count()
        })
    });
    let m = ProceduralMath;
    let mp: Vec<_> = (0..1000u64).map(|i| m.problem(i).unwrap()).collect();
    g.bench_function("math_score_1000", |b| {
        b.iter(|| {
            mp.iter()
                .filter(|p| {
                    m.score(
                        p,
                        "<SOLUTION>\\frac{3}{4}</SOLUTION><|im_end|>",
                        &["<|im_end|>"],
                    )
                    .success
                })
                .count()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
