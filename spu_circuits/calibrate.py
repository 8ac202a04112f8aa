"""Calibration: what a controller does on a real board to cancel its offsets.

`measure(board)` runs the board as it would be measured: ngspice `.op` with every bias DAC
at 0 V (x₀, the offsets' effect) and with one DAC at a time at `PROBE_V` (the columns of
J = ∂x/∂v_DAC = A_eff⁻¹·G, G the DAC-to-b gains including bias-resistor tolerances). The
readings go through the readout ADC (`adc_bits` over ±full scale). The fitted model is
x(v) = x₀ + J v; the offset trim is δ = −J⁻¹x₀, added to every DAC setting: it cancels the
offset vector b_off = A_eff x₀ exactly for any b (to the ADC's resolution), while the
coupling errors of A_eff (resistor tolerances) are measured (A_eff⁻¹G) but not corrected:
the dense topology has no programmable couplings to trim. The trims go into the sidecar
(`calibration`), and `spu simulate` / `simulate.solve_op` / `simulate.transient` apply them
(`apply_calibration`).

`calibration_study` measures error before vs after over Monte-Carlo boards, per error source
(op-amp offsets only, part tolerances only, both), each board a pure task for `run_sweep`.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, replace

import numpy as np

from .errors import InputError
from .sidecar import Sidecar, as_sidecar

#: DAC probe step (V)
PROBE_V = 1.0


@dataclass(frozen=True)
class Calibration:
    """bias_trim_V: DAC name → trim (V, added to its setting); x0: x at all DACs 0 (N,);
    J (N, N): ∂x/∂v_DAC; adc_bits / full_scale_V: the readout used; runs: ngspice runs."""

    bias_trim_V: dict[str, float]
    x0: list[float]
    J: list[list[float]]
    probe_V: float
    adc_bits: int | None
    full_scale_V: float
    runs: int

    def to_json(self) -> dict:
        return asdict(self)


def _set_sources(text: str, values: dict[str, float]) -> str:
    """The deck with the DC values of the named top-level V sources replaced (each card as
    ngspice reads it, continuation lines included: spice.edit.rewrite_cards)."""
    from .spice.edit import rewrite_cards
    from .spice.lexer import lex

    def new(card) -> list[str] | None:
        toks = card.text.split()
        if card.subckt or not toks or toks[0].lower() not in values or len(toks) < 4:
            return None
        name, a, b = toks[:3]
        rest = toks[3:]
        if rest[0].lower() == "dc":
            rest = rest[1:]
        return [" ".join([name, a, b, repr(float(values[name.lower()])), *rest[1:]])]

    return "\n".join(rewrite_cards(lex(text), new)[0]) + "\n"


def _dc_values(text: str, names: list[str]) -> dict[str, float]:
    from .parser import parse_deck

    els = {e.name: e for e in parse_deck(text).elements}
    return {n: float(els[n].value) for n in names}


def apply_calibration(text: str, cal: dict | None) -> str:
    """The deck text with the calibration record's trims (`Sidecar.calibration`) added to
    its DAC settings (unchanged without one)."""
    if not cal:
        return text
    trims = cal["bias_trim_V"]
    base = _dc_values(text, list(trims))
    return _set_sources(text, {n: base[n] + float(t) for n, t in trims.items()})


def _quant(v: np.ndarray, bits: int | None, fs: float) -> np.ndarray:
    if not bits:
        return v
    lsb = 2.0 * fs / 2 ** bits
    return np.round(v / lsb) * lsb


def measure(text: str, outputs: list[str], v0: float, dacs: list[str], *,
            adc_bits: int | None = 16, full_scale_V: float = 10.0, backend=None,
            timeout_s: float = 60.0) -> Calibration:
    """Fit x₀ and J from N + 1 ngspice runs of the board `text` (see the module docstring)."""
    from .backends import Op, get_backend

    own = backend is None
    be = get_backend("shared", timeout_s) if own else backend
    try:
        def read(vals: dict[str, float]) -> np.ndarray:
            res = be.run(_set_sources(text, vals), Op(), deck_name="calibration run")
            return _quant(res.voltages(outputs), adc_bits, full_scale_V) / v0

        zero = {d: 0.0 for d in dacs}
        x0 = read(zero)
        cols = [(read({**zero, d: PROBE_V}) - x0) / PROBE_V for d in dacs]
    finally:
        if own:
            be.close()
    J = np.stack(cols, axis=1)
    delta = -np.linalg.solve(J, x0)
    return Calibration({d: float(v) for d, v in zip(dacs, delta, strict=True)},
                       [float(v) for v in x0], J.tolist(), PROBE_V, adc_bits, full_scale_V,
                       len(dacs) + 1)


def bias_sources(side) -> list[str]:
    """The bias DAC element names, in variable order (from the cell map when present; the
    compiler's names vb<i> for sidecars written before cell maps). side: a Sidecar."""
    side = as_sidecar(side)
    if side.cell_map:
        return [c.bias for c in side.cell_map.cells]
    return [f"vb{i}" for i in range(int(side.n))]


def calibrate_deck(deck, *, adc_bits: int | None = 16, backend=None) -> dict:
    """Measure `deck` (a `simulate.Deck` with sidecar) and return its sidecar with a
    `calibration` record."""
    from .budget import _strip_noise_text

    side = deck.need_sidecar()
    if side.topology == "ideal":
        raise InputError("calibration needs bias DACs into op-amp integrators (dense or "
                         "factored topology)")
    fs = float((side.realization.v_sat if side.realization else None) or 10.0)
    cal = measure(_strip_noise_text(deck.text), list(side.outputs),
                  float(side.volts_per_unit), bias_sources(side), adc_bits=adc_bits,
                  full_scale_V=fs, backend=backend)
    rec = dict(cal.to_json(), method=(
        "offset trim delta = -J^-1 x0 from ngspice .op at all DACs 0 and one DAC at a time "
        f"at {PROBE_V:g} V, readings through a {adc_bits}-bit ADC over +-{fs:g} V"))
    return side.with_(calibration=rec).to_json()


# ------------------------------------------------------------------------------ the study


@dataclass(frozen=True)
class CalTask:
    meta_json: str
    seed: int
    draw: int
    source: str  # 'offsets' | 'tolerance' | 'both'
    adc_bits: int | None = 16


@dataclass(frozen=True)
class CalResult:
    source: str
    draw: int
    before: float
    after: float


def run_cal_board(task: CalTask) -> CalResult:
    """One Monte-Carlo board: its error vs A⁻¹b before and after calibration (ngspice)."""
    from .backends import Op, get_backend
    from .board_yield import design_from_meta
    from .compiler.realize import _strip_noise, realize

    side = Sidecar.loads(task.meta_json)
    compiled, opt = design_from_meta(side)
    changes = {"mc_seed": task.seed, "mc_draw": task.draw}
    if task.source == "offsets":
        changes["tolerance"] = 0.0
    elif task.source == "tolerance":
        changes["offsets"] = False
    rz = realize(compiled, replace(opt, **changes))
    text = _strip_noise(rz.netlist).to_text()
    outputs, v0 = list(rz.sidecar.outputs), float(rz.sidecar.volts_per_unit)
    x_star = np.linalg.solve(*side.system.matrix())
    nx = max(float(np.linalg.norm(x_star)), 1e-300)
    fs = float(rz.sidecar.realization.v_sat or 10.0)
    with get_backend("shared", 60.0) as be:
        x = be.run(text, Op(), deck_name="board").voltages(outputs) / v0
        cal = measure(text, outputs, v0, bias_sources(rz.sidecar), adc_bits=task.adc_bits,
                      full_scale_V=fs, backend=be)
        fixed = apply_calibration(text, cal.to_json())
        xc = be.run(fixed, Op(), deck_name="calibrated board").voltages(outputs) / v0
    return CalResult(task.source, task.draw, float(np.linalg.norm(x - x_star) / nx),
                     float(np.linalg.norm(xc - x_star) / nx))


def calibration_study(deck, *, draws: int, seed: int, scheduler: str = "local",
                      adc_bits: int | None = 16) -> dict:
    """Median error before/after calibration over `draws` boards per error source."""
    from .execution import run_sweep

    if not (isinstance(draws, int) and draws >= 1):
        raise InputError(f"--draws must be a positive integer, got {draws!r}")
    side = deck.need_sidecar()
    mj = json.dumps(side.to_json(), sort_keys=True)
    rec = side.realization
    opts = rec.options if rec is not None else {}
    sources = ["both"]
    if rec is not None and rec.opamp.part and opts.get("tolerance", 0) > 0:
        sources = ["offsets", "tolerance", "both"]
    tasks = [CalTask(mj, seed, k, s, adc_bits) for s in sources for k in range(draws)]
    res = run_sweep(run_cal_board, tasks, scheduler=scheduler, desc="calibration").values()
    out = {"draws": draws, "seed": seed, "adc_bits": adc_bits, "sources": {}}
    for s in sources:
        rs = [r for r in res if r.source == s]
        b = np.array([r.before for r in rs])
        a = np.array([r.after for r in rs])
        out["sources"][s] = {
            "median_before": float(np.median(b)), "median_after": float(np.median(a)),
            "ratio_of_medians": float(np.median(b) / max(np.median(a), 1e-300)),
            "p90_before": float(np.quantile(b, 0.9)), "p90_after": float(np.quantile(a, 0.9)),
            "before": [float(v) for v in b], "after": [float(v) for v in a]}
    if not math.isfinite(out["sources"][sources[-1]]["ratio_of_medians"]):
        raise InputError("calibration study produced a non-finite ratio")
    return out
