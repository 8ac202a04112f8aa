"""The realisation pass: turn a compiled (ideal-valued) deck into one built from real parts.

`realize(compiled, RealizeOptions(...)) -> RealizedCircuit` applies, in this order:

1. **Output swing** (`v_sat`): v₀ is chosen by `choose_v0` so that every op-amp output
   (integrators o, inverters p, factored stages y and q) and every bias source stays inside
   the rails ±V_sat for |x*| + n_σ·σ, σ² = diag(κ₀A⁻¹) (the OU stationary covariance); the
   system is recompiled with `HardwareSpec(volts_per_unit=v₀)` (and the op-amp gain A0).
2. **Pre-compensation** (`compensate=True`): the systematic, known errors (finite op-amp gain;
   E-series rounding) are cancelled where free values allow. With exact values the extractor
   is run repeatedly and the targets corrected (dense: each coupling resistor by the ratio
   A_ij/A_eff,ij; factored: stage and inverter feedback resistors by their measured gain
   error, the damping resistors additively on the diagonal); then each target is snapped to
   the series *with a trim part* (E-series resistor plus a series or parallel E-series trim,
   whichever lands closer: two parts get within ~1e-4 of any target); last, the bias DAC
   voltages are rescaled so that b_eff = b.
3. **E-series snapping** (`series` e24/e96/e192; capacitors to E12 when series ≠ exact), to
   the nearest value by ratio, kept inside the spec's resistor range.
4. **Tolerances** (`tolerance`, Monte Carlo draw `(mc_seed, mc_draw)`): every physical part
   (resistor, trim, capacitor; gm of a VCCS in the ideal topology) becomes
   value·(1 + δ), δ ~ Normal(0, (tol/3)²) clipped to ±tol (3σ = tol, the usual reading of a
   tolerance class), independent per part, drawn from numpy's default_rng([seed, draw]) in
   deck order. Bias sources are DAC settings and get no tolerance.
5. **Op-amp macromodel** (`opamp_gain` A0, `gbw_hz`): each ideal VCVS op-amp becomes the
   subcircuit `opamp_sp inp inn out`, A(s) = A0/(1 + s·A0/(2π·GBW)): a VCCS gm into an R‖C
   node and a unity buffer (see `opamp_subckt`). Its internal R, C and gm model the
   amplifier's gain stage, not parts one buys: they are exempt from the resistor-range check
   and from the bill of materials. Without `gbw_hz` the VCVS stays, with gain A0.

Each realised deck is then measured by the independent extractor (`parser.extract_system`
on the deck, read from the IR by `spice.parse_netlist`, which equals parsing the written text
(tested), with τ = the sidecar's `tau_s` and v₀): A_eff, b_eff (stored in the
sidecar's `realization` record for the surrogate), ‖A_eff − A‖/‖A‖, the error of
A_eff⁻¹b_eff against A⁻¹b, and the Johnson-noise floor as an effective κ₀. With a GBW
macromodel the extraction runs on the same deck with each macromodel at its DC gain (the
pole's capacitor removed): the OU model has one state per integrator, the poles add fast
states; the full state space (stability, fastest poles) is reported under `stability`.

Johnson noise. Transient ngspice does not simulate resistor thermal noise. A resistor R into
a summing node s_i adds a white current of two-sided PSD 2kT/R; with the noise pass's
σ_I = (α v₀/R₀)·sqrt(2κ₀τ) this is κ₀,i = kT·R₀²·Σ_R 1/R / (α² v₀² τ) (`johnson_kappa0`).
The `full` figure adds every resistor of the circuit (inverters, stages: their noise
reaches the summing nodes through the array) by putting a 2kT/R noise current across each
resistor and extracting the diffusion with the parser.
"""

from __future__ import annotations

import bisect
import functools
import math
import re
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from ..errors import InputError
from ..graphcheck import check_cell_map, check_netlist
from ..netlist import GROUND, Element, Netlist, Subcircuit
from ..sidecar import IcMap, OpampRecord, Prediction, Realization, Sidecar
from ..spec import HardwareSpec
from ..system import FactoredSystem, LinearSystem
from . import CompiledCircuit, compile_system
from .cellmap import OPAMP_ROLES, CellMap, Coupling, Role
from .scaling import scale, scale_factored

#: Boltzmann constant (J/K)
K_BOLTZMANN = 1.380649e-23

E12 = (1.0, 1.2, 1.5, 1.8, 2.2, 2.7, 3.3, 3.9, 4.7, 5.6, 6.8, 8.2)
E24 = (1.0, 1.1, 1.2, 1.3, 1.5, 1.6, 1.8, 2.0, 2.2, 2.4, 2.7, 3.0, 3.3, 3.6, 3.9, 4.3, 4.7,
       5.1, 5.6, 6.2, 6.8, 7.5, 8.2, 9.1)
#: IEC 60063: E96/E192 are round(10^(k/n), 2), except E192's 9.19 which is 9.20
E96 = tuple(round(10 ** (k / 96), 2) for k in range(96))
E192 = tuple(9.20 if k == 185 else round(10 ** (k / 192), 2) for k in range(192))
SERIES = {"e12": E12, "e24": E24, "e96": E96, "e192": E192}
#: significant digits of each series (for printing values)
SERIES_DIGITS = {"e12": 2, "e24": 2, "e96": 3, "e192": 3}

OPAMP_SUBCKT = "opamp_sp"
#: internal resistance of the macromodel's gain node (sets gm = A0/R and C = 1/(2π GBW/A0 R))
OPAMP_R_INT = 1e3
#: continuous compensation iterations at most (each one extraction); they converge
#: geometrically and stop early once a correction moves no target by more than COMP_RTOL
COMP_ITERS = 6
COMP_RTOL = 1e-12


# ------------------------------------------------------------------------------ E series


def _series(series: str) -> tuple[float, ...]:
    try:
        return SERIES[series.lower()]
    except KeyError:
        raise InputError(f"unknown E series {series!r}; choose from "
                         f"{', '.join(['exact', *SERIES])}") from None


def _value(mantissa: float, decade: int) -> float:
    """m·10^d as the double nearest the decimal (so 1.02e3 is written 1020.0)."""
    return float(f"{mantissa:.2f}e{decade}")


@functools.cache
def _decade_values(series: str, decade: int) -> tuple[float, ...]:
    return tuple(_value(m, decade) for m in _series(series))


def series_neighbours(x: float, series: str) -> list[float]:
    """Series values around x (three decades), ascending."""
    d = math.floor(math.log10(x))
    return [v for e in (d - 1, d, d + 1) for v in _decade_values(series, e)]


@functools.lru_cache(maxsize=65536)
def snap(x: float, series: str, lo: float = 0.0, hi: float = math.inf) -> float:
    """The series value nearest x by ratio, within [lo, hi] when one exists there."""
    if series == "exact":
        return float(x)
    if not (math.isfinite(x) and x > 0):
        raise InputError(f"cannot snap {x!r} to a series")
    vals = series_neighbours(x, series)
    k = bisect.bisect_left(vals, x)
    near = [v for v in vals[max(k - 1, 0):k + 1] if lo * (1 - 1e-12) <= v <= hi * (1 + 1e-12)]
    if not near:
        near = [v for v in vals if lo * (1 - 1e-12) <= v <= hi * (1 + 1e-12)] or vals
    return min(near, key=lambda v: (abs(math.log(v / x)), v))


def in_series(x: float, series: str, rtol: float = 1e-9) -> bool:
    """True when x is (within rtol) a value of the series (any decade)."""
    if series == "exact":
        return True
    d = math.floor(math.log10(x) + 1e-12)
    m = x / 10.0 ** d
    return any(abs(m - v) <= rtol * v for v in (*_series(series), 10.0))


@dataclass(frozen=True)
class Parts:
    """How one resistor is built: 'single' (values[0]), 'series' or 'parallel' (main, trim)."""

    kind: str
    values: tuple[float, ...]

    @property
    def value(self) -> float:
        if self.kind == "single":
            return self.values[0]
        a, b = self.values
        return a + b if self.kind == "series" else a * b / (a + b)


@functools.lru_cache(maxsize=65536)
def realise_resistor(target: float, series: str, lo: float, hi: float, trim: bool) -> Parts:
    """Build `target` Ω from the series: one part, or (with trim) the best of one part, a part
    plus a series trim, or a part with a parallel trim; every part within [lo, hi]."""
    if series == "exact":
        return Parts("single", (float(target),))
    one = snap(target, series, lo, hi)
    cands = [Parts("single", (one,))]
    if trim and abs(one / target - 1) > 1e-12:
        vals = series_neighbours(target, series)
        below = [v for v in vals if v < target and lo <= v][-2:]
        above = [v for v in vals if v > target and v <= hi][:2]
        for r1 in below:
            rem = target - r1
            if rem >= lo:
                cands.append(Parts("series", (r1, snap(rem, series, lo, hi))))
        for r1 in above:
            r2 = r1 * target / (r1 - target)
            if r2 <= hi:
                cands.append(Parts("parallel", (r1, snap(r2, series, lo, hi))))
        cands = [c for c in cands if all(lo * (1 - 1e-12) <= v <= hi * (1 + 1e-12)
                                         for v in c.values)] or cands[:1]
    return min(cands, key=lambda c: (abs(c.value / target - 1), len(c.values)))


# ------------------------------------------------------------------------------ options


def parse_tolerance(text: str | float) -> float:
    """'1%' → 0.01, '0.1 %' → 0.001, '0.05' → 0.05; InputError unless 0 ≤ tol < 0.5."""
    if isinstance(text, int | float):
        tol = float(text)
    else:
        s = str(text).strip().replace(" ", "")
        try:
            tol = float(s[:-1]) / 100.0 if s.endswith("%") else float(s)
        except ValueError:
            raise InputError(f"tolerance {text!r}: give a fraction (0.01) or a percentage "
                             "(1%)") from None
    if not (math.isfinite(tol) and 0.0 <= tol < 0.5):
        raise InputError(f"tolerance must lie in [0, 50%), got {text!r}")
    return tol


_FREQ = re.compile(r"^([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*(k|K|M|meg|MEG|G)?\s*(hz|Hz|HZ)?$")


def parse_frequency(text: str | float) -> float:
    """'10MHz', '10meg', '1e7', '500k' → Hz (k = 1e3, M/meg = 1e6, G = 1e9)."""
    if isinstance(text, int | float):
        f = float(text)
    else:
        m = _FREQ.match(str(text).strip())
        if not m:
            raise InputError(f"frequency {text!r}: give e.g. 10MHz, 10meg or 1e7")
        mult = {"k": 1e3, "K": 1e3, "M": 1e6, "meg": 1e6, "MEG": 1e6, "G": 1e9}
        f = float(m.group(1)) * mult.get(m.group(2) or "", 1.0)
    if not (math.isfinite(f) and f > 0):
        raise InputError(f"frequency must be positive, got {text!r}")
    return f


@dataclass(frozen=True)
class RealizeOptions:
    """What the realisation pass does (see the module docstring).

    series: 'exact' | 'e24' | 'e96' | 'e192' (resistors; capacitors go to E12 unless exact).
    tolerance: tolerance class as a fraction (0.01 = 1 %); parts get δ ~ N(0, (tol/3)²)
    clipped to ±tol when `mc_seed` is given (otherwise nominal values, tolerance recorded).
    mc_seed, mc_draw: Monte-Carlo draw (rng = default_rng([mc_seed, mc_draw])).
    opamp_gain: DC gain A0 (None: the compiled deck's). gbw_hz: gain-bandwidth product
    (None: no pole). v_sat: rails ±V_sat, choose v₀ (None: keep v₀). kappa0_swing: κ₀ used
    for the swing (None: the deck's noise κ₀, 0 without noise). n_sigma: the swing margin.
    temperature_K: for the Johnson-noise floor. compensate: pre-compensate systematic errors.
    trim: which resistors get a trim part when compensating: 'all', 'diagonal' (the
    diagonal couplings / damping resistors and the stage feedback resistors) or 'none'.
    """

    series: str = "exact"
    tolerance: float = 0.0
    mc_seed: int | None = None
    mc_draw: int = 0
    opamp_gain: float | None = None
    gbw_hz: float | None = None
    v_sat: float | None = None
    kappa0_swing: float | None = None
    n_sigma: float = 4.0
    temperature_K: float = 300.0
    compensate: bool = False
    trim: str = "all"
    #: catalogue op-amp (`opamps.CATALOGUE`; None: the generic single-pole model); with a
    #: part, gain/GBW/v_sat default to its figures and each op-amp carries V_os and I_b
    opamp: str | None = None
    #: a user's vendor macromodel `FILE:SUBCKT` (pins inp inn vcc vee out), run by ngspice;
    #: the extractor, ERC and budget use the `opamp` part's figures (default generic)
    opamp_model: str | None = None
    #: include the part's V_os and I_b (False: a part without input errors)
    offsets: bool = True
    #: raise C (to an E12 value) until the fastest mode is GBW/`erc.GBW_FACTOR` or slower
    auto_cap: bool = False
    #: bias-DAC resolution (bits over ±v_sat; None: exact settings)
    dac_bits: int | None = None
    #: electrical rule checks (`erc`): 'warn' records violations (the API default), 'error'
    #: raises the first as ErcError (the CLI's default; `--allow-erc` selects 'warn')
    erc: str = "warn"
    #: resistor package (`erc.RESISTOR_PACKAGES`: sets the power rating)
    package: str = "0603"

    def __post_init__(self):
        if self.series != "exact":
            _series(self.series)
        parse_tolerance(self.tolerance)
        for name in ("opamp_gain", "gbw_hz", "v_sat", "kappa0_swing"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, int | float) and math.isfinite(v)
                                      and (v > 0 or (name == "kappa0_swing" and v == 0))):
                raise InputError(f"realize: {name} must be a positive number, got {v!r}")
        if self.mc_seed is not None and (not isinstance(self.mc_seed, int) or self.mc_seed < 0):
            raise InputError(f"realize: mc_seed must be a non-negative integer, "
                             f"got {self.mc_seed!r}")
        if not isinstance(self.mc_draw, int) or self.mc_draw < 0:
            raise InputError(f"realize: mc_draw must be a non-negative integer, "
                             f"got {self.mc_draw!r}")
        if not (math.isfinite(self.n_sigma) and self.n_sigma >= 0):
            raise InputError(f"realize: n_sigma must be ≥ 0, got {self.n_sigma!r}")
        if not (math.isfinite(self.temperature_K) and self.temperature_K >= 0):
            raise InputError(f"realize: temperature must be ≥ 0 K, got {self.temperature_K!r}")
        if self.trim not in ("all", "diagonal", "none"):
            raise InputError(f"realize: trim must be all, diagonal or none, got {self.trim!r}")
        if self.opamp is not None and self.opamp not in ("generic", "auto"):
            from .opamps import get_part

            get_part(self.opamp)
        from .erc import RESISTOR_PACKAGES

        if self.erc not in ("warn", "error"):
            raise InputError(f"realize: erc must be warn or error, got {self.erc!r}")
        if self.package not in RESISTOR_PACKAGES:
            raise InputError(f"realize: unknown resistor package {self.package!r}; choose "
                             f"from {', '.join(RESISTOR_PACKAGES)}")
        if self.dac_bits is not None and not (isinstance(self.dac_bits, int)
                                              and 2 <= self.dac_bits <= 32):
            raise InputError(f"realize: DAC bits must be an integer in [2, 32], "
                             f"got {self.dac_bits!r}")

    @property
    def cap_series(self) -> str:
        return "exact" if self.series == "exact" else "e12"


@dataclass
class RealizedCircuit(CompiledCircuit):
    """A realised deck: netlist, sidecar meta (with its `realization` record), extra files,
    and `report` (the headline numbers, no matrices)."""

    report: dict = field(default_factory=dict)


# ------------------------------------------------------------------------------ op-amp model


def opamp_subckt(gain: float, gbw_hz: float, name: str = OPAMP_SUBCKT,
                 r_int: float = OPAMP_R_INT) -> Subcircuit:
    """The single-pole op-amp `name inp inn out`: A(s) = A0/(1 + s/ω_p), ω_p = 2π·GBW/A0.
    gm = A0/r_int into r_int ‖ C (C = A0/(2π·GBW·r_int)), unity buffer."""
    gm = gain / r_int
    cap = gain / (2.0 * math.pi * gbw_hz * r_int)
    return Subcircuit(
        name, ("inp", "inn", "out"),
        (Element("gop", ("0", "nop", "inp", "inn"), gm),
         Element("rop", ("nop", "0"), r_int),
         Element("cop", ("nop", "0"), cap),
         Element("eop", ("out", "0", "nop", "0"), 1.0)),
        (f"single-pole op-amp: A0 = {gain:g}, GBW = {gbw_hz:g} Hz, pole at "
         f"{gbw_hz / gain:g} Hz; internal model elements (not parts)",))


# ------------------------------------------------------------------------------ output swing


def _as_system(system, topology: str):
    if topology != "factored" and isinstance(system, FactoredSystem):
        return system.as_linear_system()
    return system


def output_swing(system: LinearSystem | FactoredSystem, kappa0: float, topology: str = "dense",
                 spec: HardwareSpec | None = None, *, n_sigma: float = 4.0,
                 include_bias: bool = True) -> dict[str, float]:
    """Peak |voltage| per volt-per-unit (V at v₀ = 1) of each group of driven nodes for
    |mean| + n_sigma·σ, with the OU stationary law x ~ N(A⁻¹b, κ₀A⁻¹).

    Groups: 'integrators' (o = v₀x), 'inverters' (p = −v₀x), for the factored topology
    'stages' (y = −βv₀Sx) and 'stage_inverters' (q = −y), and 'bias' (u = −αv₀b, DC).
    """
    spec = spec or HardwareSpec()
    system = _as_system(system, topology)
    A = system.A
    xs = system.solution()
    cov = kappa0 * np.linalg.inv(A) if kappa0 > 0 else np.zeros_like(A)
    sd = np.sqrt(np.clip(np.diag(cov), 0, None))
    peak_x = float(np.max(np.abs(xs) + n_sigma * sd))
    out = {"integrators": peak_x}
    if topology == "ideal":
        return out
    out["inverters"] = peak_x
    if topology == "factored":
        sc = scale_factored(system, spec)
        beta = math.sqrt(sc.alpha)
        m = sc.S @ xs
        s = np.sqrt(np.clip(np.einsum("kj,jl,kl->k", sc.S, cov, sc.S), 0, None))
        pk = float(np.max(beta * (np.abs(m) + n_sigma * s))) if m.size else 0.0
        out["stages"] = out["stage_inverters"] = pk
    else:
        sc = scale(system, spec)
    if include_bias:
        out["bias"] = float(np.max(sc.alpha * np.abs(system.b)))
    return out


def choose_v0(system: LinearSystem | FactoredSystem, kappa0: float, v_sat: float,
              topology: str = "dense", spec: HardwareSpec | None = None, *,
              n_sigma: float = 4.0, include_bias: bool = True) -> float:
    """The largest v₀ (volts per unit, rounded down to 3 significant digits) for which every
    op-amp output (and bias source) stays within ±v_sat for |x*| + n_sigma·σ (`output_swing`).

    A larger v₀ lowers the Johnson-noise floor (κ₀ ∝ 1/v₀²) and every offset relative to the
    signal, so the pass fills the rails.
    """
    if not (math.isfinite(v_sat) and v_sat > 0):
        raise InputError(f"v_sat must be a positive number, got {v_sat!r}")
    if not (math.isfinite(kappa0) and kappa0 >= 0):
        raise InputError(f"kappa0 must be ≥ 0, got {kappa0!r}")
    return _v0_for(v_sat, output_swing(system, kappa0, topology, spec, n_sigma=n_sigma,
                                       include_bias=include_bias))


def _v0_for(v_sat: float, swing: dict[str, float]) -> float:
    """v₀ = v_sat / (largest peak per volt-per-unit), rounded down to 3 significant digits."""
    peak = max(swing.values())
    if not peak > 0:
        raise InputError("the system's solution and noise are zero: no swing to fit")
    v0 = v_sat / peak
    e = math.floor(math.log10(v0)) - 2
    m = math.floor(v0 / 10.0 ** e * (1 + 1e-12))
    return float(f"{m}e{e}")


# ------------------------------------------------------------------------------ Johnson noise


def johnson_kappa0(resistances, *, temperature_K: float, R0_ohm: float, alpha: float,
                   v0: float, tau_s: float) -> float:
    """κ₀ of the Johnson noise of resistors `resistances` (Ω) into one summing node.

    Each adds a white current of two-sided PSD 2kT/R; equating Σ 2kT/R with σ_I² of the
    noise pass, σ_I = (α v₀/R₀)·sqrt(2κ₀τ), gives κ₀ = kT·R₀²·Σ(1/R) / (α² v₀² τ).
    """
    g = float(sum(1.0 / r for r in resistances))
    return K_BOLTZMANN * temperature_K * R0_ohm ** 2 * g / (alpha ** 2 * v0 ** 2 * tau_s)


# ------------------------------------------------------------------------------ the pass


@dataclass
class _Plan:
    """Per-element realisation: resistor targets (Ω), source values (V), capacitor value."""

    r_target: dict[str, float]
    v_value: dict[str, float]
    trimmed: set[str]


class _Realizer:
    """Shared state of one realisation (recompiled base deck, system, targets)."""

    def __init__(self, compiled: CompiledCircuit, options: RealizeOptions):
        self.opt = options
        side = compiled.sidecar
        if side.system is None:
            raise InputError("realize needs a compiled deck whose sidecar records its system")
        if side.realization is not None:
            raise InputError("this deck is already realised; realise the compiled deck")
        side.require("spec", why="cannot recompile it with real parts")
        self.topology = side.topology
        self.system = side.to_system()
        spec = side.spec
        noise = side.noise.noise_spec()
        self.swing = None
        self.cap_note: str | None = None
        changes = {}
        if options.opamp_gain is not None and self.topology != "ideal":
            changes["opamp_gain"] = float(options.opamp_gain)
        if options.v_sat is not None:
            k0 = options.kappa0_swing
            if k0 is None:
                k0 = float(side.noise.kappa0 or 0.0)
            if not (math.isfinite(k0) and k0 >= 0):
                raise InputError(f"kappa0 must be ≥ 0, got {k0!r}")
            peaks = output_swing(self.system, k0, self.topology, spec, n_sigma=options.n_sigma)
            v0 = _v0_for(options.v_sat, peaks)
            self.swing = {"v_sat": options.v_sat, "kappa0": k0, "n_sigma": options.n_sigma,
                          "volts_per_unit": v0, "peak_per_unit": peaks}
            changes["volts_per_unit"] = v0
        if options.auto_cap and options.gbw_hz is not None and self.topology != "ideal":
            from .erc import capacitor_for_gbw

            c_need = capacitor_for_gbw(self.system, spec.with_(**changes), options.gbw_hz,
                                       self.topology)
            if c_need > spec.C_F:
                self.cap_note = (
                    f"GBW: C raised from {spec.C_F:.3g} F to {c_need:.3g} F so that the fastest "
                    f"mode sits ≥ 300× below the op-amp GBW {options.gbw_hz:.3g} Hz (give --cap "
                    "to choose C yourself; the ERC then checks it)")
                changes["C_F"] = c_need
        if changes and any(getattr(spec, k) != v for k, v in changes.items()):
            spec = spec.with_(**changes)
            compiled = compile_system(self.system, self.topology, spec, name=side.name,
                                      noise=noise)
        self.base = compiled
        self.spec = spec
        self.side = compiled.sidecar
        self.A = _as_system(self.system, "dense").A if self.topology != "factored" \
            else self.system.A
        self.b = np.asarray(self.system.b, dtype=float)
        self.x_exact = self.system.solution()
        self.gain = float(self.side.opamp_gain or 0.0) or None
        # capacitors: all equal in these topologies; snapping changes τ (known, systematic)
        c_nom = spec.C_F
        self.c_value = snap(c_nom, options.cap_series)
        self.tau_s = float(self.side.tau_s) * (self.c_value / c_nom)
        self.elements = {el.name: el for el in compiled.netlist.elements}
        cm = compiled.cell_map
        if cm is None:
            raise InputError("realize needs a sidecar with a cell map (recompile the deck "
                             "with this version)")
        self.cell_map = cm
        self._memo: dict = {}                 # parse_netlist's memo across extractions
        self._last_parts: tuple | None = None  # parts() of the last plan (same plan: same)
        self.offset_elements: set[str] = set()  # V_os / I_b sources assemble() added
        self.opamps = set(cm.elements_with(Role.INTEGRATOR_OPAMP)
                          + cm.elements_with(Role.INVERTER_OPAMP)
                          + cm.elements_with(Role.STAGE_OPAMP))
        from .hardware import OpAmpHardware

        self.opamp_names = [el.name for el in compiled.netlist.elements
                            if el.name in self.opamps]
        self.hardware = OpAmpHardware.from_options(options, self.swing)

    # ---- assembly ------------------------------------------------------------------------
    def nominal_plan(self) -> _Plan:
        r = {el.name: float(el.value) for el in self.base.netlist.elements if el.kind == "r"}
        v = {el.name: float(el.value) for el in self.base.netlist.elements
             if el.kind == "v" and el.value is not None}
        return _Plan(r, v, set())

    def parts(self, plan: _Plan, series: str | None = None) -> dict[str, Parts]:
        series = self.opt.series if series is None else series
        if series == "exact":
            return {n: Parts("single", (float(t),)) for n, t in plan.r_target.items()}
        last = self._last_parts
        if last and last[0] == series and last[1] == plan.r_target and last[2] == plan.trimmed:
            return dict(last[3])
        lo, hi = self.spec.r_min_ohm, self.spec.r_max_ohm
        parts = {n: realise_resistor(t, series, lo, hi, n in plan.trimmed)
                 for n, t in plan.r_target.items()}
        self._last_parts = (series, dict(plan.r_target), set(plan.trimmed), parts)
        return dict(parts)

    def assemble(self, plan: _Plan, parts: dict[str, Parts], *, draw: bool, poles: bool,
                 exact_caps: bool = False, offsets: bool = True) -> Netlist:
        """The realised netlist. draw: apply the Monte-Carlo draw; poles: GBW macromodels;
        offsets: the op-amps' V_os and I_b (off while compensating: they are not known)."""
        base = self.base.netlist
        net = base.copy(elements=False)
        opt = self.opt
        rng = None
        if draw and self.draws:
            rng = np.random.default_rng([opt.mc_seed, opt.mc_draw])

        def tol(v: float) -> float:
            if rng is None:
                return v
            d = float(np.clip(rng.normal(0.0, opt.tolerance / 3.0), -opt.tolerance,
                              opt.tolerance))
            return v * (1.0 + d)

        use_poles = poles and opt.gbw_hz is not None and self.topology != "ideal"
        hw = self.hardware
        sub = OPAMP_SUBCKT
        if use_poles:
            if hw.part:
                hw.add_model(net, self.gain, opt.gbw_hz)
            else:
                net.subcircuits.append(opamp_subckt(self.gain, opt.gbw_hz))
            sub = hw.subckt or sub
        offs = hw.offsets(self.opamp_names, draw, opt) if offsets else {}
        put = net.append
        for el in base.elements:
            k = el.kind
            if k == "r":
                p = parts[el.name]
                a, b = el.nodes
                if p.kind == "single":
                    put(Element(el.name, el.nodes, tol(p.values[0])))
                elif p.kind == "series":
                    mid = f"{el.name}_mid"
                    put(Element(el.name, (a, mid), tol(p.values[0])))
                    put(Element(el.name + "t", (mid, b), tol(p.values[1])))
                else:
                    put(Element(el.name, (a, b), tol(p.values[0])))
                    put(Element(el.name + "t", (a, b), tol(p.values[1])))
            elif k == "c":
                v = tol(el.value if exact_caps else self.c_value)
                put(el if v == el.value else Element(el.name, el.nodes, v))
            elif k == "g" and el.value is not None:
                put(Element(el.name, el.nodes, tol(el.value), el.spec))
            elif k == "v" and el.value is not None:
                v = hw.dac(plan.v_value.get(el.name, el.value))
                same = v == el.value and math.copysign(1.0, v) == math.copysign(1.0, el.value)
                put(el if same else Element(el.name, el.nodes, v, el.spec))
            elif el.name in self.opamps and (use_poles or el.name in offs):
                out, _, cp, cm = el.nodes
                if el.name in offs:
                    k0 = len(net.elements)
                    cp = hw.add_offsets(net, el.name, cp, cm, offs[el.name])
                    self.offset_elements.update(e.name for e in net.elements[k0:])
                if use_poles:
                    put(Element("x" + el.name, (cp, cm, out), None, sub))
                else:
                    put(Element(el.name, (out, GROUND, cp, cm), el.value, el.spec))
            else:
                put(el)
        return net

    @property
    def draws(self) -> bool:
        """Whether `assemble(draw=True)` perturbs the parts (a Monte-Carlo draw)."""
        return self.opt.mc_seed is not None and self.opt.tolerance > 0

    # ---- measurement ---------------------------------------------------------------------
    def extract(self, net: Netlist, *, from_text: bool = False):
        """(Extracted, EffectiveSystem) of `net` by the extractor. The IR is read without
        text (`parse_netlist`, equal to parsing the written deck) unless `from_text`."""
        from ..spice import extract_system, parse_deck
        from ..spice.from_netlist import parse_netlist

        parsed = parse_deck(net.to_text()) if from_text else parse_netlist(net, self._memo)
        ex = extract_system(parsed, outputs=list(self.side.outputs),
                            volts_per_unit=float(self.side.volts_per_unit),
                            noise_step_s=self.side.noise.step_s)
        return ex, ex.as_system(self.tau_s)

    def errors(self, es) -> dict:
        nA = float(np.linalg.norm(es.A - self.A) / np.linalg.norm(self.A))
        nx = float(np.linalg.norm(es.x_dc - self.x_exact) /
                   max(np.linalg.norm(self.x_exact), 1e-300))
        return {"rel_error_A": nA, "rel_error_x": nx}

    # ---- compensation --------------------------------------------------------------------
    def compensate(self) -> tuple[_Plan, dict]:
        """Continuous correction of the targets (exact values), then trims and bias rescale."""
        plan = self.nominal_plan()
        hist = []
        for _ in range(COMP_ITERS):
            net = self.assemble(plan, self.parts(plan, "exact"), draw=False, poles=False,
                                exact_caps=True, offsets=False)
            ex, es = self.extract(net)
            hist.append(self.errors(es)["rel_error_A"])
            old = dict(plan.r_target)
            self._correct(plan, ex, es)
            # converged: a further iteration would move no target by more than rounding
            if all(abs(t / old[k] - 1.0) <= COMP_RTOL for k, t in plan.r_target.items()):
                break
        plan.trimmed = self._trim_set()
        # the bias DACs: b_eff = b after snapping (a DAC setting is a free, exact value)
        for _ in range(2):
            net = self.assemble(plan, self.parts(plan), draw=False, poles=False, offsets=False)
            _, es = self.extract(net)
            for cell in self.cell_map.cells:
                i, name = cell.index, cell.bias
                if name in plan.v_value and es.b[i] != 0 and self.b[i] != 0:
                    plan.v_value[name] *= self.b[i] / es.b[i]
        return plan, {"continuous_iterations": len(hist),
                      "continuous_rel_error_A": hist}

    def _trim_set(self) -> set[str]:
        cm = self.cell_map
        trimmable = set(cm.trimmable)
        names = [el.name for el in self.base.netlist.elements
                 if el.kind == "r" and el.name in trimmable]
        if self.opt.trim == "all":
            return set(names)
        if self.opt.trim == "none":
            return set()
        diag = {cp.elements[0] for cp in cm.couplings
                if (cp.kind == "A" and cp.row == cp.col) or cp.kind == "damping"}
        diag |= {c.inverter_r_fb for c in cm.cells} | {s.feedback for s in cm.stages}
        diag |= {s.inverter_r_fb for s in cm.stages}
        return {n for n in names if n in diag}

    def _correct(self, plan: _Plan, ex, es) -> None:
        """One continuous correction of the resistor targets, from the cell map: each 'A'
        coupling by A_ij/A_eff,ij; with stages (factored), the inverter and stage feedback
        resistors by their measured gains and the damping resistors additively."""
        A, Ae = self.A, es.A
        cm = self.cell_map
        if not cm.stages:
            cps = [cp for cp in cm.couplings_of("A") if cp.elements[0] in plan.r_target]
            i = np.array([cp.row for cp in cps], dtype=int)
            j = np.array([cp.col for cp in cps], dtype=int)
            a, ae = A[i, j], Ae[i, j]
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.clip(ae / a, 0.5, 2.0)
            ok = (a != 0) & (ae * a > 0)
            r = plan.r_target
            for cp, use, q in zip(cps, ok.tolist(), ratio.tolist(), strict=True):
                if use:
                    r[cp.elements[0]] *= q
            return
        nidx = {nd: k for k, nd in enumerate(ex.nodes)}
        G = ex.node_gain
        alpha, r0 = float(self.side.matrix_scale), self.spec.R0_ohm
        for cell in cm.cells:
            i = cell.index
            # inverter p_i = −o_i: rescale its feedback resistor
            gp, go = G[nidx[cell.inverted], i], G[nidx[cell.output], i]
            if gp != 0:
                plan.r_target[cell.inverter_r_fb] *= float(np.clip(-go / gp, 0.5, 2.0))
        for cp in cm.couplings_of("damping"):
            # damping: the diagonal, additively (A_ii = R0·g/α per conductance g)
            i, name = cp.row, cp.elements[0]
            g = 1.0 / plan.r_target[name] + (A[i, i] - Ae[i, i]) * alpha / r0
            if g > 0:
                plan.r_target[name] = 1.0 / g
        S = np.asarray(self.side.system.S, dtype=float)
        beta_v0 = math.sqrt(alpha) * float(self.side.volts_per_unit)
        for st in cm.stages:
            k = st.index
            want = -beta_v0 * S[k]
            gy, gq = G[nidx[st.output]], G[nidx[st.inverted]]
            if want @ want > 0 and st.feedback in plan.r_target:
                s = float(gy @ want / (want @ want))
                plan.r_target[st.feedback] /= float(np.clip(s, 0.5, 2.0))
            if gy @ gy > 0:
                s = float(-(gq @ gy) / (gy @ gy))
                plan.r_target[st.inverter_r_fb] /= float(np.clip(s, 0.5, 2.0))

    # ---- noise and stability -------------------------------------------------------------
    def johnson(self, net: Netlist, parts: dict[str, Parts], state=None) -> dict:
        """The Johnson-noise record of `net`; state: the StateSpace of its extraction."""
        T = self.opt.temperature_K
        side = self.side
        n = int(side.n)
        alpha, v0, r0 = float(side.matrix_scale), float(side.volts_per_unit), self.spec.R0_ohm
        rec = {"temperature_K": T}
        if self.topology == "ideal":
            rec.update(kappa0_summing_node=[0.0] * n, kappa0_full=[0.0] * n, kappa0_eff=0.0,
                       kappa0_max=0.0, note="no resistors (gm-C): transconductor noise "
                       "is not modelled")
            return rec
        per = []
        for cell in self.cell_map.cells:
            rs = [parts[el.name].value for el in self.base.netlist.elements
                  if el.kind == "r" and cell.summing in el.nodes]
            per.append(johnson_kappa0(rs, temperature_K=T, R0_ohm=r0, alpha=alpha, v0=v0,
                                      tau_s=self.tau_s))
        full = johnson_full(net, side, T, self.tau_s, memo=self._memo, state=state,
                            noise_elements=self.cell_map.elements_with(Role.NOISE)) \
            if T > 0 else np.zeros(n)
        rec.update(kappa0_summing_node=per, kappa0_full=[float(v) for v in full],
                   kappa0_eff=float(np.mean(full)), kappa0_max=float(np.max(full)),
                   formula="kappa0_i = k T R0^2 sum(1/R into s_i) / (alpha^2 v0^2 tau); full: "
                   "every resistor's 2kT/R current, propagated by the extractor")
        return rec

    def stability(self, net: Netlist) -> dict:
        from ..spice import state_space
        from ..spice.from_netlist import parse_netlist

        ss, _, _ = state_space(parse_netlist(net))
        ev = np.linalg.eigvals(ss.F)
        re_max = float(np.max(ev.real))
        return {"states": int(len(ev)), "stable": bool(re_max < 0),
                "max_real_part_per_tau": re_max * self.tau_s,
                "fastest_pole_hz": float(np.max(np.abs(ev)) / (2 * math.pi)),
                "note": "eigenvalues of the full deck (integrators and op-amp poles)"}


def _strip_noise(net: Netlist, noise: set[str] | None = None) -> Netlist:
    """`net` (subcircuits kept) without the elements `noise` and the models only they use.

    noise None: the noise sources found by what they are (TRNOISE current/voltage sources,
    XSPICE instances of filesource models)."""
    if noise is None:
        fmodels = {m.split()[1].lower() for m in net.models
                   if len(m.split()) > 2 and "filesource" in m.lower()}
        noise = {el.name for el in net.elements
                 if (el.kind in "iv" and el.spec and "trnoise" in el.spec.lower())
                 or (el.kind == "a" and el.spec and el.spec.split()[-1] in fmodels)}
    used = {(el.spec or "").split()[-1] for el in net.elements if el.name in noise and el.spec}
    out = net.copy(elements=False)
    out.models = [m for m in net.models if m.split()[1].lower() not in used]
    for el in net.elements:
        if el.name not in noise:
            out.add(el.name, el.nodes, el.value, el.spec)
    return out


def johnson_full(net: Netlist, side: Sidecar, temperature_K: float, tau_s: float | None = None,
                 *, memo: dict | None = None, noise_elements=None, state=None) -> np.ndarray:
    """Johnson-noise κ₀ per variable (N,) of every resistor of `net` (op-amps at DC gain): a
    white current of two-sided PSD 2kT/R across each resistor, propagated to the outputs by
    the extractor's nodal analysis. The deck's own noise sources (`noise_elements`, default:
    the sidecar cell map's Role.NOISE elements) are left out.

    Method (the extractor's Kron reduction, in adjoint form): with K the MNA matrix whose
    capacitors are voltage-source states, E the unit columns of the capacitor branches and
    n_R = e_b − e_a the injection of resistor R (a → b), the capacitor currents respond to
    the noise by Rn = Eᵀ K⁻¹ N = (K⁻ᵀ E)ᵀ N: one solve with a column per capacitor instead
    of one per resistor. B = Rn·diag(σ)/C, σ_R² = 2kT/R; in x units Bx = H B/v₀ (H: the
    outputs' response to unit capacitor voltages, K⁻¹E, taken from `state`, a StateSpace of
    the same circuit, when its nodes and capacitors match); κ₀,i = τ/2·Σ_R Bx[i, R]².
    """
    from ..spice.from_netlist import parse_netlist
    from ..spice.mna import build_mna, solve

    if noise_elements is None:
        noise_elements = side.cell_map.elements_with(Role.NOISE) if side.cell_map else ()
    noise = set(noise_elements)
    quiet = _strip_noise(net, noise) if noise else net
    parsed = parse_netlist(quiet, memo)
    ckt = build_mna(parsed, caps_as_states=True)
    nn, nc = len(ckt.nodes), len(ckt.caps)
    cap_rows = [nn + ckt.branches.index(c.name) for c in ckt.caps]
    E = np.zeros((ckt.K.shape[0], nc))
    E[cap_rows, np.arange(nc)] = 1.0
    if state is not None and tuple(state.nodes) == tuple(ckt.nodes) and \
            tuple(state.capacitors) == tuple(c.name for c in ckt.caps):
        Pz = np.asarray(state.Pz)
    else:
        Pz = solve(ckt.K, E, ckt.nodes, "Johnson noise")[:nn]
    Y = solve(ckt.K.T.tocsc(), E, ckt.nodes, "Johnson noise (adjoint)")
    nidx = {n: k for k, n in enumerate(ckt.nodes)}
    res = [e for e in parsed.elements if e.kind == "r" and "." not in e.name]
    Yg = np.vstack([Y[:nn], np.zeros((1, nc))])          # row nn: ground
    a = np.array([nidx.get(e.nodes[0], nn) for e in res], dtype=int)
    b = np.array([nidx.get(e.nodes[1], nn) for e in res], dtype=int)
    sigma = np.sqrt(2.0 * K_BOLTZMANN * temperature_K / np.array([e.value for e in res]))
    Rn = (Yg[b] - Yg[a]).T                                # (nc, n_R)
    cvals = np.array([c.value for c in ckt.caps])
    B = Rn * sigma[None, :] / cvals[:, None]
    rows = [nidx[o] for o in side.outputs]
    Bx = Pz[rows] @ B / float(side.volts_per_unit)
    tau = tau_s or float(side.tau_s)
    return 0.5 * tau * np.sum(Bx * Bx, axis=1)


def _ic_map(old: IcMap | None, ex, op_nodes: dict[str, str]) -> IcMap:
    """The sidecar's initial-condition map, re-derived from the extraction (realised values)
    and extended to the op-amp macromodels' internal nodes (they follow their outputs)."""
    old = old or IcMap()
    idx = {n: k for k, n in enumerate(ex.nodes)}
    lin, const = [], []
    by_node = {}
    for node, var, coef in old.linear:
        c = float(ex.node_gain[idx[node], var]) if node in idx else coef
        lin.append((node, var, c))
        by_node[node] = ("linear", var, c)
    for node, val in old.const:
        v = float(ex.node_offset[idx[node]]) if node in idx else val
        const.append((node, v))
        by_node[node] = ("const", None, v)
    for inner, out in op_nodes.items():
        if out in by_node:
            kind, var, c = by_node[out]
            if kind == "linear":
                lin.append((inner, var, c))
            else:
                const.append((inner, c))
    return IcMap(tuple(lin), tuple(const))


#: topologies the realisation pass cannot size, compensate and measure (first-order models)
NOT_REALIZABLE = ("oscillator",)


def check_realizable(topology: str) -> None:
    """InputError (one line) for a topology the realisation pass does not support."""
    if topology in NOT_REALIZABLE:
        raise InputError(f"--realize (and the part options) is not available for the "
                         f"{topology} topology: the realisation pass's swing sizing, "
                         "compensation and A_eff extraction are first-order")


def realize(compiled: CompiledCircuit, options: RealizeOptions | None = None
            ) -> RealizedCircuit:
    """Realise `compiled` with real parts (see the module docstring); returns the realised
    deck, its sidecar (with `realization`: A_eff, b_eff, errors, Johnson κ₀, ...) and a report.
    """
    from .hardware import resolve_options

    check_realizable(compiled.sidecar.topology)
    opt = options or RealizeOptions()
    choice = None
    if opt.opamp == "auto":
        from .hardware import pick_opamp

        choice = pick_opamp(compiled, opt)
        opt = replace(opt, opamp=choice.part)
    opt = resolve_options(opt)
    rz = _Realizer(compiled, opt)
    side0 = rz.side
    # baseline: the compiled deck itself (finite gain, exact values)
    _, es0 = rz.extract(rz.base.netlist)
    baseline = rz.errors(es0)
    # plain realisation (snapped, no trims, nominal targets): 'before' compensation
    plan = rz.nominal_plan()
    comp = None
    if opt.compensate and rz.topology != "ideal":
        plain_net = rz.assemble(plan, rz.parts(plan), draw=False, poles=False)
        before = rz.errors(rz.extract(plain_net)[1])
        plan, hist = rz.compensate()
    parts = rz.parts(plan)
    net = rz.assemble(plan, parts, draw=True, poles=True)
    qs = rz.assemble(plan, parts, draw=True, poles=False)
    lo, hi = rz.spec.r_min_ohm, rz.spec.r_max_ohm
    widen = 1.0 + opt.tolerance
    check_netlist(qs, rz.spec.with_(r_min_ohm=lo / widen, r_max_ohm=hi * widen))
    ex, es = rz.extract(qs)             # the recorded measurement (IR read as the deck text)
    errs = rz.errors(es)
    from .erc import enforce, realised_deck_erc

    erc = enforce(realised_deck_erc(rz, qs, ex, es), opt.erc != "error")
    if opt.compensate and rz.topology != "ideal":
        # without a Monte-Carlo draw (parts, offsets) the nominal compensated deck is `qs`
        after = errs if opt.mc_seed is None else rz.errors(
            rz.extract(rz.assemble(plan, parts, draw=False, poles=False))[1])
        comp = {"enabled": True, "trim": opt.trim, **hist,
                "trimmed_parts": sum(1 for p in parts.values() if p.kind != "single"),
                "rel_error_A_before": before["rel_error_A"],
                "rel_error_x_before": before["rel_error_x"],
                "rel_error_A_after": after["rel_error_A"],
                "rel_error_x_after": after["rel_error_x"]}
    # the deck's own noise sources (if any), as κ₀ per variable
    k_deck = [float(v) for v in es.kappa0]
    john = rz.johnson(qs, parts, ex.state)
    op_nodes = {}
    if opt.gbw_hz is not None and rz.topology != "ideal":
        op_nodes = {f"x{el.name}.nop": el.nodes[0] for el in rz.base.netlist.elements
                    if el.name in rz.opamps}
    stab = rz.stability(net) if op_nodes else None
    n_parts = {"resistors": sum(1 for e in net.elements if e.kind == "r"),
               "trims": sum(1 for p in parts.values() if p.kind != "single"),
               "capacitors": sum(1 for e in net.elements if e.kind == "c")}
    mc = ({"seed": opt.mc_seed, "draw": opt.mc_draw}
          if opt.mc_seed is not None and opt.tolerance > 0 else None)
    nominal_values = None
    if mc:
        nominal = rz.assemble(plan, parts, draw=False, poles=False)
        nominal_values = {e.name: e.value for e in nominal.elements if e.kind in "rcg"
                          and e.value is not None}
    opamp = OpampRecord(
        model=(("macromodel" if rz.hardware.part else "single_pole") if op_nodes
               else ("vcvs" if rz.topology != "ideal" else "none")),
        gain=rz.gain, gbw_hz=opt.gbw_hz if op_nodes else None,
        **({"subckt": rz.hardware.subckt or OPAMP_SUBCKT, "internal_R_ohm": OPAMP_R_INT,
            "range_check": "exempt: internal model elements of the amplifier, not parts"}
           if op_nodes else {}),
        extra=rz.hardware.record(rz.opamp_names, True, opt))
    rec = Realization(
        series=opt.series, capacitor_series=opt.cap_series, tolerance=opt.tolerance,
        tolerance_distribution="delta ~ Normal(0, (tol/3)^2) clipped to +-tol, independent "
                               "per part; value = nominal * (1 + delta)",
        monte_carlo=mc, opamp=opamp, swing=rz.swing,
        compensation=comp or {"enabled": False}, baseline=baseline,
        rel_error_A=errs["rel_error_A"], rel_error_x=errs["rel_error_x"],
        A_eff=es.A, b_eff=es.b, x_eff=es.x_dc, tau_s=rz.tau_s, kappa0_deck=tuple(k_deck),
        johnson=john, stability=stab, parts=n_parts,
        extraction="spu_circuits.parser.extract_system on the deck text"
                   + (" with each op-amp macromodel at its DC gain" if op_nodes else ""),
        options=_options_record(opt), erc=[v.to_dict() for v in erc] if erc else None,
        nominal_values=nominal_values, capacitor_choice=rz.cap_note or None)
    cell_map = _realised_cell_map(rz.cell_map, parts, bool(op_nodes)).with_roles(
        {e.name: Role.OPAMP_ERROR for e in net.elements if e.name in rz.offset_elements})
    check_cell_map(net, cell_map)
    side = side0.with_(
        tau_s=rz.tau_s, C_F=rz.c_value, opamp_gain=rz.gain if rz.topology != "ideal" else None,
        element_counts=net.counts(), ic_map=_ic_map(side0.ic_map, ex, op_nodes),
        cell_map=cell_map,
        predicted=Prediction(x_dc=tuple(es.x_dc.tolist()),
                             rel_deviation_from_exact=errs["rel_error_x"],
                             cause="realisation (" + _describe(opt, rz) + ")"),
        realization=rec)
    title_tag = f" [realised: {_describe(opt, rz)}]"
    net.title = rz.base.netlist.title + title_tag
    net.header = [h for h in rz.base.netlist.header
                  if not h.startswith("predicted DC deviation")] + [
        f"realised: {_describe(opt, rz)}",
        f"realised A_eff: |A_eff - A|/|A| = {errs['rel_error_A']:.3g}; "
        f"|A_eff^-1 b_eff - A^-1 b|/|A^-1 b| = {errs['rel_error_x']:.3g}",
        f"Johnson-noise floor at {opt.temperature_K:g} K: kappa0_eff = "
        f"{john.get('kappa0_eff', 0.0):.3g}",
    ]
    report = {
        "topology": rz.topology, "n": int(side.n), "description": _describe(opt, rz),
        "volts_per_unit": float(side.volts_per_unit),
        "rel_error_A": errs["rel_error_A"], "rel_error_x": errs["rel_error_x"],
        "baseline_rel_error_A": baseline["rel_error_A"],
        "baseline_rel_error_x": baseline["rel_error_x"],
        "kappa0_johnson": john.get("kappa0_eff", 0.0),
        "kappa0_johnson_max": john.get("kappa0_max", 0.0),
        "parts": n_parts, "element_counts": net.counts(),
    }
    if comp:
        report.update({k: comp[k] for k in ("rel_error_A_before", "rel_error_A_after",
                                             "rel_error_x_before", "rel_error_x_after")})
    if stab:
        report["stable"] = stab["stable"]
    notes = ([rz.cap_note] if rz.cap_note else []) + [v.message for v in erc]
    if choice is not None:
        notes.insert(0, choice.describe())
        rec.extra["opamp_choice"] = choice.describe()
    if notes:
        report["erc_warnings"] = notes
    return RealizedCircuit(net, side, dict(rz.base.extra_files), report)


#: options added with the op-amp catalogue: recorded only when set (older sidecars unchanged)
_NEW_OPTIONS = {"opamp": None, "opamp_model": None, "offsets": True, "auto_cap": False,
                "dac_bits": None, "erc": "warn", "package": "0603"}


def _options_record(opt: RealizeOptions) -> dict:
    return {k: v for k, v in asdict(opt).items()
            if k not in _NEW_OPTIONS or v != _NEW_OPTIONS[k]}


def _realised_cell_map(cm: CellMap, parts: dict[str, Parts], poles: bool) -> CellMap:
    """The cell map of the assembled deck: trims (`<name>t`, Role.TRIM) appended to their
    couplings, op-amps renamed to their macromodel instances (`x<name>`) when `poles`."""
    trims = {name: name + "t" for name, p in parts.items() if p.kind != "single"}
    cm = cm.with_roles({t: Role.TRIM for t in trims.values()})
    couplings = []
    for cp in cm.couplings:
        extra = [trims[e] for e in cp.elements if e in trims]
        couplings.append(Coupling(cp.kind, cp.row, cp.col, cp.sign, (*cp.elements, *extra))
                         if extra else cp)
    cm = replace(cm, couplings=tuple(couplings))
    if poles:
        ops = [n for n, r in cm.roles.items() if r in OPAMP_ROLES]
        cm = cm.renamed(elements={n: "x" + n for n in ops})
    return cm


def _describe(opt: RealizeOptions, rz: _Realizer) -> str:
    bits = [opt.series.upper() if opt.series != "exact" else "exact values"]
    if opt.tolerance:
        bits.append(f"{opt.tolerance * 100:g}% parts")
    if opt.mc_seed is not None and opt.tolerance > 0:
        bits.append(f"MC seed {opt.mc_seed} draw {opt.mc_draw}")
    if rz.topology != "ideal":
        bits.append((f"{rz.hardware.part.name} " if rz.hardware.part else "")
                    + f"op-amp A0 {rz.gain:g}" + (f", GBW {opt.gbw_hz:g} Hz"
                                                  if opt.gbw_hz is not None else ""))
    if rz.swing:
        bits.append(f"v0 {rz.swing['volts_per_unit']:g} V for +-{rz.swing['v_sat']:g} V rails")
    if opt.compensate:
        bits.append(f"compensated (trim {opt.trim})")
    return ", ".join(bits)


def monte_carlo(compiled: CompiledCircuit, options: RealizeOptions, n_draws: int,
                seed: int | None = None) -> dict:
    """Errors of `n_draws` tolerance draws (draw indices 0 … n_draws−1), by the extractor.

    The nominal design (recompile, compensation, snapping) is done once; each draw perturbs
    every part. Returns arrays 'rel_error_A', 'rel_error_x' and their medians and 90th
    percentiles.
    """
    if n_draws < 1:
        raise InputError("monte_carlo needs n_draws ≥ 1")
    from .hardware import resolve_options

    options = resolve_options(options)
    base_opt = options if seed is None else RealizeOptions(**{**asdict(options),
                                                              "mc_seed": seed})
    if base_opt.mc_seed is None:
        base_opt = RealizeOptions(**{**asdict(base_opt), "mc_seed": 0})
    rz = _Realizer(compiled, base_opt)
    plan = rz.compensate()[0] if base_opt.compensate and rz.topology != "ideal" \
        else rz.nominal_plan()
    parts = rz.parts(plan)
    eA, ex_ = [], []
    for d in range(n_draws):
        rz.opt = RealizeOptions(**{**asdict(base_opt), "mc_draw": d})
        errs = rz.errors(rz.extract(rz.assemble(plan, parts, draw=True, poles=False))[1])
        eA.append(errs["rel_error_A"])
        ex_.append(errs["rel_error_x"])
    eA, ex_ = np.array(eA), np.array(ex_)
    return {"n_draws": n_draws, "seed": base_opt.mc_seed, "tolerance": base_opt.tolerance,
            "series": base_opt.series, "rel_error_A": eA, "rel_error_x": ex_,
            "median_rel_error_A": float(np.median(eA)), "median_rel_error_x": float(np.median(ex_)),
            "p90_rel_error_x": float(np.quantile(ex_, 0.9))}
