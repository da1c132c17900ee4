//! The miner loop: per window, the checkpoint in effect, the window randomness, as many
//! signed groups as fit before the deadline (minus a margin), one upload.

use std::time::Instant;

use grail_env::Environment;
use grail_proto::sampling::prompt_digest;
use grail_proto::{encode_bundle, SketchCoefficients, WindowBundle};
use tracing::{info, warn};

use crate::checkpoints::CurrentModel;
use crate::mining::{
    assemble_group, sample_completions, PromptStrategy, PseudoRandomPrompts, WindowPlan,
};
use crate::network::Stop;
use crate::wiring::Wiring;
use crate::NodeError;

/// Prompts in a row that the strategy may propose again before the window is closed
/// early (a finite prompt space can run out).
const MAX_PROMPT_REPEATS: usize = 1000;

/// What a miner did in one window.
#[derive(Debug, Clone, PartialEq)]
pub struct MinedWindow {
    /// The window.
    pub window: u64,
    /// Groups uploaded.
    pub groups: usize,
    /// Checkpoint number used.
    pub checkpoint: u64,
}

/// Runs the miner from `from_window` (default: the current one) for `windows` windows
/// (default: until stopped).
pub async fn run(
    w: &Wiring,
    env: &dyn Environment,
    from_window: Option<u64>,
    windows: Option<u64>,
    mut stop: Stop,
) -> Result<Vec<MinedWindow>, NodeError> {
    w.publish_store().await?;
    let mut strategy = PseudoRandomPrompts::new(&w.key);
    let mut current: Option<CurrentModel> = None;
    let wl = w.net.window_length;
    let mut window = match from_window {
        Some(f) => f,
        None => w.net.current_window().await?,
    };
    let mut done = Vec::new();
    let mut attempted = 0u64;
    while windows.is_none_or(|n| attempted < n) {
        if !w.net.wait_for_block(window, &mut stop).await? {
            break;
        }
        let head_window = w.net.current_window().await?;
        if head_window > window {
            warn!(window, "window already over; skipping to {head_window}");
            attempted += (head_window - window) / w.net.window_length;
            window = head_window;
            continue;
        }
        match mine_window(w, env, window, &mut current, &mut strategy, &mut stop).await {
            Ok(Some(mined)) => done.push(mined),
            Ok(None) if stop.requested() => break,
            Ok(None) => {}
            // One window's failure (chain, beacon, store) does not end the miner.
            Err(e) => warn!(window, "window failed: {e}"),
        }
        attempted += 1;
        window += wl;
    }
    Ok(done)
}

async fn mine_window(
    w: &Wiring,
    env: &dyn Environment,
    window: u64,
    current: &mut Option<CurrentModel>,
    strategy: &mut dyn PromptStrategy,
    stop: &mut Stop,
) -> Result<Option<MinedWindow>, NodeError> {
    let Some(id) = w
        .checkpoints
        .in_effect(w.net.chain.as_ref(), window)
        .await?
    else {
        warn!(
            window,
            "no checkpoint announced by the trainer yet; skipping the window"
        );
        return Ok(None);
    };
    if CurrentModel::ensure(current, &w.checkpoints, id, w.device).await? {
        info!(window, checkpoint = id.number, "loaded checkpoint");
    }
    let model = current.as_ref().expect("ensured above");
    let deadline = w.net.deadline(window).await?;
    let window_randomness = w.net.window_randomness(window).await?;
    let coefficients =
        SketchCoefficients::derive(&window_randomness, model.context.model.config().hidden_size);
    let plan = WindowPlan {
        window,
        window_randomness,
        checkpoint: id.digest,
        environment: env.id(),
        generation: w.config.subnet.generation(),
        group_size: w.config.subnet.group_size,
    };
    let margin =
        chrono::Duration::milliseconds((w.config.miner.upload_margin_secs * 1000.0) as i64);
    let mut groups = Vec::new();
    let mut used_prompts = std::collections::BTreeSet::new();
    let mut repeats = 0usize;
    let mut slowest = chrono::Duration::zero();
    let (mut tokens, started) = (0usize, Instant::now());
    while groups.len() < w.config.miner.max_groups {
        if stop.requested() {
            info!(
                window,
                "stopping: nothing is uploaded for an unfinished window"
            );
            return Ok(None);
        }
        if chrono::Utc::now() + slowest + margin > deadline {
            break;
        }
        let t0 = chrono::Utc::now();
        let prompt_id = strategy.next(window, env.prompt_space());
        let (problem, prompt) = model.context.prompt(env, prompt_id)?;
        // One group per prompt and window: the uniforms fix it, a second is a duplicate.
        if !used_prompts.insert(prompt_digest(&prompt)) {
            repeats += 1;
            if repeats > MAX_PROMPT_REPEATS {
                warn!(
                    window,
                    "the prompt strategy keeps repeating prompts; stopping early"
                );
                break;
            }
            continue;
        }
        let group = tokio::task::block_in_place(|| {
            let completions = sample_completions(&model.context, &plan, &w.key.public(), &prompt)?;
            assemble_group(
                &model.context,
                env,
                &plan,
                &coefficients,
                &w.key,
                prompt_id,
                (&problem, &prompt),
                &completions,
            )
        })?;
        tokens += group
            .rollouts
            .iter()
            .map(|r| r.completion().len())
            .sum::<usize>();
        groups.push(group);
        slowest = slowest.max(chrono::Utc::now() - t0);
        info!(
            window,
            groups = groups.len(),
            tokens_per_s = format!("{:.1}", tokens as f64 / started.elapsed().as_secs_f64()),
            "group ready"
        );
    }
    if groups.is_empty() {
        warn!(window, "no group fitted before the deadline");
        return Ok(None);
    }
    let count = groups.len();
    let bundle = WindowBundle {
        hotkey: w.key.public(),
        window,
        groups,
    };
    let bytes = encode_bundle(&bundle)?;
    if chrono::Utc::now() > deadline {
        warn!(
            window,
            "finished after the deadline; not uploading a late bundle"
        );
        return Ok(None);
    }
    w.store
        .upload_bundle(window, &w.key.public(), bytes)
        .await?;
    info!(
        window,
        groups = count,
        checkpoint = id.number,
        "bundle uploaded"
    );
    Ok(Some(MinedWindow {
        window,
        groups: count,
        checkpoint: id.number,
    }))
}
