"""The documents a user reads: every relative link and every cited file exists in the
repository, the README stays short, and no document speaks of the project's development
history.  The checks are plain functions, each also tested on a document made to fail."""

import re
import subprocess
from functools import lru_cache
from pathlib import Path

import pytest

from tests.conftest import ROOT

README_MAX_LINES = 250

# Words that belong to the project's development, not to the software.
HISTORY = [r"this session", r"session [0-9]", r"issue #?[0-9]", r"\.\./shared", r"commit [0-9a-f]{7}"]

# Paths cited in the text, outside links: the folders whose files a document may name.
CITED = re.compile(r"(?<![\w./~-])((?:benchmarks|pretrained|nnkd|tests|docs)/[\w./*-]*[\w*/])(::[\w*]+)?")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
LOG_NAME = re.compile(r"`([\w.-]+\.log)`")


def user_docs():
    pointers = [ROOT / "benchmarks" / name for name in ("RESULTS.md", "NOTES.md")]
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *(p for p in pointers if p.exists())]


@lru_cache(maxsize=None)
def tracked(root):
    """The repository's files as git knows them (relative paths), or None without git."""
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    return frozenset(p for p in out.stdout.decode().split("\0") if p)


def in_repo(path, root):
    """Whether ``path`` (absolute) is a file or folder of the repository at ``root``: on disk,
    inside the root, and tracked by git where git is at hand (a clone has only those)."""
    path = Path(path).resolve()
    root = Path(root).resolve()
    if root != path and root not in path.parents:
        return False
    if not path.exists():
        return False
    files = tracked(str(root))
    if files is None:
        return True
    rel = path.relative_to(root).as_posix()
    if path.is_dir():
        return rel == "." or any(f.startswith(rel + "/") for f in files)
    return rel in files


def slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(md_text):
    out = set()
    in_code = False
    for line in md_text.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and line.startswith("#"):
            out.add(slug(line.lstrip("#")))
    return out


def prose(md_text):
    """The text outside fenced code blocks (commands and program output are not citations)."""
    return re.sub(r"^```.*?^```", "", md_text, flags=re.S | re.M)


def link_problems(doc, text, root):
    problems = []
    for target in LINK.findall(prose(text)):
        if re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("//"):
            continue  # http:, https:, mailto:
        file_part, _, anchor = target.partition("#")
        dest = doc if not file_part else (doc.parent / file_part)
        if not in_repo(dest, root):
            problems.append(f"{doc.name}: link to {target}: no such file in the repository")
            continue
        if anchor and dest.suffix == ".md" and anchor not in anchors(Path(dest).read_text()):
            problems.append(f"{doc.name}: link to {target}: no heading #{anchor} in {dest.name}")
    return problems


def citation_problems(doc, text, root):
    problems = []
    for path, test in CITED.findall(prose(text)):
        path = path.rstrip(".")
        if "*" in path:
            if not any(root.glob(path)):
                problems.append(f"{doc.name}: cites {path}: nothing matches")
            continue
        if not in_repo(root / path, root):
            problems.append(f"{doc.name}: cites {path}: no such file in the repository")
            continue
        if test:
            name = test[2:]
            pattern = re.escape(name).replace(r"\*", r"\w*")
            if not re.search(rf"^\s*def {pattern}\(", (root / path).read_text(), re.M):
                problems.append(f"{doc.name}: cites {path}{test}: no such test")
    logs = {p.name for p in root.rglob("*.log")}
    for name in LOG_NAME.findall(prose(text)):
        if name not in logs:
            problems.append(f"{doc.name}: cites the log {name}: not in the repository")
    return problems


def history_problems(doc, text):
    return [f"{doc.name}: speaks of the project's history: {m.group(0)!r}"
            for word in HISTORY for m in re.finditer(word, text, re.I)]


# ---- the repository's documents -----------------------------------------------------------

@pytest.mark.parametrize("doc", user_docs(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_links_and_cited_files_exist(doc):
    text = doc.read_text()
    problems = link_problems(doc, text, ROOT) + citation_problems(doc, text, ROOT)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("doc", user_docs(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_development_history(doc):
    problems = history_problems(doc, doc.read_text())
    assert not problems, "\n".join(problems)


def readme_problems(root):
    n = len((root / "README.md").read_text().splitlines())
    return [f"README.md has {n} lines, more than {README_MAX_LINES}"] if n > README_MAX_LINES else []


def test_readme_is_short():
    problems = readme_problems(ROOT)
    assert not problems, problems[0] if problems else ""


def test_docs_are_linked_from_the_readme():
    readme = (ROOT / "README.md").read_text()
    for doc in sorted((ROOT / "docs").glob("*.md")):
        assert f"(docs/{doc.name}" in readme, f"README.md does not link docs/{doc.name}"


# ---- the checks fail where they should -----------------------------------------------------

@pytest.fixture
def repo(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "tests").mkdir()
    (tmp_path / "benchmarks" / "logs").mkdir(parents=True)
    (tmp_path / "benchmarks" / "logs" / "run-a.log").write_text("ok\n")
    (tmp_path / "tests" / "test_x.py").write_text("def test_one():\n    pass\n")
    (tmp_path / "docs" / "other.md").write_text("# Other\n\n## The paper's recipe (`--preset paper`)\n")
    return tmp_path


def test_a_broken_link_is_found(repo):
    doc = repo / "README.md"
    text = ("[ok](docs/other.md) [ok](docs/other.md#the-papers-recipe---preset-paper) "
            "[web](https://example.org/x) [gone](docs/missing.md) [bad anchor](docs/other.md#nowhere) "
            "![fig](benchmarks/logs/nope.png) [outside](../elsewhere.md)\n")
    found = link_problems(doc, text, repo)
    assert len(found) == 4, found
    assert any("docs/missing.md" in p for p in found)
    assert any("#nowhere" in p for p in found)
    assert any("nope.png" in p for p in found)
    assert any("../elsewhere.md" in p for p in found)


def test_a_missing_cited_file_test_or_log_is_found(repo):
    doc = repo / "docs" / "d.md"
    text = ("See `benchmarks/logs/run-a.log`, `tests/test_x.py::test_one` and tests/test_x.py.\n"
            "Also `benchmarks/logs/run-b.log`, `tests/test_x.py::test_two`, `pretrained/teacher/` "
            "and `sx-a.log`.\n"
            "```\n$ cat benchmarks/logs/only-in-a-code-block.log\n```\n")
    found = citation_problems(doc, text, repo)
    assert len(found) == 4, found
    assert any("run-b.log" in p for p in found)
    assert any("test_two" in p for p in found)
    assert any("pretrained/teacher" in p for p in found)
    assert any("sx-a.log" in p for p in found)


def test_an_untracked_file_is_not_in_the_repository(repo):
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run(["git", "add", "tests/test_x.py"], cwd=repo, check=True)
    tracked.cache_clear()
    try:
        assert in_repo(repo / "tests" / "test_x.py", repo)
        assert in_repo(repo / "tests", repo)
        assert not in_repo(repo / "benchmarks" / "logs" / "run-a.log", repo)  # on disk, not committed
    finally:
        tracked.cache_clear()


def test_history_words_are_found():
    doc = Path("README.md")
    text = ("Measured this session on the new CPU; since Session 4 it is faster (issue 15, "
            "issue #7), see ../shared/RECIPE.md and commit e13d297.\n")
    found = history_problems(doc, text)
    assert len(found) == 6, found
    assert history_problems(doc, "A 2-core AMD EPYC Zen 5; pull request #16; 3000 epochs.\n") == []


def test_a_long_readme_is_found(tmp_path):
    (tmp_path / "README.md").write_text("line\n" * README_MAX_LINES)
    assert readme_problems(tmp_path) == []
    (tmp_path / "README.md").write_text("line\n" * (README_MAX_LINES + 1))
    assert readme_problems(tmp_path) == [f"README.md has {README_MAX_LINES + 1} lines, more than 250"]


def undocumented_flags(parser, text):
    """The long flags of ``parser``'s commands that ``text`` never names (a ``--teacher-X`` flag
    counts as named when ``--X`` is: usage.md describes the twins together)."""
    named = lambda flag: re.search(re.escape(flag) + r"(?![\w-])", text)  # noqa: E731
    commands = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction").choices
    return sorted({flag for sub in commands.values() for action in sub._actions for flag in action.option_strings
                   if flag.startswith("--") and flag != "--help" and not named(flag)
                   and not (flag.startswith("--teacher-") and named("--" + flag[len("--teacher-"):]))})


def test_every_flag_is_named_in_the_docs():
    from nnkd.cli.parser import build_parser

    text = (ROOT / "README.md").read_text() + (ROOT / "docs" / "usage.md").read_text()
    assert undocumented_flags(build_parser(), text) == []
    assert "--lr-decay" in undocumented_flags(build_parser(), text.replace("--lr-decay", "--lr-dekay"))
    assert "--teacher-lr" in undocumented_flags(build_parser(), re.sub(r"--(teacher-)?lr\b", "--lx", text))
