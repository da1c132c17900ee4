"""Trains a model with TRL's GRPO on verified rollouts from a grail job, instead of sampling.

    python trl_grpo.py MODEL_DIR --gateway URL --key-file FILE --job ID [--groups N] [--out DIR]
    python trl_grpo.py MODEL_DIR --ndjson FILE [--groups N] [--out DIR]

The first form follows the job's stream (`Client.groups`) until `--groups` whole groups have
arrived; the second reads a stream saved by `grail-client follow`. Every group becomes one
GRPO group: TRL's `rollout_func` hands the trainer the group's prompt and completion tokens and
the sampling log-probs the validator computed, and the reward function returns the reward the
validator recomputed — TRL neither generates nor scores anything itself. The model must be the
checkpoint the job was mined on (its tokenizer gives the stream's token ids meaning).

Needs `trl`, `transformers`, `accelerate`, `datasets` and `torch` (see docs/jobs.md). Prints a
JSON summary as the last line of stdout: groups used, steps, losses, the largest gap between the stream's log-probs and
the model's own at step 0, and how far the weights moved.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import os
import sys
from typing import Any, Dict, List

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from grail_client import Client  # noqa: E402


def read_groups(args: argparse.Namespace) -> tuple[List[List[Dict[str, Any]]], float]:
    """Whole groups (at most `args.groups`) and the job's sampling temperature."""
    if args.ndjson:
        rows = []
        with open(args.ndjson) as f:
            rows = [json.loads(line) for line in f if line.strip()]
        by_group: Dict[str, List[Dict[str, Any]]] = collections.OrderedDict()
        for r in rows:
            by_group.setdefault(r["group"], []).append(r)
        sizes = collections.Counter(len(g) for g in by_group.values())
        size = sizes.most_common(1)[0][0] if sizes else 0
        groups = [g for g in by_group.values() if len(g) == size]
        return groups[: args.groups], args.temperature
    with open(args.key_file) as f:
        client = Client(args.gateway, f.readline())
    temperature = client.job(args.job)["temperature_milli"] / 1000.0
    groups = []
    for group in client.groups(args.job, until_done=not args.no_wait):
        groups.append(group)
        print(f"trl_grpo: group {len(groups)}/{args.groups} from window {group[0]['window']}", file=sys.stderr)
        if len(groups) == args.groups:
            break
    return groups, temperature


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="the job's checkpoint (a Hugging Face model folder)")
    p.add_argument("--gateway", help="the validator API that took the job")
    p.add_argument("--key-file", help="file whose first line is the API key")
    p.add_argument("--job", help="the job id")
    p.add_argument("--no-wait", action="store_true", help="use what is delivered now, do not wait")
    p.add_argument("--ndjson", help="a stream saved by `grail-client follow` instead of a gateway")
    p.add_argument("--temperature", type=float, default=1.0, help="with --ndjson: the job's temperature")
    p.add_argument("--groups", type=int, default=8, help="groups to train on (default 8)")
    p.add_argument("--groups-per-step", type=int, default=2, help="groups in one optimizer step (default 2)")
    p.add_argument("--learning-rate", type=float, default=1e-5)
    p.add_argument("--out", default="trl-grpo-out", help="TRL's output folder")
    args = p.parse_args()
    if not args.ndjson and not (args.gateway and args.key_file and args.job):
        p.error("give --gateway, --key-file and --job, or --ndjson")

    groups, temperature = read_groups(args)
    if not groups:
        sys.exit("trl_grpo: no whole groups delivered yet")
    group_size = len(groups[0])
    per_step = max(1, min(args.groups_per_step, len(groups)))
    groups = groups[: len(groups) - len(groups) % per_step]

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)

    # The stream's log-probs are the validator's, of the same checkpoint at temperature 1:
    # the model's own must agree before the first step.
    gap = 0.0
    with torch.no_grad():
        for r in groups[0]:
            ids = torch.tensor([r["prompt_tokens"] + r["completion_tokens"]])
            logits = model(ids).logits[0, len(r["prompt_tokens"]) - 1 : -1].float()
            own = torch.log_softmax(logits, -1).gather(1, torch.tensor(r["completion_tokens"])[:, None])[:, 0]
            gap = max(gap, (own - torch.tensor(r["logprobs"])).abs().max().item())
    before = [t.detach().clone() for t in model.parameters()]

    # One dataset row per group; a prompt text may name several groups (queued in order).
    queued: Dict[str, collections.deque] = collections.defaultdict(collections.deque)
    rows = []
    for g in groups:
        text = tokenizer.decode(g[0]["prompt_tokens"])
        queued[text].append(g)
        rows.append({"prompt": text})

    def rollout_func(prompts: List[str], trainer: Any) -> Dict[str, Any]:
        # TRL repeats each prompt `num_generations` times in a row: one verified group per run.
        out: Dict[str, List[Any]] = {"prompt_ids": [], "completion_ids": [], "logprobs": [], "grail_reward": []}
        for start in range(0, len(prompts), group_size):
            group = queued[prompts[start]].popleft()
            for r in group:
                out["prompt_ids"].append(r["prompt_tokens"])
                out["completion_ids"].append(r["completion_tokens"])
                out["logprobs"].append(r["logprobs"])
                out["grail_reward"].append(r["reward"])
        return out

    def verified_reward(prompts: List[str], completions: List[str], grail_reward: List[float], **_: Any) -> List[float]:
        return grail_reward

    config = GRPOConfig(
        output_dir=args.out,
        num_generations=group_size,
        per_device_train_batch_size=group_size * per_step,
        gradient_accumulation_steps=1,
        max_steps=len(groups) // per_step,
        num_iterations=1,
        learning_rate=args.learning_rate,
        beta=0.0,
        temperature=temperature,
        max_completion_length=max(len(r["completion_tokens"]) for g in groups for r in g),
        shuffle_dataset=False,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=not torch.cuda.is_available(),
        bf16=False,
        seed=0,
        disable_tqdm=True,
    )
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=verified_reward,
        args=config,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        rollout_func=rollout_func,
    )
    trainer.train()

    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    moved = math.sqrt(sum(((a - b.to(a.device)) ** 2).sum().item() for a, b in zip(before, trainer.model.parameters())))
    print(json.dumps({
        "groups": len(groups),
        "group_size": group_size,
        "steps": trainer.state.global_step,
        "losses": losses,
        "mean_reward": sum(r["reward"] for g in groups for r in g) / (len(groups) * group_size),
        "logprob_gap_at_step_0": gap,
        "weights_moved_l2": moved,
        "groups_left_unused": sum(len(q) for q in queued.values()),
    }))


if __name__ == "__main__":
    main()
