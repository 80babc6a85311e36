#!/usr/bin/env bash
# The long CPU runs of the reproduction record (docs/reproduction.md, "Long runs"), resumable
# across machines: each run's newest checkpoint is kept in the repository under
# benchmarks/logs/long-runs/NAME/, replaced as the run advances.
#
#   bash benchmarks/long_runs.sh start DIR   # resume each run in DIR/NAME (seeded from the
#                                            # repository's copy when DIR/NAME is missing), in
#                                            # the background, one BLAS thread each
#   bash benchmarks/long_runs.sh save DIR    # copy each run's newest state into the repository
#   bash benchmarks/long_runs.sh start DIR public-teacher   # some of the runs only
#   THREADS=2 bash benchmarks/long_runs.sh start DIR public-teacher   # one run on both cores
#
# The runs, two at a time on a 2-core machine (OpenBLAS's own kernels, one thread each):
#   paper-teacher  the `paper` preset's teacher, 3000 epochs
#   long-teacher   the `fast` teacher's recipe at batch 128, lr 0.01 halved every 100 epochs
#                  (exp decay 0.993092), momentum 0.9 classic, 1000 epochs: the schedule of the
#                  public 64-error reproduction, chosen before any run (no comparison on test)
#   public-teacher the public 64-error reproduction's whole recipe, as far as nnkd can state it:
#                  long-teacher's schedule with its inputs in [-1, 1] (--inputs centered), PyTorch's
#                  initialization (--init uniform) and no max-norm; chosen before any run. Finished:
#                  its weights are nnkd/pretrained/public-teacher/; its metrics and log are kept here
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${1:?usage: bash benchmarks/long_runs.sh start|save DIR}
DIR=${2:?usage: bash benchmarks/long_runs.sh start|save DIR}
KEPT=benchmarks/logs/long-runs
THREADS=${THREADS:-1}  # BLAS threads per run
LONG="--preset fast --epochs 1000 --batch-size 128 --lr 0.01 --lr-schedule exp --lr-decay 0.993092 --momentum-start 0.9 --momentum-end 0.9 --momentum-form classic --eval-every 1 --checkpoint-every 1"
declare -A ARGS=(
  [paper-teacher]="--preset paper"
  [long-teacher]="$LONG"
  [public-teacher]="$LONG --max-norm 0 --init uniform --inputs centered"
)
shift 2
names=("$@")
[ ${#names[@]} -gt 0 ] || names=("${!ARGS[@]}")
for name in "${names[@]}"; do
  [ -n "${ARGS[$name]:-}" ] || { echo "unknown run $name: one of ${!ARGS[*]}" >&2; exit 2; }
done
finished() {  # whether the repository's copy of run $1 reached its last epoch
  python3 - "$KEPT/$1" <<'PY'
import json, sys
from pathlib import Path
kept = Path(sys.argv[1])
try:
    done = json.loads((kept / "teacher" / "checkpoint.json").read_text())["epoch"]
    total = json.loads((kept / "run.json").read_text())["configs"]["teacher"]["epochs"]
except (OSError, ValueError, KeyError):
    sys.exit(1)
sys.exit(0 if done >= total else 1)
PY
}
mkdir -p "$DIR"
for name in "${names[@]}"; do
  run="$DIR/$name"
  case "$MODE" in
    start)
      if finished "$name"; then
        echo "$name: finished (its metrics and log are in $KEPT/$name)"
        continue
      fi
      if [ ! -e "$run/run.json" ] && [ -e "$KEPT/$name/run.json" ]; then
        mkdir -p "$run" && cp -r "$KEPT/$name/." "$run/"
      fi
      if [ -e "$run/run.json" ]; then
        what="--resume $run"
      else
        what="${ARGS[$name]} --out $run"
      fi
      # shellcheck disable=SC2086
      nohup env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=$THREADS \
        python3 main.py train-teacher $what >> "$DIR/$name.out" 2>&1 &
      echo "$name: started ($what, $THREADS BLAS thread(s)), console in $DIR/$name.out"
      ;;
    save)
      [ -e "$run/teacher/checkpoint.npz" ] || { echo "$name: no checkpoint yet"; continue; }
      mkdir -p "$KEPT/$name/teacher"
      cp "$run/run.json" "$run/log.txt" "$KEPT/$name/"
      [ -e "$DIR/$name.out" ] && cp "$DIR/$name.out" "$KEPT/$name.console.log"
      cp "$run/teacher/checkpoint.npz" "$run/teacher/checkpoint.json" "$run/teacher/config.json" \
         "$run/teacher/metrics.jsonl" "$KEPT/$name/teacher/"
      echo "$name: epoch $(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['epoch'])" \
        "$KEPT/$name/teacher/checkpoint.json") kept in $KEPT/$name"
      ;;
    *) echo "unknown mode $MODE: start or save" >&2; exit 2 ;;
  esac
done
