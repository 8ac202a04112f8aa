"""Electrical rule checks (ERC) of a realised deck, at compile time.

Each rule names the element and the number. A violation is an `ErcError` (one line) unless
the user allows it (`--allow-erc`: warnings, recorded in the sidecar under `erc`).

- **swing**: every op-amp output within the part's swing [V−+headroom, V+−headroom] (or
  ±v_sat) for |mean| + n_σ·σ, the stationary law x ~ N(x_eff, κ₀A_eff⁻¹) at the κ₀ the deck
  is sized for; node voltages from the extractor's readout map V = G x + v_off.
- **current**: every op-amp's output current (Σ over the resistors at its output node of
  ΔV/R, DC: capacitors carry no DC current) within the part's output current limit, same
  |mean| + n_σ·σ rule.
- **power**: every resistor's mean dissipation E[ΔV²]/R = (mean² + σ²)/R within its
  package rating (`RESISTOR_PACKAGES`, no derating; default 0603, 0.1 W).
- **gbw**: the fastest mode of the circuit, f = λ_max(A)/(2π τ), at least `GBW_FACTOR`
  below the op-amp's GBW. Measured on the 8×8 example: the transient error is ≈ 0.5·f/GBW
  (12 % at f/GBW = 1/3.9; 1.5e-3 at 1/385), so the factor 300 keeps it below ~2e-3; the
  message gives the C (and τ) that would pass.
- **size** (a warning, never an error): dense decks with N > `LARGE_DENSE_N` are slow in
  ngspice 39 (Sparse 1.3, no KLU); the warning gives the expected cost per τ.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from ..errors import CompileError
from ..netlist import Netlist
from .scaling import scale, scale_factored

#: the fastest mode must sit this factor below the op-amp's GBW
GBW_FACTOR = 300.0
#: resistor packages and their power ratings (W, 70 °C, thick film)
RESISTOR_PACKAGES = {"0402": 0.0625, "0603": 0.1, "0805": 0.125, "1206": 0.25, "2010": 0.75,
                     "2512": 1.0}
DEFAULT_PACKAGE = "0603"
#: dense decks above this N get a cost warning
LARGE_DENSE_N = 64
#: measured ngspice cost of a dense deck (one core): ~0.8 s per 20,000 noise steps at N = 8,
#: ∝ N^3.5 (DESIGN.md §4); with the default step 0.01 τ/λ_max that is 100·λ_max steps per τ
_DENSE_S_PER_STEP_N8 = 0.8 / 20000
E12 = (1.0, 1.2, 1.5, 1.8, 2.2, 2.7, 3.3, 3.9, 4.7, 5.6, 6.8, 8.2)


class ErcError(CompileError):
    """A realised deck breaks an electrical rule (names the element and the number)."""


@dataclass(frozen=True)
class Violation:
    """One broken rule. rule: swing | current | power | gbw | size; element: what breaks it;
    value / limit: the numbers (V, A, W, Hz); message: the one-line text."""

    rule: str
    element: str
    value: float
    limit: float
    message: str

    def to_dict(self) -> dict:
        return asdict(self)


def e12_at_least(x: float) -> float:
    """The smallest E12 value ≥ x."""
    d = math.floor(math.log10(x))
    for dec in (d, d + 1):
        for m in E12:
            v = float(f"{m}e{dec}")
            if v >= x * (1 - 1e-12):
                return v
    return float(f"1e{d + 2}")


def fastest_mode_hz(system, spec, topology: str) -> tuple[float, float]:
    """(f_fast = λ_max(A)/(2π τ) in Hz, τ in s) of `system` compiled under `spec`."""
    if topology == "factored":
        sc = scale_factored(system, spec)
    else:
        sys_ = system.as_linear_system() if hasattr(system, "as_linear_system") else system
        sc = scale(sys_, spec)
    lam = float(np.max(np.linalg.eigvalsh(system.A)))
    return lam / (2.0 * math.pi * sc.tau_s), sc.tau_s


def capacitor_for_gbw(system, spec, gbw_hz: float, topology: str,
                      factor: float = GBW_FACTOR) -> float:
    """The smallest E12 capacitor for which the fastest mode is ≥ `factor` below GBW."""
    f, _ = fastest_mode_hz(system, spec, topology)
    return e12_at_least(spec.C_F * f * factor / gbw_hz)


def check_gbw(lam_max: float, tau_s: float, C_F: float, gbw_hz: float,
              caps: list[str], factor: float = GBW_FACTOR) -> list[Violation]:
    f = lam_max / (2.0 * math.pi * tau_s)
    if f * factor <= gbw_hz * (1 + 1e-12):
        return []
    c_need = e12_at_least(C_F * f * factor / gbw_hz)
    tau_need = tau_s * c_need / C_F
    el = f"{caps[0]}-{caps[-1]}" if len(caps) > 1 else caps[0]
    return [Violation("gbw", el, f, gbw_hz / factor,
                      f"ERC gbw: the fastest mode {f:.3g} Hz is only {gbw_hz / f:.3g}× below "
                      f"the op-amp GBW {gbw_hz:.3g} Hz (the rule asks ≥ {factor:g}×; transient "
                      f"error ≈ 0.5·f/GBW = {0.5 * f / gbw_hz:.2g}): integrator capacitors {el} "
                      f"= {C_F:.3g} F; use C ≥ {c_need:.3g} F (--cap {_si(c_need, 'F')}, τ ≥ "
                      f"{tau_need:.3g} s)")]


def _si(x: float, unit: str) -> str:
    for s, p in ((1e-12, "p"), (1e-9, "n"), (1e-6, "u"), (1e-3, "m"), (1.0, ""), (1e3, "k"),
                 (1e6, "M")):
        if abs(x) < s * 1000 * (1 - 1e-12):
            return f"{x / s:.4g}{p}{unit}"
    return f"{x:.4g}{unit}"


def _stats(G: np.ndarray, off: np.ndarray, x: np.ndarray, cov: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of G x + off for x ~ N(x, cov)."""
    mean = G @ x + off
    var = np.einsum("ij,jk,ik->i", G, cov, G)
    return mean, np.sqrt(np.clip(var, 0.0, None))


def check_outputs(net: Netlist, opamps: dict[str, str], ex, x_mean: np.ndarray,
                  cov: np.ndarray, n_sigma: float, swing_V: tuple[float, float],
                  i_max_A: float | None, *, package: str = DEFAULT_PACKAGE
                  ) -> list[Violation]:
    """swing, current and power rules (see the module docstring).

    net: the realised netlist at DC (resistors as built); opamps: op-amp name → output node;
    ex: its extraction (readout map); x_mean (N,), cov (N, N): the law of x."""
    idx = {n: k for k, n in enumerate(ex.nodes)}
    nn = ex.node_gain.shape[1]

    def lin(node: str) -> tuple[np.ndarray, float]:
        if node == "0" or node not in idx:
            return np.zeros(nn), 0.0
        k = idx[node]
        return ex.node_gain[k], float(ex.node_offset[k])

    out: list[Violation] = []
    lo, hi = swing_V
    res = [el for el in net.elements if el.kind == "r"]
    for name, node in opamps.items():
        g, o = lin(node)
        m, s = _stats(g[None], np.array([o]), x_mean, cov)
        peak_hi, peak_lo = float(m[0] + n_sigma * s[0]), float(m[0] - n_sigma * s[0])
        if peak_hi > hi or peak_lo < lo:
            v = peak_hi if peak_hi > hi else peak_lo
            out.append(Violation(
                "swing", name, v, hi if v > 0 else lo,
                f"ERC swing: op-amp {name} output {node} reaches {v:.3g} V (|mean| + "
                f"{n_sigma:g}σ) outside its swing [{lo:.3g}, {hi:.3g}] V; lower v0 (--vsat) "
                "or the κ₀ the deck is sized for"))
        if i_max_A is not None:
            gi, oi = np.zeros(nn), 0.0
            for r in res:
                if node in r.nodes[:2]:
                    other = r.nodes[1] if r.nodes[0] == node else r.nodes[0]
                    g2, o2 = lin(other)
                    gi = gi + (g - g2) / r.value
                    oi += (o - o2) / r.value
            m, s = _stats(gi[None], np.array([oi]), x_mean, cov)
            peak = float(abs(m[0]) + n_sigma * s[0])
            if peak > i_max_A:
                out.append(Violation(
                    "current", name, peak, i_max_A,
                    f"ERC current: op-amp {name} must drive {peak * 1e3:.3g} mA (|mean| + "
                    f"{n_sigma:g}σ) into its loads at {node}, above its {i_max_A * 1e3:.3g} mA "
                    "output current limit; raise R0 (--r0) or lower v0"))
    rating = RESISTOR_PACKAGES[package]
    for r in res:
        ga, oa = lin(r.nodes[0])
        gb, ob = lin(r.nodes[1])
        m, s = _stats((ga - gb)[None], np.array([oa - ob]), x_mean, cov)
        p = float((m[0] ** 2 + s[0] ** 2) / r.value)
        if p > rating:
            out.append(Violation(
                "power", r.name, p, rating,
                f"ERC power: resistor {r.name} ({r.value:.4g} Ω) dissipates {p * 1e3:.3g} mW, "
                f"above the {rating * 1e3:g} mW rating of its {package} package; raise R0 "
                "(--r0) or lower v0"))
    return out


def size_warning(n: int, topology: str, lam_max: float = 1.0) -> Violation | None:
    """A warning with the expected ngspice cost per τ for dense decks with N > LARGE_DENSE_N."""
    if topology not in ("dense", "ideal") or n <= LARGE_DENSE_N:
        return None
    per_step = _DENSE_S_PER_STEP_N8 * (n / 8) ** 3.5
    steps_per_tau = 100.0 * lam_max
    cost = per_step * steps_per_tau
    return Violation("size", f"N = {n}", float(n), float(LARGE_DENSE_N),
                     f"large deck: a {topology} circuit with N = {n} > {LARGE_DENSE_N} costs "
                     f"ngspice ~{per_step:.2g} s per time step, ~{cost:.3g} s per τ at the "
                     "default noise step (measured ∝ N^3.5 here, no KLU in ngspice 39); "
                     "consider --topology factored or --tiles")


def enforce(violations: list[Violation], allow: bool) -> list[Violation]:
    """Raise the first violation as ErcError unless `allow`; returns them (warnings)."""
    order = {"gbw": 0, "swing": 1, "current": 2, "power": 3}
    errors = sorted((v for v in violations if v.rule != "size"), key=lambda v: order[v.rule])
    if errors and not allow:
        more = ""
        if len(errors) > 1:
            counts: dict[str, int] = {}
            for v in errors[1:]:
                counts[v.rule] = counts.get(v.rule, 0) + 1
            more = " (and " + ", ".join(f"{k} ×{c}" for k, c in counts.items()) + ")"
        raise ErcError(errors[0].message + more + "; --allow-erc makes these warnings")
    return errors + [v for v in violations if v.rule == "size"]


def realised_deck_erc(rz, qs: Netlist, ex, es) -> list[Violation]:
    """All rules for one realisation (`realize._Realizer` state, its DC netlist `qs` and
    extraction `ex`/`es`), before enforcing."""
    opt = rz.opt
    part = rz.hardware.part
    kappa0 = float((rz.swing or {}).get("kappa0", 0.0) or 0.0) if rz.swing else float(
        rz.side.noise.kappa0 or 0.0)
    cov = kappa0 * np.linalg.inv(es.A) if kappa0 > 0 else np.zeros_like(es.A)
    out: list[Violation] = []
    if rz.topology != "ideal":
        opamps = {el.name: el.nodes[0] for el in rz.base.netlist.elements
                  if el.kind == "e" and el.nodes[1] == "0"}
        if part is not None:
            swing = part.swing_V
        elif opt.v_sat is not None:
            swing = (-opt.v_sat, opt.v_sat)
        else:
            swing = (-math.inf, math.inf)
        out += check_outputs(qs, opamps, ex, es.x_dc, cov, opt.n_sigma, swing,
                             part.i_out_A if part else None, package=opt.package)
        if opt.gbw_hz is not None:
            caps = [el.name for el in rz.base.netlist.elements if el.kind == "c"]
            lam = float(np.max(np.linalg.eigvalsh(0.5 * (rz.A + rz.A.T))))
            out += check_gbw(lam, rz.tau_s, rz.c_value, opt.gbw_hz, caps)
    else:
        out += check_outputs(qs, {}, ex, es.x_dc, cov, opt.n_sigma, (-math.inf, math.inf),
                             None, package=opt.package)
    w = size_warning(int(rz.side.n), rz.topology,
                     float(np.max(np.abs(np.linalg.eigvals(rz.A)))))
    if w is not None:
        out.append(w)
    return out
