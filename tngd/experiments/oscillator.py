"""MNIST: TNGD on the second-order (oscillator) device vs the first-order one.

The existing experiment (:mod:`tngd.experiments`: the paper's CNN, N = 5,074, batch 64,
λ = 0.01, lr 0.01, warm start) with the ``ou2-exact`` solver at t = 2, 5, 10τ against
``ou-exact`` at t = 5, 10, 20, 50τ and exact NGD (Woodbury). Reported: smoothed training loss
vs iteration and the mean |loss − loss_NGD| over the run (per seed, then mean ± sd). Runs are
cached per (method, seed) in ``--cache`` so an interrupted run resumes.

    python -m tngd.experiments.oscillator --out validation/oscillator --seeds 0 1 2 --steps 200
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from tngd.experiments.plots import _curves, _plt
from tngd.experiments.records import environment, write_json
from tngd.experiments.runner import _compact, _run_jobs
from tngd.experiments.specs import LAMBDA, SMOOTH, method_specs
from tngd.experiments.summary import _mean_sd, smooth

FIRST = ["tngd-t5", "tngd-t10", "tngd-t20", "tngd-t50"]
SECOND = ["tngd2-t2", "tngd2-t5", "tngd2-t10"]
METHODS = ["ngd", *FIRST, *SECOND]


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


def plot(runs: list[dict[str, Any]], summary: dict[str, Any], path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    styles = {"ngd": ("k", "-")}
    for i, m in enumerate(FIRST):
        styles[m] = (f"C{i}", "--")
    for i, m in enumerate(SECOND):
        styles[m] = (f"C{i + 4}", "-")
    for m in METHODS:
        c = _curves(runs, m)
        if c is None:
            continue
        col, ls = styles[m]
        label = {"ngd": "NGD (exact)"}.get(m, m.replace("tngd2-t", "2nd order t=")
                                           .replace("tngd-t", "1st order t=") + "τ")
        ax[0].plot(c[0], c[2], color=col, ls=ls, lw=1.4, label=label)
    ax[0].set_xlabel("iteration")
    ax[0].set_ylabel(f"training loss (running mean over {SMOOTH})")
    ax[0].set_title("MNIST CNN, batch 64, λ = 0.01")
    ax[0].legend(fontsize=7)
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
            ax[1].errorbar(ts, ys, yerr=es, fmt=marker, capsize=3, label=lab)
    ax[1].set_xscale("log")
    ax[1].set_yscale("log")
    ax[1].set_xlabel("analog time per iteration t (τ)")
    ax[1].set_ylabel("mean |loss − loss_NGD| over the run")
    ax[1].set_title("distance to exact NGD (mean ± sd over seeds)")
    ax[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="validation/oscillator")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--methods", nargs="+", default=METHODS)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--cache", default=None)
    args = ap.parse_args(argv)
    specs = method_specs()
    jobs = [(m, specs[m], s, args.steps, args.steps, args.cache)
            for s in args.seeds for m in args.methods]
    runs = _run_jobs(jobs, args.jobs)
    summary = distances(runs)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    res = {"experiment": "mnist second-order vs first-order TNGD",
           "config": {"steps": args.steps, "seeds": args.seeds, "methods": args.methods,
                      "model": "cnn (N = 5,074)", "batch_size": 64, "damping": LAMBDA,
                      "lr": 0.01, "specs": {m: specs[m] for m in args.methods},
                      "notes": "second order: ou2-exact, gamma = 2*sqrt(lambda_min(F)) = "
                               "2*sqrt(0.01) = 0.2 (r = 640 < N), warm start of (x, v); first "
                               "order: ou-exact, warm start; NGD: Woodbury. kappa0 = 0."},
           "summary": summary, "environment": environment(),
           "runs": [_compact(r) for r in runs]}
    write_json(out / "mnist_second_order.json", res, compact_key="runs")
    plot(runs, summary, out / "mnist_second_order.png")
    for m in args.methods:
        d = summary.get(m, {}).get("mean_abs_loss_diff_vs_ngd")
        print(f"{m:10s} final {summary.get(m, {}).get('final_smoothed_loss')} |Δ| {d}")
    return res


if __name__ == "__main__":
    main()
