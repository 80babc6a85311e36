#!/usr/bin/env bash
# The `fast` preset's two students on the same data, three seeds each, on all 60,000 training
# images and scored on test: the README's `fast` rows. Each row is one command of the preset's
# settings, from the default shipped teacher:
#
#   plain              train-student                          the training images as they are
#   plain-jittered     train-student --jitter 2               each image shifted by up to 2 pixels
#   distilled          distill --no-baseline --transfer-jitter 0   the paper's transfer set
#   distilled-jittered distill --no-baseline                  the preset's jittered transfer set
#
# (`--jitter 2` draws each image's shift uniformly from the 25 shifts of up to 2 pixels, the
# distribution of a transfer set jittered by 2, so the last two rows see the same images.)
#
#   bash benchmarks/fast_rows.sh run DIR [ROW...]   # seeds 0 1 2 of each row, two runs side by side,
#                                                   # one BLAS thread each (OpenBLAS's own kernels);
#                                                   # a finished run is skipped, a stopped one resumed
#   bash benchmarks/fast_rows.sh table DIR          # the final epoch of each run, mean +- sample std
#   bash benchmarks/fast_rows.sh keep DIR           # each finished run's log, settings and metrics
#                                                   # into benchmarks/logs/fast-rows/
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${1:?usage: bash benchmarks/fast_rows.sh run|table|keep DIR [ROW...]}
DIR=${2:?usage: bash benchmarks/fast_rows.sh run|table|keep DIR [ROW...]}
KEPT=benchmarks/logs/fast-rows
declare -A ARGS=(
  [plain]="train-student"
  [plain-jittered]="train-student --jitter 2"
  [distilled]="distill --no-baseline --transfer-jitter 0"
  [distilled-jittered]="distill --no-baseline"
)
ORDER=(plain plain-jittered distilled distilled-jittered)
shift 2
rows=("$@")
[ ${#rows[@]} -gt 0 ] || rows=("${ORDER[@]}")
for row in "${rows[@]}"; do
  [ -n "${ARGS[$row]:-}" ] || { echo "unknown row $row: one of ${ORDER[*]}" >&2; exit 2; }
done
mkdir -p "$DIR"
one() {  # row $1, seed $2
  local run="$DIR/$1-s$2" what
  if python3 benchmarks/run_folders.py finished "$run"; then echo "$1 seed $2: finished"; return 0; fi
  if [ -e "$run/run.json" ]; then what="${ARGS[$1]%% *} --resume $run"
  else what="${ARGS[$1]} --seed $2 --quiet --out $run"; fi
  echo "$(date -u +%H:%M:%S) $1 seed $2: python3 main.py $what"
  # shellcheck disable=SC2086
  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=1 python3 main.py $what \
    > "$DIR/$1-s$2.out" 2>&1 || echo "$1 seed $2: exit $?"
}
case "$MODE" in
  run)
    jobs=()
    for row in "${rows[@]}"; do for s in 0 1 2; do jobs+=("$row $s"); done; done
    lane() { local i; for (( i = $1; i < ${#jobs[@]}; i += 2 )); do one ${jobs[$i]}; done; }
    lane 0 & lane 1 & wait
    ;;
  table|keep)
    python3 - "$MODE" "$DIR" "$KEPT" "${rows[@]}" <<'PY'
import statistics, sys
from pathlib import Path
sys.path.insert(0, "benchmarks")
from run_folders import finished, keep, student_metrics
mode, run_dir, kept, rows = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4:]
print("| row | seed 0 / 1 / 2 | mean ± std | logs |")
print("|---|---|---:|---|")
for row in rows:
    errors, logs = [], []
    for seed in range(3):
        run = run_dir / f"{row}-s{seed}"
        if not finished(run):
            errors.append(None)
            continue
        errors.append(student_metrics(run)[-1]["test_errors"])
        logs.append(f"[s{seed}]({row}-s{seed}.out)")
        if mode == "keep":
            keep(run, kept)
    done = [e for e in errors if e is not None]
    mean = (f"{statistics.mean(done):.1f} ± {statistics.stdev(done):.1f}" if len(done) == 3
            else "(not all seeds)")
    print(f"| {row} | {' / '.join('-' if e is None else str(e) for e in errors)} | {mean} | {' '.join(logs)} |")
PY
    ;;
  *) echo "unknown mode $MODE: run, table or keep" >&2; exit 2 ;;
esac
