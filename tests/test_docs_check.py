"""tests/docs_check.py's reading of the documents and its matching of transcripts (no wheel, no
venv, nothing run): every fenced block is found, each of its steps runs or has a reason in the
skip table, and a transcript whose output differs from the document fails."""

import pytest

from tests import docs_check
from tests.conftest import ROOT


def all_steps():
    return [step for block in docs_check.doc_blocks() for step in block]


@pytest.mark.parametrize("doc", docs_check.DOCS)
def test_every_fenced_block_is_found(doc):
    fences = [line for line in (ROOT / doc).read_text().splitlines() if line.startswith("```")]
    assert len(fences) % 2 == 0, f"{doc}: a fence is not closed"
    blocks = [block for block in docs_check.doc_blocks() if block and block[0].doc == doc]
    assert len(blocks) == len(fences) // 2


def test_every_step_runs_or_has_a_reason():
    kinds = {"skip", "long", "gpu"}
    for step in all_steps():
        skip = docs_check.skip_of(step)
        assert step.kind != "text" or skip, f"{step.doc}:{step.line} is neither commands nor a transcript"
        assert not skip or (skip[0] in kinds and skip[1]), f"{step.doc}:{step.line}: {skip}"


def test_every_entry_of_the_tables_is_used():
    steps = all_steps()
    for doc, text in docs_check.SKIPS:
        assert any(s.doc == doc and text in s.command for s in steps), f"SKIPS: {doc}: {text!r} matches nothing"
    firsts = [block[0] for block in docs_check.doc_blocks() if block]
    for (doc, text), fixture in docs_check.FIXTURES.items():
        assert fixture.why, f"FIXTURES: {doc}: {text!r} has no reason"
        assert any(s.doc == doc and text in s.command for s in firsts), f"FIXTURES: {doc}: {text!r} matches no block"


def test_steps_are_cut_at_commands_continuations_and_prompts():
    lines = ["# a comment", "nnkd data   # describe", "", "nnkd sweep --widths 64 \\", "    --seeds 0"]
    assert [(s.line, s.command) for s in docs_check.commands("d.md", 10, lines)] == [
        (11, "nnkd data   # describe"), (13, "nnkd sweep --widths 64 \\\n    --seeds 0")]
    shown = ["$ nnkd a \\", "    --b", "out 1", "...", "$ nnkd c", "error: no"]
    a, c = docs_check.transcript("d.md", 1, shown)
    assert (a.line, a.command, a.expected) == (1, "nnkd a \\\n    --b", ["out 1", "..."])
    assert (c.command, c.expected, docs_check.expects_error(c)) == ("nnkd c", ["error: no"], True)
    assert docs_check.block_steps("d.md", 1, "", ["cell w1 on worker", "  epoch 1"])[0].kind == "text"


SWEEP_SHOWN = ["...", "sweep: 4 cells (2 workers now)", "  [1/2] w64-T8-s0: 560 test errors (0.0 min; 0.1 min since start)",
               "  [2/2] w64-T2-s0: 588 test errors (0.0 min; 0.1 min since start)", "", "| 64 | 588.0 (n=1) | 560.0 (n=1) |", "..."]
SWEEP_OUTPUT = """mnist: cache /data/mnist: ok, verified
sweep: 4 cells (2 workers now)
  [1/2] w64-T2-s0: 590 test errors (0.0 min; 0.0 min since start)
  [2/2] w64-T8-s0: 518 test errors (0.1 min; 0.2 min since start)

| 64 | 590.0 (n=1) | 518.0 (n=1) |
wall time 0.1 min
"""


def test_a_transcript_matches_up_to_elisions_timings_figures_and_order():
    assert docs_check.output_problem(SWEEP_SHOWN, SWEEP_OUTPUT) == ""
    assert docs_check.output_problem(["a", "b"], "a\nb\n") == ""
    assert docs_check.output_problem(["a", "...", "c"], "a\nx\ny\nc\n") == ""
    assert docs_check.output_problem(["...", "b", "...", "d"], "b\nd\n") == ""


def test_a_changed_missing_or_extra_line_fails():
    problem = docs_check.output_problem(SWEEP_SHOWN, SWEEP_OUTPUT.replace("4 cells", "5 cells"))
    assert "-sweep: 4 cells (2 workers now)" in problem and "+sweep: 5 cells (2 workers now)" in problem
    assert docs_check.output_problem(["a", "b"], "a\n")
    assert docs_check.output_problem(["a"], "a\nb\n")
    assert docs_check.output_problem(["a", "...", "c"], "a\nc\nd\n")
    assert docs_check.output_problem(["...", "c"], "c\nd\n")
    assert docs_check.output_problem(["x: 9,581,512 bytes"], "x: 9,581,513 bytes\n")


def test_a_transcript_of_the_documents_fails_on_a_changed_line():
    (export, *_) = [s for s in all_steps() if s.kind == "transcript" and "--format onnx" in s.command]
    shown = "\n".join(export.expected) + "\n"
    assert docs_check.output_problem(export.expected, shown) == ""
    assert docs_check.output_problem(export.expected, shown.replace("opset 17", "opset 18"))
