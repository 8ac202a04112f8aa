"""Simulator faults: each is detected and reported with the ngspice log lines that explain it.

Both back-ends (`cli`: ngspice -b in a subprocess; `shared`: libngspice in a worker process)
must turn every fault into a SimulationError (or NgspiceNotFound / SimulationTimeout), keep
the caller alive, and work again on the next run.
"""

from __future__ import annotations

import ctypes.util
import os
import re
import signal
import threading
import time

import numpy as np
import pytest

from spu_circuits.backends import Op, Tran, get_backend, prepare_deck
from spu_circuits.backends import shared as shared_mod
from spu_circuits.errors import NgspiceNotFound, SimulationError, SimulationTimeout

from ..conftest import HAVE_NGSPICE

needs_ngspice = pytest.mark.skipif(not HAVE_NGSPICE, reason="ngspice is not installed")

GOOD = "good\nv1 a 0 1\nr1 a b 1k\nr2 b 0 3k\n"
#: two ideal voltage sources in parallel with different values
PARALLEL_V = "parallel sources\nv1 a 0 1\nv2 a 0 2\nr1 a 0 1k\n"
#: node b is reached through capacitors only: no DC path to ground
FLOATING_C = "floating node\nv1 a 0 1\nr1 a 0 1k\nc1 a b 1n\nc2 b 0 1n\n"
#: a comparator feeding back onto its own RC input without hysteresis: it must switch at
#: V(c) = 0.5, i.e. t = RC ln 2 = 0.693 µs, and cannot (deterministic "timestep too small")
CHATTER = "chatter\nb1 out 0 v = v(c) < 0.5 ? 1 : 0\nr1 out c 1k\nc1 c 0 1n\n"
#: 10⁹ internal steps: never finishes within a test's timeout
LONG = "long\nv1 a 0 sin(0 1 1meg)\nr1 a b 1k\nc1 b 0 1n\n"
LONG_TRAN = Tran(step_s=1e-9, stop_s=1.0, tmax_s=1e-9)
FS_MODEL = ("amploffset=[0] amplscale=[1] timeoffset=0 timescale=1 timerelative=false "
            "amplstep=false")


def filesource_deck(fname: str) -> str:
    return (f"filesource\na1 %vd([n1 0]) src\nr1 n1 0 1k\n"
            f".model src filesource(file=\"{fname}\" {FS_MODEL})\n")


def squash(s: str) -> str:
    """Whitespace runs → one space (ngspice pads its messages irregularly)."""
    return re.sub(r"\s+", " ", s)


def check_good(be) -> None:
    res = be.run(GOOD, Op())
    assert res.voltages(["b"])[0] == pytest.approx(0.75, rel=1e-9)


@pytest.fixture(params=["cli", "shared"])
def be(request, backends):
    if not HAVE_NGSPICE:
        pytest.skip("ngspice is not installed")
    return backends[request.param]


# ------------------------------------------------------------------------- not installed


def test_cli_ngspice_missing_env_var(monkeypatch):
    monkeypatch.setenv("SPU_NGSPICE", "ngspice-not-installed-xyz")
    with pytest.raises(NgspiceNotFound) as ei:
        get_backend("cli").run(GOOD, Op())
    assert "sudo apt-get install ngspice" in str(ei.value)
    assert ei.value.exit_code == 3


def test_cli_ngspice_missing_from_path(monkeypatch, tmp_path):
    monkeypatch.delenv("SPU_NGSPICE", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(NgspiceNotFound, match="no 'ngspice' on PATH.*apt-get install"):
        get_backend("cli").run(GOOD, Op())


def test_shared_library_missing(monkeypatch):
    monkeypatch.setattr(shared_mod, "_LIB_DIRS", ("/nonexistent/lib",))
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    be = get_backend("shared")
    with pytest.raises(NgspiceNotFound) as ei:
        be.run(GOOD, Op())
    msg = str(ei.value)
    assert "libngspice.so" in msg and "apt-get install libngspice0" in msg
    assert "--backend cli" in msg
    assert be._proc is None            # no worker was started
    be.close()


# ------------------------------------------------------------------------ singular matrix


@needs_ngspice
def test_parallel_voltage_sources_singular(be):
    with pytest.raises(SimulationError) as ei:
        be.run(PARALLEL_V, Op())
    err = ei.value
    assert not isinstance(err, SimulationTimeout)
    # ngspice 39: "Warning: singular matrix:  check node v1#branch"
    assert "singular matrix: check node v1#branch" in squash(str(err))
    assert "singular matrix: check node v1#branch" in squash(err.log_excerpt)
    assert "ngspice log:" in err.details()
    check_good(be)


@needs_ngspice
@pytest.mark.parametrize("analysis", [Op(), Tran(1e-6, 1e-5)], ids=["op", "tran"])
def test_capacitor_only_node_singular(be, analysis):
    """Node b has no DC path. (For .tran ngspice 39 recovers with its 'transient op' and
    would return data; the singular-matrix warning is still reported as a failure.)"""
    with pytest.raises(SimulationError) as ei:
        be.run(FLOATING_C, analysis)
    assert "singular matrix: check node b" in squash(str(ei.value))
    assert "check node b" in ei.value.log_excerpt
    check_good(be)


# ------------------------------------------------------------------- timestep too small


@needs_ngspice
def test_timestep_too_small(be):
    with pytest.raises(SimulationError) as ei:
        be.run(CHATTER, Tran(1e-9, 1e-5, uic=True))
    msg = squash(str(ei.value))
    # ngspice 39: 'doAnalyses: TRAN:  Timestep too small; time = 6.93147e-07,
    #              timestep = 1.25e-21: trouble with node "out"'
    assert "Timestep too small; time = 6.93147e-07" in msg
    assert 'trouble with node "out"' in msg
    assert "run simulation(s) aborted" in ei.value.log_excerpt
    check_good(be)


@needs_ngspice
def test_timestep_too_small_in_initial_op(be):
    with pytest.raises(SimulationError) as ei:
        be.run(CHATTER, Tran(1e-9, 1e-5))
    # ngspice 39: "Error: Transient op failed, timestep too small"
    assert "Transient op failed, timestep too small" in str(ei.value)


# ------------------------------------------------------------------------------ timeouts


@needs_ngspice
def test_cli_timeout():
    be = get_backend("cli", timeout_s=1)
    t0 = time.monotonic()
    with pytest.raises(SimulationTimeout, match="exceeded its 1 s timeout"):
        be.run(LONG, LONG_TRAN)
    assert time.monotonic() - t0 < 10
    be.timeout_s = 30                      # (a loaded test machine must not fail the next run)
    check_good(be)


@needs_ngspice
def test_shared_timeout_restarts_worker():
    with get_backend("shared", timeout_s=1) as be:
        check_good(be)                     # worker up (its start has its own, longer limit)
        pid = be._proc.pid
        t0 = time.monotonic()
        with pytest.raises(SimulationTimeout, match="shared mode.*timeout during simulation"):
            be.run(LONG, LONG_TRAN)
        assert time.monotonic() - t0 < 10
        assert be._proc is None
        with pytest.raises(ProcessLookupError):   # the stuck worker was killed
            os.kill(pid, 0)
        be.timeout_s = 30
        check_good(be)                     # a fresh worker
        assert be._proc.pid != pid


# -------------------------------------------------------------------------------- crashes


@needs_ngspice
def test_shared_worker_killed_between_runs_restarts():
    with get_backend("shared", timeout_s=30) as be:
        check_good(be)
        pid = be._proc.pid
        os.kill(pid, signal.SIGKILL)
        be._proc.wait(timeout=10)
        check_good(be)
        assert be._proc.pid != pid


@needs_ngspice
def test_shared_library_crash_during_run():
    """A SIGSEGV in the worker mid-run (as a libngspice crash would be) → SimulationError."""
    with get_backend("shared", timeout_s=30) as be:
        check_good(be)
        proc = be._proc
        out: dict = {}

        def run():
            try:
                be.run(LONG, LONG_TRAN)
            except SimulationError as exc:
                out["err"] = exc

        th = threading.Thread(target=run)
        th.start()
        time.sleep(0.5)
        os.kill(proc.pid, signal.SIGSEGV)
        th.join(timeout=20)
        assert not th.is_alive()
        err = out["err"]
        assert type(err) is SimulationError
        # (on a very loaded machine the signal may land before the deck was sent)
        assert re.search(r"crashed during simulation \(worker exit status -11\)|"
                         r"worker died before the run", str(err)), str(err)
        check_good(be)


@needs_ngspice
def test_deck_that_segfaults_ngspice(be, tmp_path):
    """A self-including file overflows ngspice 39's stack (SIGSEGV) in both modes."""
    (tmp_path / "loop.cir").write_text("* loop\n.include loop.cir\n")
    with pytest.raises(SimulationError) as ei:
        be.run(GOOD + ".include loop.cir\n", Op(), cwd=str(tmp_path))
    msg = str(ei.value)
    if be.name == "cli":
        assert msg == "ngspice failed: ngspice crashed (signal 11)"
    else:
        assert "crashed during simulation (worker exit status -11)" in msg
    check_good(be)


# ------------------------------------------------------------------------ filesource files


@needs_ngspice
@pytest.mark.parametrize("analysis", [Op(), Tran(1e-6, 1e-5), Tran(1e-6, 1e-5, uic=True)],
                         ids=["op", "tran", "tran-uic"])
def test_filesource_file_missing(be, tmp_path, analysis):
    with pytest.raises(SimulationError) as ei:
        be.run(filesource_deck("missing.txt"), analysis, cwd=str(tmp_path))
    # checked before ngspice starts (ngspice 39 itself logs "Instance: a1   Message: cannot
    # open file missing.txt" and fails later with "timestep too small")
    assert "filesource file 'missing.txt' cannot be opened" in str(ei.value)
    check_good(be)


@needs_ngspice
def test_filesource_file_present_runs(be, tmp_path):
    (tmp_path / "ok.txt").write_text("0 0.25\n1 0.25\n")
    res = be.run(filesource_deck("ok.txt"), Tran(1e-6, 1e-5, uic=True), cwd=str(tmp_path))
    assert np.allclose(res.voltages(["n1"])[:, 0], 0.25)


@needs_ngspice
@pytest.mark.parametrize("content", ["abc def\nxyz\n", "", None], ids=["garbage", "empty",
                                                                       "folder"])
def test_filesource_unreadable_content(be, tmp_path, content):
    target = tmp_path / "noise.txt"
    if content is None:
        target.mkdir()
    else:
        target.write_text(content)
    with pytest.raises(SimulationError):
        be.run(filesource_deck("noise.txt"), Tran(1e-6, 1e-5, uic=True), cwd=str(tmp_path))


# ---------------------------------------------------------------- back-end issues found


@needs_ngspice
def test_excerpt_keeps_the_decisive_lines(be):
    with pytest.raises(SimulationError) as ei:
        be.run(PARALLEL_V, Op())
    assert "run simulation(s) aborted" in ei.value.log_excerpt


def test_prepare_deck_keeps_options_and_subcircuits():
    deck = ("t\n.options reltol=1e-9\n.subckt div p q\nr1 p q 1k\n.ends\nv1 x 0 1\n"
            "x1 x 0 div\n.op\n.end\n")
    text = prepare_deck(deck, Op())
    assert ".options reltol=1e-9" in text and ".ends" in text
