"""benchmarks/mutation.sh: it names files that exist (every module it mutates and every test
file that judges one, so a rename cannot leave the mutation tool testing nothing), its judge
counts every failing test run as a kill, and its score reads the cache."""

import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

SCRIPT = ROOT / "benchmarks" / "mutation.sh"


def table(name):
    body = re.search(rf"declare -A {name}=\((.*?)\n\)", SCRIPT.read_text(), re.S).group(1)
    return dict(re.findall(r'\[(\w+)\]="?([^"\]\s][^"\]]*?)"?(?=\s+\[|\s*$)', body))


def test_every_module_and_test_file_exists():
    paths, tests = table("PATHS"), table("TESTS")
    assert set(paths) == set(tests) == {"losses", "optim", "layers", "batches", "train", "checkpoint", "data"}
    for module, path in paths.items():
        assert (ROOT / path).exists(), path
        for test in tests[module].split():
            assert (ROOT / test).is_file(), (module, test)


def test_unknown_module_is_refused_before_anything_runs(tmp_path):
    r = subprocess.run(["bash", str(SCRIPT), "no-such-module"], capture_output=True, text=True,
                       env={"PATH": "/usr/bin:/bin", "MUTATION_DIR": str(tmp_path / "m")})
    assert r.returncode == 2 and ("unknown module" in r.stderr or "mutmut is not installed" in r.stderr)
    assert not (tmp_path / "m").exists()


def judge(tmp_path, source):
    """The judge of the `losses` mutants, run over two test files holding ``source``."""
    (tmp_path / "tests").mkdir()
    for name in ("test_gradcheck.py", "test_backend_twins.py"):
        (tmp_path / "tests" / name).write_text(source)
    return subprocess.run(["bash", str(SCRIPT), "--judge", "losses"], cwd=tmp_path,
                          capture_output=True, text=True).returncode


def test_the_judge_passes_a_mutant_only_when_every_test_passes(tmp_path):
    assert judge(tmp_path, "def test_fine():\n    pass\n") == 0


def test_the_judge_kills_a_mutant_that_breaks_an_import(tmp_path):
    # pytest exits with 2 on a collection error; mutmut would count that as a survivor
    assert judge(tmp_path, "import no_such_module_anywhere\n") == 1


def test_the_judge_kills_a_mutant_that_fails_a_test(tmp_path):
    assert judge(tmp_path, "def test_wrong():\n    assert 1 == 2\n") == 1


def test_the_score_counts_each_file_from_the_cache(tmp_path):
    import sqlite3
    db = sqlite3.connect(tmp_path / ".mutmut-cache")
    db.executescript("""
        CREATE TABLE SourceFile (id INTEGER PRIMARY KEY, filename TEXT);
        CREATE TABLE Line (id INTEGER PRIMARY KEY, sourcefile INTEGER, line TEXT, line_number INTEGER);
        CREATE TABLE Mutant (id INTEGER PRIMARY KEY, line INTEGER, "index" INTEGER, status TEXT);
        INSERT INTO SourceFile VALUES (1, 'nnkd/a.py');
        INSERT INTO Line VALUES (1, 1, 'x = 1', 0);
        INSERT INTO Mutant VALUES (1, 1, 0, 'ok_killed'), (2, 1, 1, 'ok_killed'), (3, 1, 2, 'ok_suspicious'),
                                  (4, 1, 3, 'bad_survived'), (5, 1, 4, 'untested');""")
    db.commit()
    r = subprocess.run(["bash", str(SCRIPT), "--score"], capture_output=True, text=True,
                       env={"PATH": "/usr/bin:/bin:" + str(Path(sys.executable).parent),
                            "MUTATION_DIR": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[1].split() == ["nnkd/a.py", "5", "3", "0", "1", "1", "75.0"]
    r = subprocess.run(["bash", str(SCRIPT), "--score"], capture_output=True, text=True,
                       env={"PATH": "/usr/bin:/bin", "MUTATION_DIR": str(tmp_path / "none")})
    assert r.returncode == 2 and "no results in" in r.stderr
