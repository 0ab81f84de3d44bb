#!/usr/bin/env bash
# Kiln's WGSL path on a real GPU, with binaries built elsewhere (x86-64 Linux).
#
#   benches/gpu/run.sh --prepare       # here, on the build machine: release binaries into
#                                      # target/gpu-bench/, the Vulkan loader debs into .gl/
#   benches/gpu/run.sh [--peak-gflops 67000] [--sizes "1024 2048 4096 8192"]
#                                      # there, on the GPU machine: builds nothing, < 8 minutes
#
# On the GPU machine it needs only target/gpu-bench/ and .gl/ (both git-ignored; carry them).
# It prints the adapter (`kiln info`), the cold start, matmul GFLOP/s and % of the fp32 peak for
# each WGSL matmul variant (`variant=small`: the 64x64-tile `matmul`; `variant=blocked`: the
# register-blocked 128x128 `matmul_blocked`; `rule=` is the one the lowering picks for that
# shape), the SmolLM2-135M training step (steps/s, tokens/s, MFU) with the lowering's rule and
# with every matmul forced onto the 64x64 one (KILN_MATMUL_TILE=small), then mlp-small, mlp-large, cnn and
# transformer steps/s with the host time to encode and submit one step
# (`bench=step-overhead backend=gpu submit_us=...`) and the host time spent encoding a step apart
# from the submit (`bench=... backend=gpu encode_us=... dispatches=... encode_us_per_dispatch=...`,
# issue 16's <= 2 us per dispatch; llm_step prints it too). Every figure is a `bench=... backend=gpu ...`
# line (BENCHMARKS.md), so compare.py's parser reads them too.
#
# The fp32 peak: KILN_PEAK_FLOPS (FLOP/s) if set, else --peak-gflops (GFLOP/s), else 67 TFLOP/s,
# the H200 SXM's non-tensor fp32 peak (H100 SXM: also ~67; A100: 19.5; RTX 4090: 82.6).
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=target/gpu-bench
PEAK=67000   # GFLOP/s, fp32 (H200 SXM: ~67 TFLOP/s non-tensor); KILN_PEAK_FLOPS overrides
SIZES="1024 2048 4096 8192"

if [[ "${1:-}" == "--prepare" ]]; then
    cargo build --release --bin kiln --example cold_start
    cargo bench --no-run --bench matmul --bench train_step --bench llm_step 2>&1 | tee /tmp/kiln-gpu-bench-build.log
    mkdir -p "$BIN"
    for b in matmul train_step llm_step; do
        exe=$(grep -o "target/release/deps/$b-[0-9a-f]*" /tmp/kiln-gpu-bench-build.log | tail -1)
        cp "$exe" "$BIN/$b"
    done
    cp target/release/kiln target/release/examples/cold_start "$BIN/"
    strip "$BIN"/* 2>/dev/null || true
    # The Vulkan loader (and GL/EGL dispatch libraries) for a machine whose image has only the
    # NVIDIA driver: downloaded here, unpacked there. See /work/.library/device/README.md.
    exclude="$(git rev-parse --git-common-dir)/info/exclude"
    grep -qx '/.gl/' "$exclude" 2>/dev/null || echo /.gl/ >>"$exclude"
    mkdir -p .gl /tmp/amd64/partial
    o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
    # shellcheck disable=SC2086
    apt-get $o update -qq && (cd .gl && apt-get $o download -qq libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
    du -sh "$BIN" .gl
    exit 0
fi
while [[ $# -gt 0 ]]; do
    case "$1" in
        --peak-gflops) PEAK=$2; shift 2 ;;
        --sizes) SIZES=$2; shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
if [[ -n ${KILN_PEAK_FLOPS:-} ]]; then
    PEAK=$(awk -v f="$KILN_PEAK_FLOPS" 'BEGIN { printf "%.0f", f / 1e9 }')
fi
export KILN_PEAK_FLOPS=$(awk -v g="$PEAK" 'BEGIN { printf "%.0f", g * 1e9 }')   # for llm_step's mfu=
[[ -x $BIN/matmul ]] || { echo "no $BIN/: run 'benches/gpu/run.sh --prepare' on the build machine" >&2; exit 1; }

# The Vulkan loader, if the machine lacks it.
if ! ldconfig -p | grep -q libvulkan.so.1; then
    if [[ $(id -u) == 0 ]] && ls .gl/*.deb >/dev/null 2>&1; then
        for f in .gl/*.deb; do dpkg -x "$f" /; done
        ldconfig
    else
        echo "no libvulkan.so.1 and no .gl/*.deb to unpack (or not root)" >&2
    fi
fi
# The NVIDIA ICD where the image keeps it outside the loader's default paths.
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [[ -z ${VK_DRIVER_FILES:-} && -f $icd ]] && ! ls /usr/share/vulkan/icd.d/nvidia* /etc/vulkan/icd.d/nvidia* >/dev/null 2>&1; then
    export VK_DRIVER_FILES=$icd
fi
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
start=$SECONDS
step() { echo; echo "## $* ($((SECONDS - start)) s)"; }

step "adapter"
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader 2>/dev/null || true
KILN_BACKEND=gpu timeout 30 "$BIN/kiln" info || echo "kiln info failed (rc $?)"

step "cold start (process start -> end of the first mlp-small step; pipeline caches as found)"
TIMEFORMAT='  wall %R s (spawn to exit)'
for i in 1 2 3; do
    time (timeout 20 "$BIN/cold_start" --backend gpu 2>/dev/null || echo "cold_start failed (rc $?)")
done

step "matmul, each variant, fp32 peak ${PEAK} GFLOP/s (target: >= 25% at n >= 4096)"
# One process per size, so a slow or failing size does not hide the others.
for n in $SIZES; do
    timeout 45 "$BIN/matmul" --backend gpu --peak-gflops "$PEAK" "$n" || echo "matmul n=$n failed (rc $?)"
done

step "matmul with half-precision operands (f32 accumulation), each variant, % of the same fp32 peak"
for dtype in bf16 f16; do
    timeout 25 "$BIN/matmul" --backend gpu --dtype "$dtype" --peak-gflops "$PEAK" 4096 \
        || echo "matmul $dtype n=4096 failed (rc $?)"
done

step "SmolLM2-135M training step (batch 4 x 128), matmuls by the lowering's rule, then forced"
[[ -x $BIN/llm_step ]] || echo "no $BIN/llm_step: rerun --prepare"
for tile in rule small; do
    echo "# KILN_MATMUL_TILE=$tile"
    if [[ $tile == rule ]]; then unset KILN_MATMUL_TILE; else export KILN_MATMUL_TILE=$tile; fi
    timeout 90 "$BIN/llm_step" --backend gpu --config smollm2-135m --steps 5 || echo "llm_step ($tile) failed (rc $?)"
done
unset KILN_MATMUL_TILE

step "training steps (loss read back one step late) and host time per step (target <= 50 us)"
# Worst case with every timeout hit: 30 + 3 x 20 + 4 x 45 + 2 x 25 + 2 x 90 + 2 x 45 + 2 x 20 = 630 s; expected
# well under half that (each matmul size ~5-15 s for both variants, each llm_step ~10-40 s).
for model in mlp-small mlp-large; do
    timeout 45 "$BIN/train_step" --backend gpu --model $model || echo "train_step $model failed (rc $?)"
done
for model in cnn transformer; do
    timeout 20 "$BIN/train_step" --backend gpu --model $model || echo "train_step $model failed (rc $?)"
done

step "done"
