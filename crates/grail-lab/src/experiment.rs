//! The learning-efficacy experiment: the node's miner, validator and trainer code in one
//! process, window after window without wall-clock waits, on a real task, with a held-out
//! evaluation of the policy every few steps.
//!
//! What differs from a network of processes: a window is a training step (no chain
//! clock); the window and challenge randomness come from a seeded PRF instead of drand;
//! one model instance serves the miners and the validator (they run the same checkpoint);
//! and the trainer's update reaches them in memory instead of through a published
//! checkpoint. Every group goes through the production path: the miners' batched
//! sampling and proof pass (`mine_window`: [`sample_completions_of`], [`assemble_group`]),
//! `grail_proto::verifier` answered by [`grail_validate::verify`] (the validator's rules, a sample of
//! `GROUPS_CHECKED` groups per miner with the forward pass), [`summarize`] (the window
//! state miners read), [`training_groups`] (what the trainer accepts from a sealed archive)
//! and `Trainer::step`.
//!
//! Two prompt strategies compete: `random` ([`grail_mine::prompts::PseudoRandomPrompts`], what a
//! miner does by default) and `zone` ([`grail_mine::prompts::ZoneTargetingPrompts`], fed with the
//! validator's per-stratum
//! learning-zone counts of the previous window, as a miner reads them from
//! `/window/{n}/state`).
//!
//! [`run`] is the outline of one arm: set-up (`Experiment::set_up`: the models, the
//! held-out set, the keys and strategies, the output files), an evaluation before the
//! first step, then per step `Experiment::step` (mining, the validator's check and
//! summary, the training step), its row (`Experiment::record_step`) and the periodic
//! evaluation (`Experiment::evaluate`), and finally `summary.json`
//! (`Experiment::finish`).

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use grail_env::Environment;
use grail_grpo::{GrpoConfig, StepReport, Trainer};
use grail_infer::{no_progress, ModelDir};
use grail_proto::archive::SealedWindow;
use grail_proto::params::GROUPS_CHECKED;
use grail_proto::prf::stream;
use grail_proto::rules::bundle::ReplaySet;
use grail_proto::signing::Keypair;
use grail_proto::{GenerationParams, Hotkey, SketchCoefficients};
use rand_core::RngCore;
use serde::{Deserialize, Serialize};
use tch::Kind;

use crate::eval::{evaluate, EvalReport, HeldOut};
use grail_mine::groups::{assemble_group, sample_completions_of, WindowPlan};
use grail_mine::prompts::{PromptStrategy, Prompts};
use grail_node::config::PromptChoice;
use grail_node::context::ModelContext;
use grail_node::NodeError;
use grail_proto::verifier::BundleCheck;
use grail_train::training_groups;
use grail_validate::verify::{finish_window, window_params, MinerReport, PromptCache, WindowCheck};
use grail_validate::{summarize, WindowSummary};

pub use crate::DEFAULT_ENVIRONMENT;

/// Options of one experiment arm.
#[derive(Debug, Clone, clap::Args)]
pub struct ExperimentArgs {
    /// Base model directory (Hugging Face layout).
    #[arg(long)]
    pub model: PathBuf,
    /// Environment spec: a name, a tier (`math:1`) or a weighted mix.
    #[arg(long, default_value = DEFAULT_ENVIRONMENT)]
    pub environment: String,
    /// JSONL file for the dataset environments (`gsm8k`, `hendrycks-math`).
    #[arg(long)]
    pub dataset: Option<PathBuf>,
    /// How miners choose prompts.
    #[arg(long, value_enum, default_value = "zone")]
    pub strategy: PromptChoice,
    /// Training steps (one window each).
    #[arg(long, default_value_t = 30)]
    pub steps: u64,
    /// Miners.
    #[arg(long, default_value_t = 2)]
    pub miners: usize,
    /// Groups each miner submits per window.
    #[arg(long, default_value_t = 2)]
    pub groups_per_miner: usize,
    /// Rollouts per group.
    #[arg(long, default_value_t = 8)]
    pub group_size: usize,
    /// Most tokens per completion (also for evaluation).
    #[arg(long, default_value_t = 48)]
    pub max_new_tokens: u32,
    /// Sampling temperature × 1000.
    #[arg(long, default_value_t = 1000)]
    pub temperature_milli: u32,
    /// Held-out prompts (disjoint from training by problem statement).
    #[arg(long, default_value_t = 64)]
    pub eval_prompts: usize,
    /// Evaluate every this many steps (and after the last).
    #[arg(long, default_value_t = 10)]
    pub eval_every: u64,
    /// A second, generous evaluation budget in tokens (0: none): a gain at the training
    /// budget that does not hold here is brevity, not skill.
    #[arg(long, default_value_t = 128)]
    pub generous_tokens: u32,
    /// Evaluate at the generous budget every this many steps (0: only before the first
    /// step and after the last); it costs several times an evaluation at the training
    /// budget.
    #[arg(long, default_value_t = 0)]
    pub generous_every: u64,
    /// Seed of keys, randomness and the held-out set.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// TOML file with GRPO coefficients (`grail_grpo::GrpoConfig` fields); default: the
    /// experiment's (learning rate 2e-5, no warm-up, constant rate).
    #[arg(long)]
    pub grpo: Option<PathBuf>,
    /// Train on every accepted group, not only those in the learning zone.
    #[arg(long)]
    pub all_groups: bool,
    /// libtorch threads (0: libtorch's default).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Model device: auto (CUDA when libtorch sees a GPU), cpu, cuda or cuda:N.
    #[arg(long, env = "GRAIL_DEVICE", default_value_t = grail_infer::DeviceChoice::Auto)]
    pub device: grail_infer::DeviceChoice,
    /// Output folder (created; must not hold an earlier run).
    #[arg(long)]
    pub out: PathBuf,
}

/// The experiment's GRPO coefficients when no file is given: a constant learning rate of
/// 2e-5 without warm-up (short runs), everything else at `GrpoConfig`'s defaults.
pub fn default_grpo() -> GrpoConfig {
    GrpoConfig {
        learning_rate: 2e-5,
        warmup_steps: 0,
        min_lr_ratio: 1.0,
        ..GrpoConfig::default()
    }
}

/// One training step of the experiment (a row of `steps.csv`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRow {
    /// Step (= window number).
    pub step: u64,
    /// Groups the miners submitted.
    pub submitted: u64,
    /// Groups the validator accepted.
    pub accepted: u64,
    /// Accepted groups in the learning zone.
    pub in_zone: u64,
    /// Groups the trainer trained on.
    pub trained: usize,
    /// Mean reward of the accepted rollouts.
    pub mean_reward: f64,
    /// Total loss of the step (0 when none ran).
    pub loss: f64,
    /// KL to the reference (0 without one).
    pub kl: f64,
    /// Why no update happened, if none did.
    pub skipped: String,
    /// Seconds generating and proving (miners).
    pub mine_s: f64,
    /// Seconds verifying (validator).
    pub verify_s: f64,
    /// Seconds training.
    pub train_s: f64,
}

/// One held-out evaluation (a row of `eval.csv`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalRow {
    /// Optimizer steps taken before it.
    pub step: u64,
    /// Most tokens per completion.
    #[serde(default)]
    pub budget: u32,
    /// The evaluation.
    pub report: EvalReport,
    /// Seconds it took.
    pub eval_s: f64,
}

/// What `summary.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    /// Strategy.
    pub strategy: PromptChoice,
    /// Environment spec.
    pub environment: String,
    /// Seed.
    pub seed: u64,
    /// GRPO coefficients used.
    pub grpo: GrpoConfig,
    /// Held-out prompt ids.
    pub held_out: Vec<u64>,
    /// Prompts the miners skipped because their statement is held out.
    pub held_out_skipped: u64,
    /// Evaluations.
    pub evals: Vec<EvalRow>,
    /// Wall-clock seconds.
    pub seconds: f64,
}

fn derive32(seed: u64, what: &[u8], n: u64) -> [u8; 32] {
    let mut out = [0u8; 32];
    stream(
        b"grail/experiment",
        &[&seed.to_be_bytes(), what, &n.to_be_bytes()],
    )
    .fill_bytes(&mut out);
    out
}

fn grpo_config(args: &ExperimentArgs) -> Result<GrpoConfig, NodeError> {
    let Some(path) = &args.grpo else {
        return Ok(default_grpo());
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| NodeError::io(format!("reading {}", path.display()), e))?;
    let config: GrpoConfig = toml::from_str(&text).map_err(|source| NodeError::Toml {
        path: path.to_path_buf(),
        source,
    })?;
    config.validate()?;
    Ok(config)
}

/// A CSV file written row by row (flushed, so an interrupted run keeps its rows).
struct Csv(std::fs::File);

impl Csv {
    fn create(path: &Path, header: &str) -> Result<Self, NodeError> {
        let mut f = std::fs::File::create(path)
            .map_err(|e| NodeError::io(format!("creating {}", path.display()), e))?;
        writeln!(f, "{header}").map_err(|e| NodeError::io("writing a CSV header", e))?;
        Ok(Self(f))
    }

    fn row(&mut self, fields: &[String]) -> Result<(), NodeError> {
        writeln!(self.0, "{}", fields.join(","))
            .and_then(|_| self.0.flush())
            .map_err(|e| NodeError::io("writing a CSV row", e))
    }
}

/// Copies the trainer's weights into the model the miners and validator use.
fn sync_weights(from: &grail_infer::Model, to: &grail_infer::Model) {
    let _guard = tch::no_grad_guard();
    for (mut dst, src) in to.parameters().into_iter().zip(from.parameters()) {
        dst.copy_(&src);
    }
}

/// Every miner's groups of a window (`chosen[m]`: miner `m`'s prompt ids): one batched
/// generation over all of them, each group with its miner's public noise
/// ([`sample_completions_of`]), then each group's proof pass and signature.
fn mine_window(
    context: &ModelContext,
    env: &dyn Environment,
    plan: &WindowPlan,
    coefficients: &SketchCoefficients,
    miners: &[Keypair],
    chosen: &[Vec<u64>],
) -> Result<Vec<(MinerReport, Vec<grail_proto::Group>)>, NodeError> {
    let mut rendered = Vec::new();
    for (m, ids) in chosen.iter().enumerate() {
        for &id in ids {
            let (problem, prompt) = context.prompt(env, id)?;
            rendered.push((m, id, problem, prompt));
        }
    }
    let hotkeys: Vec<_> = miners.iter().map(Keypair::public).collect();
    let groups: Vec<(&grail_proto::Hotkey, &[u32])> = rendered
        .iter()
        .map(|(m, _, _, prompt)| (&hotkeys[*m], prompt.as_slice()))
        .collect();
    let completions = sample_completions_of(context, plan, &groups, &|| false)?;
    let mut bundles: Vec<(MinerReport, Vec<grail_proto::Group>)> = hotkeys
        .iter()
        .enumerate()
        .map(|(m, h)| (MinerReport::new(*h, m as u16 + 1), Vec::new()))
        .collect();
    for ((m, id, problem, prompt), completions) in rendered.iter().zip(completions) {
        let key = &miners[*m];
        let group = assemble_group(
            context,
            env,
            plan,
            coefficients,
            key,
            *id,
            (problem, prompt),
            &completions,
        )?;
        bundles[*m].1.push(group);
    }
    Ok(bundles)
}

/// Runs one arm; `log` sees a line per step and evaluation.
///
/// # Errors
/// Bad options, unreadable model or dataset, an existing run in `out`, or a failure of
/// the model, environment or trainer.
pub fn run(args: &ExperimentArgs, log: &mut dyn FnMut(&str)) -> Result<Summary, NodeError> {
    let started = Instant::now();
    prepare(args)?;
    let env = environment(args)?;
    let mut experiment = Experiment::set_up(args, env.as_ref(), log)?;
    experiment.evaluate(0, log)?;
    for step in 1..=args.steps {
        let row = experiment.step(step)?;
        experiment.record_step(&row, log)?;
        if step % args.eval_every.max(1) == 0 || step == args.steps {
            experiment.evaluate(step, log)?;
        }
    }
    experiment.finish(started)
}

/// Checks the counts, refuses an output folder that holds a run, creates it and sets
/// libtorch's threads.
fn prepare(args: &ExperimentArgs) -> Result<(), NodeError> {
    if args.miners == 0 || args.groups_per_miner == 0 || args.steps == 0 {
        return Err(NodeError::Config(
            "--miners, --groups-per-miner and --steps must be positive".into(),
        ));
    }
    if args.out.join("summary.json").exists() || args.out.join("steps.csv").exists() {
        return Err(NodeError::Config(format!(
            "{} already holds a run; choose another --out",
            args.out.display()
        )));
    }
    std::fs::create_dir_all(&args.out)
        .map_err(|e| NodeError::io(format!("creating {}", args.out.display()), e))?;
    if args.threads > 0 {
        tch::set_num_threads(args.threads as i32);
    }
    Ok(())
}

/// The task, through the subnet settings a network would run it with.
fn environment(args: &ExperimentArgs) -> Result<Box<dyn Environment>, NodeError> {
    let subnet = grail_node::config::SubnetSettings {
        environment: args.environment.clone(),
        dataset: args.dataset.clone(),
        group_size: args.group_size,
        max_new_tokens: args.max_new_tokens,
        temperature_milli: args.temperature_milli,
        ..Default::default()
    };
    subnet.validate()?;
    subnet.environment()
}

/// The model the miners and validator share, the trainer (with its reference model when
/// the KL term is on) and the GRPO coefficients it runs with.
fn load_models(
    args: &ExperimentArgs,
    log: &mut dyn FnMut(&str),
) -> Result<(ModelContext, Trainer, GrpoConfig), NodeError> {
    let device = grail_node::context::device(args.device)?;
    log("loading the model (miners and validator, trainer)");
    let context = ModelContext::load(&args.model, device)?;
    let files = ModelDir::open(&args.model)?;
    let grpo = grpo_config(args)?;
    let reference = if grpo.kl_coef > 0.0 {
        Some(files.load_model(Kind::Float, device, &mut no_progress)?)
    } else {
        None
    };
    let policy = files.load_model(Kind::Float, device, &mut no_progress)?;
    let trainer = Trainer::new(policy, reference, grpo.clone())?;
    Ok((context, trainer, grpo))
}

/// The experiment's CSV files.
struct Outputs {
    /// `steps.csv`: a [`StepRow`] per step.
    steps: Csv,
    /// `eval.csv`: an [`EvalRow`] per evaluation.
    eval: Csv,
    /// `eval_prompts.csv`: each evaluation's result per held-out prompt.
    eval_prompts: Csv,
}

impl Outputs {
    /// Creates the files in `out`, each with its header.
    fn create(out: &Path) -> Result<Self, NodeError> {
        Ok(Self {
            steps: Csv::create(
                &out.join("steps.csv"),
                "step,submitted,accepted,in_zone,trained,mean_reward,loss,kl,skipped,mine_s,verify_s,train_s",
            )?,
            eval: Csv::create(
                &out.join("eval.csv"),
                "step,budget,prompts,pass_at_1,mean_reward,mean_tokens,eval_s",
            )?,
            eval_prompts: Csv::create(
                &out.join("eval_prompts.csv"),
                "step,budget,prompt_id,stratum,success,reward,tokens",
            )?,
        })
    }

    /// A row of `steps.csv`.
    fn step(&mut self, row: &StepRow) -> Result<(), NodeError> {
        self.steps.row(&[
            row.step.to_string(),
            row.submitted.to_string(),
            row.accepted.to_string(),
            row.in_zone.to_string(),
            row.trained.to_string(),
            format!("{:.4}", row.mean_reward),
            format!("{:.5}", row.loss),
            format!("{:.5}", row.kl),
            row.skipped.replace(',', ";"),
            format!("{:.1}", row.mine_s),
            format!("{:.1}", row.verify_s),
            format!("{:.1}", row.train_s),
        ])
    }

    /// A row of `eval.csv` and one of `eval_prompts.csv` per prompt.
    fn eval(&mut self, row: &EvalRow) -> Result<(), NodeError> {
        let (step, budget) = (row.step, row.budget);
        self.eval.row(&[
            step.to_string(),
            budget.to_string(),
            row.report.prompts.to_string(),
            format!("{:.4}", row.report.pass_at_1),
            format!("{:.4}", row.report.mean_reward),
            format!("{:.2}", row.report.mean_tokens),
            format!("{:.1}", row.eval_s),
        ])?;
        for p in &row.report.per_prompt {
            self.eval_prompts.row(&[
                step.to_string(),
                budget.to_string(),
                p.prompt_id.to_string(),
                p.stratum.replace(',', ";"),
                u8::from(p.success).to_string(),
                format!("{:.4}", p.reward),
                p.tokens.to_string(),
            ])?;
        }
        Ok(())
    }
}

/// What the validator made of one window.
struct Verified {
    /// The window's challenge randomness.
    challenge: [u8; 32],
    /// The window state miners read (`/window/{n}/state`).
    state: WindowSummary,
    /// The archive the trainer reads.
    sealed: SealedWindow,
}

/// One arm's state from step to step: the model the miners and validator run, the
/// trainer, the keys, the miners' prompt strategies, the held-out set and the outputs.
struct Experiment<'a> {
    args: &'a ExperimentArgs,
    env: &'a dyn Environment,
    context: ModelContext,
    trainer: Trainer,
    held_out: HeldOut,
    validator: Keypair,
    miners: Vec<Keypair>,
    strategies: Vec<Prompts>,
    /// The validators' stakes as the trainer weighs them: the one validator.
    stakes: BTreeMap<Hotkey, u64>,
    outputs: Outputs,
    /// Filled in as the run goes.
    summary: Summary,
}

impl<'a> Experiment<'a> {
    /// Loads the models, draws the held-out set, derives the keys, sets up the miners'
    /// strategies and creates the output files.
    fn set_up(
        args: &'a ExperimentArgs,
        env: &'a dyn Environment,
        log: &mut dyn FnMut(&str),
    ) -> Result<Self, NodeError> {
        let (context, trainer, grpo) = load_models(args, log)?;
        let held_out = HeldOut::draw(env, args.eval_prompts, args.seed)?;
        let validator = Keypair::from_seed(&derive32(args.seed, b"validator", 0));
        let miners: Vec<Keypair> = (0..args.miners as u64)
            .map(|i| Keypair::from_seed(&derive32(args.seed, b"miner", i)))
            .collect();
        let strategies = miners
            .iter()
            .map(|k| Prompts::new(args.strategy, k, env))
            .collect();
        let stakes = [(validator.public(), 1u64)].into();
        let outputs = Outputs::create(&args.out)?;
        let summary = Summary {
            strategy: args.strategy,
            environment: args.environment.clone(),
            seed: args.seed,
            grpo,
            held_out: held_out.prompts.clone(),
            held_out_skipped: 0,
            evals: Vec::new(),
            seconds: 0.0,
        };
        Ok(Self {
            args,
            env,
            context,
            trainer,
            held_out,
            validator,
            miners,
            strategies,
            stakes,
            outputs,
            summary,
        })
    }

    /// One training step (= window): the miners mine, the validator checks and
    /// summarizes, the trainer trains on what it accepted.
    fn step(&mut self, step: u64) -> Result<StepRow, NodeError> {
        let window = step;
        let plan = self.plan(step);
        let coefficients = SketchCoefficients::derive(
            &plan.window_randomness,
            self.context.model.config().hidden_size,
        );

        let t = Instant::now();
        let chosen = self.choose_prompts(window)?;
        let bundles = mine_window(
            &self.context,
            self.env,
            &plan,
            &coefficients,
            &self.miners,
            &chosen,
        )?;
        let mine_s = t.elapsed().as_secs_f64();

        let t = Instant::now();
        let verified = self.verify(&plan, bundles);
        self.inform_strategies(&verified.state);
        let verify_s = t.elapsed().as_secs_f64();

        let t = Instant::now();
        let (trained, report) = self.train(window, &verified)?;
        let train_s = t.elapsed().as_secs_f64();

        Ok(step_row(
            step,
            &verified.state,
            trained,
            report.as_ref(),
            [mine_s, verify_s, train_s],
        ))
    }

    /// The plan of step `step`'s window, on the checkpoint of the step before.
    fn plan(&self, step: u64) -> WindowPlan {
        let args = self.args;
        WindowPlan {
            window: step,
            window_randomness: derive32(args.seed, b"window", step),
            checkpoint: derive32(args.seed, b"checkpoint", step - 1),
            environment: self.env.id(),
            generation: GenerationParams {
                max_new_tokens: args.max_new_tokens,
                temperature_milli: args.temperature_milli,
            },
            group_size: args.group_size,
        }
    }

    /// Every miner's prompt ids for `window` (`[m]`: miner `m`'s), from its strategy,
    /// skipping held-out statements (counted in the summary) and repeated ones.
    fn choose_prompts(&mut self, window: u64) -> Result<Vec<Vec<u64>>, NodeError> {
        let mut chosen = Vec::new();
        for strategy in &mut self.strategies {
            let mut ids = Vec::new();
            let mut seen = HashSet::new();
            let mut tries = 0;
            while ids.len() < self.args.groups_per_miner && tries < 10_000 {
                tries += 1;
                let id = strategy.next(window, self.env);
                let statement = self.env.problem(id)?.statement;
                if self.held_out.contains(&statement) {
                    self.summary.held_out_skipped += 1;
                    continue;
                }
                if seen.insert(statement) {
                    ids.push(id);
                }
            }
            chosen.push(ids);
        }
        Ok(chosen)
    }

    /// The validator's check of the miners' bundles (prechecks, then the sampled forward
    /// passes) and its summary of the window.
    fn verify(
        &self,
        plan: &WindowPlan,
        bundles: Vec<(MinerReport, Vec<grail_proto::Group>)>,
    ) -> Verified {
        let window = plan.window;
        let challenge = derive32(self.args.seed, b"challenge", window);
        let params = window_params(
            &self.context,
            plan.clone(),
            challenge,
            self.validator.public(),
            GROUPS_CHECKED,
        );
        let check = WindowCheck {
            context: &self.context,
            env: self.env,
            params: &params,
        };
        let prompts = PromptCache::new();
        let replay = ReplaySet::default();
        let pending = bundles
            .into_iter()
            .map(|(report, groups)| {
                let bundle = BundleCheck::new(&params, report, groups);
                check.prechecks().run(bundle, &prompts, &replay)
            })
            .collect();
        let outcome = finish_window(&check, pending);
        let state = summarize(window, Some(window - 1), &outcome.reports, self.env);
        Verified {
            challenge,
            state,
            sealed: outcome.sealed,
        }
    }

    /// Feeds the window's per-stratum learning-zone counts to the zone-targeting miners,
    /// as they read them from `/window/{n}/state`.
    fn inform_strategies(&mut self, state: &WindowSummary) {
        for s in &mut self.strategies {
            if let Prompts::Zone(z) = s {
                z.update([&state.strata]);
            }
        }
    }

    /// The trainer's step on the groups it accepts from the sealed archive (none: no
    /// step); an update reaches the miners' and validator's model. Returns how many
    /// groups it trained on and the step's report.
    fn train(
        &mut self,
        window: u64,
        verified: &Verified,
    ) -> Result<(usize, Option<StepReport>), NodeError> {
        let groups = training_groups(
            window,
            &verified.challenge,
            std::slice::from_ref(&verified.sealed),
            &self.stakes,
            !self.args.all_groups,
            self.context.model.config().vocab_size,
        );
        if groups.is_empty() {
            return Ok((0, None));
        }
        let report = self.trainer.step(&groups)?;
        if report.skipped.is_none() {
            sync_weights(self.trainer.model(), &self.context.model);
        }
        Ok((groups.len(), Some(report)))
    }

    /// Logs a step and writes its row.
    fn record_step(&mut self, row: &StepRow, log: &mut dyn FnMut(&str)) -> Result<(), NodeError> {
        log(&format!(
            "step {}/{}: {} groups, {} accepted, {} in zone, trained on {}, reward {:.3}, loss {:.4} ({:.0} s mining, {:.0} s verifying, {:.0} s training)",
            row.step, self.args.steps, row.submitted, row.accepted, row.in_zone, row.trained, row.mean_reward, row.loss, row.mine_s, row.verify_s, row.train_s
        ));
        self.outputs.step(row)
    }

    /// The held-out evaluation after `step` steps: at the training budget every time; at
    /// the generous one too at the first, every `generous_every` steps and the last.
    fn evaluate(&mut self, step: u64, log: &mut dyn FnMut(&str)) -> Result<(), NodeError> {
        let args = self.args;
        self.evaluate_at(step, args.max_new_tokens, log)?;
        let generous = args.generous_tokens > args.max_new_tokens
            && (step == 0
                || step == args.steps
                || (args.generous_every > 0 && step.is_multiple_of(args.generous_every)));
        if generous {
            self.evaluate_at(step, args.generous_tokens, log)?;
        }
        Ok(())
    }

    /// One held-out evaluation at `budget` tokens: logged, written and added to the
    /// summary.
    fn evaluate_at(
        &mut self,
        step: u64,
        budget: u32,
        log: &mut dyn FnMut(&str),
    ) -> Result<(), NodeError> {
        let t = Instant::now();
        let report = evaluate(
            &self.context,
            self.env,
            &self.held_out,
            budget as usize,
            &mut |done, total| eprint!("\r  evaluating {done}/{total} ({budget} tokens)"),
        )?;
        eprintln!();
        let row = EvalRow {
            step,
            budget,
            report,
            eval_s: t.elapsed().as_secs_f64(),
        };
        log(&format!(
            "step {step}: held-out pass@1 {:.3}, mean reward {:.3} ({} prompts, {budget} tokens, {:.0} s)",
            row.report.pass_at_1, row.report.mean_reward, row.report.prompts, row.eval_s
        ));
        self.outputs.eval(&row)?;
        self.summary.evals.push(row);
        Ok(())
    }

    /// Writes `summary.json` with the run's wall-clock time and returns the summary.
    fn finish(mut self, started: Instant) -> Result<Summary, NodeError> {
        self.summary.seconds = started.elapsed().as_secs_f64();
        let json =
            serde_json::to_vec_pretty(&self.summary).map_err(|source| NodeError::EncodeJson {
                what: "the experiment summary".into(),
                source,
            })?;
        grail_node::write_atomic(&self.args.out.join("summary.json"), &json)?;
        Ok(self.summary)
    }
}

/// A step's row: the validator's counts, what the trainer did and the phases' seconds
/// (`[mining, verifying, training]`).
fn step_row(
    step: u64,
    state: &WindowSummary,
    trained: usize,
    report: Option<&StepReport>,
    [mine_s, verify_s, train_s]: [f64; 3],
) -> StepRow {
    let accepted = state
        .verdicts
        .get(grail_proto::rules::Reason::Accepted.as_str())
        .copied()
        .unwrap_or(0);
    StepRow {
        step,
        submitted: state.groups_submitted,
        accepted,
        in_zone: state.in_zone,
        trained,
        mean_reward: state.mean_reward,
        loss: report.map_or(0.0, |r| r.loss),
        kl: report.map_or(0.0, |r| r.kl),
        skipped: match report {
            None => "no groups".into(),
            Some(r) => r.skipped.clone().unwrap_or_default(),
        },
        mine_s,
        verify_s,
        train_s,
    }
}
