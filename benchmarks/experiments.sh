#!/usr/bin/env bash
# The runs behind the tables of docs/reproduction.md, as they were run on the 2-core machine:
# two lanes side by side, one BLAS thread each (two single-thread processes get more work
# done on 2 cores than one process with two threads at batch 100).
#
#   bash benchmarks/experiments.sh RUNS_DIR      # about 2 hours on 2 cores; resumable (see below)
#
# The figures in docs/reproduction.md came from the same commands in a slightly different
# arrangement (the sweep as a third process beside the two lanes, --jobs 1; omit3 stopped once
# and resumed); each command and its output are in benchmarks/logs/runs/.
#
# Each command writes its run folder RUNS_DIR/<name>/ (log.txt, metrics, checkpoints, results)
# and its console output to RUNS_DIR/<name>.log.  If the script is stopped, continue a distill
# run with `python3 main.py distill --resume RUNS_DIR/<name>`; a sweep continues when the same
# sweep command is run again.
set -u
R=${1:?usage: bash benchmarks/experiments.sh RUNS_DIR}
mkdir -p "$R"
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
run() {  # run NAME ARGS...: python3 main.py ARGS, console output in RUNS_DIR/NAME.log
    local name=$1; shift
    echo "$(date -u +%H:%M:%S) start $name: python3 main.py $*"
    python3 main.py "$@" > "$R/$name.log" 2>&1
    local rc=$?
    echo "$(date -u +%H:%M:%S) end   $name (exit $rc)"
}
lane1() {
    run seed-1 distill --retrain-teacher --seed 1 --out "$R/seed-1"
    run omit3 distill --omit-digit 3 --out "$R/omit3"
    run omit3-plain distill --omit-digit 3 --transfer-jitter 0 --no-baseline --out "$R/omit3-plain"
    run fashion distill --dataset fashion-mnist --teacher-epochs 60 --epochs 30 --out "$R/fashion"
}
lane2() {
    run seed-2 distill --retrain-teacher --seed 2 --out "$R/seed-2"
    run only78 distill --only-digits 7,8 --out "$R/only78"
    run fashion-teacher-nojitter train-teacher --dataset fashion-mnist --jitter 0 --epochs 60 \
        --out "$R/fashion-teacher-nojitter"
    run fashion-nojitter distill --dataset fashion-mnist --epochs 30 --transfer-jitter 0 \
        --teacher "$R/fashion-teacher-nojitter/teacher/checkpoint.npz" --out "$R/fashion-nojitter"
}
lane1 &
lane2 &
wait
# The sweep (one process per core); a third seed; then the table of all finished cells.
run sweep sweep --jobs 2 --epochs 20 --seeds 0,1 --out "$R/sweep"
run sweep-s2 sweep --jobs 2 --epochs 20 --seeds 2 --widths 300,30 --out "$R/sweep"
run sweep-s2-800 sweep --jobs 2 --epochs 20 --seeds 2 --widths 800 --out "$R/sweep"
run sweep-table sweep --epochs 20 --seeds 0,1 --out "$R/sweep"   # nothing to train: the table of all finished cells
python3 main.py plot "$R/sweep"
# Seed 0 of the main table is the from-scratch run of docs/reproduction.md (python3 main.py distill --retrain-teacher).
