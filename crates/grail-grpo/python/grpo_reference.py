"""A plain PyTorch + transformers implementation of grail-grpo's loss, for parity tests.

Reads a JSON batch (model folder, config, groups), computes the GRPO/DAPO loss with the
formulas written out directly, backpropagates, and prints the loss and the gradients of the
requested parameters as JSON.

    python grpo_reference.py BATCH.json > OUT.json
"""

import json
import sys

import torch
from transformers import AutoModelForCausalLM

torch.use_deterministic_algorithms(True)
spec = json.load(open(sys.argv[1]))
cfg = spec["config"]
model = AutoModelForCausalLM.from_pretrained(spec["model"], torch_dtype=torch.float32, attn_implementation="sdpa")
reference = AutoModelForCausalLM.from_pretrained(spec["model"], torch_dtype=torch.float32, attn_implementation="sdpa")
model.train(False)
reference.train(False)

# Advantages: (r - mean) / population std, zero when all rewards are equal; zero-advantage
# sequences are left out.
samples = []
for g in spec["groups"]:
    r = torch.tensor([x["reward"] for x in g["rollouts"]], dtype=torch.float64)
    sigma = r.std(unbiased=False)
    adv = torch.zeros_like(r) if sigma < 1e-8 else (r - r.mean()) / sigma
    for x, a in zip(g["rollouts"], adv.tolist()):
        if a != 0.0:
            samples.append((g["prompt"], x["completion"], x["behaviour_logprobs"], a))

total_tokens = sum(len(c) for _, c, _, _ in samples)
loss = torch.zeros((), dtype=torch.float32)
for prompt, completion, old, a in samples:  # one sequence at a time: no padding at all
    ids = torch.tensor([prompt + completion])
    logits = model(ids).logits[0, :-1].float() / cfg["temperature"]
    logp_all = torch.log_softmax(logits, dim=-1)
    start = len(prompt) - 1
    targets = ids[0, 1:]
    new = logp_all.gather(-1, targets[:, None])[:, 0][start:]
    with torch.no_grad():
        ref_all = torch.log_softmax(reference(ids).logits[0, :-1].float() / cfg["temperature"], dim=-1)
        ref = ref_all.gather(-1, targets[:, None])[:, 0][start:]
    old = torch.tensor(old, dtype=torch.float32)
    ratio = torch.exp(new - old)
    pg = torch.maximum(-a * ratio, -a * torch.clamp(ratio, 1 - cfg["clip_low"], 1 + cfg["clip_high"]))
    if cfg["dual_clip"] is not None and a < 0:
        pg = torch.minimum(pg, torch.full_like(pg, -a * cfg["dual_clip"]))
    d = ref - new
    kl = torch.exp(d) - d - 1
    entropy = -(logp_all.exp() * logp_all).sum(-1)[start:]
    per_token = pg + cfg["kl_coef"] * kl - cfg["entropy_coef"] * entropy
    loss = loss + per_token.sum() / total_tokens

loss.backward()
params = dict(model.named_parameters())
out = {"loss": loss.item(), "grads": {}}
for name in spec["gradients"]:
    out["grads"][name] = params[name].grad.flatten().tolist()
json.dump(out, sys.stdout)
