#!/usr/bin/env python3
"""Run the code blocks of README.md and docs/usage.md as written, with nnkd installed in a venv.

    python3 tests/docs_check.py --python VENV/bin/python [--long]

Every fenced block (```bash, ```python, and bare ``` blocks of commands or of `$ ` transcripts)
is cut into steps: a python block is one step, run by the venv's python; a block of commands is
one step per command; a transcript is one step per `$ ` command, whose output (stdout and stderr
together) must match the lines the document shows under it. Each block runs in a fresh empty
folder, its commands one after the other there, with the venv's bin first on PATH, HOME a
temporary folder and NNKD_DATA the cached MNIST (the environment's NNKD_DATA, or --data). A
command must exit with status 0, or, in a transcript whose output shows an `error:` line, with
another status. `dask scheduler` and `dask worker` are started in the background (stopped when
their block ends), and the next step waits for the workers to join.

Matching a transcript: a line `...` stands for any number of lines; the other lines must be the
output's, after NORMALISE (applied to both): timings, test-error figures (they depend on the
machine's BLAS kernels and thread count; tests/test_doc_figures.py checks them where they were
measured), and the order in which cells of a sweep finish. The temporary HOME is shown as
/home/me.

A step that cannot run as written here is in SKIPS, with its reason; FIXTURES gives a block what
it needs from outside (the reader's own arrays or files, a run made by an earlier command). The
venv needs the onnx, dask and sklearn extras. One line per step; exit status 1 on any failure.
A run with --long (72 min on 2 cores, 28 steps ran, 0 failed): benchmarks/logs/docs-check/long.log.
"""

import argparse
import difflib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ("README.md", "docs/usage.md")
COMMAND_WORDS = ("nnkd", "python", "python3", "pip", "dask")  # what a bare block of commands starts with
BACKGROUND = ("dask scheduler", "dask worker")  # servers: started, and stopped when their block ends
STEP_TIMEOUT_S = 600

# The steps that do not run as written: (document, text in the command) -> (kind, reason).
# skip: not run; long: run only with --long (without it, an `nnkd` command is run with --dry-run,
# which checks its settings and files and trains nothing); gpu: checked instead to fail in one
# `error:` line, without a traceback, as the docs promise on a machine without an NVIDIA GPU.
SKIPS = {
    ("README.md", "python3 -m venv .venv"): (
        "skip", "sets up a clone: pip install -e . needs the repository's files (.ci/run installs it so)"),
    ("README.md", 'pip install ".[cupy]"'): ("skip", "in a clone; CuPy needs an NVIDIA GPU"),
    ("README.md", "--backend cupy"): ("gpu", "needs an NVIDIA GPU"),
    ("README.md", "nnkd sweep --epochs 20"): ("long", "45 students of 20 epochs each: 15 to 34 min on 2 cores"),
    ("README.md", 'pip install ".[onnx]"'): ("skip", "in a clone; the venv checked has the onnx extra"),
    ("README.md", "nnkd distill --teacher"): ("long", "two MNIST students of 60 epochs: 5 to 7 min"),
    ("docs/usage.md", "nnkd distill --teacher"): ("long", "two MNIST students of 60 epochs: 5 to 7 min"),
    ("docs/usage.md", "dask scheduler --port 8786"): (
        "skip", "a cluster across machines; the transcript below runs the same on 127.0.0.1"),
    ("docs/usage.md", "tcp://HOST:8786"): (
        "skip", "HOST and /shared are the reader's machines; the transcript below runs the same on 127.0.0.1"),
    ("docs/usage.md", "cell w512-T2-s0 on Dask worker"): ("skip", "a cell's log.txt, not a command"),
}


@dataclass(frozen=True)
class Fixture:
    why: str
    setup: str = ""         # shell, run first in the block's folder
    python: str = ""        # put before a python block's code
    replace: tuple = ()     # (placeholder, what stands for it) in the block's commands
    unset: tuple = ()       # environment variables the block's commands run without


DATA_ARRAYS = """from nnkd.data import load
mnist = load("mnist")
x_train, y_train = mnist.train_features[:200].reshape(-1, 28, 28), mnist.train_labels[:200]
x_test, y_test = mnist.test_features[:200].reshape(-1, 28, 28), mnist.test_labels[:200]
"""
WRITE_MYDATA = f"""python - <<'EOF'
{DATA_ARRAYS}import numpy as np
np.savez("mydata.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test, image_shape=[28, 28])
EOF"""


MY_ARRAYS = Fixture("x_train... are the reader's arrays: 200 MNIST training and test images", python=DATA_ARRAYS)
MY_FILE = Fixture("mydata.npz as the block above writes it", setup=WRITE_MYDATA)


def teacher_logits(model, dest):
    """Shell that saves a shipped model's logits on the MNIST training images to ``dest``."""
    return (f"python -c 'import numpy as np; from nnkd import load_model; from nnkd.data import load, "
            f"to_float32; np.save(\"{dest}\", load_model(\"{model}\").predict_logits("
            f"to_float32(load(\"mnist\").train_features)))'")


# What a block needs from outside: (document, text in the block's first command) -> Fixture.
FIXTURES = {
    ("README.md", 'np.savez("mydata.npz"'): MY_ARRAYS,
    ("README.md", "nnkd data --dataset npz:mydata.npz"): MY_FILE,
    ("README.md", 'pip install ".[onnx]"'): Fixture(
        "runs/distill-... is the reader's run: a smoke distill made first",
        setup="nnkd distill --preset smoke --quiet", replace=("runs/distill-...", "runs/distill-*")),
    ("README.md", "nnkd distill --teacher cnn.onnx"): Fixture(
        "cnn.onnx and z.npy are public-teacher's", setup="nnkd export public-teacher cnn.onnx --format onnx && "
        + teacher_logits("public-teacher", "z.npy")),
    ("docs/usage.md", "nnkd distill --teacher public-teacher --teacher paper-teacher"): Fixture(
        "my-model.onnx is fast-teacher's, other-logits.npy paper-teacher's, runs/x a smoke teacher",
        setup="nnkd export fast-teacher my-model.onnx --format onnx && "
        + teacher_logits("paper-teacher", "other-logits.npy")
        + " && nnkd train-teacher --preset smoke --epochs 1 --out runs/x --quiet"),
    ("docs/usage.md", 'np.savez("mydata.npz"'): MY_ARRAYS,
    ("docs/usage.md", "nnkd data --dataset npz:mydata.npz"): MY_FILE,
    ("docs/usage.md", 'np.load("public-teacher.npz")'): Fixture(
        "public-teacher.npz made as its comment says", setup="nnkd export public-teacher public-teacher.npz"),
    ("docs/usage.md", "nnkd data --cache"): Fixture(
        "MNIST in the user cache folder, not in NNKD_DATA",
        setup='mkdir -p "$HOME/.cache/nnkd" && cp -r "$NNKD_DATA/mnist" "$HOME/.cache/nnkd/"', unset=("NNKD_DATA",)),
}

# Applied to a transcript's lines and to the output alike, in this order.
NORMALISE = [
    (re.compile(r"\b\d+(\.\d+)? (min|s)\b"), r"<t> \2"),            # a timing: (0.0 min; ...), after 5 s
    (re.compile(r"\b\d+ test errors\b"), "<n> test errors"),        # a figure that depends on the machine
    (re.compile(r"\| \d+\.\d \(n=(\d+)\)"), r"| <n> (n=\1)"),       # the same in a sweep's table
    (re.compile(r"^(\s+)\[\d+/(\d+)\] "), r"\1[k/\2] "),            # a sweep's cells finish in any order
]
ANY_ORDER = re.compile(r"^\s+\[k/\d+\] ")


# ---- reading the documents ----------------------------------------------------------------

@dataclass
class Step:
    doc: str
    line: int             # of the command in the document
    kind: str             # python, shell, transcript, or text (neither commands nor a transcript)
    command: str
    expected: list = field(default_factory=list)  # a transcript's output lines


def fenced_blocks(text):
    """``(line of the first line inside, info string, lines)`` of each fenced block."""
    blocks, inside = [], None
    for number, line in enumerate(text.splitlines(), 1):
        if inside is None and line.startswith("```"):
            inside = (number + 1, line[3:].strip(), [])
        elif inside is not None and line.startswith("```"):
            blocks.append(inside)
            inside = None
        elif inside is not None:
            inside[2].append(line)
    return blocks


def commands(doc, first, lines):
    """One step per command of a block of shell lines (continuations joined, comments dropped)."""
    steps, pending = [], None
    for number, line in enumerate(lines, first):
        if pending is None and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending = pending or Step(doc, number, "shell", "")
        pending.command += line + "\n"
        if not line.endswith("\\"):
            pending.command = pending.command.rstrip("\n")
            steps.append(pending)
            pending = None
    return steps


def transcript(doc, first, lines):
    """One step per `$ ` command of a transcript, with the output lines shown under it."""
    steps, continued = [], False
    for number, line in enumerate(lines, first):
        if line.startswith("$ ") or continued:
            if not continued:
                steps.append(Step(doc, number, "transcript", ""))
            steps[-1].command += (line[2:] if not continued else line) + "\n"
            continued = line.endswith("\\")
            if not continued:
                steps[-1].command = steps[-1].command.rstrip("\n")
        elif steps:
            steps[-1].expected.append(line)
    return steps


def block_steps(doc, first, info, lines):
    if info == "python":
        return [Step(doc, first, "python", "\n".join(lines) + "\n")]
    if info == "" and any(line.startswith("$ ") for line in lines):
        return transcript(doc, first, lines)
    starts = lines[0].split()[:1] if lines else []
    if info in ("bash", "sh") or (info == "" and starts and starts[0] in COMMAND_WORDS):
        return commands(doc, first, lines)
    return [Step(doc, first, "text", "\n".join(lines))]


def doc_blocks(root=ROOT):
    """The steps of every fenced block of DOCS, one list per block, in the documents' order."""
    return [block_steps(doc, first, info, lines) for doc in DOCS
            for first, info, lines in fenced_blocks((Path(root) / doc).read_text())]


def skip_of(step):
    return next((v for (doc, text), v in SKIPS.items() if doc == step.doc and text in step.command), None)


def fixture_of(block):
    return next((v for (doc, text), v in FIXTURES.items()
                 if block and doc == block[0].doc and text in block[0].command), Fixture(""))


# ---- matching a transcript ----------------------------------------------------------------

def normalise(lines):
    out = []
    for line in lines:
        line = line.rstrip()
        for pattern, replacement in NORMALISE:
            line = pattern.sub(replacement, line)
        out.append(line)
    i = 0
    while i < len(out):  # each run of a sweep's cell lines, sorted
        j = i
        while j < len(out) and ANY_ORDER.match(out[j]):
            j += 1
        out[i:j] = sorted(out[i:j])
        i = max(j, i + 1)
    return out


def matches(expected, actual):
    """Whether ``actual`` has the lines of ``expected``, where a line ``...`` stands for any number."""
    parts = [[]]
    for line in expected:
        parts.append([]) if line == "..." else parts[-1].append(line)
    if len(parts) == 1:
        return actual == parts[0]
    first, *middle, last = parts
    if actual[:len(first)] != first:
        return False
    at = len(first)
    for part in middle:
        found = next((i for i in range(at, len(actual) - len(part) + 1) if actual[i:i + len(part)] == part), None)
        if found is None:
            return False
        at = found + len(part)
    return len(actual) - at >= len(last) and actual[len(actual) - len(last):] == last


def output_problem(expected, output):
    """'' where ``output`` matches the transcript's ``expected`` lines, else their difference."""
    want = normalise(expected)
    got = normalise(output.rstrip("\n").splitlines())
    if matches(want, got):
        return ""
    diff = difflib.unified_diff(want, got, "the document", "the output", lineterm="", n=1)
    return "\n".join(list(diff)[2:42])


def expects_error(step):
    return any(line.startswith("error:") for line in step.expected)


# ---- running ------------------------------------------------------------------------------

@dataclass
class Run:
    python: str
    long: bool
    env: dict
    home: str
    folder: str = ""
    background: list = field(default_factory=list)


def execute(argv, run, env=None, timeout=STEP_TIMEOUT_S):
    """``(exit status, stdout and stderr together)`` of ``argv`` in the block's folder."""
    with subprocess.Popen(argv, cwd=run.folder, env=env or run.env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, start_new_session=True) as proc:
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
            return 124, out + f"\n(stopped after {timeout} s)"
    return proc.returncode, out.replace(run.home, "/home/me")


def start_in_background(command, run, env):
    log = open(Path(run.folder).parent / f"background-{len(run.background)}.log", "w")
    run.background.append(subprocess.Popen(["bash", "-c", command], cwd=run.folder, env=env, stdout=log,
                                           stderr=subprocess.STDOUT, start_new_session=True))
    if "dask worker" in command:
        address = re.search(r"tcp://[\w.]+:\d+", command).group(0)
        workers = int((re.search(r"--nworkers (\d+)", command) or [0, 1])[1])
        wait = (f"from distributed import Client\nwith Client('{address}', timeout=60) as c:\n"
                f"    c.wait_for_workers({workers}, timeout=120)")
        return execute([run.python, "-c", wait], run, env)
    return 0, ""


def stop_background(run):
    for proc in run.background:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    run.background.clear()


def run_step(step, run, fixture):
    """``(note, problem)``: what was done, and '' or what went wrong."""
    skip = skip_of(step)
    if step.kind == "text":
        return (f"skipped: {skip[1]}", "") if skip else ("not run", "neither commands nor a transcript, and not in SKIPS")
    env = {k: v for k, v in run.env.items() if k not in fixture.unset}
    command = step.command.replace(*fixture.replace) if fixture.replace else step.command
    if skip and skip[0] == "skip":
        return f"skipped: {skip[1]}", ""
    if skip and skip[0] == "gpu":
        return f"skipped: {skip[1]}; checked that it fails in one line", gpu_problem(command, run, env)
    if skip and skip[0] == "long" and not run.long:
        if not command.startswith("nnkd "):
            return f"skipped: long: {skip[1]}", ""
        status, out = execute(["bash", "-c", re.sub(r"\s+#.*$", "", command) + " --dry-run"], run, env)
        return f"skipped: long: {skip[1]}; checked with --dry-run", status and f"exit status {status}:\n{out}"
    if any(word in command for word in BACKGROUND):
        status, out = start_in_background(command, run, env)
        return "ran: started in the background", status and f"the Dask workers did not join:\n{out}"
    argv = [run.python, "-c", fixture.python + command] if step.kind == "python" else ["bash", "-c", command]
    status, out = execute(argv, run, env, timeout=None if skip else STEP_TIMEOUT_S)
    note = "ran" + (f": {fixture.replace[0]} as {fixture.replace[1]}" if fixture.replace else "")
    if step.kind == "transcript":
        wrong_status = (status == 0) == expects_error(step)
        return note, output_problem(step.expected, out) or (wrong_status and f"exit status {status}:\n{out}")
    return note, status and f"exit status {status}; the output ends:\n" + "\n".join(out.splitlines()[-15:])


def gpu_problem(command, run, env):
    status, out = execute(["bash", "-c", command], run, env)
    lines = out.strip().splitlines()
    if status != 0 and len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in out:
        return ""
    return f"expected one `error:` line and a non-zero exit status; exit status {status}, output:\n{out}"


def runs_something(step):
    skip = skip_of(step)
    return step.kind != "text" and (not skip or skip[0] != "skip")


def run_block(block, run):
    """Run one block's steps in a fresh empty folder, a line printed per step: their outcomes."""
    fixture = fixture_of(block)
    run.folder = os.path.join(tempfile.mkdtemp(dir=Path(run.home).parent, prefix="block-"), "cwd")
    os.mkdir(run.folder)
    setup_problem = ""
    if fixture.setup and any(runs_something(step) for step in block):
        start = time.monotonic()
        status, out = execute(["bash", "-c", fixture.setup], run)
        setup_problem = status and f"its fixture ({fixture.why}) failed:\n{out}"
        print(f"{where(block[0]):18} {'fixture':7} {time.monotonic() - start:5.1f} s  {fixture.why}")
    outcomes = []
    try:
        for step in block:
            start = time.monotonic()
            note, problem = ("not run", setup_problem) if setup_problem else run_step(step, run, fixture)
            outcomes.append(report(step, note, problem, time.monotonic() - start, fixture))
    finally:
        stop_background(run)
    return outcomes


def where(step):
    return f"{step.doc}:{step.line}"


def report(step, note, problem, seconds, fixture):
    """Prints the step's line (and what went wrong); returns ran, skipped or FAILED."""
    outcome = "FAILED" if problem else note.split(":")[0]
    first = step.command.splitlines()[0] if step.command else ""
    extra = f" [{fixture.why}]" if fixture.why and outcome != "skipped" else ""
    print(f"{where(step):18} {outcome:7} {seconds:5.1f} s  {first[:60]}  ({note}){extra}", flush=True)
    if problem:
        print(f"    command: {step.command}\n" + "\n".join("    " + line for line in str(problem).splitlines()))
    return outcome


def environment(python, data, home):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "XDG_CACHE_HOME")}
    env.update(PATH=f"{Path(python).parent}{os.pathsep}{env.get('PATH', '')}", HOME=home, NNKD_DATA=data,
               PYTHONUNBUFFERED="1")  # stdout and stderr in the order a terminal shows them
    return env


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", required=True, help="the python of a venv where nnkd is installed")
    parser.add_argument("--long", action="store_true", help="also run the steps marked long")
    parser.add_argument("--data", default=os.environ.get("NNKD_DATA"), help="the MNIST cache (default: $NNKD_DATA)")
    args = parser.parse_args(argv)
    if not args.data or not Path(args.data, "mnist", "train-images-idx3-ubyte").is_file():
        sys.exit("docs check: give the folder where MNIST is cached with --data or NNKD_DATA")
    python = os.path.abspath(args.python)
    started, outcomes = time.monotonic(), []
    with tempfile.TemporaryDirectory(prefix="nnkd-docs-check-") as tmp:
        home = os.path.join(tmp, "home")
        os.mkdir(home)
        run = Run(python, args.long, environment(python, os.path.abspath(args.data), home), home)
        for block in doc_blocks():
            outcomes += run_block(block, run)
    print(f"docs check: {outcomes.count('ran')} ran, {outcomes.count('skipped')} skipped, "
          f"{outcomes.count('FAILED')} failed, {time.monotonic() - started:.0f} s"
          + ("" if args.long else " (without --long)"))
    return 1 if "FAILED" in outcomes else 0


if __name__ == "__main__":
    sys.exit(main())
