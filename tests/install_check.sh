#!/usr/bin/env bash
# nnkd as users get it: build a wheel from this checkout, install it into a fresh venv (no system
# site-packages; numpy from the index, as pip does), and from a folder outside the checkout run
# `nnkd --help`, `nnkd distill --dry-run` (the shipped teacher is found; nothing is fetched or
# written), a smoke distill with the shipped teacher, the shipped models by name, a rerun from
# run.json, advice for a missing extra, the scikit-learn estimators, the README's Python API
# example, and every code block of README.md and docs/usage.md as written (tests/docs_check.py).
# Then check that nothing was written into site-packages and that
# `pip uninstall` leaves nothing behind. Any failure ends the script with "install check FAILED".
#
# MNIST must be cached already (`python3 main.py data`): the installed nnkd reads that cache
# through NNKD_DATA and downloads nothing. Run from anywhere: tests/install_check.sh
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python3}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/nnkd-install-check.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
fail() { echo "install check FAILED: $*" >&2; exit 1; }
step() { echo "install check [${SECONDS}s]: $*"; }
export PIP_DISABLE_PIP_VERSION_CHECK=1
unset PYTHONPATH PYTHONHOME VIRTUAL_ENV

DATA=$(cd "$REPO" && "$PY" -c "from nnkd.data import default_root; print(default_root())")
[ -f "$DATA/mnist/train-images-idx3-ubyte" ] || fail "MNIST is not cached in $DATA: run \`python3 main.py data\` first"

step "build a wheel from a copy of the checkout's files (tracked and new, not ignored)"
"$PY" - "$REPO" "$WORK/src" <<'EOF'
import shutil, subprocess, sys
from pathlib import Path
repo, dest = Path(sys.argv[1]), Path(sys.argv[2])
try:
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=repo, capture_output=True, check=True).stdout.decode().split("\0")
except (OSError, subprocess.CalledProcessError):  # not a git checkout: all but outputs and caches
    skip = {".git", "build", "data", "runs", ".venv", "__pycache__"}
    listed = [str(p.relative_to(repo)) for p in repo.rglob("*") if not skip & set(p.relative_to(repo).parts)]
for name in filter(None, listed):
    if (repo / name).is_file():  # a deleted file or a linked folder is not copied
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(repo / name, dest / name)
EOF
"$PY" -m pip wheel -q --no-deps -w "$WORK/wheel" "$WORK/src" || fail "pip wheel could not build nnkd"
WHEEL=$(ls "$WORK"/wheel/nnkd-*.whl) || fail "pip wheel wrote no nnkd wheel"
members=$("$PY" -m zipfile -l "$WHEEL")
shipped=$(cd "$WORK/src" && ls -d nnkd/pretrained/*/) || fail "the source tree ships no model"
for member in $(for d in $shipped; do echo "${d}checkpoint.npz ${d}SHA256SUMS"; done) nnkd/examples/digits8x8.npz; do
    grep -q "^$member " <<<"$members" || fail "the wheel lacks $member"
done

step "install $(basename "$WHEEL") into a fresh venv"
"$PY" -m venv "$WORK/venv"
VPY="$WORK/venv/bin/python"
"$VPY" -m pip install -q "$WHEEL" || fail "pip could not install the wheel into a fresh venv"
SITE=$("$VPY" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
listing() { (cd "$SITE" && find . | LC_ALL=C sort); }
listing > "$WORK/site-before.txt"

mkdir "$WORK/use" "$WORK/home" "$WORK/empty-cache"
cd "$WORK/use"
export PATH="$WORK/venv/bin:$PATH" HOME="$WORK/home" NNKD_DATA="$DATA"
unset XDG_CACHE_HOME
[ "$(command -v nnkd)" = "$WORK/venv/bin/nnkd" ] || fail "the nnkd command is not the venv's"
where=$("$VPY" -c "import nnkd; print(nnkd.__file__)")
[ "$where" = "$SITE/nnkd/__init__.py" ] || fail "python imports nnkd from $where, not from the venv"

step "nnkd --help, --version"
# (output is captured before grep reads it: grep -q stopping early would break the pipe)
out=$(nnkd --help) && grep -q "^usage: nnkd " <<<"$out" || fail "nnkd --help does not start with usage: nnkd"
out=$(nnkd --version) && grep -q "^nnkd " <<<"$out" || fail "nnkd --version"

step "nnkd distill --dry-run: the shipped teacher is found; nothing written"
out=$(nnkd distill --dry-run) || fail "nnkd distill --dry-run exited with an error"
teacher="$SITE/nnkd/pretrained/$("$VPY" -c "from nnkd.install import DEFAULT_TEACHER; print(DEFAULT_TEACHER)")/checkpoint.npz"
grep -qF "\"teacher_checkpoint\": \"$teacher\"" <<<"$out" || fail "dry run: teacher_checkpoint is not $teacher: $(grep teacher_checkpoint <<<"$out")"
[ -z "$(ls -A)" ] || fail "nnkd distill --dry-run wrote into the current folder: $(ls -A)"

step "nnkd distill --dry-run without the data cached: nothing fetched or written"
out=$(NNKD_DATA="$WORK/empty-cache" nnkd distill --dry-run) || fail "dry run without the data exited with an error"
grep -q "not cached yet" <<<"$out" || fail "dry run without the data does not say it is not cached"
out=$(env -u NNKD_DATA nnkd distill --dry-run) || fail "dry run with the default cache exited with an error"
grep -qF "$WORK/home/.cache/nnkd/mnist" <<<"$out" || fail "the default cache is not ~/.cache/nnkd: $(head -1 <<<"$out")"
written=$(find "$WORK/empty-cache" "$WORK/home" . -mindepth 1)
[ -z "$written" ] || fail "a dry run wrote files: $written"

step "nnkd distill --preset smoke --epochs 2 (the shipped teacher)"
nnkd distill --preset smoke --epochs 2 > "$WORK/distill.log" 2>&1 || { tail -5 "$WORK/distill.log"; fail "the smoke distill"; }
run=$(ls -d runs/distill-*) || fail "the smoke distill wrote no runs/distill-* under the current folder"
[ -f "$run/results.md" ] && [ -f "$run/distilled/checkpoint.npz" ] || fail "$run lacks results.md or distilled/checkpoint.npz"
grep -qF "teacher: $teacher" "$run/log.txt" || fail "the smoke distill did not use the shipped teacher"
out=$(nnkd evaluate "$run/distilled/checkpoint.npz") && grep -q "^test errors: " <<<"$out" || fail "nnkd evaluate"

step "python -m nnkd; shipped models by name: nnkd teachers, evaluate, export; the cache shown; --config"
out=$("$VPY" -m nnkd --version) && grep -q "^nnkd " <<<"$out" || fail "python -m nnkd --version"
out=$(nnkd teachers) && grep -q "^public-teacher  *62 " <<<"$out" || fail "nnkd teachers: $out"
out=$(nnkd evaluate public-teacher) && grep -q "^test errors: 62 of 10000" <<<"$out" || fail "nnkd evaluate public-teacher"
nnkd export public-teacher public-teacher.npz > /dev/null || fail "nnkd export public-teacher"
out=$(nnkd evaluate public-teacher.npz) && grep -q "^test errors: 62 of 10000" <<<"$out" || fail "the export of public-teacher"
out=$(nnkd data --cache) && grep -qF "cache folder $DATA" <<<"$out" || fail "nnkd data --cache: $out"
nnkd distill --config "$run/run.json" --out rerun --quiet > /dev/null || fail "nnkd distill --config RUN/run.json"
[ "$(cut -d'|' -f1-4 "$run/results.md")" = "$(cut -d'|' -f1-4 rerun/results.md)" ] \
  || fail "the rerun from run.json gave another table"

step "the README's other commands that need no extra and no GPU: own data, a sweep, report, gradcheck"
digits=$("$VPY" -c "import nnkd; print(nnkd.example_data())")
nnkd data --dataset "npz:$digits" > "$WORK/data.log" 2>&1 || { tail -5 "$WORK/data.log"; fail "nnkd data --dataset npz:"; }
nnkd distill --dataset "npz:$digits" --epochs 1 --teacher-epochs 1 --out own > "$WORK/own.log" 2>&1 \
  || { tail -5 "$WORK/own.log"; fail "nnkd distill --dataset npz: (a teacher trained for the data)"; }
[ -f own/teacher/checkpoint.npz ] && [ -f own/results.md ] || fail "the own-data distill lacks its teacher or table"
nnkd sweep --preset smoke --epochs 1 --widths 30 --temperatures 2 --seeds 0 --train-limit 1000 --out sweep \
  > "$WORK/sweep.log" 2>&1 || { tail -5 "$WORK/sweep.log"; fail "nnkd sweep"; }
[ -f sweep/results.md ] || fail "the sweep wrote no results.md"
out=$(nnkd report "$run") && grep -q "^| mean" <<<"$out" || fail "nnkd report"
out=$(nnkd gradcheck) && grep -q " 0 failed$" <<<"$out" || fail "nnkd gradcheck: $(tail -1 <<<"$out")"

step "advice for a missing extra names the installed package"
err=$(nnkd export "$run/distilled/checkpoint.npz" m.onnx --format onnx 2>&1) && fail "export to ONNX without onnx succeeded"
grep -qF 'pip install "nnkd[onnx]"' <<<"$err" || fail "the missing-onnx advice is: $err"

step "with the onnx and dask extras: export to ONNX, distill from the ONNX model, a sweep on a local Dask cluster"
"$VPY" -m pip install -q "$WHEEL[onnx,dask]" || fail "pip could not install the wheel's onnx and dask extras"
listing > "$WORK/site-before.txt"  # the extras are the user's install; nnkd must still write nothing there
nnkd export "$run/distilled/checkpoint.npz" student.onnx --format onnx > /dev/null || fail "nnkd export --format onnx"
nnkd distill --teacher student.onnx --no-baseline --epochs 1 --train-limit 1000 --out from-onnx \
  > "$WORK/onnx.log" 2>&1 || { tail -5 "$WORK/onnx.log"; fail "nnkd distill --teacher student.onnx"; }
[ -f from-onnx/results.md ] || fail "the distill from an ONNX teacher wrote no results.md"
nnkd sweep --preset smoke --epochs 1 --widths 30 --temperatures 2,4 --seeds 0 --train-limit 1000 --jobs 2 \
  --out sweep-dask > "$WORK/dask.log" 2>&1 || { tail -5 "$WORK/dask.log"; fail "nnkd sweep --jobs 2"; }
[ -f sweep-dask/results.md ] || fail "the Dask sweep wrote no results.md"

step "with the sklearn extra: a distilled classifier in a grid search over the temperature"
"$VPY" -m pip install -q "$WHEEL[sklearn]" || fail "pip could not install the wheel's sklearn extra"
listing > "$WORK/site-before.txt"
cat > sklearn_example.py <<'EOF'
import numpy as np
from sklearn.model_selection import GridSearchCV
from nnkd import example_data
from nnkd.estimators import DistilledClassifier, NNKDClassifier
d = np.load(example_data())
X, y = d["x_train"].reshape(len(d["y_train"]), -1) / 255.0, d["y_train"]
teacher = NNKDClassifier(hidden_layer_sizes=(128,), epochs=10)
search = GridSearchCV(DistilledClassifier(teacher=teacher, hidden_layer_sizes=(16,), epochs=10),
                      {"temperature": [1, 4]}, cv=2).fit(X, y)
print("best", search.best_params_)
EOF
"$VPY" sklearn_example.py > "$WORK/sklearn.log" 2>&1 || { tail -5 "$WORK/sklearn.log"; fail "the scikit-learn estimators"; }
grep -q "^best {'temperature': " "$WORK/sklearn.log" || fail "the grid search printed: $(cat "$WORK/sklearn.log")"

step "the README's Python API example"
"$PY" - "$REPO/README.md" > api_example.py <<'EOF'
import re, sys
section = open(sys.argv[1]).read().split("## Python API", 1)[1]
print(re.search(r"```python\n(.*?)```", section, re.S).group(1))
EOF
"$VPY" api_example.py > "$WORK/api.log" 2>&1 || { tail -5 "$WORK/api.log"; fail "the README's Python API example"; }
grep -q "^teacher [0-9]*, distilled student [0-9]* test errors of 500$" "$WORK/api.log" || fail "the API example printed: $(cat "$WORK/api.log")"
grep -q "^predicted: " "$WORK/api.log" || fail "the API example did not predict with the loaded model"

step "every code block of README.md and docs/usage.md, as written (tests/docs_check.py; long ones with --dry-run)"
"$PY" "$REPO/tests/docs_check.py" --python "$VPY" || fail "a code block of README.md or docs/usage.md (see above)"

step "nothing written into site-packages; pip uninstall leaves nothing of nnkd"
listing > "$WORK/site-after.txt"
diff "$WORK/site-before.txt" "$WORK/site-after.txt" > "$WORK/site.diff" || fail "site-packages changed: $(head -20 "$WORK/site.diff")"
"$VPY" -m pip uninstall -q -y nnkd
left=$(cd "$SITE" && ls -d nnkd* 2>/dev/null || true)
[ -z "$left" ] || fail "pip uninstall left $left in site-packages"
step "passed"
