"""Sweep throughput: the same validation sweep serially, on a Dask LocalCluster of 1 worker
and of 2 workers, in one run (ratios taken in the same invocation).

    python -m validation.bench_sweep --out validation/bench [--tasks 16]

Each task validates one 16×16 dense deck (`dc`, `transient`, `pathwise` checks, quick preset,
ngspice CLI back-end) with its own seed; a task is ~1–2 s of ngspice. Throughput = tasks per
wall-clock second of `run_sweep`, cluster start-up included (what a user waits for); the
LocalCluster start-up alone is timed too. On this workplace's 2-core machine the ideal ratio
2 workers / 1 worker is 2; the machine is shared, so the `load_1min` recorded beside the
figures says how busy it was.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from spu_circuits.compiler import compile_system
from spu_circuits.execution import run_sweep
from spu_circuits.figures import png_bytes
from spu_circuits.netlist import atomic_write
from spu_circuits.spec import HardwareSpec
from spu_circuits.system import LinearSystem, random_spd

from .sweep import task_for_deck, validate_task

CHECKS = ("dc", "transient", "pathwise")


def _tasks(tmp: Path, n_tasks: int) -> list:
    import numpy as np

    system = LinearSystem.from_arrays(random_spd(16, 10.0, 0),
                                      np.random.default_rng(1).standard_normal(16), name="b16")
    deck = compile_system(system, "dense", HardwareSpec(), name="bench16").write(tmp, "bench16")
    return [task_for_deck(deck, seed, CHECKS) for seed in range(n_tasks)]


def _time(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def _cluster_startup_s(n: int) -> float:
    from distributed import Client, LocalCluster

    t0 = time.perf_counter()
    with LocalCluster(n_workers=n, threads_per_worker=1, dashboard_address=None,
                      silence_logs=40) as c, Client(c) as cl:
        cl.wait_for_workers(n)
    return time.perf_counter() - t0


def run(n_tasks: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        tasks = _tasks(Path(tmp), n_tasks)
        rows = {}
        results = {}
        for sched in ("serial", "local:1", "local:2"):
            wall, out = _time(lambda s=sched: run_sweep(validate_task, tasks, scheduler=s,
                                                        progress=False))
            results[sched] = out.values()
            rows[sched] = {"wall_s": round(wall, 3), "tasks_per_s": round(n_tasks / wall, 4)}
        identical = results["serial"] == results["local:1"] == results["local:2"]
    startup = {f"local:{n}": round(_cluster_startup_s(n), 3) for n in (1, 2)}
    base = rows["local:1"]["tasks_per_s"]
    return {
        "what": "validation sweep throughput, tasks per wall second (cluster start included)",
        "tasks": n_tasks, "checks": list(CHECKS), "deck": "16x16 dense, cond 10",
        "schedulers": rows,
        "ratio_2_workers_to_1": round(rows["local:2"]["tasks_per_s"] / base, 3),
        "ratio_2_workers_to_serial": round(rows["local:2"]["tasks_per_s"]
                                           / rows["serial"]["tasks_per_s"], 3),
        "cluster_startup_s": startup,
        "results_identical": identical,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_1min": round(os.getloadavg()[0], 2)},
    }


def plot(doc: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(doc["schedulers"])
    vals = [doc["schedulers"][n]["tasks_per_s"] for n in names]
    fig, ax = plt.subplots(figsize=(4.5, 3.0))
    ax.bar(names, vals, color=["0.6", "tab:blue", "tab:green"])
    ax.set_ylabel("tasks / s")
    ax.set_title(f"validation sweep, {doc['tasks']} tasks: 2 workers / 1 = "
                 f"{doc['ratio_2_workers_to_1']:.2f}×", fontsize=9)
    fig.tight_layout()
    atomic_write({path: png_bytes(fig, dpi=90)})


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("validation/bench"))
    ap.add_argument("--tasks", type=int, default=16)
    args = ap.parse_args(argv)
    doc = run(args.tasks)
    atomic_write({args.out / "bench_sweep.json": json.dumps(doc, indent=2) + "\n"})
    plot(doc, args.out / "bench_sweep.png")
    print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
