#!/usr/bin/env bash
# Distilling an ensemble into one student (docs/reproduction.md, "Distilling an ensemble").
#
# The teachers: the three shipped ones (public-teacher, paper-teacher, fast-teacher) and the
# PyTorch CNN of benchmarks/cnn_teacher.py exported to ONNX, kept as
# benchmarks/logs/cnn-teacher/cnn.onnx (55 test errors; `OMP_NUM_THREADS=1 python3
# benchmarks/cnn_teacher.py --out runs/cnn` rebuilds it byte for byte; CNN=path takes another).
# The student: the paper's 784-800-800-10 with the `fast` preset's settings (the default
# `distill`) but lr0 0.035 and hard-loss weight 0.1 (STUDENT below), distilled only (--no-baseline).
#
#   bash benchmarks/ensemble_experiment.sh validate DIR  # seed 0, first 50,000 images, scored on
#                        # the last 10,000: each teacher alone (single-NAME) and the ensemble of
#                        # all four under both means (ensemble-arithmetic, ensemble-geometric)
#   bash benchmarks/ensemble_experiment.sh table DIR     # their final-epoch validation errors
#   bash benchmarks/ensemble_experiment.sh final DIR ensemble MEAN  # seeds 0, 1, 2 on all 60,000
#                        # images, scored on test: the ensemble under the mean validation chose
#   bash benchmarks/ensemble_experiment.sh final DIR single NAME    # the same for the single
#                        # teacher validation chose (public, paper, fast or cnn)
#   bash benchmarks/ensemble_experiment.sh report DIR    # main.py report of each final set
#
# Every run resumes if stopped and is skipped once finished. THREADS (default 2) BLAS threads,
# NICE (default 0) scheduling niceness; the OpenBLAS kernel variables are unset in the command.
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${1:?usage: bash benchmarks/ensemble_experiment.sh validate|table|final|report DIR ...}
DIR=${2:?usage: bash benchmarks/ensemble_experiment.sh validate|table|final|report DIR ...}
CNN=${CNN:-benchmarks/logs/cnn-teacher/cnn.onnx}
THREADS=${THREADS:-2}
NICE=${NICE:-0}
declare -A TEACHER=([public]=public-teacher [paper]=paper-teacher [fast]=fast-teacher [cnn]=$CNN)
STUDENT="--lr 0.035 --hard-weight 0.1"  # the student settings the experiment ran with, spelled out
ALL="--teacher public-teacher --teacher paper-teacher --teacher fast-teacher --teacher $CNN"
mkdir -p "$DIR"

run() {  # run NAME ARGS...: start the run in DIR/NAME, or continue it
  local name=$1 out="$DIR/$1"; shift
  if [ -e "$out/distilled/checkpoint.json" ] && python3 - "$out" <<'PY'
import json, sys
from pathlib import Path
run = Path(sys.argv[1])
total = json.loads((run / "run.json").read_text())["configs"]["student"]["epochs"]
sys.exit(0 if json.loads((run / "distilled" / "checkpoint.json").read_text())["epoch"] >= total else 1)
PY
  then echo "$name: finished"; return; fi
  local what="distill --no-baseline --quiet $STUDENT $* --out $out"
  [ -e "$out/run.json" ] && what="distill --quiet --resume $out"
  echo "$name: $what"
  # shellcheck disable=SC2086
  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=$THREADS OMP_NUM_THREADS=$THREADS \
    nice -n "$NICE" python3 main.py $what > "$out.out" 2>&1 || echo "$name: exit $?"
}

case "$MODE" in
  validate)
    for t in public paper fast cnn; do run "single-$t" --validation 10000 --teacher "${TEACHER[$t]}"; done
    for mean in arithmetic geometric; do run "ensemble-$mean" --validation 10000 $ALL --ensemble $mean; done
    ;;
  table)
    python3 - "$DIR" <<'PY'
import json, sys
from pathlib import Path
print("| run | epochs | validation errors (of 10,000), final epoch | training error |")
print("|---|---:|---:|---:|")
for m in sorted(Path(sys.argv[1]).glob("*/distilled/metrics.jsonl")):
    last = json.loads(m.read_text().splitlines()[-1])
    if last.get("val_err") is not None:
        print(f"| {m.parent.parent.name} | {last['epoch']} | {round(last['val_err'] * 10000)} | "
              f"{100 * last['train_err']:.2f}% |")
PY
    ;;
  final)
    WHAT=${3:?final DIR ensemble MEAN, or final DIR single NAME}
    CHOSEN=${4:?the mean (arithmetic, geometric) or the teacher (public, paper, fast, cnn) validation chose}
    for seed in 0 1 2; do
      if [ "$WHAT" = ensemble ]; then run "final-ensemble-$CHOSEN-seed$seed" --seed $seed $ALL --ensemble "$CHOSEN"
      else run "final-single-$CHOSEN-seed$seed" --seed $seed --teacher "${TEACHER[$CHOSEN]}"; fi
    done
    ;;
  report)
    for set in "$DIR"/final-ensemble-*-seed0 "$DIR"/final-single-*-seed0; do
      [ -e "$set" ] || continue
      echo "python3 main.py report ${set%0}{0,1,2}"
      python3 main.py report "${set%0}"[012]
    done
    ;;
  *) echo "unknown mode $MODE: validate, table, final or report" >&2; exit 2 ;;
esac
