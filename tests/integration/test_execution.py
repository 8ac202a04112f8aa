"""The sweep execution layer: same results serially, on a LocalCluster and on a remote Dask
scheduler; failures reported while the others finish; a killed worker loses nothing; resume
from the cache."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from spu_circuits.compiler import compile_system
from spu_circuits.compiler.noise import NoiseSpec
from spu_circuits.errors import InputError, SimulationError
from spu_circuits.execution import Scheduler, parse_scheduler, run_sweep, task_key
from spu_circuits.spec import HardwareSpec
from validation.sweep import summaries_json, task_for_deck, validate_task

from ..conftest import make_system, needs_ngspice

ROOT = Path(__file__).resolve().parents[2]


def test_parse_scheduler():
    assert parse_scheduler("serial") == Scheduler("serial")
    assert parse_scheduler(None) == Scheduler("local")
    assert parse_scheduler("local:3") == Scheduler("local", workers=3)
    assert parse_scheduler("tcp://127.0.0.1:8786") == Scheduler("remote",
                                                                address="tcp://127.0.0.1:8786")
    for bad in ("local:0", "local:x", "udp://a:1", "tcp://host", "cluster"):
        with pytest.raises(InputError, match="--scheduler"):
            parse_scheduler(bad)


def _draw(seed: int) -> float:
    if seed == 3:
        raise SimulationError("ngspice failed", "Error: singular matrix")
    return float(np.random.default_rng(seed).standard_normal())


def _die_once(args: tuple[str, int]) -> int:
    """Ends its own worker process the first time it runs for seed 5 (marker file)."""
    marker, seed = args
    if seed == 5 and not os.path.exists(marker):
        Path(marker).write_text("killed")
        os._exit(1)
    return seed * seed


def test_serial_failures_are_data_and_cache_resumes(tmp_path):
    out = run_sweep(_draw, range(6), scheduler="serial", cache_dir=tmp_path / "c")
    assert out.results[3] is None and [f.index for f in out.failures] == [3]
    assert "singular matrix" in out.failures[0].details
    with pytest.raises(SimulationError, match="1 of 6 sweep tasks failed"):
        out.values()
    # five results cached (the failure is not); remove one: the rerun computes only it
    (tmp_path / "c" / f"{task_key(_draw, 4)}.pkl").unlink()
    again = run_sweep(_draw, range(6), scheduler="serial", cache_dir=tmp_path / "c")
    assert again.cached == 4
    assert again.results == out.results


def test_local_cluster_survives_a_killed_worker(tmp_path):
    marker = str(tmp_path / "killed")
    tasks = [(marker, s) for s in range(8)]
    out = run_sweep(_die_once, tasks, scheduler="local:2")
    assert Path(marker).exists()  # the worker did die
    assert out.ok and out.results == [s * s for s in range(8)]


def _board_dies_once(args):
    """A yield board (run_board) whose worker process ends the first time draw 5 runs."""
    from spu_circuits.board_yield import run_board

    marker, task = args
    if task.draw == 5 and not os.path.exists(marker):
        Path(marker).write_text("killed")
        os._exit(1)
    return run_board(task)


@needs_ngspice
def test_yield_boards_survive_a_killed_worker_and_match_serial(tmp_path):
    """Monte-Carlo boards in ngspice on 2 workers, one of which dies mid-sweep: Dask reruns
    its board and every board's result equals the serial run's."""
    import dataclasses

    from spu_circuits.board_yield import BoardTask, run_board
    from spu_circuits.compiler.realize import RealizeOptions, realize

    rz = realize(compile_system(make_system(4, 10.0, seed=3), "dense", HardwareSpec()),
                 RealizeOptions(series="e96", tolerance=0.01))
    meta = json.dumps(rz.sidecar.to_json(), sort_keys=True)
    tasks = [BoardTask(meta, 7, k, 60.0) for k in range(10)]
    marker = str(tmp_path / "killed")
    dying = run_sweep(_board_dies_once, [(marker, t) for t in tasks], scheduler="local:2")
    assert Path(marker).exists()  # the worker did die
    serial = run_sweep(run_board, tasks, scheduler="serial")
    assert dying.ok and serial.ok
    assert ([dataclasses.asdict(r) for r in dying.results]
            == [dataclasses.asdict(r) for r in serial.results])


def _decks(tmp_path: Path) -> list[Path]:
    decks = []
    # dense: no noise of its own (the validator draws pathwise noise from the task's seed);
    # ideal: its own noise files, which travel with the task
    for k, topo in enumerate(("dense", "ideal")):
        noise = NoiseSpec("file", 0.01, seed=k, duration_tau=30.0) if k else NoiseSpec()
        c = compile_system(make_system(3, 5.0, seed=k), topo, HardwareSpec(), name=f"sw{topo}",
                           noise=noise)
        decks.append(c.write(tmp_path, f"sw{topo}"))
    return decks


@needs_ngspice
def test_validation_sweep_identical_serial_and_local_cluster(tmp_path):
    tasks = [task_for_deck(d, seed, ("dc", "transient", "pathwise"))
             for d in _decks(tmp_path) for seed in (0, 1)]
    serial = run_sweep(validate_task, tasks, scheduler="serial")
    local = run_sweep(validate_task, tasks, scheduler="local:2")
    assert serial.ok and local.ok
    a = summaries_json(serial.results, tasks, serial.scheduler)
    b = summaries_json(local.results, tasks, local.scheduler)
    assert a == b
    assert all(s.passed for s in serial.results)
    assert tasks[2].files and not tasks[0].files
    # the seed reaches the noise the validator draws: the dense deck's pathwise figures differ
    path = [next(c.value for c in s.checks if c.name == "pathwise") for s in serial.results]
    assert path[0] != path[1] and path[2] == path[3]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@needs_ngspice
def test_sweep_through_a_separately_started_scheduler(tmp_path):
    dask_bin = Path(sys.executable).with_name("dask")
    port = _free_port()
    addr = f"tcp://127.0.0.1:{port}"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    procs = [subprocess.Popen([str(dask_bin), "scheduler", "--host", "127.0.0.1", "--port",
                               str(port), "--no-dashboard"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        for _ in range(2):
            procs.append(subprocess.Popen(
                [str(dask_bin), "worker", addr, "--nthreads", "1", "--nworkers", "1",
                 "--no-dashboard"], env=env, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL))
        from distributed import Client

        deadline = time.monotonic() + 60
        while True:
            try:
                with Client(addr, timeout="5s") as c:
                    c.wait_for_workers(2, timeout=60)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        decks = _decks(tmp_path / "decks")
        tasks = [task_for_deck(d, 0, ("dc", "transient", "pathwise")) for d in decks]
        # decks, sidecars and noise files travel with the task, not through the file system
        import shutil

        shutil.rmtree(tmp_path / "decks")
        remote = run_sweep(validate_task, tasks, scheduler=addr)
        serial = run_sweep(validate_task, tasks, scheduler="serial")
        assert remote.ok, remote.failures
        assert (summaries_json(remote.results, tasks, "")
                == summaries_json(serial.results, tasks, ""))
        # the command line: spu yield DECK --draws K --max-error E --seed S
        # --report DIR --scheduler tcp://HOST:PORT, against the same command run serially
        from click.testing import CliRunner

        from spu_circuits.compiler.realize import RealizeOptions, realize
        from spu_tngd.cli import main

        rz = realize(compile_system(make_system(4, 10.0, seed=3), "dense", HardwareSpec()),
                     RealizeOptions(series="e96", tolerance=0.01))
        deck = str(rz.write(tmp_path, "y4"))
        out = {}
        for name, sched in (("remote", addr), ("serial", "serial")):
            res = CliRunner().invoke(main, ["yield", deck, "--draws", "12", "--max-error",
                                            "5e-3", "--seed", "7", "--report",
                                            str(tmp_path / name), "--scheduler", sched])
            assert res.exit_code == 0, res.output
            out[name] = (tmp_path / name / "yield.json").read_bytes()
        assert out["remote"] == out["serial"]
        assert json.loads(out["remote"])["draws"] == 12
    finally:
        for p in procs[::-1]:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


@needs_ngspice
def test_validate_sweep_cli(tmp_path):
    from click.testing import CliRunner

    from spu_tngd.cli import main

    good, _ = _decks(tmp_path)
    text = good.read_text().splitlines()
    # a 20 % fault in one coupling resistor of a copy of the deck (its sidecar kept)
    i = next(k for k, line in enumerate(text) if line.startswith("ra0_1 "))
    parts = text[i].split()
    parts[3] = repr(float(parts[3]) * 1.2)
    text[i] = " ".join(parts)
    bad = tmp_path / "swbad.cir"
    bad.write_text("\n".join(text) + "\n")
    bad.with_suffix(".json").write_text(good.with_suffix(".json").read_text())
    r = CliRunner().invoke(main, ["validate", "--sweep", str(good), str(bad), "--seeds", "0,1",
                                  "--checks", "dc", "--scheduler", "serial", "--report",
                                  str(tmp_path / "rep")])
    assert r.exit_code == 1, r.output
    assert "FAIL: 2/4 runs passed" in r.output
    for f in ("sweep.json", "sweep.md", "sweep.png"):
        assert (tmp_path / "rep" / f).is_file()
    r = CliRunner().invoke(main, ["validate", "--sweep", str(good), "--checks", "dc",
                                  "--scheduler", "serial", "--report", str(tmp_path / "rep2")])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["validate", str(good), str(bad), "--report",
                                  str(tmp_path / "rep3")])
    assert r.exit_code == 2 and "several with --sweep" in r.output


@needs_ngspice
def test_yield_sweep_identical_serial_and_local_cluster(tmp_path):
    """A 40-draw yield sweep: yield.json byte-identical serially and on 2 workers."""
    from spu_circuits.board_yield import run_yield
    from spu_circuits.compiler.realize import RealizeOptions, realize
    from spu_circuits.simulate import Deck

    rz = realize(compile_system(make_system(4, 10.0, seed=3), "dense", HardwareSpec()),
                 RealizeOptions(series="e96", tolerance=0.01))
    deck = Deck.load(rz.write(tmp_path, "y4"))
    runs = {}
    for sched in ("serial", "local:2"):
        rep = run_yield(deck, draws=40, max_error=5e-3, seed=7, report_dir=tmp_path / sched,
                        scheduler=sched)
        runs[sched] = (tmp_path / sched / "yield.json").read_bytes()
        assert rep.draws == 40 and 0 <= rep.within <= 40
    assert runs["serial"] == runs["local:2"]
    errs = json.loads(runs["serial"])["errors"]
    assert len(set(errs)) > 30  # the draws differ from each other


def test_remote_scheduler_without_workers_is_a_clear_error(tmp_path, monkeypatch):
    """Tasks on a scheduler with no worker would wait forever: the sweep waits
    WORKER_WAIT_S and then says how to start one."""
    from spu_circuits import execution

    monkeypatch.setattr(execution, "WORKER_WAIT_S", 2.0)
    dask_bin = Path(sys.executable).with_name("dask")
    port = _free_port()
    addr = f"tcp://127.0.0.1:{port}"
    proc = subprocess.Popen([str(dask_bin), "scheduler", "--host", "127.0.0.1", "--port",
                             str(port), "--no-dashboard"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        with pytest.raises(InputError, match=r"no Dask worker is connected to the scheduler "
                                             r"at tcp://127\.0\.0\.1:\d+: start one with "
                                             r"`dask worker"):
            run_sweep(_draw, [1, 2], scheduler=addr)
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@needs_ngspice
def test_calibration_study_identical_serial_and_local_cluster(tmp_path):
    """spu calibrate --draws: the study (offsets, tolerance, both; 3 boards each, ngspice)
    gives the same numbers serially and on 2 workers."""
    from spu_circuits.calibrate import calibration_study
    from spu_circuits.compiler.realize import RealizeOptions, realize
    from spu_circuits.simulate import Deck

    rz = realize(compile_system(make_system(4, 10.0, seed=3), "dense",
                                HardwareSpec(R0_ohm=1e4)),
                 RealizeOptions(series="e96", tolerance=0.001, opamp="TL072", auto_cap=True,
                                compensate=True))
    deck = Deck.from_compiled(rz)
    serial = calibration_study(deck, draws=3, seed=1, scheduler="serial")
    cluster = calibration_study(deck, draws=3, seed=1, scheduler="local:2")
    assert set(serial["sources"]) == {"offsets", "tolerance", "both"}
    assert json.dumps(serial, sort_keys=True) == json.dumps(cluster, sort_keys=True)
    assert serial["sources"]["offsets"]["median_after"] < serial["sources"]["offsets"][
        "median_before"]
