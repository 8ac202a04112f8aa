"""MNIST: TNGD on the second-order (oscillator) device vs the first-order one.

The existing experiment (:mod:`tngd.experiments`: the paper's CNN, N = 5,074, batch 64,
λ = 0.01, lr 0.01, warm start) with the ``ou2-exact`` solver at t = 2, 5, 10τ against
``ou-exact`` at t = 5, 10, 20, 50τ and exact NGD (Woodbury). Reported: smoothed training loss
vs iteration and the mean |loss − loss_NGD| over the run (per seed, then mean ± sd). Runs go
through the sweep layer (``--scheduler``; ``--cache`` makes an interrupted run resume); the
results file depends on the seeds only, measured times go to ``mnist_second_order_timing.json``.

    python -m tngd.experiments.oscillator --out validation/oscillator --seeds 0 1 2 --steps 200 \
        --scheduler local:2 --cache DIR
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from spu_circuits.execution import run_sweep
from tngd.experiments.plots import _curves, _plt
from tngd.experiments.records import environment, json_default, write_json
from tngd.experiments.runner import MnistRun, _compact, run_one, split_timing
from tngd.experiments.specs import LAMBDA, SMOOTH, method_specs
from tngd.experiments.summary import _mean_sd, smooth

FIRST = ["tngd-t5", "tngd-t10", "tngd-t20", "tngd-t50"]
SECOND = ["tngd2-t2", "tngd2-t5", "tngd2-t10"]
METHODS = ["ngd", *FIRST, *SECOND]


def run_cached(method: str, spec: dict[str, Any], seed: int, steps: int,
               cache: str | Path | None) -> dict[str, Any]:
    """One (method, seed) run of :func:`tngd.experiments.runner.run_one`, stored in and reused
    from ``cache/<method>_s<seed>_n<steps>_e<steps>.json``."""
    cfile = Path(cache) / f"{method}_s{seed}_n{steps}_e{steps}.json" if cache else None
    if cfile is not None and cfile.exists():
        return json.loads(cfile.read_text())
    res = run_one(MnistRun(method, tuple(sorted(spec.items())), seed, steps, steps))
    if cfile is not None:
        cfile.parent.mkdir(parents=True, exist_ok=True)
        cfile.write_text(json.dumps(res, default=json_default))
    print(f"done {method} seed {seed}: {res['wall_s']:.0f} s, error={res['error']}", flush=True)
    return res


def distances(runs: list[dict[str, Any]], ref: str = "ngd") -> dict[str, Any]:
    """Per method: mean over iterations of |loss − loss_ref| (raw and smoothed), per seed and
    mean ± sd over seeds, and the final smoothed loss."""
    by: dict[str, dict[int, dict]] = {}
    for r in runs:
        if r["steps"]:
            by.setdefault(r["method"], {})[r["seed"]] = r
    out = {}
    for m, d in by.items():
        raw, smd, fin = [], [], []
        for s, r in sorted(d.items()):
            la = np.array([x["loss"] for x in r["steps"]])
            fin.append(smooth(la.tolist())[-1])
            if m == ref or s not in by.get(ref, {}):
                continue
            lb = np.array([x["loss"] for x in by[ref][s]["steps"]])
            n = min(len(la), len(lb))
            raw.append(float(np.mean(np.abs(la[:n] - lb[:n]))))
            sa, sb = np.array(smooth(la[:n].tolist())), np.array(smooth(lb[:n].tolist()))
            smd.append(float(np.mean(np.abs(sa - sb))))
        out[m] = {"seeds": sorted(d), "final_smoothed_loss": _mean_sd(fin),
                  "mean_abs_loss_diff_vs_ngd": _mean_sd(raw) if raw else None,
                  "mean_abs_smoothed_loss_diff_vs_ngd": _mean_sd(smd) if smd else None,
                  "per_seed_mean_abs_loss_diff": raw,
                  "time_per_step_s": _mean_sd([r["final"]["time_s"] / len(r["steps"])
                                               for r in d.values()])}
    return out


def _abs_diff_curve(runs: list[dict[str, Any]], method: str, ref: str = "ngd"):
    """Iterations and the mean over seeds of the smoothed |loss − loss_ref| (None if absent)."""
    by = {(r["method"], r["seed"]): r for r in runs if r["steps"]}
    curves = []
    for (m, s), r in by.items():
        if m != method or (ref, s) not in by:
            continue
        la = np.array([x["loss"] for x in r["steps"]])
        lb = np.array([x["loss"] for x in by[(ref, s)]["steps"]])
        n = min(len(la), len(lb))
        curves.append(smooth(np.abs(la[:n] - lb[:n]).tolist()))
    if not curves:
        return None
    n = min(len(c) for c in curves)
    return np.arange(1, n + 1), np.mean([c[:n] for c in curves], axis=0)


def plot(runs: list[dict[str, Any]], summary: dict[str, Any], path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(1, 3, figsize=(15, 4))
    styles = {"ngd": ("k", "-")}
    for i, m in enumerate(FIRST):
        styles[m] = (f"C{i}", "--")
    for i, m in enumerate(SECOND):
        styles[m] = (f"C{i + 4}", "-")

    def label(m):
        return {"ngd": "NGD (exact)"}.get(m, m.replace("tngd2-t", "2nd order t=")
                                         .replace("tngd-t", "1st order t=") + "τ")

    for m in METHODS:
        c = _curves(runs, m)
        if c is None:
            continue
        col, ls = styles[m]
        ax[0].plot(c[0], c[2], color=col, ls=ls, lw=1.4, label=label(m))
        d = _abs_diff_curve(runs, m) if m != "ngd" else None
        if d is not None:
            ax[1].plot(d[0], d[1], color=col, ls=ls, lw=1.2, label=label(m))
    ax[0].set_xlabel("iteration")
    ax[0].set_ylabel(f"training loss (running mean over {SMOOTH})")
    ax[0].set_title("MNIST CNN, batch 64, λ = 0.01, lr 0.01")
    ax[0].legend(fontsize=7)
    ax[1].set_yscale("log")
    ax[1].set_xlabel("iteration")
    ax[1].set_ylabel(f"|loss − loss_NGD| (running mean over {SMOOTH})")
    ax[1].set_title("distance to exact NGD along the run (mean over seeds)")
    ax[1].legend(fontsize=7)
    for group, marker, lab in ((FIRST, "o--", "first order (RC)"),
                               (SECOND, "s-", "second order (oscillator)")):
        ts, ys, es = [], [], []
        for m in group:
            d = summary.get(m, {}).get("mean_abs_loss_diff_vs_ngd")
            if d is None:
                continue
            ts.append(float(m.split("-t")[-1]))
            ys.append(d["mean"])
            es.append(d.get("sd") or 0.0)
        if ts:
            ax[2].errorbar(ts, ys, yerr=es, fmt=marker, capsize=3, label=lab)
    ax[2].set_xscale("log")
    ax[2].set_yscale("log")
    ax[2].set_xticks([2, 5, 10, 20, 50])
    ax[2].set_xticklabels(["2", "5", "10", "20", "50"])
    ax[2].xaxis.set_minor_locator(plt.NullLocator())
    ax[2].set_xlabel("analog time per iteration t (τ)")
    ax[2].set_ylabel("mean |loss − loss_NGD| over the run")
    ax[2].set_title("per method (mean ± sd over seeds)")
    ax[2].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_grid(methods: list[str], seeds: list[int], steps: int, scheduler: str,
             cache: str | Path | None) -> tuple[list[dict[str, Any]], str]:
    """Every (method, seed) run through the sweep layer (`--scheduler`, resumable `--cache`);
    returns the runs in (seed, method) order and where they ran."""
    specs = method_specs()
    jobs = [MnistRun(m, tuple(sorted(specs[m].items())), s, steps, steps)
            for s in seeds for m in methods]
    outcome = run_sweep(run_one, jobs, scheduler=scheduler, desc="mnist runs",
                        cache_dir=cache)
    return outcome.values(), outcome.scheduler


#: `tngd experiments --only oscillator --preset P`: steps, seeds and methods per preset
OSCILLATOR_PRESETS: dict[str, dict[str, Any]] = {
    "smoke": {"steps": 3, "seeds": [0], "methods": ["ngd", "tngd-t5", "tngd2-t2"]},
    "quick": {"steps": 200, "seeds": [0], "methods": METHODS},
    "full": {"steps": 200, "seeds": [0, 1, 2], "methods": METHODS},
}


def run_oscillator(out_dir: str | Path, *, steps: int = 200, seeds: list[int] | None = None,
                   methods: list[str] | None = None, scheduler: str = "local",
                   cache: str | Path | None = None) -> dict[str, Any]:
    """Run the grid, write ``mnist_second_order.json`` (seed-only), its ``_timing.json`` and
    the figure into out_dir; returns the results with their ``timing``."""
    seeds = list(seeds) if seeds is not None else [0, 1, 2]
    methods = list(methods) if methods is not None else list(METHODS)
    specs = method_specs()
    unknown = [m for m in methods if m not in specs]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; choose from {sorted(specs)}")
    t0 = time.perf_counter()
    runs, where = run_grid(methods, seeds, steps, scheduler, cache)
    wall = time.perf_counter() - t0
    summary = distances(runs)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plot(runs, summary, out / "mnist_second_order.png")
    res = {"experiment": "mnist second-order vs first-order TNGD",
           "config": {"steps": steps, "seeds": seeds, "methods": methods,
                      "model": "cnn (N = 5,074)", "batch_size": 64, "damping": LAMBDA,
                      "lr": 0.01, "specs": {m: specs[m] for m in methods},
                      "notes": "second order: ou2-exact, gamma = 2*sqrt(lambda_min(F)) = "
                               "2*sqrt(0.01) = 0.2 (r = 640 < N), warm start of (x, v); first "
                               "order: ou-exact, warm start; NGD: Woodbury. kappa0 = 0. "
                               "Measured times are in mnist_second_order_timing.json."},
           "summary": {"methods": copy.deepcopy(summary)},
           "runs": [_compact(r) for r in runs]}
    res, timing = split_timing(res)
    timing.update(scheduler=where, wall_s=round(wall, 2),
                  runs_wall_s_sum=round(sum(r["wall_s"] for r in runs), 2),
                  environment=environment())
    write_json(out / "mnist_second_order.json", res, compact_key="runs")
    write_json(out / "mnist_second_order_timing.json", timing, compact_key="runs")
    res["timing"] = timing
    res["distances"] = summary
    return res


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="validation/oscillator")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--methods", nargs="+", default=METHODS)
    ap.add_argument("--scheduler", default="local",
                    help="serial, local[:N] (Dask LocalCluster) or tcp://HOST:PORT")
    ap.add_argument("--cache", default=None, help="resumable run cache (a folder)")
    args = ap.parse_args(argv)
    res = run_oscillator(args.out, steps=args.steps, seeds=args.seeds, methods=args.methods,
                         scheduler=args.scheduler, cache=args.cache)
    summary = res["distances"]
    for m in args.methods:
        d = summary.get(m, {}).get("mean_abs_loss_diff_vs_ngd")
        print(f"{m:10s} final {summary.get(m, {}).get('final_smoothed_loss')} |Δ| {d}")
    print(f"{len(res['runs'])} runs in {res['timing']['wall_s']:.0f} s on "
          f"{res['timing']['scheduler']}")
    return res


if __name__ == "__main__":
    import sys

    from spu_circuits.errors import SpuError

    try:
        main()
    except SpuError as exc:  # bad input (a --scheduler, an unreachable scheduler): one line
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
