"""Progress of a sweep: a tqdm bar on a terminal, progress lines in a log (spu_circuits/
execution.py)."""

from __future__ import annotations

from spu_circuits import execution
from spu_circuits.execution import run_sweep


def _square(x: int) -> int:
    return x * x


def test_log_progress_lines_without_a_terminal(monkeypatch, capsys):
    monkeypatch.setattr(execution, "LOG_EVERY_S", 0.0)
    out = run_sweep(_square, [1, 2, 3], scheduler="serial", desc="squares")
    assert out.values() == [1, 4, 9]
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0].startswith("squares: 1/3 tasks done")
    assert lines[-1].startswith("squares: 3/3 tasks done")


def test_short_sweep_in_a_log_is_silent_and_progress_false_is_silent(capsys):
    run_sweep(_square, [1, 2], scheduler="serial")
    run_sweep(_square, [1, 2], scheduler="serial", progress=False)
    assert capsys.readouterr().err == ""
