"""Statistics of finished MNIST runs: running means, mean ± sd over seeds, iterations and
seconds to reach Adam's final loss, and the t-sweep / delay / noise distances to NGD."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

import numpy as np

from tngd.experiments.specs import DELAY_SWEEP, NOISE_SWEEP, SMOOTH, TSWEEP


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

    out["tsweep_vs_ngd"] = sweep(TSWEEP, "t", [5, 10, 20, 50])
    out["delay_vs_ngd"] = sweep(DELAY_SWEEP, "t_d", [0, 0.2, 1])
    out["noise_vs_ngd"] = sweep(NOISE_SWEEP, "kappa0", [0, 1e-3, 1e-2, 1e-1])
    out["sgd_vs_ngd"] = dist("sgd")
    return out
