"""Proof v5 sketch commitments in PyTorch, for the sketch benchmark.

This is the project's own implementation of what the reference miner's
``create_commitments_batch`` computes (docs: /work/shared/reference/grail.md §1.4, §1.7,
§1.8, "N / proof v5"), written from that description in the vectorised style of the
reference: one batch of hidden states ``[positions, hidden]`` in, one ``{"sketch": int}``
per position out.

    r_vec:   prf(b"sketch", hexbytes(randomness), 32) read as 16 big-endian int16,
             numpy int16 abs, floor-mod 255, minus 127
    commit:  I = the 16 largest |h| per row, sorted by index
             b = signed log bucket (8 buckets, computed in float64) of h[I]
             sketch = (Σ_j b[j] · r[j]) mod Q,  Q = 2^31 − 1

Run by ``crates/grail-proto/benches/commitments.rs`` (``cargo xtask bench sketch``):

    python v5_commitments.py SPEC.json OUT.json

SPEC: ``{"randomness": hex, "threads": n, "repeats": r, "cases": [{"file": path,
"hidden": d, "positions": n}]}``; each file holds ``positions × hidden`` little-endian f32.
OUT: ``{"torch": version, "threads": n, "r_vec": [16 ints], "cases": [{"seconds": best,
"sketches": [...]}]}`` where ``seconds`` is the best of ``repeats`` timed calls (after one
warm-up) of ``create_commitments_batch`` alone; loading the file and deriving r_vec are not
timed.
"""

import hashlib
import json
import sys
import time

import numpy as np
import torch

PROOF_TOPK = 16
PROOF_NUM_BUCKETS = 8
PROOF_COEFF_RANGE = 127
PRIME_Q = 2_147_483_647


def prf(label, *parts, out_bytes):
    """SHAKE256(label || "||" || part0 || "||" || part1 ...), first out_bytes bytes."""
    return hashlib.shake_256(b"||".join([label, *parts])).digest(out_bytes)


def hexbytes(s):
    clean = s.strip().replace("0x", "").replace("0X", "")
    if len(clean) % 2:
        clean = "0" + clean
    return bytes.fromhex(clean)


def r_vec(randomness_hex):
    """The 16 sketch coefficients in [-127, 127] (int8)."""
    raw = prf(b"sketch", hexbytes(randomness_hex), out_bytes=2 * PROOF_TOPK)
    v = np.frombuffer(raw, dtype=">i2").astype(np.int16)
    a = np.abs(v)  # int16: abs(-32768) stays -32768
    m = np.mod(a.astype(np.int32), 255)  # floor-mod, [0, 254]
    return torch.from_numpy((m - PROOF_COEFF_RANGE).astype(np.int8))


def log_magnitude_bucket(values, num_buckets=PROOF_NUM_BUCKETS):
    """Signed log bucket of every element, in float64: 0 for NaN and |x| < 1e-6,
    ±(NB − 1) for ±inf, else sign(x) · clamp(trunc(log2(|x| + 1) · NB/10), 0, NB − 1)."""
    x = values.to(torch.float64)
    a = x.abs()
    b = torch.floor(torch.log2(a + 1.0) * (num_buckets / 10.0))
    b = b.clamp(0, num_buckets - 1)
    b = torch.where(x >= 0, b, -b)
    b = torch.where(a < 1e-6, torch.zeros_like(b), b)
    b = torch.where(torch.isnan(x), torch.zeros_like(b), b)
    inf = torch.full_like(b, num_buckets - 1)
    b = torch.where(torch.isinf(x), torch.where(x > 0, inf, -inf), b)
    return b.to(torch.int64)


def create_commitments_batch(hidden, r):
    """One ``{"sketch": int}`` per row of ``hidden`` ([positions, hidden] float)."""
    _, idx = torch.topk(hidden.abs(), k=PROOF_TOPK, dim=1)
    idx, _ = torch.sort(idx, dim=1)
    values = torch.gather(hidden, 1, idx)
    buckets = log_magnitude_bucket(values)
    sketches = (buckets * r.to(torch.int64).unsqueeze(0)).sum(dim=1)
    sketches = torch.remainder(sketches, PRIME_Q)
    return [{"sketch": int(s)} for s in sketches.tolist()]


def main(spec_path, out_path):
    with open(spec_path) as f:
        spec = json.load(f)
    torch.set_num_threads(int(spec["threads"]))
    r = r_vec(spec["randomness"])
    out = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "r_vec": r.tolist(),
        "cases": [],
    }
    for case in spec["cases"]:
        d, n = case["hidden"], case["positions"]
        hidden = torch.from_numpy(np.fromfile(case["file"], dtype="<f4").reshape(n, d))
        with torch.inference_mode():
            commitments = create_commitments_batch(hidden, r)  # warm-up
            best = float("inf")
            for _ in range(int(spec["repeats"])):
                start = time.perf_counter()
                commitments = create_commitments_batch(hidden, r)
                best = min(best, time.perf_counter() - start)
        out["cases"].append(
            {"seconds": best, "sketches": [c["sketch"] for c in commitments]}
        )
    with open(out_path, "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
