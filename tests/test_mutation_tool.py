"""benchmarks/mutation.sh names files that exist: every module it mutates and every test file
that judges one (so a rename cannot leave the mutation tool testing nothing)."""

import re
import subprocess

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
