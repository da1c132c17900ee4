"""The Python reference validator's per-group work, for `cargo xtask bench verify`.

What grail's validator (proof v5) does with a group of rollouts, written here from the
protocol description in the project's reference notes: one Hugging Face forward over the
rollouts (fp32, right-padded batch, hidden states of the last layer after the final norm,
logits of every position), then per rollout the v5 sketch check at the challenged
positions (top-16 |h| indices sorted ascending, log-magnitude buckets with 8 buckets,
sketch = Σ bucket·r mod 2^31−1 with r from SHAKE256("sketch"||"||"||randomness), distance
against the tolerance int(6000 + 5·sqrt(pos))) and the log-prob check of the completion
tokens. The claimed values are computed first, untimed, from the same forward pass, so
every check passes and does its full work.

  python verify_reference.py REQUEST.json OUT.json

REQUEST: {"model": DIR, "groups": [[{"tokens": [...], "prompt_len": N}, ...], ...],
          "challenge_k": K, "repeats": R}
OUT: {"seconds": best time for all groups, "tokens": tokens run, "threads": T}
"""

import hashlib
import json
import math
import random
import sys
import time

import torch
from transformers import AutoModelForCausalLM

PRIME_Q = 2_147_483_647
TOPK = 16
BUCKETS = 8
RANDOMNESS = bytes(range(32))


def r_vec():
    raw = hashlib.shake_256(b"sketch" + b"||" + RANDOMNESS).digest(2 * TOPK)
    out = []
    for i in range(TOPK):
        v = int.from_bytes(raw[2 * i:2 * i + 2], "big", signed=True)
        a = v if v == -32768 else abs(v)
        out.append(a % 255 - 127)
    return torch.tensor(out, dtype=torch.int64)


def buckets(values):
    x = values.double()
    a = x.abs()
    b = torch.trunc(torch.log2(a + 1.0) * (BUCKETS / 10.0)).clamp(0, BUCKETS - 1)
    b = torch.where(a < 1e-6, torch.zeros_like(b), b)
    return (torch.sign(x) * b).to(torch.int64)


def sketches(hidden, r):
    """Sketches of the rows of `hidden` ([n, d])."""
    idx = hidden.abs().topk(TOPK, dim=-1).indices.sort(dim=-1).values
    b = buckets(hidden.gather(-1, idx))
    return (b * r).sum(-1) % PRIME_Q


def forward(model, group):
    longest = max(len(r["tokens"]) for r in group)
    ids = torch.zeros(len(group), longest, dtype=torch.long)
    mask = torch.zeros(len(group), longest, dtype=torch.long)
    for i, r in enumerate(group):
        ids[i, : len(r["tokens"])] = torch.tensor(r["tokens"])
        mask[i, : len(r["tokens"])] = 1
    out = model(ids, attention_mask=mask, output_hidden_states=True)
    return out.hidden_states[-1], out.logits


def positions(r, k):
    p, n = r["prompt_len"], len(r["tokens"])
    rng = random.Random(n)
    return sorted(rng.sample(range(p, n), min(k, n - p)))


def claims(model, group, r, k):
    hidden, logits = forward(model, group)
    out = []
    for i, roll in enumerate(group):
        pos = torch.tensor(positions(roll, k))
        p, n = roll["prompt_len"], len(roll["tokens"])
        lp = torch.log_softmax(logits[i, p - 1 : n - 1].float(), -1)
        tgt = torch.tensor(roll["tokens"][p:n]).view(-1, 1)
        out.append((pos, sketches(hidden[i, pos], r), lp.gather(-1, tgt).view(-1)))
    return out


def verify(model, group, claimed, r):
    hidden, logits = forward(model, group)
    ok = True
    for i, roll in enumerate(group):
        pos, sk, lps = claimed[i]
        mine = sketches(hidden[i, pos], r)
        d = (mine - sk).abs()
        dist = torch.minimum(d, PRIME_Q - d)
        tol = torch.tensor([int(6000 + 5.0 * math.sqrt(int(q))) for q in pos])
        ok &= bool((dist <= tol).all())
        p, n = roll["prompt_len"], len(roll["tokens"])
        lp = torch.log_softmax(logits[i, p - 1 : n - 1].float(), -1)
        tgt = torch.tensor(roll["tokens"][p:n]).view(-1, 1)
        ok &= bool(((lp.gather(-1, tgt).view(-1) - lps).abs() <= 1e-3).all())
    return ok


def main(request_path, out_path):
    req = json.load(open(request_path))
    model = AutoModelForCausalLM.from_pretrained(req["model"], dtype=torch.float32)
    model.eval()
    r = r_vec()
    k = req["challenge_k"]
    with torch.no_grad():
        claimed = [claims(model, g, r, k) for g in req["groups"]]
        best = math.inf
        for _ in range(req["repeats"]):
            start = time.perf_counter()
            for g, c in zip(req["groups"], claimed):
                if not verify(model, g, c, r):
                    raise SystemExit("the reference rejected an honest group")
            best = min(best, time.perf_counter() - start)
    tokens = sum(len(roll["tokens"]) for g in req["groups"] for roll in g)
    json.dump({"seconds": best, "tokens": tokens, "threads": torch.get_num_threads()},
              open(out_path, "w"))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
