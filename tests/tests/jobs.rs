//! Client jobs on the protocol: a job group is mined and verified by the ordinary rules in
//! the job's lane (its environment, sampling parameters and group size), with the job's
//! WebAssembly reward recomputed by the validator.

use grail_env::Environment;
use grail_jobs::reward::encode_module;
use grail_jobs::spec::{Job, JobRequest, PromptRequest};
use grail_jobs::{JobEnvironment, RewardSpec};
use grail_mine::groups::{make_group, WindowPlan};
use grail_node::context::ModelContext;
use grail_proto::rules::Reason;
use grail_proto::signing::Keypair;
use grail_proto::{GenerationParams, Hotkey, SketchCoefficients};
use grail_validate::verify::{window_params, PromptCache, WindowCheck};

fn job_env(now: u64) -> JobEnvironment {
    let req = JobRequest {
        prompts: ["Name a colour.", "Say hello.", "Count to three."]
            .iter()
            .map(|p| PromptRequest {
                prompt: Some(p.to_string()),
                ..Default::default()
            })
            .collect(),
        reward: RewardSpec::Wasm {
            module: encode_module(&wat::parse_str(grail_e2e::LENGTH_REWARD).unwrap()),
        },
        group_size: 4,
        max_new_tokens: 10,
        temperature: 0.9,
        groups_per_prompt: 1,
        deadline_unix: now + 600,
        pass_threshold: 1.0,
    };
    let (job, scorer) = Job::from_request(&req, now).unwrap();
    JobEnvironment::new(job, scorer)
}

#[test]
fn job_groups_are_mined_and_verified_in_their_lane() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("tiny");
    grail_infer::tiny::write_tiny_model(&grail_infer::tiny::TinySpec::default(), &model_dir)
        .unwrap();
    let context = ModelContext::load(&model_dir, tch::Device::Cpu).unwrap();
    let subnet = grail_env::by_name("math:0", None).unwrap();
    let base = WindowPlan {
        window: 30,
        window_randomness: [4; 32],
        checkpoint: [8; 32],
        environment: subnet.id(),
        generation: GenerationParams {
            max_new_tokens: 12,
            temperature_milli: 1000,
        },
        group_size: 2,
    };
    let env = job_env(1_000);
    let lane = env.lane_plan(&base);
    assert_eq!(lane.group_size, 4);
    assert_eq!(lane.generation.temperature_milli, 900);
    assert_eq!(lane.environment.name, "job");
    let coefficients =
        SketchCoefficients::derive(&lane.window_randomness, context.model.config().hidden_size);
    let miner = Keypair::from_seed(&[6; 32]);
    let validator = Hotkey([1; 32]);
    let groups: Vec<_> = (0..3)
        .map(|p| make_group(&context, &env, &lane, &coefficients, &miner, p).unwrap())
        .collect();
    // The rewards are the module's: a function of each completion's text.
    for g in &groups {
        for r in &g.rollouts {
            assert!([0.0, 0.5, 1.0].contains(&r.reward), "{}", r.reward);
        }
    }
    let params = window_params(
        &context,
        lane.clone(),
        [7; 32],
        validator,
        grail_proto::params::GROUPS_CHECKED,
    );
    let check = WindowCheck {
        context: &context,
        env: &env,
        params: &params,
    };
    let prompts = PromptCache::new();
    for g in &groups {
        assert_eq!(
            check
                .prechecks()
                .precheck(&params, &miner.public(), g, &prompts)
                .unwrap(),
            Ok(())
        );
        let outcome = check.check_forward(g).unwrap();
        assert!(outcome.verdict.accepted, "{:?}", outcome.verdict);
    }

    // A miner claiming rewards the module does not give (every rollout solved, which
    // needs a full reward): the validator recomputes them and rejects the group.
    let mut claimed = groups[0].clone();
    for r in &mut claimed.rollouts {
        r.reward = if r.reward == 1.0 { 0.5 } else { 1.0 };
        r.success = true;
    }
    let rewards: Vec<f64> = claimed.rollouts.iter().map(|r| r.reward).collect();
    for (r, a) in claimed
        .rollouts
        .iter_mut()
        .zip(grail_proto::grpo::advantages(&rewards))
    {
        r.advantage = a;
    }
    miner.sign_group(&mut claimed);
    assert_eq!(
        check.check_forward(&claimed).unwrap().reason(),
        Reason::RewardMismatch
    );

    // The job's group offered in the subnet's lane is bound to another environment.
    let subnet_params = window_params(
        &context,
        base.clone(),
        [7; 32],
        validator,
        grail_proto::params::GROUPS_CHECKED,
    );
    let rejected = check
        .prechecks()
        .precheck(&subnet_params, &miner.public(), &groups[0], &prompts)
        .unwrap()
        .unwrap_err();
    assert_eq!(rejected.reason, Reason::EnvironmentMismatch);

    // A prompt id past the job's prompts is the miner's fault, named as such.
    assert!(env.problem(3).is_err());
}
