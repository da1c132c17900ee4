"""The PyTorch reference training loop for `cargo xtask bench grpo`: the same batch, the
same token-mean clipped loss, backward, global-norm clipping and torch.optim.AdamW.

    python grpo_bench.py BATCH.json OUT.json
"""

import json
import sys
import time

import torch
from transformers import AutoModelForCausalLM

spec = json.load(open(sys.argv[1]))
cfg = spec["config"]
model = AutoModelForCausalLM.from_pretrained(spec["model"], torch_dtype=torch.float32, attn_implementation="sdpa")
opt = torch.optim.AdamW(model.parameters(), lr=cfg["learning_rate"], betas=(cfg["beta1"], cfg["beta2"]),
                        eps=cfg["eps"], weight_decay=cfg["weight_decay"])

rows = []
for g in spec["groups"]:
    r = torch.tensor([x["reward"] for x in g["rollouts"]], dtype=torch.float64)
    adv = (r - r.mean()) / r.std(unbiased=False)
    for x, a in zip(g["rollouts"], adv.tolist()):
        rows.append((g["prompt"] + x["completion"], len(g["prompt"]), x["behaviour_logprobs"], a))
length = max(len(t) for t, _, _, _ in rows)
ids = torch.zeros(len(rows), length, dtype=torch.long)
mask = torch.zeros(len(rows), length - 1)
old = torch.zeros(len(rows), length - 1)
adv = torch.tensor([a for _, _, _, a in rows], dtype=torch.float32)[:, None]
for i, (t, p, lp, _) in enumerate(rows):
    ids[i, : len(t)] = torch.tensor(t)
    mask[i, p - 1 : len(t) - 1] = 1
    old[i, p - 1 : len(t) - 1] = torch.tensor(lp)
tokens = int(sum(len(t) for t, _, _, _ in rows))


def step():
    opt.zero_grad()
    logits = model(ids).logits[:, :-1].float()
    new = torch.log_softmax(logits, -1).gather(-1, ids[:, 1:, None])[..., 0]
    ratio = torch.exp(new - old)
    pg = torch.maximum(-adv * ratio, -adv * ratio.clamp(1 - cfg["clip_low"], 1 + cfg["clip_high"]))
    pg = torch.where(adv < 0, torch.minimum(pg, -adv * cfg["dual_clip"]), pg)
    loss = (pg * mask).sum() / mask.sum()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg["max_grad_norm"])
    opt.step()


step()  # warm-up
times = []
for _ in range(spec["repeats"]):
    start = time.perf_counter()
    step()
    times.append(time.perf_counter() - start)
json.dump({"threads": torch.get_num_threads(), "tokens": tokens, "seconds": min(times)}, open(sys.argv[2], "w"))
