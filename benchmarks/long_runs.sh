#!/usr/bin/env bash
# The long CPU runs of the reproduction record (docs/reproduction.md, "Long runs"), resumable
# across machines: each run's newest checkpoints are kept in the repository under
# benchmarks/logs/long-runs/NAME/, replaced as the run advances.
#
#   bash benchmarks/long_runs.sh start DIR   # resume each run in DIR/NAME (seeded from the
#                                            # repository's copy when DIR/NAME is missing), in
#                                            # the background, one BLAS thread each
#   bash benchmarks/long_runs.sh save DIR    # copy each run's newest state into the repository
#   bash benchmarks/long_runs.sh status DIR  # where each run stands, in DIR and in the repository
#   bash benchmarks/long_runs.sh grid DIR    # each validation run's training error and the spread
#                                            # of its validation errors over its last 100 epochs
#   bash benchmarks/long_runs.sh stop DIR NAME  # stop a run (it resumes with `start`)
#   bash benchmarks/long_runs.sh seeds DIR NAME # a three-seed row: run NAME (seed 0) at epochs
#                                            # 3000 and 700, NAME-seed1 and NAME-seed2 at 700
#   bash benchmarks/long_runs.sh start DIR public-teacher   # some of the runs only
#   THREADS=2 bash benchmarks/long_runs.sh start DIR public-teacher   # one run on both cores
#   bash benchmarks/long_runs.sh ship DIR paper-teacher     # a finished teacher run's weights,
#                                            # settings, metrics and log into nnkd/pretrained/NAME/
#                                            # (its README.md is written by hand, from the
#                                            # test errors and training time this prints)
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
#   paper-student  the `paper` preset's plain student, 3000 epochs: `train-student --preset paper`,
#                  the same model, weight for weight, as the baseline stage of `distill --preset
#                  paper` (tests/test_pipeline.py), so the two students can run side by side,
#                  one thread each, once the teacher has ended
#   paper-distilled the `paper` preset's distilled student, 3000 epochs, from the shipped
#                  paper-teacher (`distill --preset paper --no-baseline` takes it once it is
#                  shipped); refused to start before then
#   paper-student-lr1 the `paper` preset's plain student at lr0 1, the value its validation grid
#                  chose (val-student-lr*), 3000 epochs on all 60,000 images, seed 0
#   val-student-lrX   the `paper` preset's plain student at lr0 X (0.1, 0.3, 1), trained on the
#                  first 50,000 training images and scored on the last 10,000 (--validation
#                  10000): the grid its lr0 is chosen on. Each is stopped once its training error
#                  is 0 and its validation error has been flat for 100 epochs (`grid` mode says
#                  where each stands; `stop` ends one); the exp schedule does not depend on the
#                  run's length
#   val-distilled-lrX the same grid for the distilled student (0.03, 0.1, 0.3, 1), from the
#                  shipped paper-teacher; 0.3 and 1 for 10 epochs (they do not train), 0.03 and
#                  0.1 stopped at epoch 300 (validation errors within a band of 7 over their last
#                  100 epochs, their order the same at every epoch; the training error, never 0
#                  for a distilled student, still falling by a few images per 100 epochs)
#   paper-student-lr1-seedS, paper-distilled-seedS (S = 1, 2) the `paper` preset's two students
#                  at seeds 1 and 2, 700 epochs: a length fixed from the seed-0 runs' training
#                  curves (paper-student-lr1, paper-distilled) before these ran, as the first epoch
#                  from which each seed-0 run's training error holds its final value and its
#                  training loss is within 1.5x its 3000-epoch value (429 and 667), rounded up
#   val-teacher-lr0.1 the `paper` preset's teacher (inverted dropout, lr0 0.1) for 100 epochs on
#                  the same split: what the paper's own dropout is compared with
#   val-teacher-test-lrX the `paper` teacher with the paper's dropout (--dropout-scaling test) at
#                  lr0 X (10, the paper's text; 3; 1), 100 epochs on the same split
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${1:?usage: bash benchmarks/long_runs.sh start|save|status|grid|stop|seeds|ship DIR [NAME...]}
DIR=${2:?usage: bash benchmarks/long_runs.sh start|save|status|grid|stop|seeds|ship DIR [NAME...]}
KEPT=benchmarks/logs/long-runs
THREADS=${THREADS:-1}  # BLAS threads per run
# NICE: the runs' scheduling niceness (default 0), to leave the cores to other work first
LONG="--preset fast --epochs 1000 --batch-size 128 --lr 0.01 --lr-schedule exp --lr-decay 0.993092 --momentum-start 0.9 --momentum-end 0.9 --momentum-form classic --eval-every 1 --checkpoint-every 1"
declare -A ARGS=(
  [paper-teacher]="train-teacher --preset paper"
  [long-teacher]="train-teacher $LONG"
  [public-teacher]="train-teacher $LONG --max-norm 0 --init uniform --inputs centered"
  [paper-student]="train-student --preset paper --eval-every 1 --checkpoint-every 1"
  [paper-distilled]="distill --preset paper --no-baseline --eval-every 1 --checkpoint-every 1"
)
ARGS[paper-student-lr1]="train-student --preset paper --lr 1 --eval-every 1 --checkpoint-every 5"
for s in 1 2; do
  ARGS[paper-student-lr1-seed$s]="${ARGS[paper-student-lr1]} --epochs 700 --seed $s"
  ARGS[paper-distilled-seed$s]="${ARGS[paper-distilled]} --epochs 700 --seed $s --checkpoint-every 5"
done
VAL="--preset paper --validation 10000 --eval-every 1 --checkpoint-every 5"
for lr in 0.1 0.3 1; do ARGS[val-student-lr$lr]="train-student $VAL --lr $lr"; done
for lr in 0.03 0.1; do ARGS[val-distilled-lr$lr]="distill --no-baseline $VAL --lr $lr"; done
for lr in 0.3 1; do ARGS[val-distilled-lr$lr]="distill --no-baseline $VAL --lr $lr --epochs 10"; done
ARGS[val-teacher-lr0.1]="train-teacher $VAL --epochs 100"
for lr in 10 3 1; do ARGS[val-teacher-test-lr$lr]="train-teacher $VAL --epochs 100 --dropout-scaling test --lr $lr"; done
declare -A NEEDS=([paper-distilled]=paper-teacher)  # the shipped teacher a run distills from
for s in 1 2; do NEEDS[paper-distilled-seed$s]=paper-teacher; done
for lr in 0.03 0.1 0.3 1; do NEEDS[val-distilled-lr$lr]=paper-teacher; done
shift 2
names=("$@")
[ ${#names[@]} -gt 0 ] || names=("${!ARGS[@]}")
for name in "${names[@]}"; do
  [ -n "${ARGS[$name]:-}" ] || { echo "unknown run $name: one of ${!ARGS[*]}" >&2; exit 2; }
done
progress() {  # "done" when run folder $1 reached its end, else where each of its models stands
  python3 - "$1" <<'PY'
import json, sys
from pathlib import Path
run = Path(sys.argv[1])
try:
    spec = json.loads((run / "run.json").read_text())
except (OSError, ValueError):
    sys.exit(print("not started"))
if spec["command"] in ("train-teacher", "train-student"):  # stage folder: its settings' role
    role = spec["command"].split("-")[1]
    stages = {role: role}
else:  # distill: the baseline student (unless --no-baseline), then the distilled one
    stages = {"student": "student"} if spec.get("baseline", True) else {}
    stages["distilled"] = "student"
where, finished = [], True
for stage, role in stages.items():
    try:
        epoch = json.loads((run / stage / "checkpoint.json").read_text())["epoch"]
    except (OSError, ValueError, KeyError):
        epoch = 0
    total = spec["configs"][role]["epochs"]
    finished &= epoch >= total
    where.append(f"{stage} {epoch}/{total}")
print("done" if finished else ", ".join(where))
PY
}
mkdir -p "$DIR"
for name in "${names[@]}"; do
  run="$DIR/$name"
  case "$MODE" in
    start)
      if [ "$(progress "$KEPT/$name")" = done ]; then
        echo "$name: finished (its metrics and log are in $KEPT/$name)"
        continue
      fi
      need=${NEEDS[$name]:-}
      if [ -n "$need" ] && [ ! -e "nnkd/pretrained/$need/checkpoint.npz" ]; then
        echo "$name: waits for the shipped $need (run $need to its end, then: bash $0 ship DIR $need)"
        continue
      fi
      if [ ! -e "$run/run.json" ] && [ -e "$KEPT/$name/run.json" ]; then
        mkdir -p "$run" && cp -r "$KEPT/$name/." "$run/"
      fi
      if [ -e "$run/run.json" ]; then
        what="${ARGS[$name]%% *} --resume $run"
      else
        what="${ARGS[$name]} --out $run"
      fi
      # shellcheck disable=SC2086
      nohup nice -n "${NICE:-0}" env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=$THREADS \
        python3 main.py $what >> "$DIR/$name.out" 2>&1 &
      echo "$name: started ($what, $THREADS BLAS thread(s)), console in $DIR/$name.out"
      ;;
    save)
      [ -e "$run/run.json" ] || { echo "$name: not started in $DIR"; continue; }
      [ "$(progress "$KEPT/$name")" = done ] && { echo "$name: finished, kept in $KEPT/$name"; continue; }
      mkdir -p "$KEPT/$name"
      for f in run.json log.txt teacher.sha256 results.json results.md; do
        [ -e "$run/$f" ] && cp "$run/$f" "$KEPT/$name/"
      done
      for stage in teacher student distilled; do
        [ -e "$run/$stage/checkpoint.npz" ] || continue
        mkdir -p "$KEPT/$name/$stage"
        cp "$run/$stage/checkpoint.npz" "$run/$stage/checkpoint.json" "$run/$stage/config.json" \
           "$run/$stage/metrics.jsonl" "$KEPT/$name/$stage/"
      done
      [ -e "$DIR/$name.out" ] && cp "$DIR/$name.out" "$KEPT/$name.console.log"
      echo "$name: $(progress "$KEPT/$name"), kept in $KEPT/$name"
      ;;
    ship)
      [ "${ARGS[$name]%% *}" = train-teacher ] || { echo "$name: only a teacher run is shipped" >&2; exit 2; }
      [ "$(progress "$run")" = done ] || { echo "$name: not finished in $DIR ($(progress "$run"))" >&2; exit 2; }
      to="${SHIP_TO:-nnkd/pretrained}/$name"  # SHIP_TO: another folder of shipped models (the tests')
      mkdir -p "$to"
      python3 main.py export "$run/teacher/checkpoint.npz" "$to/checkpoint.npz"  # weights only, + .json
      cp "$run/teacher/config.json" "$run/teacher/metrics.jsonl" "$to/"
      cp "$run/log.txt" "$to/train.log"
      (cd "$to" && sha256sum checkpoint.npz > SHA256SUMS)
      python3 main.py evaluate "$to/checkpoint.npz"  # the figures of its README, from the shipped file
      python3 - "$run/teacher/checkpoint.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
print(f"epochs: {m['epoch']}; training time: {m['seconds'] / 3600:.2f} h (a stopped process's pauses included)")
PY
      echo "$name: shipped in $to (sha256 $(cut -d' ' -f1 "$to/SHA256SUMS")); write $to/README.md"
      ;;
    status)
      echo "$name: $(progress "$run") in $DIR; $(progress "$KEPT/$name") in $KEPT"
      ;;
    grid)
      python3 - "$run" "$name" <<'PY'
import json, sys
from pathlib import Path
run, name = Path(sys.argv[1]), sys.argv[2]
metrics = sorted(run.glob("*/metrics.jsonl"))
rows = [json.loads(line) for line in metrics[-1].read_text().splitlines()] if metrics else []
rows = [r for r in rows if "val_err" in r]
if not rows:
    sys.exit(print(f"{name}: no validation epochs in {run}"))
last = [round(r["val_err"] * 10000) for r in rows[-100:]]
zero = None  # the epoch from which the training error stays 0
for r in reversed(rows):
    if r["train_err"] != 0:
        break
    zero = r["epoch"]
print(f"{name}: epoch {rows[-1]['epoch']}, training error {100 * rows[-1]['train_err']:.3f}%"
      f"{f' (0 from epoch {zero})' if zero else ''}, validation errors {last[-1]}; over the last"
      f" {len(last)} epochs {min(last)} to {max(last)}")
PY
      ;;
    seeds)  # once, for the row NAME: seed 0 (NAME) at epoch 700 and 3000, seeds 1 and 2 at 700
      python3 - "$DIR" "$KEPT" "$name" <<'PY'
import statistics, sys
from pathlib import Path
sys.path.insert(0, "benchmarks")
from run_folders import student_metrics
run_dir, kept, name = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
def curve(run):  # {epoch: test errors} of the run's student, where it is kept or running
    rows = student_metrics(kept / run) or student_metrics(run_dir / run)
    return {r["epoch"]: r["test_errors"] for r in rows}
seed_runs = {0: name, 1: f"{name}-seed1", 2: f"{name}-seed2"}
at700 = [curve(run).get(700) for run in seed_runs.values()]
mean = (f"{statistics.mean(at700):.1f} ± {statistics.stdev(at700):.1f}" if None not in at700
        else "(not all seeds at epoch 700)")
print(f"| {name} | {curve(name).get(3000, '-')} | {' / '.join(str(e) if e is not None else '-' for e in at700)} | {mean} |")
PY
      break  # one row per call: NAME is seed 0's run
      ;;
    stop)
      pkill -f -- "main.py .*$run( |\$)" && echo "$name: stopped" || echo "$name: not running"
      ;;
    *) echo "unknown mode $MODE: start, save, status, grid, stop, seeds or ship" >&2; exit 2 ;;
  esac
done
