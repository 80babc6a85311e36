#!/usr/bin/env bash
# Mutation testing of nnkd's core: mutmut plants one small bug at a time (a changed
# operator, constant, comparison, argument...) and runs the fast tests of that module;
# a mutant the tests still pass ("survived") is a bug the suite would miss.
# Not run by CI (it takes tens of minutes); the score and the survivors are in docs/mutation.md.
#
#   pip install "mutmut==2.5.1"             # a developer's tool, in no extra of setup.cfg
#   benchmarks/mutation.sh                  # every module below
#   benchmarks/mutation.sh losses optim     # some of them
#   benchmarks/mutation.sh data:idx data:splits  # one file of nnkd/data/ with the data tests
#   MUTATION_DIR=/tmp/m benchmarks/mutation.sh train
#
# mutmut 2 rewrites the file it mutates, so everything runs in a copy of the work tree
# ($MUTATION_DIR, default /tmp/nnkd-mutation), never in the work tree itself.  The copy is
# refreshed from the work tree at every start; its .mutmut-cache keeps the results, so a
# second run retests only the mutants that survived or timed out (with the new tests).
# One process, under nice: the machine stays usable.  Stop it with Ctrl-C (a kill of mutmut alone
# leaves its test worker running); the next start puts the mutated file back.  Afterwards:
#   benchmarks/mutation.sh --score         # per file: mutants, killed, timed out, survived, untested
#   cd /tmp/nnkd-mutation && mutmut results && mutmut show ID
# Never run `mutmut show` (or `mutmut results`) while a run is going: it records the lines of
# the file as they are on disk, with the mutant in place, and the run then stops on a lookup
# error.  --score only reads the cache.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${MUTATION_DIR:-/tmp/nnkd-mutation}

# module -> the file(s) it mutates and the fast tests that judge each mutant.
declare -A PATHS=(
  [losses]=nnkd/losses.py [optim]=nnkd/optim.py [layers]=nnkd/layers.py [batches]=nnkd/batches.py
  [train]=nnkd/train.py [checkpoint]=nnkd/checkpoint.py [data]=nnkd/data/
)
declare -A TESTS=(
  [losses]="tests/test_gradcheck.py tests/test_backend_twins.py"
  [optim]="tests/test_gradcheck.py tests/test_backend_twins.py tests/test_training_integration.py tests/test_parallel.py"
  [layers]="tests/test_layers.py tests/test_gradcheck.py tests/test_backend_twins.py tests/test_parallel.py"
  [batches]="tests/test_batches.py tests/test_train.py"
  [train]="tests/test_train.py tests/test_training_integration.py"
  [checkpoint]="tests/test_checkpoint_messages.py tests/test_files.py tests/test_train.py tests/test_training_integration.py"
  [data]="tests/test_data_messages.py tests/test_data.py tests/test_dataset_npz.py tests/test_mnist_pinned.py"
)
ORDER=(losses optim layers batches train checkpoint data)

if [ "${1:-}" = --judge ]; then
  # The tests that judge one mutant of module $2.  -x: the first failing test kills it; no GPU,
  # no slow tests; the two subprocess runs of `gradcheck` repeat the in-process checks.
  # No network: a mutant that breaks a file name must fail, not fetch the data again.
  m=$2; [[ $m == data:* ]] && m=data
  export PIP_NO_INDEX=1 http_proxy=http://127.0.0.1:9 https_proxy=http://127.0.0.1:9 \
    HTTP_PROXY=http://127.0.0.1:9 HTTPS_PROXY=http://127.0.0.1:9
  marks="not slow and not gpu"
  [ -e data/mnist/t10k-labels-idx1-ubyte ] || marks="$marks and not mnist"  # no MNIST to read
  # shellcheck disable=SC2086
  python3 -m pytest -x -q -p no:cacheprovider -m "$marks" \
    --deselect tests/test_gradcheck.py::test_gradcheck_command_prints_table \
    --deselect tests/test_gradcheck.py::test_gradcheck_cupy_without_gpu_is_one_clear_line ${TESTS[$m]} \
    || exit 1
  exit 0
fi
if [ "${1:-}" = --score ]; then
  [ -e "$WORK/.mutmut-cache" ] || { echo "no results in $WORK: run benchmarks/mutation.sh first" >&2; exit 2; }
  python3 - "$WORK/.mutmut-cache" <<'PY'
import sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
counts = {}
for name, status, n in db.execute(
        "SELECT SourceFile.filename, Mutant.status, COUNT(*) FROM Mutant JOIN Line ON Mutant.line = Line.id "
        "JOIN SourceFile ON Line.sourcefile = SourceFile.id GROUP BY 1, 2"):
    counts.setdefault(name, {})[status] = n
print(f"{'file':28} {'mutants':>8} {'killed':>7} {'timeout':>8} {'survived':>9} {'untested':>9} {'killed %':>9}")
for name, c in sorted(counts.items()):
    killed = c.get("ok_killed", 0) + c.get("ok_suspicious", 0)
    run = sum(c.values()) - c.get("untested", 0) - c.get("skipped", 0)
    print(f"{name:28} {sum(c.values()):8} {killed:7} {c.get('bad_timeout', 0):8} {c.get('bad_survived', 0):9} "
          f"{c.get('untested', 0):9} {100 * killed / run if run else 0:9.1f}")
PY
  exit 0
fi
command -v mutmut >/dev/null || { echo 'mutmut is not installed: pip install "mutmut==2.5.1"' >&2; exit 2; }
modules=("$@")
[ ${#modules[@]} -gt 0 ] || modules=("${ORDER[@]}")
for m in "${modules[@]}"; do
  if [[ $m == data:* ]]; then PATHS[$m]=nnkd/data/${m#data:}.py; TESTS[$m]=${TESTS[data]}; fi
  [ -e "$ROOT/${PATHS[$m]:-none}" ] || { echo "unknown module $m: one of ${ORDER[*]}, data:FILE" >&2; exit 2; }
done

# The copy: files git tracks or would track (so data/, the MNIST cache link, comes along).
mkdir -p "$WORK"
(cd "$ROOT" && git ls-files -z -co --exclude-standard | tar -cf - --null -T -) | (cd "$WORK" && tar -xf -)
cd "$WORK"
# MNIST: a copy of the verified files of the work tree's cache, never a link to it, so that a
# mutant (a file name changed) cannot write into that cache; the judge keeps the network out.
rm -rf data/mnist && mkdir -p data/mnist
if [ -e "$ROOT/data/mnist/t10k-labels-idx1-ubyte" ]; then cp "$ROOT"/data/mnist/*-idx?-ubyte data/mnist/; fi
find nnkd -name '*.py.bak' -delete   # mutmut's backups, left by a run that was stopped

for m in "${modules[@]}"; do
  echo "== $m: ${PATHS[$m]} against ${TESTS[$m]}"
  # mutmut counts a mutant killed only when its test command exits with status 1; pytest exits
  # with 2 when a mutant breaks an import, so the judge turns every failure into 1.
  nice -n 19 mutmut run --paths-to-mutate "${PATHS[$m]}" --runner "bash benchmarks/mutation.sh --judge $m" \
    --tests-dir tests --test-time-multiplier 3 --test-time-base 10 --simple-output --no-progress || true
done
mutmut results
