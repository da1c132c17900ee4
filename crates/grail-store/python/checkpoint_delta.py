"""How much of a checkpoint changes between two consecutive GRPO checkpoints, and what a
delta would cost on the wire (docs/training.md, "Checkpoint size on the wire").

usage: checkpoint_delta.py MODEL_DIR [--lr 2e-5] [--seed 0]

The second checkpoint is the first AdamW step from MODEL_DIR: with bias correction the
first step moves every parameter with a non-zero gradient by exactly lr * sign(g), so a
random sign per parameter is that step for any gradient (later steps are of the same size).
Prints the share of changed fp32 values, and zlib sizes of the full file and of the XOR of
the two checkpoints' bytes.
"""

import json
import struct
import sys
import time
import zlib

import numpy as np


def tensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        assert meta["dtype"] == "F32", meta["dtype"]
        a, b = meta["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype=np.float32)
    return out


def main():
    args = sys.argv[1:]
    model = args[0]
    lr = float(args[args.index("--lr") + 1]) if "--lr" in args else 2e-5
    seed = int(args[args.index("--seed") + 1]) if "--seed" in args else 0
    rng = np.random.default_rng(seed)
    before = tensors(f"{model}/model.safetensors")
    total = changed = 0
    full = bytearray()
    delta = bytearray()
    for name, w in before.items():
        step = lr * np.where(rng.random(w.shape) < 0.5, -1.0, 1.0).astype(np.float32)
        after = (w - step).astype(np.float32)
        total += w.size
        changed += int(np.count_nonzero(after.view(np.uint32) != w.view(np.uint32)))
        full += after.tobytes()
        delta += (after.view(np.uint32) ^ w.view(np.uint32)).tobytes()
    t = time.time()
    full_z = len(zlib.compress(bytes(full), 6))
    full_s = time.time() - t
    t = time.time()
    delta_z = len(zlib.compress(bytes(delta), 6))
    delta_s = time.time() - t
    mb = lambda n: n / 1e6
    print(f"parameters: {total}, changed by one step at lr {lr}: {changed / total:.1%}")
    print(f"full checkpoint: {mb(len(full)):.0f} MB, zlib -6: {mb(full_z):.0f} MB ({full_s:.0f} s)")
    print(f"XOR delta: zlib -6: {mb(delta_z):.0f} MB ({delta_s:.0f} s), {delta_z / len(full):.0%} of the full file")


if __name__ == "__main__":
    main()
