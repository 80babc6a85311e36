#!/usr/bin/env bash
# Candidate readings of the paper's teacher recipe (Srivastava/Hinton 2012, Appendix A.1),
# 30 epochs each: the first 30 epochs of the 3000-epoch schedule, since the exponential
# learning-rate decay and the 500-epoch momentum ramp do not depend on --epochs.
# Everything not named on a line is the `paper` preset as the text reads: batch 100,
# lr0 * 0.998^epoch, momentum 0.5 -> 0.99 over 500 epochs in the (1-p) form,
# N(0, 0.01^2) init, dropout 0.2/0.5, jitter 2, max squared length 15.
#
#   bash benchmarks/paper_readings.sh RUNS_DIR     # two lanes, one BLAS thread each, ~25 min
#
# Every reading is spelled out with flags, independent of what the `paper` preset holds.
set -u
R=${1:?usage: bash benchmarks/paper_readings.sh RUNS_DIR}
mkdir -p "$R"
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
run() {  # run NAME ARGS...
    local name=$1; shift
    echo "$(date -u +%H:%M:%S) start $name: python3 main.py $*"
    python3 main.py "$@" > "$R/$name.log" 2>&1
    local rc=$?
    echo "$(date -u +%H:%M:%S) end   $name (exit $rc)"
}
T="train-teacher --preset paper --epochs 30"
lane1() {
    run A-lr10-hidden  $T --lr 10 --max-norm-layers hidden --out "$R/A-lr10-hidden"
    run C-lr1-hidden   $T --lr 1  --max-norm-layers hidden --out "$R/C-lr1-hidden"
    run E-lr0.1-hidden $T --lr 0.1 --max-norm-layers hidden --out "$R/E-lr0.1-hidden"
}
lane2() {
    run B-lr10-all     $T --lr 10 --max-norm-layers all --out "$R/B-lr10-all"
    run D-lr1-all      $T --lr 1  --max-norm-layers all --out "$R/D-lr1-all"
    run F-lr10-all-bias $T --lr 10 --max-norm-layers all --max-norm-bias yes --out "$R/F-lr10-all-bias"
}
lane1 & lane2 & wait
wait

# The student of the `paper` preset (784-800-800-10, no dropout, jitter or max-norm; the same
# schedule), at the two learning rates that train the teacher: hard labels for 30 epochs, and
# distilled from the shipped teacher (T = 20, soft targets only).  The distilled runs were
# stopped by hand once they had shown what they show (lr 1: 23 epochs at chance; lr 0.3: 2).
S="train-student --preset paper --epochs 30"
D="distill --preset paper --no-baseline"
lane1() { run S1-lr1 $S --lr 1 --out "$R/S1-lr1"; run D-lr1-stopped $D --epochs 100 --lr 1 --out "$R/D-lr1-stopped"; }
lane2() { run S2-lr0.1 $S --lr 0.1 --out "$R/S2-lr0.1"; run D10-lr0.3 $D --epochs 10 --lr 0.3 --out "$R/D10-lr0.3"; }
lane1 & lane2 & wait

# 100 epochs of the chosen readings (the `paper` preset as it is now: teacher lr0 0.1, students
# lr0 0.1), the runner-up teacher (lr0 1), and the `fast` preset's students for comparison.
lane1() { run T100-lr1 train-teacher --preset paper --epochs 100 --lr 1 --out "$R/T100-lr1"
          run P100-distilled $D --epochs 100 --lr 0.1 --out "$R/P100-distilled"; }
lane2() { run T100-lr0.1 train-teacher --preset paper --epochs 100 --lr 0.1 --out "$R/T100-lr0.1"
          run P100-student train-student --preset paper --epochs 100 --lr 0.1 --out "$R/P100-student"; }
lane1 & lane2 & wait
run fast-students distill --out "$R/fast-students"
