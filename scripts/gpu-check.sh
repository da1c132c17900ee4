#!/usr/bin/env bash
# The checks that need an NVIDIA GPU, in one run (docs/inference.md, "CUDA"):
#   1. a CUDA-linked build: `cargo xtask setup` picks the CUDA libtorch on a GPU machine
#      (forced here with --torch cuda), or LIBTORCH points at a CUDA PyTorch 2.11;
#   2. a miner on CUDA, a validator on the CPU: sketches, log-probs and the sampling check
#      of honest rollouts must pass (tiny model, then SmolLM2);
#   3. every role on CUDA: a short local network with GRAIL_DEVICE=cuda;
#   4. parity with transformers and the benches, built the same way.
# Needs the repository's Rust toolchain. GRAIL_CUDA_PYTHON (optional): a python whose
# torch==2.11.0 sees the GPU, to link instead of setup's. Builds into $GRAIL_CACHE/target-cuda.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -n "${GRAIL_CUDA_PYTHON:-}" ]]; then
  torch_dir=$("$GRAIL_CUDA_PYTHON" - <<'PY'
import os, torch
assert torch.__version__.startswith("2.11."), f"torch {torch.__version__}: grail-rs links 2.11 (tch 0.24)"
assert torch.cuda.is_available(), "this torch sees no CUDA device"
print(os.path.dirname(torch.__file__))
PY
  )
  cache=${GRAIL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/grail-rs}
  export LIBTORCH=$torch_dir CARGO_TARGET_DIR=$cache/target-cuda
else
  eval "$(cargo xtask env --no-deny --torch cuda)"
fi
echo "==> CUDA build against $LIBTORCH (target folder $CARGO_TARGET_DIR)"
model=$(cargo xtask model | tail -n 1)
echo "==> CPU validator vs CUDA miner: tiny model"
cargo test -p grail-infer --test cuda -- --ignored --nocapture
echo "==> CPU validator vs CUDA miner: $model"
GRAIL_CUDA_MODELS=$model cargo test -p grail-infer --test cuda -- --ignored --nocapture
echo "==> every role on CUDA: a local network of 3 windows (GRAIL_DEVICE=cuda)"
GRAIL_DEVICE=cuda cargo xtask localnet --windows 3
echo "==> parity with transformers and the benches (their numbers are CPU numbers of this host)"
cargo xtask parity
cargo xtask bench verify
cargo xtask bench infer
echo "gpu-check: all passed"
