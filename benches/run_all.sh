#!/usr/bin/env bash
# Every Kiln benchmark on one backend, one `bench=...` line per figure (BENCHMARKS.md):
#   benches/run_all.sh            # CPU
#   benches/run_all.sh gpu        # the wgpu backend (any adapter, software Vulkan included)
# For Kiln side by side with PyTorch and NumPy, use benches/peers/compare.py instead.
set -euo pipefail
cd "$(dirname "$0")/.."
backend=${1:-cpu}
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
cargo build -q --release --example cold_start
cargo bench -q --bench train_step -- --backend "$backend"
if [[ $backend == cpu ]]; then
    cargo bench -q --bench matmul -- --backend cpu
else
    cargo bench -q --bench matmul -- --backend "$backend" 256 512 1024
fi
for _ in 1 2 3; do target/release/examples/cold_start --backend "$backend" 2>/dev/null; done
