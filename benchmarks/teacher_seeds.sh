#!/usr/bin/env bash
# The main job's students over seeds, from one teacher: `python3 main.py distill --teacher TEACHER
# --seed S` for each seed, two side by side with one BLAS thread each (OpenBLAS's own kernels),
# then their table by `python3 main.py report`.
#
#   bash benchmarks/teacher_seeds.sh RUNS_DIR [TEACHER] [SEED...]   # default: distill's own teacher, seeds 0 1 2
#
# DISTILL_FLAGS, when set, go to every new run (e.g. DISTILL_FLAGS="--preset smoke" for a try).
# TEACHER is a shipped teacher's name (public-teacher, fast-teacher...) or a checkpoint; "" or
# none: distill's default. Each seed writes RUNS_DIR/seed-S/ and its console output to
# RUNS_DIR/seed-S.log; a seed whose results.json
# exists is not run again, and one that was stopped continues (`distill --resume`). The table
# goes to RUNS_DIR/seeds.table.md, headed by the command that made it.
set -u
cd "$(dirname "$0")/.."
R=${1:?usage: bash benchmarks/teacher_seeds.sh RUNS_DIR [TEACHER] [SEED...]}
T=${2:-}
shift $(( $# < 2 ? $# : 2 ))
SEEDS=("$@")
[ ${#SEEDS[@]} -gt 0 ] || SEEDS=(0 1 2)
mkdir -p "$R"
seed() {  # one distill run per seed, resumed when it was stopped
    local s=$1 out="$R/seed-$1"
    [ -e "$out/results.json" ] && { echo "seed $s: done already ($out)"; return 0; }
    # shellcheck disable=SC2206
    local what=(${T:+--teacher "$T"} --seed "$s" --out "$out" ${DISTILL_FLAGS:-})
    [ -e "$out/run.json" ] && what=(--resume "$out")
    echo "$(date -u +%H:%M:%S) start seed $s: python3 main.py distill ${what[*]}"
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=1 \
        python3 main.py distill "${what[@]}" >> "$R/seed-$s.log" 2>&1
    echo "$(date -u +%H:%M:%S) end   seed $s (exit $?)"
}
lane() {  # the seeds at positions first, first + 2, ...
    local i
    for (( i = $1; i < ${#SEEDS[@]}; i += 2 )); do seed "${SEEDS[$i]}"; done
}
lane 0 &
lane 1 &
wait
runs=()
for s in "${SEEDS[@]}"; do runs+=("$R/seed-$s"); done
{ echo "python3 main.py report ${runs[*]}"; python3 main.py report "${runs[@]}"; } > "$R/seeds.table.md"
cat "$R/seeds.table.md"
