"""Yield against a spec: K Monte-Carlo boards of one realised design, each run in ngspice.

`run_yield(deck, draws=K, max_error=E, seed=S)` rebuilds the design from the deck's sidecar
(system, spec and realisation options) and realises board k with Monte-Carlo draw
(S, k): every resistor and capacitor within its tolerance and every op-amp's V_os and I_b
within its datasheet spread (`compiler.opamps`). Each board's `.op` runs in ngspice; its
error is ‖x − A⁻¹b‖/‖A⁻¹b‖. The boards are independent tasks (`execution.run_sweep`, one
pure function of (sidecar, seed, draw)), so they run in parallel and the same seed gives
the same numbers on any scheduler. Yield = within/K with a Wilson score interval (95 %).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from .errors import InputError
from .figures import png_bytes
from .netlist import atomic_write
from .sidecar import Sidecar, as_sidecar

#: two-sided 95 % normal quantile for the Wilson interval
Z95 = 1.959963984540054
#: decks of the worst boards written for inspection
N_WORST = 3


@dataclass(frozen=True)
class BoardTask:
    """One Monte-Carlo board: the design's sidecar (JSON text), seed and draw index."""

    meta_json: str
    seed: int
    draw: int
    timeout_s: float = 120.0
    keep_deck: bool = False


@dataclass(frozen=True)
class BoardResult:
    """draw, seed; error: ngspice .op vs A⁻¹b; error_extractor: the same board by the
    extractor; deck_text / meta_json: the board (only when asked for)."""

    draw: int
    seed: int
    error: float
    error_extractor: float
    deck_text: str | None = None
    meta_json: str | None = None


def design_from_meta(meta):
    """(compiled deck, base RealizeOptions) that rebuild a realised deck's design; meta: the
    deck's Sidecar (or its JSON object)."""
    from .compiler import compile_system
    from .compiler.noise import NoiseSpec
    from .compiler.realize import RealizeOptions

    side = as_sidecar(meta)
    rec = side.realization
    if rec is None:
        raise InputError("not a realised deck: compile it with --realize (and --tolerance or "
                         "--opamp) to have something to draw")
    opts = {k: v for k, v in rec.options.items() if k in RealizeOptions.__dataclass_fields__}
    side.require("spec", why="cannot rebuild the design")
    compiled = compile_system(side.to_system(), side.topology, side.spec, name=side.name,
                              noise=NoiseSpec(), predict=False)
    return compiled, replace(RealizeOptions(**opts), auto_cap=False, erc="warn")


def run_board(task: BoardTask) -> BoardResult:
    """Realise and simulate one board (a pure function of the task)."""
    from .backends import Op, get_backend
    from .compiler.realize import _strip_noise, realize

    side = Sidecar.loads(task.meta_json)
    compiled, opt = design_from_meta(side)
    rz = realize(compiled, replace(opt, mc_seed=task.seed, mc_draw=task.draw))
    net = _strip_noise(rz.netlist)
    x_star = np.linalg.solve(*side.system.matrix())
    with get_backend("shared", task.timeout_s) as be:
        res = be.run(net.to_text(), Op(), deck_name=f"board {task.seed}/{task.draw}")
    x = res.voltages(list(rz.sidecar.outputs)) / float(rz.sidecar.volts_per_unit)
    nx = max(float(np.linalg.norm(x_star)), 1e-300)
    err = float(np.linalg.norm(x - x_star) / nx)
    err_ex = float(rz.report["rel_error_x"])
    keep = task.keep_deck
    return BoardResult(task.draw, task.seed, err, err_ex,
                       rz.deck_text() if keep else None,
                       rz.sidecar.dumps() if keep else None)


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion k/n."""
    if n <= 0:
        raise InputError("the yield needs at least one draw")
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, mid - half), min(1.0, mid + half)


@dataclass(frozen=True)
class YieldReport:
    """What `spu yield` writes to DIR/yield.json (errors relative, per draw in draw order)."""

    deck: str
    draws: int
    max_error: float
    seed: int
    within: int
    yield_: float
    ci_low: float
    ci_high: float
    interval: str
    median_error: float
    p90_error: float
    errors: list[float]
    errors_extractor: list[float]
    draw_seeds: list[list[int]]
    worst_draws: list[int]
    scheduler: str
    sources: str

    def to_json(self) -> dict:
        """The file's record: where it ran (`scheduler`) is left out, so the same seed gives
        the same bytes serially, on a local cluster or on a remote one."""
        d = asdict(self)
        d["yield"] = d.pop("yield_")
        d.pop("scheduler")
        return d


def run_yield(deck, *, draws: int, max_error: float, seed: int, report_dir: str | Path,
              scheduler: str = "local", timeout_s: float = 120.0) -> YieldReport:
    """K boards (see the module docstring); writes DIR/yield.json, DIR/yield_hist.png and
    the worst boards' decks under DIR/worst/."""
    from .execution import run_sweep

    if not (isinstance(draws, int) and draws >= 1):
        raise InputError(f"--draws must be a positive integer, got {draws!r}")
    if not (math.isfinite(max_error) and max_error > 0):
        raise InputError(f"--max-error must be a positive number, got {max_error!r}")
    if not (isinstance(seed, int) and seed >= 0):
        raise InputError(f"--seed must be a non-negative integer, got {seed!r}")
    side = deck.need_sidecar()
    design_from_meta(side)  # refuse early
    mj = json.dumps(side.to_json(), sort_keys=True)
    tasks = [BoardTask(mj, seed, k, timeout_s) for k in range(draws)]
    out = run_sweep(run_board, tasks, scheduler=scheduler, desc="boards")
    res: list[BoardResult] = out.values()
    errs = np.array([r.error for r in res])
    within = int(np.sum(errs <= max_error))
    lo, hi = wilson(within, draws)
    worst = [int(i) for i in np.argsort(-errs, kind="stable")[:N_WORST]]
    rec = side.realization
    src = (f"{rec.options.get('tolerance', 0) * 100:g}% parts (resistors, capacitors)"
           + (f", {rec.opamp.part} V_os and I_b" if rec.opamp.part else ""))
    rep = YieldReport(
        deck=str(deck.path), draws=draws, max_error=max_error, seed=seed, within=within,
        yield_=within / draws, ci_low=lo, ci_high=hi, interval="Wilson score, 95 %",
        median_error=float(np.median(errs)), p90_error=float(np.quantile(errs, 0.9)),
        errors=[float(e) for e in errs], errors_extractor=[r.error_extractor for r in res],
        draw_seeds=[[seed, k] for k in range(draws)], worst_draws=worst,
        scheduler=out.scheduler, sources=src)
    d = Path(report_dir)
    files: dict[Path, str | bytes] = {
        d / "yield.json": json.dumps(rep.to_json(), indent=2, allow_nan=False) + "\n",
        d / "yield_hist.png": _histogram(rep)}
    kept = run_sweep(run_board, [replace(tasks[k], keep_deck=True) for k in worst],
                     scheduler="serial", desc="worst boards").values()
    for r in kept:
        files[d / "worst" / f"board_{r.draw}.cir"] = r.deck_text
        files[d / "worst" / f"board_{r.draw}.json"] = r.meta_json
    atomic_write(files)
    return rep


def _histogram(rep: YieldReport) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    errs = np.maximum(np.array(rep.errors), 1e-12)
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    bins = np.geomspace(errs.min() * 0.9, max(errs.max(), rep.max_error) * 1.1, 30)
    ax.hist(errs, bins=bins, color="tab:blue", alpha=0.8)
    ax.axvline(rep.max_error, color="k", ls="--", label=f"spec {rep.max_error:g}")
    ax.set_xscale("log")
    ax.set_xlabel("board error ‖x − A⁻¹b‖/‖A⁻¹b‖ (ngspice .op)")
    ax.set_ylabel("boards")
    ax.set_title(f"{Path(rep.deck).name}: yield {rep.yield_:.3f} "
                 f"[{rep.ci_low:.3f}, {rep.ci_high:.3f}] over {rep.draws} boards", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return png_bytes(fig)
