#!/usr/bin/env bash
# The checks that need an NVIDIA GPU, in one run (docs/inference.md, "CUDA"):
#   1. a CUDA-linked build: LIBTORCH points at a CUDA PyTorch 2.11 (the one flag);
#   2. a miner on CUDA, a validator on the CPU: sketches, log-probs and the sampling check
#      of honest rollouts must pass (tiny model, then SmolLM2);
#   3. parity with transformers and the benches, built the same way.
# Needs the repository's Rust toolchain and a python whose torch==2.11.0 sees the GPU
# (GRAIL_CUDA_PYTHON, default python3). Builds into $GRAIL_CACHE/target-cuda.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${GRAIL_CUDA_PYTHON:-python3}
torch_dir=$("$python" - <<'PY'
import os, torch
assert torch.__version__.startswith("2.11."), f"torch {torch.__version__}: grail-rs links 2.11 (tch 0.24)"
assert torch.cuda.is_available(), "this torch sees no CUDA device"
print(os.path.dirname(torch.__file__))
PY
)
cache=${GRAIL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/grail-rs}
export LIBTORCH=$torch_dir
export CARGO_TARGET_DIR=$cache/target-cuda
echo "==> CUDA build against $LIBTORCH (target folder $CARGO_TARGET_DIR)"
model=$(cargo xtask model | tail -n 1)
echo "==> CPU validator vs CUDA miner: tiny model"
cargo test -p grail-infer --test cuda -- --ignored --nocapture
echo "==> CPU validator vs CUDA miner: $model"
GRAIL_CUDA_MODELS=$model cargo test -p grail-infer --test cuda -- --ignored --nocapture
echo "==> parity with transformers and the benches (their numbers are CPU numbers of this host)"
cargo xtask parity
cargo xtask bench verify
cargo xtask bench infer
echo "gpu-check: all passed"
