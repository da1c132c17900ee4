//! `cargo xtask experiment`: the learning-efficacy experiment (docs/experiments.md).
//! Runs `grail-trainer experiment` once per arm (zone-targeting and random miners) and
//! seed on SmolLM2-135M-Instruct (or `--model`), then writes `results.csv`, `results.md` and
//! `pass_at_1.svg` into the run folder (and into docs/ with `--doc`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::{models, setup, stats, util};

/// Options forwarded to every arm unchanged.
const FORWARDED: [&str; 13] = [
    "--steps",
    "--miners",
    "--groups-per-miner",
    "--group-size",
    "--max-new-tokens",
    "--temperature-milli",
    "--eval-prompts",
    "--eval-every",
    "--generous-tokens",
    "--generous-every",
    "--environment",
    "--grpo",
    "--threads",
];

struct Options {
    seeds: Vec<u64>,
    arms: Vec<String>,
    forwarded: Vec<String>,
    out: Option<PathBuf>,
    doc: bool,
    model: Option<PathBuf>,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        seeds: vec![1],
        arms: vec!["zone".into(), "random".into()],
        forwarded: Vec::new(),
        out: None,
        doc: false,
        model: None,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("experiment: {arg} needs a value"))
        };
        match arg.as_str() {
            "--seeds" => {
                o.seeds = value()?
                    .split(',')
                    .map(|s| s.trim().parse::<u64>())
                    .collect::<Result<_, _>>()
                    .map_err(|e| format!("experiment: --seeds: {e}"))?
            }
            "--arms" => {
                o.arms = value()?.split(',').map(|s| s.trim().to_string()).collect();
                if o.arms.iter().any(|a| a != "zone" && a != "random") {
                    return Err("experiment: --arms takes zone and/or random".into());
                }
            }
            "--out" => o.out = Some(PathBuf::from(value()?)),
            "--model" => o.model = Some(PathBuf::from(value()?)),
            "--doc" => o.doc = true,
            a if FORWARDED.contains(&a) => {
                let v = value()?;
                o.forwarded.extend([a.to_string(), v]);
            }
            other => return Err(format!("experiment: unknown argument `{other}`")),
        }
    }
    if o.seeds.is_empty() || o.arms.is_empty() {
        return Err("experiment: need at least one seed and one arm".into());
    }
    Ok(o)
}

/// One evaluation row of one arm and seed.
#[derive(Debug, Clone)]
struct Eval {
    arm: String,
    seed: u64,
    step: u64,
    budget: u64,
    pass_at_1: f64,
    mean_reward: f64,
}

/// A CSV file's rows as maps from its header's column names (an arm's files are written
/// by `grail-trainer experiment`; older runs lack some columns).
fn read_csv(path: &Path) -> Result<Vec<BTreeMap<String, String>>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<String> = lines
        .next()
        .unwrap_or_default()
        .split(',')
        .map(str::to_string)
        .collect();
    Ok(lines
        .map(|line| {
            header
                .iter()
                .cloned()
                .zip(line.split(',').map(str::to_string))
                .collect()
        })
        .collect())
}

fn field<T: std::str::FromStr>(
    row: &BTreeMap<String, String>,
    name: &str,
    path: &Path,
) -> Result<T, String> {
    row.get(name)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("{}: bad or missing `{name}` in {row:?}", path.display()))
}

fn read_evals(dir: &Path, arm: &str, seed: u64, training_budget: u64) -> Result<Vec<Eval>, String> {
    let path = dir.join("eval.csv");
    read_csv(&path)?
        .iter()
        .map(|row| {
            Ok(Eval {
                arm: arm.into(),
                seed,
                step: field(row, "step", &path)?,
                budget: if row.contains_key("budget") {
                    field(row, "budget", &path)?
                } else {
                    training_budget
                },
                pass_at_1: field(row, "pass_at_1", &path)?,
                mean_reward: field(row, "mean_reward", &path)?,
            })
        })
        .collect()
}

/// Per (step, budget): each held-out prompt's success and stratum, in evaluation order
/// (`eval_prompts.csv`; empty for runs from before it existed).
type PromptRows = BTreeMap<(u64, u64), Vec<(bool, String)>>;

fn read_prompts(dir: &Path) -> Result<PromptRows, String> {
    let path = dir.join("eval_prompts.csv");
    if !path.exists() {
        return Ok(PromptRows::new());
    }
    let mut out = PromptRows::new();
    for row in read_csv(&path)? {
        let key = (field(&row, "step", &path)?, field(&row, "budget", &path)?);
        let success: u8 = field(&row, "success", &path)?;
        let stratum = row.get("stratum").cloned().unwrap_or_default();
        out.entry(key).or_default().push((success == 1, stratum));
    }
    Ok(out)
}

/// Mean over seeds of (pass@1, mean reward) per arm and step.
fn means(evals: &[Eval]) -> BTreeMap<(String, u64), (f64, f64, usize)> {
    let mut out: BTreeMap<(String, u64), (f64, f64, usize)> = BTreeMap::new();
    for e in evals {
        let m = out.entry((e.arm.clone(), e.step)).or_default();
        m.0 += e.pass_at_1;
        m.1 += e.mean_reward;
        m.2 += 1;
    }
    for m in out.values_mut() {
        m.0 /= m.2 as f64;
        m.1 /= m.2 as f64;
    }
    out
}

/// Per arm, the 95 % interval of pass@1 at each evaluated step: `(step, lo, hi)`.
type Bands = BTreeMap<String, Vec<(u64, f64, f64)>>;

/// A line chart of held-out pass@1 against training steps: one thick line per arm (mean
/// over seeds), thin lines per seed, and a shaded band per arm for its 95 % interval
/// over prompts and seeds.
fn svg(evals: &[Eval], bands: &Bands, title: &str) -> String {
    let (w, h, left, right, top, bottom) = (720.0, 420.0, 60.0, 140.0, 40.0, 50.0);
    let max_step = evals.iter().map(|e| e.step).max().unwrap_or(1).max(1) as f64;
    let max_y = evals
        .iter()
        .map(|e| e.pass_at_1)
        .fold(0.1f64, f64::max)
        .min(1.0);
    let max_y = (max_y * 10.0).ceil() / 10.0;
    let x = |s: f64| left + s / max_step * (w - left - right);
    let y = |v: f64| h - bottom - v / max_y * (h - top - bottom);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"{}\" y=\"22\" font-size=\"14\">{title}</text>\n",
        left
    );
    for i in 0..=5 {
        let v = max_y * f64::from(i) / 5.0;
        let _ = writeln!(
            s,
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"#ddd\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{:.0}%</text>",
            w - right,
            left - 6.0,
            y(v) + 4.0,
            v * 100.0,
            yy = y(v)
        );
    }
    let tick = (max_step / 5.0).ceil().max(1.0);
    for i in 0..=5 {
        let st = tick * f64::from(i);
        if st > max_step {
            break;
        }
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{:.0}</text>",
            x(st),
            h - bottom + 18.0,
            st
        );
    }
    let _ = writeln!(
        s,
        "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">GRPO steps</text><text x=\"16\" y=\"{:.1}\" transform=\"rotate(-90 16 {:.1})\" text-anchor=\"middle\">held-out greedy pass@1</text>",
        (left + w - right) / 2.0,
        h - 10.0,
        h / 2.0,
        h / 2.0
    );
    let colour = |arm: &str| if arm == "zone" { "#1f77b4" } else { "#d62728" };
    let mut seeds: BTreeMap<(String, u64), Vec<(u64, f64)>> = BTreeMap::new();
    for e in evals {
        seeds
            .entry((e.arm.clone(), e.seed))
            .or_default()
            .push((e.step, e.pass_at_1));
    }
    let polyline = |points: &[(u64, f64)], colour: &str, width: f64, opacity: f64| {
        let pts: Vec<String> = points
            .iter()
            .map(|&(st, v)| format!("{:.1},{:.1}", x(st as f64), y(v)))
            .collect();
        format!(
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"{width}\" stroke-opacity=\"{opacity}\" points=\"{}\"/>\n",
            pts.join(" ")
        )
    };
    for (arm, band) in bands {
        let upper = band.iter().map(|&(st, _, hi)| (st, hi));
        let lower = band.iter().rev().map(|&(st, lo, _)| (st, lo));
        let pts: Vec<String> = upper
            .chain(lower)
            .map(|(st, v)| format!("{:.1},{:.1}", x(st as f64), y(v)))
            .collect();
        let _ = writeln!(
            s,
            "<polygon fill=\"{}\" fill-opacity=\"0.15\" stroke=\"none\" points=\"{}\"/>",
            colour(arm),
            pts.join(" ")
        );
    }
    for ((arm, _), points) in &seeds {
        s += &polyline(points, colour(arm), 1.0, 0.35);
    }
    let mut arms: BTreeMap<String, Vec<(u64, f64)>> = BTreeMap::new();
    for ((arm, step), m) in means(evals) {
        arms.entry(arm).or_default().push((step, m.0));
    }
    for (i, (arm, points)) in arms.iter().enumerate() {
        s += &polyline(points, colour(arm), 3.0, 1.0);
        let ly = top + 20.0 + 20.0 * i as f64;
        let _ = writeln!(
            s,
            "<line x1=\"{}\" x2=\"{}\" y1=\"{ly}\" y2=\"{ly}\" stroke=\"{}\" stroke-width=\"3\"/><text x=\"{}\" y=\"{}\">{arm} (mean)</text>",
            w - right + 10.0,
            w - right + 34.0,
            colour(arm),
            w - right + 40.0,
            ly + 4.0
        );
    }
    s += "</svg>\n";
    s
}

/// The markdown table: pass@1 and mean reward per arm and step (mean over seeds), and
/// the first step at which each arm gained ≥ 10 points over its step-0 pass@1.
fn table(evals: &[Eval], seeds: usize) -> String {
    let m = means(evals);
    let mut s = format!(
        "| arm | step | held-out pass@1 (mean of {seeds} seed{}) | mean reward |\n|---|---|---|---|\n",
        if seeds == 1 { "" } else { "s" }
    );
    for ((arm, step), (p, r, _)) in &m {
        let _ = writeln!(s, "| {arm} | {step} | {:.1} % | {r:.3} |", p * 100.0);
    }
    s += "\n";
    let arms: Vec<String> = {
        let mut a: Vec<String> = m.keys().map(|k| k.0.clone()).collect();
        a.dedup();
        a
    };
    for arm in arms {
        let points: Vec<(u64, f64)> = m
            .iter()
            .filter(|(k, _)| k.0 == arm)
            .map(|(k, v)| (k.1, v.0))
            .collect();
        let base = points.first().map_or(0.0, |p| p.1);
        let best = points.iter().map(|p| p.1).fold(f64::MIN, f64::max);
        let reached = points.iter().find(|p| p.1 >= base + 0.10).map(|p| p.0);
        let _ = writeln!(
            s,
            "- {arm}: {:.1} % at step 0, best {:.1} % ({:+.1} points); +10 points {}",
            base * 100.0,
            best * 100.0,
            (best - base) * 100.0,
            match reached {
                Some(step) => format!("first reached at step {step}"),
                None => "not reached".into(),
            }
        );
    }
    s
}

/// Outcomes by budget, arm and step: per seed, each held-out prompt's success.
type ByBudget = BTreeMap<u64, BTreeMap<String, BTreeMap<u64, stats::Outcomes>>>;

/// Strata by budget, arm and step: per seed, each held-out prompt's stratum and success.
fn collect(prompts: &BTreeMap<(String, u64), PromptRows>) -> ByBudget {
    let mut out = ByBudget::new();
    for ((arm, seed), rows) in prompts {
        for ((step, budget), results) in rows {
            out.entry(*budget)
                .or_default()
                .entry(arm.clone())
                .or_default()
                .entry(*step)
                .or_default()
                .insert(*seed, results.iter().map(|r| r.0).collect());
        }
    }
    out
}

/// The intervals section of `results.md`: per budget, each arm's pass@1 with its 95 %
/// interval at every evaluated step, the zone − random difference and whether it is
/// outside the noise, the steps each arm needs to gain 10 points, and pass@1 per stratum
/// at the last step.
fn intervals(
    prompts: &BTreeMap<(String, u64), PromptRows>,
    training_budget: u64,
) -> (String, Bands) {
    let by_budget = collect(prompts);
    let mut md = String::new();
    let mut bands = Bands::new();
    let pct = |i: stats::Interval| {
        format!(
            "{:.1} [{:.1}, {:.1}]",
            i.mean * 100.0,
            i.lo * 100.0,
            i.hi * 100.0
        )
    };
    for (budget, arms) in &by_budget {
        let _ = writeln!(
            md,
            "\n### {budget}-token budget{}\n\npass@1 in %, mean over seeds, [95 % bootstrap interval over prompts and seeds]; the difference is paired by seed and prompt.\n",
            if *budget == training_budget { " (training)" } else { "" }
        );
        let steps: std::collections::BTreeSet<u64> =
            arms.values().flat_map(|s| s.keys().copied()).collect();
        md +=
            "| step | zone | random | zone − random | outside the noise |\n|---|---|---|---|---|\n";
        for step in &steps {
            let at = |arm: &str| arms.get(arm).and_then(|s| s.get(step));
            let cell =
                |arm: &str| at(arm).map_or("–".to_string(), |o| pct(stats::pass_at_1(o, *step)));
            let (diff, outside) = match (at("zone"), at("random")) {
                (Some(z), Some(r)) => {
                    let d = stats::difference(z, r, *step);
                    (pct(d), if d.excludes_zero() { "yes" } else { "no" })
                }
                _ => ("–".into(), "–"),
            };
            let _ = writeln!(
                md,
                "| {step} | {} | {} | {diff} | {outside} |",
                cell("zone"),
                cell("random")
            );
        }
        md += "\n";
        for (arm, by_step) in arms {
            let (step, range, share) = stats::steps_to_gain(by_step, 0.10, 17);
            let _ = writeln!(
                md,
                "- {arm}: +10 points over step 0 {}; in {:.0} % of bootstrap replicates{}",
                step.map_or("not reached".to_string(), |s| format!("first at step {s}")),
                share * 100.0,
                range.map_or(String::new(), |(lo, hi)| format!(
                    ", at steps {lo}–{hi} (95 %)"
                ))
            );
            if *budget == training_budget {
                let band = by_step
                    .iter()
                    .map(|(st, o)| {
                        let i = stats::pass_at_1(o, *st);
                        (*st, i.lo, i.hi)
                    })
                    .collect();
                bands.insert(arm.clone(), band);
            }
        }
        // Per stratum at the last evaluated step, mean over seeds.
        let mut strata: BTreeMap<(String, String), (usize, usize)> = BTreeMap::new();
        for ((arm, _), rows) in prompts {
            let last = rows
                .keys()
                .filter(|(_, b)| b == budget)
                .map(|(s, _)| *s)
                .max();
            for (first, key) in [(true, (0, *budget)), (false, (last.unwrap_or(0), *budget))] {
                for (success, stratum) in rows.get(&key).into_iter().flatten() {
                    let label = if first {
                        format!("{arm}, step 0")
                    } else {
                        format!("{arm}, last step")
                    };
                    let e = strata.entry((stratum.clone(), label)).or_default();
                    e.0 += usize::from(*success);
                    e.1 += 1;
                }
            }
        }
        md += "\n| stratum | when | pass@1 | prompts |\n|---|---|---|---|\n";
        for ((stratum, label), (solved, n)) in &strata {
            let _ = writeln!(
                md,
                "| {stratum} | {label} | {:.1} % | {n} |",
                100.0 * *solved as f64 / (*n).max(1) as f64
            );
        }
    }
    (md, bands)
}

/// Per-step means of one arm over its seeds, from `steps.csv`: submitted, in-zone and
/// trained groups, and seconds mining, verifying and training.
fn step_means(dir: &Path) -> Result<[f64; 6], String> {
    let path = dir.join("steps.csv");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut sums = [0.0; 6];
    let mut rows = 0.0;
    for line in text.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split(',').collect();
        for (slot, column) in [1usize, 3, 4, 9, 10, 11].iter().enumerate() {
            sums[slot] += f
                .get(*column)
                .and_then(|v| v.parse::<f64>().ok())
                .ok_or_else(|| format!("{}: bad row `{line}`", path.display()))?;
        }
        rows += 1.0;
    }
    Ok(sums.map(|v| v / f64::max(rows, 1.0)))
}

/// Runs the experiment. A finished arm (its `summary.json` exists) in `--out` is reused as
/// it is, whatever the options now: use a new folder for new options.
pub fn run(args: &[String]) -> Result<(), String> {
    let o = parse(args)?;
    let env = setup::run(&["--no-deny".into()])?;
    let model = match &o.model {
        Some(m) => m.clone(),
        None => models::smollm2(&env)?,
    };
    // Release: the sampler's scan, the sketches and the verifier run in Rust; the debug
    // build made a step 1.5× and the miners' sampling 1.7× slower (docs/experiments.md).
    util::run_timed(
        "building grail-trainer (release)",
        models::cargo_with(&env).args(["build", "--release", "-p", "grail-trainer"]),
    )?;
    let bin = models::binary(&env, crate::localnet::Profile::Release, "grail-trainer");
    let out = o.out.clone().unwrap_or_else(|| {
        setup::cache_dir()
            .join("experiments")
            .join(models::run_name())
    });
    let training_budget: u64 = o
        .forwarded
        .windows(2)
        .find(|w| w[0] == "--max-new-tokens")
        .and_then(|w| w[1].parse().ok())
        .unwrap_or(48);
    let mut evals = Vec::new();
    let mut prompts = BTreeMap::new();
    let mut per_step: BTreeMap<String, Vec<[f64; 6]>> = BTreeMap::new();
    for &seed in &o.seeds {
        for arm in &o.arms {
            let dir = out.join(format!("{arm}-seed{seed}"));
            if !dir.join("summary.json").exists() {
                if dir.exists() {
                    // An interrupted arm: its rows stop mid-run, so it starts again.
                    eprintln!("    {} was interrupted; running it again", dir.display());
                    std::fs::remove_dir_all(&dir)
                        .map_err(|e| format!("removing {}: {e}", dir.display()))?;
                }
                util::run_timed(
                    &format!("arm {arm}, seed {seed} -> {}", dir.display()),
                    std::process::Command::new(&bin)
                        .envs(env.vars.iter().map(|(k, v)| (k, v)))
                        .args(["experiment", "--strategy", arm, "--seed"])
                        .arg(seed.to_string())
                        .arg("--model")
                        .arg(&model)
                        .arg("--out")
                        .arg(&dir)
                        .args(&o.forwarded),
                )?;
            } else {
                eprintln!("    {} already finished; reusing it", dir.display());
            }
            evals.extend(read_evals(&dir, arm, seed, training_budget)?);
            prompts.insert((arm.clone(), seed), read_prompts(&dir)?);
            per_step
                .entry(arm.clone())
                .or_default()
                .push(step_means(&dir)?);
        }
    }
    let mut csv = String::from("arm,seed,step,budget,pass_at_1,mean_reward\n");
    for e in &evals {
        let _ = writeln!(
            csv,
            "{},{},{},{},{:.4},{:.4}",
            e.arm, e.seed, e.step, e.budget, e.pass_at_1, e.mean_reward
        );
    }
    // Charts and the means table are at the training budget; intervals at every budget.
    let (interval_md, bands) = intervals(&prompts, training_budget);
    let evals: Vec<Eval> = evals
        .into_iter()
        .filter(|e| e.budget == training_budget)
        .collect();
    let model_name = model
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let chart = svg(
        &evals,
        &bands,
        &format!("{model_name}, held-out pass@1 (grail-rs GRPO)"),
    );
    let mut md = table(&evals, o.seeds.len());
    md += "\n| arm | groups per step | in learning zone | trained on | s mining | s verifying | s training |\n|---|---|---|---|---|---|---|\n";
    for (arm, runs) in &per_step {
        let n = runs.len() as f64;
        let m: Vec<f64> = (0..6)
            .map(|i| runs.iter().map(|r| r[i]).sum::<f64>() / n)
            .collect();
        let _ = writeln!(
            md,
            "| {arm} | {:.1} | {:.2} | {:.2} | {:.1} | {:.1} | {:.1} |",
            m[0], m[1], m[2], m[3], m[4], m[5]
        );
    }
    if !interval_md.is_empty() {
        md += "\n## Intervals\n";
        md += &interval_md;
    }
    let write = |path: PathBuf, text: &str| {
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))
    };
    write(out.join("results.csv"), &csv)?;
    write(out.join("pass_at_1.svg"), &chart)?;
    write(out.join("results.md"), &md)?;
    if o.doc {
        let docs = util::project_root().join("docs");
        write(docs.join("experiment-smollm2.svg"), &chart)?;
        write(docs.join("experiment-smollm2.csv"), &csv)?;
    }
    eprintln!("\n{md}\nresults in {}", out.display());
    Ok(())
}
