#!/usr/bin/env bash
# What one lent-GPU session ran (see docs/speed.md): MNIST from a carried copy,
# the CuPy checks, then the time-to-accuracy sweep and the long teacher run.
#   bash benchmarks/device_session.sh OUT_DIR SWEEP_SECONDS
# Expects gzip copies of the four MNIST IDX files in .device/mnist/ (git-ignored).
set -u
cd "$(dirname "$0")/.."
out=${1:?OUT_DIR}
sweep=${2:-300}
export PYTHONUNBUFFERED=1
mkdir -p data/mnist
for f in .device/mnist/*.gz; do gunzip -c "$f" > "data/mnist/$(basename "$f" .gz)"; done
bash benchmarks/gpu_check.sh /tmp/check > "$out/check.log" 2>&1
tail -45 "$out/check.log"
cp /tmp/check/bench.md "$out/bench.md" 2>/dev/null
python3 benchmarks/tune_fast.py --backend cupy --out /tmp/tune --deadline "$sweep" > "$out/tune.log" 2>&1
tail -30 "$out/tune.log"
cp /tmp/tune/sweep.jsonl /tmp/tune/pretrained_teacher.npz /tmp/tune/pretrained_metrics.jsonl "$out/" 2>/dev/null
tar czf "$out/logs.tgz" -C /tmp tune/*.log check/smoke/log.txt 2>/dev/null
ls -la "$out"
