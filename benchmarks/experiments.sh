#!/usr/bin/env bash
# The runs behind the README's "Experiments" tables, as they were run on the 2-core machine:
# two lanes side by side, one BLAS thread each (two single-thread processes get more work
# done on 2 cores than one process with two threads at batch 100).
#
#   bash benchmarks/experiments.sh RUNS_DIR      # about 80 min on 2 cores; resumable (see below)
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
    run fashion distill --dataset fashion-mnist --teacher-epochs 60 --epochs 30 --out "$R/fashion"
}
lane2() {
    run seed-2 distill --retrain-teacher --seed 2 --out "$R/seed-2"
    run only78 distill --only-digits 7,8 --out "$R/only78"
    run sweep sweep --epochs 20 --seeds 0,1 --out "$R/sweep"
}
lane1 &
lane2 &
wait
# Seed 0 of the main table is the README's from-scratch run (python3 main.py distill --retrain-teacher).
