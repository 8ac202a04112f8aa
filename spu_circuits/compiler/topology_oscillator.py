"""Topology `oscillator`: second-order cells (two op-amp integrators in a loop per variable).

The analog computer's harmonic oscillator, one per variable, coupled through the same resistor
array as `dense` (or the transimpedance stages of `factored` for F̃ = SᵀS + λI). Per cell i:

* velocity integrator: op-amp `eiv{i}` (VCVS, gain G) with virtual ground sv{i}, output
  w{i} = v₀·v_i, capacitor `cv{i}` = C from sv{i} to w{i}. Into sv{i}: the couplings
  R₀/(α|A_ij|) from o{j} (A_ij > 0) or p{j} (A_ij < 0) — or, factored, R₀/(β|S_ki|) from the
  stages plus the λ damping R₀/(αλ) from o{i} —, the bias u{i} = −α v₀ b_i through R₀
  (`rb{i}`), the velocity damping R₀/(αγ) from w{i} (`rg{i}`) and the noise current.
* position integrator: op-amp `eix{i}`, virtual ground sx{i}, output p{i} = −v₀·x_i,
  capacitor `cx{i}` = C from sx{i} to p{i}, input R₀/α from w{i} (`rx{i}`).
* inverter: op-amp `einv{i}` (input node n{i}, R₀ in from p{i}, R₀ feedback): o{i} = v₀·x_i.

KCL at the two virtual grounds (G → ∞), with u = t·α/(R₀C):

    dx/du = v,        dv/du = −(A x − b) − γ v  (+ noise),

the underdamped Langevin dynamics of DESIGN §7. Three op-amps and two capacitors per variable.
Finite gain G is exact in :func:`finite_gain_dc` (dense) and in the parser's nodal analysis.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import CompileError, InputError
from ..netlist import GROUND, Netlist
from ..spec import HardwareSpec
from ..system import FactoredSystem
from .cellmap import Cell, CellMap, Coupling, Role
from .scaling import scale, scale_factored
from .topology import BaseTopology, Builder, Prediction
from .topology_factored import add_factor_couplings

#: a current into the injection node (sv) moves v by this sign (inverting integrator)
NOISE_SIGN = -1.0
#: the largest matrix size for which γ's λ_min is found by a full eigendecomposition
DENSE_EIG_LIMIT = 400


def output_node(i: int) -> str:
    return f"o{i}"


def velocity_node(i: int) -> str:
    return f"w{i}"


def injection_node(i: int) -> str:
    """The velocity integrator's summing node: the noise current for variable i enters here."""
    return f"sv{i}"


def lambda_min(sc) -> float:
    """λ_min of the realised matrix, cheaply: λ + μ_min(SSᵀ) (0 when r < N) for a factored
    system, eigvalsh up to N = 400, else shift-invert Lanczos (scipy eigsh, σ = 0)."""
    if hasattr(sc, "S"):
        r, n = sc.S.shape
        if r < n:
            return float(sc.damping)
        return float(sc.damping + max(np.linalg.eigvalsh(sc.S @ sc.S.T)[0], 0.0))
    A = np.asarray(sc.A, dtype=float)
    if A.shape[0] <= DENSE_EIG_LIMIT:
        return float(np.linalg.eigvalsh(A)[0])
    import scipy.sparse.linalg as spla

    return float(spla.eigsh(A, k=1, sigma=0.0, which="LM", return_eigenvectors=False)[0])


def resolve_gamma(sc, gamma: float | None) -> tuple[float, str]:
    """The damping γ (given, or 2√λ_min(A)) and a word on where it came from."""
    if gamma is None:
        return 2.0 * math.sqrt(lambda_min(sc)), "default 2*sqrt(lambda_min(A))"
    g = float(gamma)
    if not (math.isfinite(g) and g > 0):
        raise InputError(f"--damping-gamma must be a positive number, got {gamma!r}")
    return g, "given"


def _check_range(what: str, r_ohm: float, spec: HardwareSpec) -> None:
    if not (spec.r_min_ohm * (1 - 1e-12) <= r_ohm <= spec.r_max_ohm * (1 + 1e-12)):
        raise CompileError(
            f"the oscillator's {what} needs {r_ohm:.4g} Ω, outside the resistor range "
            f"{spec.r_min_ohm:g}–{spec.r_max_ohm:g} Ω; choose another --damping-gamma or "
            "widen the range")


def build(sc, spec: HardwareSpec, gamma: float) -> tuple[Netlist, CellMap]:
    """The oscillator circuit for `sc` (Scaled: dense couplings; ScaledFactored: stages) and its
    cell map. Cell fields: output o{i} (x), inverted p{i} (−x, the position integrator's
    output), summing sv{i} (the velocity integrator's virtual ground, where couplings, bias and
    noise enter; also `velocity_summing`), capacitor cx{i} / integrator eix{i} (position),
    velocity w{i} and velocity_capacitor cv{i}; sx{i}, n{i}, u{i} are internal nodes."""
    factored = hasattr(sc, "S")
    alpha, b = sc.alpha, sc.b
    n = b.shape[0]
    v0, r0, gain, cap = spec.volts_per_unit, spec.R0_ohm, spec.opamp_gain, spec.C_F
    r_x, r_g = r0 / alpha, r0 / (alpha * gamma)
    _check_range("position-integrator input R0/alpha", r_x, spec)
    _check_range("velocity damping R0/(alpha*gamma)", r_g, spec)
    bld = Builder()
    cells, couplings = [], []
    for i in range(n):
        sv, w, sx, p, m, o, u = (f"sv{i}", f"w{i}", f"sx{i}", f"p{i}", f"n{i}", f"o{i}",
                                 f"u{i}")
        bld.add(Role.INTEGRATOR_OPAMP, f"eiv{i}", (w, GROUND, GROUND, sv), gain)
        bld.add(Role.INTEGRATOR_CAP, f"cv{i}", (sv, w), cap)
        bld.add(Role.DAMPING, f"rg{i}", (w, sv), r_g)
        bld.add(Role.BIAS_SOURCE, f"vb{i}", (u, GROUND), -alpha * v0 * b[i])
        bld.add(Role.BIAS_RESISTOR, f"rb{i}", (u, sv), r0)
        bld.add(Role.INTEGRATOR_OPAMP, f"eix{i}", (p, GROUND, GROUND, sx), gain)
        bld.add(Role.INTEGRATOR_CAP, f"cx{i}", (sx, p), cap)
        bld.add(Role.INTEGRATOR_R_IN, f"rx{i}", (w, sx), r_x)
        bld.add(Role.INVERTER_R_IN, f"rinv{i}", (p, m), r0)
        bld.add(Role.INVERTER_R_FB, f"rfb{i}", (m, o), r0)
        bld.add(Role.INVERTER_OPAMP, f"einv{i}", (o, GROUND, GROUND, m), gain)
        cells.append(Cell(index=i, output=o, summing=sv, capacitor=f"cx{i}", bias=f"vb{i}",
                          inverted=p, integrator=f"eix{i}", inverter=f"einv{i}",
                          bias_resistor=f"rb{i}", velocity=w, velocity_summing=sv,
                          velocity_capacitor=f"cv{i}", inverter_r_in=f"rinv{i}",
                          inverter_r_fb=f"rfb{i}", internal_nodes=(sx, m, u)))
        couplings.append(Coupling("damping", i, i, 1, (f"rg{i}",)))
    stages = []
    if not factored:
        A = sc.A
        for i in range(n):
            for j in range(n):
                a = A[i, j]
                if a != 0.0:
                    src = f"o{j}" if a > 0 else f"p{j}"
                    name = bld.add(Role.COUPLING, f"ra{i}_{j}", (src, f"sv{i}"),
                                   sc.resistance(a, spec))
                    couplings.append(Coupling("A", i, j, 1 if a > 0 else -1, (name,)))
    else:
        more, stages = add_factor_couplings(bld, sc.S, sc.damping, alpha, r0, gain,
                                            lambda i: f"sv{i}")
        couplings += more
    return bld.finish("oscillator", cells, couplings, stages)


def ic_map(sc, spec: HardwareSpec) -> dict:
    """Node voltages for a transient from (x₀, v₀) with `uic`: V = coef·y₀[var] or const,
    var < N indexing x₀ and var ≥ N indexing v₀ (y₀ = (x₀, v₀), 2N)."""
    n, v0, gain = len(sc.b), spec.volts_per_unit, spec.opamp_gain
    c = 1.0 / (1.0 + 2.0 / gain)  # o = −c·p for the inverter
    linear = []
    for i in range(n):
        linear += [[f"o{i}", i, v0], [f"p{i}", i, -v0 / c], [f"sx{i}", i, v0 / (c * gain)],
                   [f"n{i}", i, -v0 / gain],
                   [f"w{i}", n + i, v0], [f"sv{i}", n + i, -v0 / gain]]
    const = [[f"u{i}", -sc.alpha * v0 * float(sc.b[i])] for i in range(n)]
    return {"linear": linear, "const": const}


def finite_gain_dc(A: np.ndarray, b: np.ndarray, alpha: float, gamma: float,
                   spec: HardwareSpec) -> np.ndarray:
    """DC solution x (N,) of the dense oscillator with op-amp gain G, by nodal analysis.

    Capacitors open. Position integrator: no current through rx, so w_i = sx_i = −p_i/G;
    velocity integrator: sv_i = −w_i/G = p_i/G²; inverter: o_i = −c p_i, c = 1/(1 + 2/G).
    KCL at sv_i: Σ_j g_ij (src_j − sv_i) + (u_i − sv_i)/R₀ + g_γ (w_i − sv_i) = 0, src_j = o_j
    (A_ij > 0) or p_j, g_ij = α|A_ij|/R₀, g_γ = αγ/R₀: linear in p; x = o/v₀.
    """
    gain, r0, v0 = spec.opamp_gain, spec.R0_ohm, spec.volts_per_unit
    c = 1.0 / (1.0 + 2.0 / gain)
    g = alpha * np.abs(A) / r0
    g_gam = alpha * gamma / r0
    M = np.where(A > 0, -c * g, g)  # coefficient of p_j in row i (src terms)
    diag = -(g.sum(axis=1) + 1.0 / r0 + g_gam) / gain**2 - g_gam / gain
    M = M + np.diag(diag)
    u = -alpha * v0 * b
    p = np.linalg.solve(M, -u / r0)
    return -c * p / v0


def expected_settling_tau(A: np.ndarray, b: np.ndarray, gamma: float, eps: float = 1e-3
                          ) -> float | None:
    """Analog time (units of τ_eff) for the exact mean from (0, 0) to reach relative error eps;
    None when A⁻¹b = 0."""
    from ..theory_second_order import settling_time

    if not np.any(b):
        return None
    return float(settling_time(A, b, gamma, eps))


def timescales(A: np.ndarray, gamma: float) -> tuple[float, float]:
    """(T_slow, T_fast) in units of τ: T_slow = max(γ/λ_min, 1/r_min) (r_min: the slowest modal
    decay rate), T_fast = 1/max(√λ_max, γ)."""
    from ..theory_second_order import slowest_rate

    w = np.linalg.eigvalsh(A)
    return (max(gamma / float(w[0]), 1.0 / slowest_rate(A, gamma)),
            1.0 / max(math.sqrt(float(w[-1])), gamma))


def sidecar_record(sc, gamma: float, rule: str, cell_map: CellMap) -> dict:
    """The sidecar's `oscillator` record: γ, where it came from, the velocity nodes, the
    resistors it sets and the expected settling time of the exact mean from (0, 0)."""
    t_set = expected_settling_tau(sc.A, sc.b, gamma)
    t_slow, t_fast = timescales(sc.A, gamma)
    return {"damping_gamma": gamma, "gamma_rule": rule,
            "velocity_nodes": [c.velocity for c in cell_map.cells],
            "velocity_summing_nodes": [c.velocity_summing for c in cell_map.cells],
            "lambda_min": lambda_min(sc),
            "T_slow_tau": t_slow, "T_fast_tau": t_fast,
            "expected_settling_tau": t_set,
            "expected_settling_s": None if t_set is None else t_set * sc.tau_s,
            "settling_rule": "last time the exact mean from x0 = 0, v0 = 0 has relative error "
                             "> 1e-3 (ideal elements)",
            "dynamics": "tau dx/dt = v, tau dv/dt = -(A x - b) - gamma v + sqrt(2 gamma kappa0 "
                        "tau) xi",
            "noise_intensity": "the velocity integrators' noise current carries 2*gamma*kappa0 "
                               "(the noise record's kappa0 is kappa0)"}


def add_noise(net: Netlist, side, noise, A: np.ndarray, name: str, gamma: float, *,
              roles: dict[str, str] | None = None):
    """The compiler's noise pass for the velocity integrators: intensity sqrt(2γκ₀τ) (so the
    stationary law keeps κ₀), default step DEFAULT_STEP_FRAC·T_fast. Returns (NoiseRecord,
    files); the record holds κ₀ and the NoiseSpec as given (recompiling reproduces it)."""
    from dataclasses import replace

    from .noise import DEFAULT_STEP_FRAC
    from .noise import add_noise as _add_noise

    if noise.kind == "none":
        return _add_noise(net, side, noise, A, name, NOISE_SIGN, roles=roles)
    step = noise.step_tau
    rule = "given"
    if step is None:
        step = DEFAULT_STEP_FRAC * timescales(A, gamma)[1]
        rule = f"{DEFAULT_STEP_FRAC}/max(sqrt(lambda_max(A)), gamma)"
    rec, files = _add_noise(net, side, replace(noise, kappa0=gamma * noise.kappa0,
                                               step_tau=step), A, name, NOISE_SIGN,
                            roles=roles)
    return replace(rec, kappa0=noise.kappa0, spec=noise, step_rule=rule), files


class OscillatorTopology(BaseTopology):
    """The oscillator as a `Topology` object; `with_gamma(γ)` gives one with a fixed damping
    (None: 2√λ_min(A) of each system). A FactoredSystem compiles with the factored stages."""

    name = "oscillator"
    noise_sign = NOISE_SIGN
    needs_factor = False
    uses_opamps = True

    def __init__(self, gamma: float | None = None) -> None:
        self.gamma = gamma

    def with_gamma(self, gamma: float | None) -> OscillatorTopology:
        return OscillatorTopology(gamma)

    def scale(self, system, spec: HardwareSpec):
        if isinstance(system, FactoredSystem):
            return scale_factored(system, spec)
        return scale(system, spec)

    def damping(self, scaled) -> tuple[float, str]:
        return resolve_gamma(scaled, self.gamma)

    def build(self, scaled, spec: HardwareSpec) -> tuple[Netlist, CellMap]:
        return build(scaled, spec, self.damping(scaled)[0])

    def ic_map(self, scaled, spec: HardwareSpec) -> dict:
        return ic_map(scaled, spec)

    def predict_dc(self, scaled, spec: HardwareSpec, net: Netlist, cell_map: CellMap
                   ) -> Prediction:
        """Closed-form finite-gain nodal analysis (dense); the parser's MNA (factored)."""
        if hasattr(scaled, "S"):
            from ..parser import dc_solution, parse_deck

            volts = dc_solution(parse_deck(net.to_text()))
            x = np.array([volts[o] for o in cell_map.outputs]) / spec.volts_per_unit
        else:
            x = finite_gain_dc(scaled.A, scaled.b, scaled.alpha, self.damping(scaled)[0], spec)
        return Prediction(x, ("finite op-amp gain",))

    def sidecar_extra(self, scaled, spec: HardwareSpec, cell_map: CellMap) -> dict:
        g, rule = self.damping(scaled)
        return {"oscillator": sidecar_record(scaled, g, rule, cell_map)}

    def dynamics_line(self, scaled, spec: HardwareSpec) -> str:
        g = self.damping(scaled)[0]
        return (f"dynamics: tau dx/dt = v, tau dv/dt = -(A x - b) - gamma v, gamma = {g:.6g}, "
                f"tau = R0*C/alpha = {scaled.tau_s:.6g} s (R0 = {spec.R0_ohm:g} ohm, C = "
                f"{spec.C_F:g} F, alpha = {scaled.alpha:.6g}); v_i = V(w<i>)/v0")

    def add_noise(self, net: Netlist, side, noise, A: np.ndarray, name: str, *,
                  roles: dict[str, str] | None = None):
        """The noise pass with the velocity integrators' intensity; γ from the sidecar's
        `oscillator` record."""
        rec = getattr(side, "extra", {}).get("oscillator") or {}
        g = float(rec.get("damping_gamma", 0.0))
        if not g > 0:
            raise InputError("the sidecar records no oscillator damping γ")
        return add_noise(net, side, noise, A, name, g, roles=roles)


TOPOLOGY = OscillatorTopology()

