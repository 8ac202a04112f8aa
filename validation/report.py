"""Validation reports: DIR/report.json (every number), DIR/report.md (a table of the checks
with links to the figures) and PNG figures (matplotlib, Agg back-end):

* ``pathwise.png`` — SPICE and surrogate trajectories driven by the same noise, and their
  difference in units of the stationary SD;
* ``histograms.png`` — marginals of SPICE and surrogate samples vs the theoretical Gaussian
  N(x*_i, Σ_ii) (interpolated-noise Σ);
* ``covariance.png`` — covariance heatmaps: theory, SPICE, surrogate (same colour scale), and
  the SPICE z-scores;
* ``autocov.png`` — autocovariance decay (slowest and fastest eigenvector, mean over
  coordinates) of SPICE and surrogate vs theory;
* ``transient.png`` — the noiseless transient vs the exact mean trajectory.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from spu_circuits.netlist import atomic_write

from .budget_section import BudgetSection
from .checks import CheckResult, jsonable

MAX_COORDS = 4
DPI = 90


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    fig.savefig(path, dpi=DPI)
    _plt().close(fig)


def _coords(n: int) -> list[int]:
    return list(range(min(n, MAX_COORDS)))


def plot_pathwise(res: CheckResult, path: Path) -> None:
    plt = _plt()
    u, xs, ys, sd = (res.raw[k] for k in ("u", "spice", "surrogate", "sd"))
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(8, 5), sharex=True,
                                  gridspec_kw={"height_ratios": [2, 1]})
    for k, i in enumerate(_coords(xs.shape[1])):
        off = 4.0 * k
        c = f"C{k}"
        mu = xs[0, i]
        ax.plot(u, (xs[:, i] - mu) / sd[i] + off, color=c, lw=1.0, label=f"x{i} SPICE")
        ax.plot(u, (ys[:, i] - mu) / sd[i] + off, color="k", lw=0.6, ls="--",
                label="surrogate" if k == 0 else None)
        ax2.plot(u, (xs[:, i] - ys[:, i]) / sd[i], color=c, lw=0.8)
    ax.set_ylabel("(x − x*)/SD, offset")
    ax.legend(fontsize=7, ncol=5, loc="upper right")
    ax.set_title(f"pathwise: same noise samples, RMS diff = "
                 f"{100 * res.metrics['rms diff / SD']:.3g} % SD")
    ax2.set_xlabel("u = t/τ")
    ax2.set_ylabel("(SPICE − surrogate)/SD")
    fig.tight_layout()
    _save(fig, path)


def _gauss(x, mu, var):
    return np.exp(-0.5 * (x - mu) ** 2 / var) / math.sqrt(2 * math.pi * var)


def plot_histograms(stat: CheckResult, sur: CheckResult | None, path: Path) -> None:
    plt = _plt()
    X = stat.raw["X"].reshape(-1, stat.raw["X"].shape[-1])
    st = stat.raw["stats"]
    Xs = sur.raw["X"].reshape(-1, X.shape[-1]) if sur is not None else None
    idx = _coords(X.shape[1])
    fig, axes = plt.subplots(1, len(idx), figsize=(2.6 * len(idx) + 0.5, 2.8), squeeze=False)
    for ax, i in zip(axes[0], idx, strict=True):
        mu, var = st["x_star"][i], st["cov_theory"][i, i]
        sd = math.sqrt(var)
        bins = np.linspace(mu - 4.5 * sd, mu + 4.5 * sd, 46)
        ax.hist(X[:, i], bins=bins, density=True, alpha=0.5, color="C0", label="SPICE")
        if Xs is not None:
            ax.hist(Xs[:, i], bins=bins, density=True, histtype="step", color="C1",
                    label="surrogate")
        g = np.linspace(bins[0], bins[-1], 200)
        ax.plot(g, _gauss(g, mu, var), "k", lw=1.0, label="N(x*, Σ)")
        ax.set_title(f"x{i}", fontsize=9)
        ax.tick_params(labelsize=7)
    axes[0][0].legend(fontsize=6)
    fig.suptitle("marginals vs the stationary Gaussian", fontsize=9)
    fig.tight_layout()
    _save(fig, path)


def plot_covariance(stat: CheckResult, sur: CheckResult | None, path: Path) -> None:
    plt = _plt()
    st = stat.raw["stats"]
    mats = [("theory", st["cov_theory"]), ("SPICE", st["cov"])]
    if sur is not None:
        mats.append(("surrogate", sur.raw["stats"]["cov"]))
    vmax = max(float(np.abs(m).max()) for _, m in mats)
    fig, axes = plt.subplots(1, len(mats) + 1, figsize=(3.0 * (len(mats) + 1), 2.9),
                             layout="constrained")
    for ax, (title, m) in zip(axes, mats, strict=False):
        im = ax.imshow(m, cmap="RdBu_r", vmin=-vmax, vmax=vmax)
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=6)
    fig.colorbar(im, ax=axes[:len(mats)].tolist(), shrink=0.8)
    zc = st["z_cov"]
    crit = st["critical_z"]["cov"]
    im2 = axes[-1].imshow(zc, cmap="PuOr", vmin=-crit, vmax=crit)
    axes[-1].set_title(f"SPICE z-scores (±{crit:.2f})", fontsize=9)
    axes[-1].tick_params(labelsize=6)
    fig.colorbar(im2, ax=axes[-1], shrink=0.8)
    _save(fig, path)


def plot_autocov(stat: CheckResult, sur: CheckResult | None, path: Path) -> None:
    plt = _plt()
    cur = stat.raw["curves"]
    labels = cur["labels"]
    fig, axes = plt.subplots(1, len(labels), figsize=(3.2 * len(labels), 2.9))
    for k, ax in enumerate(axes):
        c0 = cur["theory"][0, k]
        ax.plot(cur["lags_tau"], cur["theory"][:, k] / c0, "k-", lw=1.2, label="theory")
        ax.plot(cur["lags_tau"], cur["empirical"][:, k] / c0, "o", ms=3, color="C0",
                label="SPICE")
        if sur is not None:
            sc = sur.raw["curves"]
            ax.plot(sc["lags_tau"], sc["empirical"][:, k] / c0, "x", ms=4, color="C1",
                    label="surrogate")
        ax.axhline(0, color="0.7", lw=0.6)
        ax.set_title(labels[k], fontsize=9)
        ax.set_xlabel("lag (τ)", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].set_ylabel("C(lag)/C_theory(0)", fontsize=8)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    _save(fig, path)


def plot_transient(res: CheckResult, path: Path) -> None:
    plt = _plt()
    u, x, ex = res.raw["u"], res.raw["x"], res.raw["exact"]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for k, i in enumerate(_coords(x.shape[1])):
        ax.plot(u, x[:, i], color=f"C{k}", lw=1.2, label=f"x{i} SPICE")
        ax.plot(u, ex[:, i], "k--", lw=0.7, label="exact mean" if k == 0 else None)
    ax.set_xlabel("u = t/τ")
    ax.set_title(f"noiseless transient, max rel. error {res.metrics['max rel. error']:.2g}",
                 fontsize=9)
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    _save(fig, path)


def make_figures(results: list[CheckResult], out: Path) -> None:
    """Draw the figures the results allow and record their names in each result."""
    by = {r.name: r for r in results}
    stat, sur = by.get("statistical"), by.get("surrogate")
    if stat is not None and not stat.raw:
        stat = None
    if sur is not None and not sur.raw:
        sur = None
    plots = []
    if "pathwise" in by and by["pathwise"].raw:
        plots.append((by["pathwise"], "pathwise.png",
                      lambda p: plot_pathwise(by["pathwise"], p)))
    if "transient" in by and by["transient"].raw:
        plots.append((by["transient"], "transient.png",
                      lambda p: plot_transient(by["transient"], p)))
    base = stat
    if base is None and sur is not None:
        # no SPICE statistics: draw the surrogate's own against theory
        base, sur = sur, None
    if base is not None:
        for fname, fn in (("histograms.png", plot_histograms),
                          ("covariance.png", plot_covariance),
                          ("autocov.png", plot_autocov)):
            plots.append((base, fname, lambda p, fn=fn: fn(base, sur, p)))
            if sur is not None:
                sur.figures.append(fname)
    for res, fname, draw in plots:
        draw(out / fname)
        res.figures.append(fname)


def _fmt(v) -> str:
    if isinstance(v, float | np.floating):
        v = float(v)
        if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e4):
            return f"{v:.3e}"
        return f"{v:.4g}"
    return str(v)


def summary_rows(results: list[CheckResult]) -> list[tuple[str, str, str, str, str, str]]:
    rows = []
    for r in results:
        key, val, thr = r.headline
        rows.append((r.name, "PASS" if r.passed else "FAIL", key, _fmt(val),
                     "-" if thr is None else _fmt(thr), f"{r.seconds:.1f}"))
    return rows


def summary_table(results: list[CheckResult]) -> str:
    """Plain-text table: check, result, the metric closest to its limit, value, limit."""
    head = ("check", "result", "metric (closest to its limit)", "value", "threshold", "s")
    rows = [head, *summary_rows(results)]
    w = [max(len(r[k]) for r in rows) for k in range(len(head))]
    lines = ["  ".join(c.ljust(w[k]) for k, c in enumerate(r)) for r in rows]
    lines.insert(1, "  ".join("-" * x for x in w))
    return "\n".join(lines)


def _cell(v) -> str:
    return str(v).replace("|", "\\|")


def _markdown(results: list[CheckResult], info: dict, budget: BudgetSection | None = None,
              budget_fig: str | None = None) -> str:
    ok = all(r.passed for r in results)
    out = ["# SPU validation report", ""]
    deck = info.get("deck", "(compiled in memory)")
    out.append(f"**Result: {'PASS' if ok else 'FAIL'}** — {sum(r.passed for r in results)} of "
               f"{len(results)} checks passed.")
    out.append("")
    out.append(f"- deck: `{deck}`; topology `{info.get('topology')}`, N = {info.get('n')}, "
               f"τ = {_fmt(info.get('tau_s'))} s")
    out.append(f"- target system: {info.get('system_source', 'the sidecar')}; λ(A) in "
               f"[{_fmt(info.get('lambda_min'))}, {_fmt(info.get('lambda_max'))}] (T_slow = "
               f"{_fmt(info.get('T_slow_tau'))} τ)")
    out.append(f"- noise: κ₀ = {_fmt(info.get('kappa0'))}, step h = "
               f"{_fmt(info.get('noise_step_tau'))} τ (deck's own noise: "
               f"{info.get('deck_noise')}); back-end `{info.get('backend')}`; preset "
               f"`{info.get('preset', 'default')}`")
    if info.get("deck_edited"):
        out.append("- **note:** the deck differs from what was compiled (its sha256 does not "
                   "match the sidecar); it is checked against the sidecar's system.")
    out += ["", "| check | result | metric | value | threshold |", "|---|---|---|---|---|"]
    for r in results:
        keys = list(r.metrics)
        for k, key in enumerate(keys):
            thr = r.thresholds.get(key)
            flag = "" if thr is None else (" ✓" if r.metrics[key] <= thr else " ✗")
            out.append(f"| {r.name if k == 0 else ''} | "
                       f"{('PASS' if r.passed else '**FAIL**') if k == 0 else ''} | {_cell(key)} | "
                       f"{_fmt(r.metrics[key])}{flag} | {'' if thr is None else _fmt(thr)} |")
    out.append("")
    for r in results:
        out += [f"## {r.name}: {'PASS' if r.passed else 'FAIL'} ({r.seconds:.1f} s)", "",
                r.details, ""]
        for f in r.figures:
            out += [f"![{f}]({f})", ""]
    if budget is not None:
        out += budget.markdown(budget_fig)
    plan = info.get("plan")
    if plan:
        out += ["## Sampling plan", "", "```json", json.dumps(jsonable(plan), indent=1),
                "```", ""]
    return "\n".join(out)


def dumps_compact(obj, indent: int = 1, _level: int = 0) -> str:
    """JSON with objects indented and lists of numbers (or of such lists) kept on one line."""

    def flat(x) -> bool:
        return isinstance(x, list) and all(
            isinstance(v, int | float | str | bool) or v is None or flat(v) for v in x)

    pad = " " * (indent * (_level + 1))
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [f"{pad}{json.dumps(str(k), ensure_ascii=False)}: "
                 f"{dumps_compact(v, indent, _level + 1)}"
                 for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + " " * (indent * _level) + "}"
    if isinstance(obj, list) and obj and not flat(obj):
        items = [pad + dumps_compact(v, indent, _level + 1) for v in obj]
        return "[\n" + ",\n".join(items) + "\n" + " " * (indent * _level) + "]"
    return json.dumps(obj, allow_nan=False, ensure_ascii=False,
                      separators=(",", ":") if flat(obj) else None)


def write_report(out_dir: str | Path, results: list[CheckResult], info: dict,
                 figures: bool = True, budget: BudgetSection | None = None
                 ) -> dict[str, Path]:
    """Write report.json, report.md and the figures into out_dir; returns their paths.
    budget: the error-budget section (realised decks; None: no section)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for r in results:
        r.figures.clear()
    if figures:
        make_figures(results, out)
    budget_fig = budget.write_figure(out) if (budget is not None and figures) else None
    doc = {"passed": all(r.passed for r in results), "info": jsonable(info),
           "checks": [r.to_dict() for r in results]}
    if budget is not None:
        doc["budget"] = budget.to_json()
    paths = {"json": out / "report.json", "md": out / "report.md"}
    atomic_write({paths["json"]: dumps_compact(doc) + "\n",
                  paths["md"]: _markdown(results, info, budget, budget_fig)})
    for r in results:
        for f in r.figures:
            paths[f] = out / f
    if budget_fig:
        paths[budget_fig] = out / budget_fig
    return paths
