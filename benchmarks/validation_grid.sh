#!/usr/bin/env bash
# The `fast` preset's students chosen on a validation split: each cell trains on the first 50,000
# training images and is scored on the last 10,000 (--validation 10000), from the default shipped
# teacher, seed 0. The choice reads the final epoch's validation error only; the test errors the
# runs also log are not compared.
#
#   bash benchmarks/validation_grid.sh run DIR [CELL...]   # run the cells one after another (each
#                                                          # skipped once finished, resumed if
#                                                          # stopped), one BLAS thread
#   bash benchmarks/validation_grid.sh table DIR           # the final epoch of every cell in DIR
#   bash benchmarks/validation_grid.sh keep DIR            # each finished cell's log, settings and
#                                                          # metrics into benchmarks/logs/validation/
#
# Cells: fast-distilled-lrX-tjJ (the distilled student at lr0 X with transfer jitter J, hard-loss
# weight 0.1: the grid's starting point, where the hard-weight cells below vary it) and
# fast-student-lrX-jJ (the plain student at lr0 X, its training images jittered by J: the same
# shifts, drawn the same way, as a transfer set jittered by J): the grid run by default. Then, at
# the lr0 X it chose, named on the command line: the cells' length, 80 epochs instead of 60
# (fast-distilled-lrX-tj2-e80, fast-student-lrX-j0-e80, fast-student-lrX-j2-e80), and the distilled
# student's hard-loss weight, 0 or 0.3 instead of 0.1 (fast-distilled-lrX-tj2-hw0, -hw0.3).
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${1:?usage: bash benchmarks/validation_grid.sh run|table|keep DIR [CELL...]}
DIR=${2:?usage: bash benchmarks/validation_grid.sh run|table|keep DIR [CELL...]}
KEPT=benchmarks/logs/validation
VAL="--validation 10000 --quiet"
declare -A ARGS
ORDER=()
for lr in 0.035 0.02 0.05; do
  for j in 0 2; do
    ARGS[fast-distilled-lr$lr-tj$j]="distill --no-baseline $VAL --lr $lr --transfer-jitter $j --hard-weight 0.1"
    ARGS[fast-student-lr$lr-j$j]="train-student $VAL --lr $lr --jitter $j"
    ORDER+=("fast-distilled-lr$lr-tj$j" "fast-student-lr$lr-j$j")
  done
done
for lr in 0.035 0.02 0.05; do  # the length and the hard-loss weight, at the lr0 chosen above
  ARGS[fast-distilled-lr$lr-tj2-e80]="${ARGS[fast-distilled-lr$lr-tj2]} --epochs 80"
  ARGS[fast-student-lr$lr-j0-e80]="${ARGS[fast-student-lr$lr-j0]} --epochs 80"
  ARGS[fast-student-lr$lr-j2-e80]="${ARGS[fast-student-lr$lr-j2]} --epochs 80"
  for hw in 0 0.3; do ARGS[fast-distilled-lr$lr-tj2-hw$hw]="${ARGS[fast-distilled-lr$lr-tj2]} --hard-weight $hw"; done
done
shift 2
names=("$@")
[ ${#names[@]} -gt 0 ] || names=("${ORDER[@]}")
for name in "${names[@]}"; do
  [ -n "${ARGS[$name]:-}" ] || { echo "unknown cell $name: one of ${ORDER[*]}" >&2; exit 2; }
done
mkdir -p "$DIR"
case "$MODE" in
  run)
    for name in "${names[@]}"; do
      run="$DIR/$name"
      if python3 benchmarks/run_folders.py finished "$run"
      then
        echo "$name: finished"; continue
      fi
      if [ -e "$run/run.json" ]; then what="${ARGS[$name]%% *} --resume $run"; else what="${ARGS[$name]} --out $run"; fi
      echo "$name: $what"
      # shellcheck disable=SC2086
      env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=1 python3 main.py $what \
        > "$DIR/$name.out" 2>&1 || echo "$name: exit $?"
    done
    ;;
  table|keep)
    python3 - "$MODE" "$DIR" "$KEPT" "${names[@]}" <<'PY'
import sys
from pathlib import Path
sys.path.insert(0, "benchmarks")
from run_folders import finished, keep, student_epochs, student_metrics
mode, run_dir, kept, names = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4:]
print("| cell | epochs | validation errors (of 10,000), final epoch | training error | console |")
print("|---|---:|---:|---:|---|")
for name in names:
    run = run_dir / name
    rows = student_metrics(run)
    if not rows:
        continue
    last = rows[-1]
    print(f"| {name} | {last['epoch']}/{student_epochs(run)} | {round(last['val_err'] * 10000)} | "
          f"{100 * last['train_err']:.2f}% | [{name}.out]({name}.out) |")
    if mode == "keep" and finished(run):
        keep(run, kept)
PY
    ;;
  *) echo "unknown mode $MODE: run, table or keep" >&2; exit 2 ;;
esac
