#!/usr/bin/env bash
# The CuPy checks, for a machine with an NVIDIA GPU; about 4-7 minutes on an H100/H200
# (each step has its own timeout; the benchmark's torch.compile column stops compiling
# after 60 s of compile time so that the step ends well inside its 240 s).
#   bash benchmarks/gpu_check.sh [OUT_DIR]
# 1. the card and library versions; 2. gradient checks on CuPy; 3. the test suite
# (CuPy-parametrized cases run instead of skipping); 4. the benchmark tables at batch 100
# and 1024, NumPy vs PyTorch CPU and CuPy vs PyTorch CUDA (the peer with nnkd's jitter and
# max-norm, plain PyTorch, and on CUDA the peer under torch.compile), then one real
# training epoch per model on each backend next to the time the step benchmark implies;
# then the kernel launches and host syncs per step that the CuPy stand-in counts
# (benchmarks/launch_count.py, on the CPU), beside those times; 5. a short distill on CuPy.
# MNIST must be reachable through nnkd's source chain or already in data/mnist.
set -u
cd "$(dirname "$0")/.."
out=${1:-runs/gpu-check}
mkdir -p "$out"
py=${PYTHON:-python3}
status=0
step() { echo; echo "=== $1"; }

step "device"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
$py -c "import cupy, numpy; print('cupy', cupy.__version__, 'numpy', numpy.__version__)"

step "gradient checks on cupy"
$py main.py gradcheck --backend cupy | tee "$out/gradcheck.txt" | tail -4 || status=1

step "test suite (CuPy cases run where a GPU is usable)"
timeout 240 $py -m pytest -q -p no:cacheprovider tests 2>&1 | tail -15 || status=1

step "benchmark: numpy vs cupy vs torch (peer, plain, compiled), batch 100 and 1024; one epoch per model"
# bench.md is rewritten after each table: a timeout still leaves the tables done so far.
timeout 240 $py benchmarks/bench_train.py --backends numpy,cupy --batches 100,1024 --seconds 1 \
    --epoch-models teacher,student,distill --compile-budget 60 \
    --markdown "$out/bench.md" > "$out/bench.log" 2>&1 || { status=1; tail -5 "$out/bench.log"; }
cat "$out/bench.md"

step "kernel launches and host syncs per step and epoch (CuPy stand-in's counts, beside the times above)"
timeout 120 $py benchmarks/launch_count.py --markdown "$out/launch-count.md" | tail -6 || status=1

step "short distill on cupy (smoke preset)"
timeout 120 $py main.py distill --backend cupy --preset smoke --retrain-teacher --out "$out/smoke" \
    2>&1 | tail -8 || status=1
exit $status
