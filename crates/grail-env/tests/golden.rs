//! Golden values: fixed seeds must keep producing these instances on every machine.
//! A change here is a protocol change for the environment (bump its params string).

use grail_env::math;
use grail_env::sat::SatInstance;
use grail_env::Environment;

fn sat_summary(seed: u64) -> String {
    let i = SatInstance::generate(seed);
    let clauses: Vec<String> = i
        .clauses
        .iter()
        .map(|c| {
            c.iter()
                .map(|l| format!("{}{}", if l.negated { "-" } else { "" }, l.var))
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect();
    format!("{}v:{}", i.num_vars, clauses.join(" "))
}

#[test]
fn sat_instances_are_frozen() {
    let got: Vec<String> = [0u64, 1, 42, u64::MAX]
        .iter()
        .map(|&s| sat_summary(s))
        .collect();
    let want = include_str!("golden/sat.txt");
    assert_eq!(
        got.join("\n"),
        want.trim_end(),
        "SAT generator output changed"
    );
}

#[test]
fn math_problems_are_frozen() {
    let got: Vec<String> = (0u64..8)
        .map(|id| {
            let g = math::generate(id);
            format!("{}|{}|{}", g.level, g.answer, g.statement)
        })
        .collect();
    let want = include_str!("golden/math.txt");
    assert_eq!(
        got.join("\n"),
        want.trim_end(),
        "math generator output changed"
    );
}

#[test]
fn environment_ids_are_frozen() {
    assert_eq!(
        grail_env::sat::SatEnv.id().params,
        "gen=v1;vars=3-10;clauses=5-20;k=3;reward=v1"
    );
    assert_eq!(grail_env::math::ProceduralMath.id().name, "math");
}
