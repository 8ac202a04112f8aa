"""Figures of the experiments: MNIST loss/accuracy curves and sweeps, benchmark bars and
scaling lines (matplotlib, Agg back-end)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tngd.experiments.specs import DELAY_SWEEP, MAIN_METHODS, NOISE_SWEEP, SMOOTH, TSWEEP
from tngd.experiments.summary import smooth


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
    for m in [m for m in MAIN_METHODS if m in present]:
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
        TSWEEP,
        ["t=5τ", "t=10τ", "t=20τ", "t=50τ"],
        "tsweep_vs_ngd",
        "mnist_tsweep.png",
        "TNGD (ou-exact, warm start) vs analog time t",
    )
    sweep_fig(
        DELAY_SWEEP,
        ["t_d=0", "t_d=0.2τ", "t_d=1τ"],
        "delay_vs_ngd",
        "mnist_delay.png",
        "TNGD at t=5τ vs delay t_d",
    )
    sweep_fig(
        NOISE_SWEEP,
        ["κ₀=0", "κ₀=1e-3", "κ₀=1e-2", "κ₀=1e-1"],
        "noise_vs_ngd",
        "mnist_noise.png",
        "TNGD at t=50τ vs device noise κ₀",
    )
    return written


def _plot_split(ax, case: dict[str, Any]) -> None:
    """Stacked curvature / solve / update bars (ms) of the TNGD/NGD methods of one case."""
    keep = ("ngd-cg", "ngd-woodbury", "tngd-ou-exact", "tngd-ou-exact-gram")
    rows = [(n, m["split"]) for n, m in case["methods"].items() if n in keep and m.get("split")]
    left = [0.0] * len(rows)
    for part, color in (("curvature_s", "tab:orange"), ("solve_s", "tab:blue"),
                        ("update_s", "tab:gray")):
        vals = [1e3 * sp[part] for _, sp in rows]
        ax.barh(range(len(rows)), vals, left=left, color=color, label=part[:-2])
        left = [a + b for a, b in zip(left, vals, strict=True)]
    ax.set_yticks(range(len(rows)), [n for n, _ in rows], fontsize=8)
    ax.set_xlabel("ms per step (medians)")
    ax.set_title(f"{case['label']}: step split", fontsize=9)
    ax.legend(fontsize=7)


def plot_bench(step: dict[str, Any], scaling: dict[str, Any], out_dir: Path) -> None:
    plt = _plt()
    cases = [step["main"], *step["smaller_cases"]]
    fig, axs = plt.subplots(1, len(cases) + 1, figsize=(4.2 * (len(cases) + 1), 3.8),
                            squeeze=False)
    _plot_split(axs[0][-1], step["main"])
    for ax, case in zip(axs[0][:-1], cases, strict=True):
        names = list(case["methods"])
        ratios = [case["methods"][n]["ratio_to_adam"] for n in names]
        bars = ax.barh(range(len(names)), ratios, color="tab:blue")
        ax.set_yticks(range(len(names)), names, fontsize=8)
        ax.set_xscale("log")
        ax.axvline(15, color="red", ls=":", lw=0.8)  # issue 14 target: ou-exact ≤ 15× Adam
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
