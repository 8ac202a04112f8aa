"""The linear system a deck realises: capacitor state space, A_eff = τM, b_eff = τc, κ₀."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from .deck import GROUND, ParsedDeck
from .mna import NoiseSource, build_mna, solve


@dataclass(frozen=True)
class StateSpace:
    """The circuit reduced to its capacitor voltages w (one per capacitor, V(n+) − V(n−)).

    dw/dt = F w + f + B ξ (ξ: independent unit white noises, one per `noise` source);
    node voltages: V = Pz w + rz; capacitors: their names; nodes: all node names.
    """

    capacitors: tuple[str, ...]
    F: np.ndarray
    f: np.ndarray
    B: np.ndarray
    nodes: tuple[str, ...]
    Pz: np.ndarray
    rz: np.ndarray
    Rz_noise: np.ndarray


@dataclass(frozen=True)
class EffectiveSystem:
    """The circuit as an OU process τ dx = −(A x − b) dt + noise, for a chosen τ.

    A = τM, b = τc; noise_cov K = τD/2 (so that dx carries 2K/τ dt: for K = κ₀ I this is
    the model's sqrt(2κ₀τ) dW); kappa0: diag(K) per variable; kappa0_eff: their mean;
    x_dc = A⁻¹b, the stationary mean.
    """

    A: np.ndarray
    b: np.ndarray
    tau_s: float
    noise_cov: np.ndarray
    kappa0: np.ndarray
    kappa0_eff: float
    x_dc: np.ndarray


@dataclass(frozen=True)
class Extracted:
    """The linear system a circuit realises, in the units of x = V(outputs)/v₀.

    outputs: the output nodes (x_i = V(outputs[i]) / volts_per_unit);
    M (N, N) and c (N,), both in 1/s: dx/dt = −M x + c + (noise);
    diffusion D (N, N), x-units²/s: the noise increment over dt has covariance D·dt;
    tau_natural_s: N / trace(M), the τ for which A_eff = τM has unit mean diagonal (callers
    who know the deck's τ, e.g. the sidecar's tau_s, pass it to `as_system`);
    node_gain (n_nodes, N) and node_offset (n_nodes,): the readout map of every node,
    V(nodes[k]) = node_gain[k] @ x + node_offset[k] (volts); it gives initial conditions
    for a transient from x₀;
    noise_sources: the white-noise inputs found; state: the capacitor state space;
    warnings: what the extraction ignored or could not determine.
    """

    outputs: tuple[str, ...]
    volts_per_unit: float
    M: np.ndarray
    c: np.ndarray
    diffusion: np.ndarray
    tau_natural_s: float
    nodes: tuple[str, ...]
    node_gain: np.ndarray
    node_offset: np.ndarray
    noise_sources: tuple[NoiseSource, ...]
    state: StateSpace
    warnings: tuple[str, ...] = ()

    @property
    def n(self) -> int:
        return len(self.outputs)

    @property
    def x_dc(self) -> np.ndarray:
        """The DC (stationary mean) solution M⁻¹c = A_eff⁻¹ b_eff for any τ."""
        return np.linalg.solve(self.M, self.c)

    def as_system(self, tau_s: float | None = None) -> EffectiveSystem:
        """A_eff = τM, b_eff = τc and the noise level for the time unit τ (default: natural)."""
        tau = self.tau_natural_s if tau_s is None else float(tau_s)
        if not (math.isfinite(tau) and tau > 0):
            raise InputError(f"tau_s must be a positive number, got {tau_s!r}")
        A = tau * self.M
        b = tau * self.c
        K = 0.5 * tau * self.diffusion
        k0 = np.diag(K).copy()
        return EffectiveSystem(A=A, b=b, tau_s=tau, noise_cov=K, kappa0=k0,
                               kappa0_eff=float(np.mean(k0)) if k0.size else 0.0,
                               x_dc=np.linalg.solve(A, b))

    def node_voltages(self, x: np.ndarray) -> dict[str, float]:
        """Every node's voltage when the outputs hold x (e.g. for `.ic` from x₀)."""
        v = self.node_gain @ np.asarray(x, dtype=float) + self.node_offset
        return {n: float(val) for n, val in zip(self.nodes, v, strict=True)}


def default_outputs(parsed: ParsedDeck) -> list[str]:
    """The output node of each capacitor, in deck order (the canonical state readout).

    Rule: a capacitor with one terminal at ground reads out at its other terminal (the
    ideal gm-C topology); otherwise it reads out at the terminal that is the output (n+) of a
    voltage-controlled or current-controlled voltage source whose n− is ground, i.e. an
    op-amp integrator's output (dense and factored topologies: `c s o` with `e o 0 0 s`).
    Capacitors of value 0 are ignored. Raises InputError when a capacitor fits neither case
    or two capacitors would share an output node: pass `outputs` explicitly then.
    """
    driven = {el.nodes[0] for el in parsed.elements if el.kind in "eh" and el.nodes[1] == GROUND}
    outs: list[str] = []
    for el in parsed.elements:
        if el.kind != "c" or el.value == 0.0:
            continue
        a, b = el.nodes
        if b == GROUND and a != GROUND:
            out = a
        elif a == GROUND and b != GROUND:
            out = b
        else:
            cand = [n for n in (a, b) if n in driven]
            if len(cand) != 1:
                raise InputError(
                    f"line {el.line}: capacitor {el.name!r} ({a}, {b}) has neither a grounded "
                    "terminal nor exactly one terminal driven by an op-amp (VCVS) output; "
                    "pass the output nodes explicitly")
            out = cand[0]
        if out in outs:
            raise InputError(f"line {el.line}: capacitor {el.name!r} reads out at node "
                             f"{out!r}, already the output of another capacitor; pass the "
                             "output nodes explicitly")
        outs.append(out)
    if not outs:
        raise InputError("the deck has no capacitors, hence no dynamics to extract")
    return outs


def state_space(parsed: ParsedDeck, *, deck_dir: str | Path | None = None,
                noise_step_s: float | None = None) -> tuple[StateSpace, list[NoiseSource],
                                                              list[str]]:
    """The circuit reduced to its capacitor voltages (see `extract_system`)."""
    ckt = build_mna(parsed, caps_as_states=True, deck_dir=deck_dir,
                    noise_step_s=noise_step_s)
    if not ckt.caps:
        raise InputError("the deck has no capacitors, hence no dynamics to extract")
    nc, nn = len(ckt.caps), len(ckt.nodes)
    cap_rows = [nn + ckt.branches.index(c.name) for c in ckt.caps]
    E = np.zeros((ckt.K.shape[0], nc))
    E[cap_rows, np.arange(nc)] = 1.0
    rhs = np.concatenate([E, ckt.s[:, None], ckt.noise_cols], axis=1)
    Z = solve(ckt.K, rhs, ckt.nodes, "state extraction")
    P = Z[cap_rows, :nc]
    r = Z[cap_rows, nc]
    Rn = Z[cap_rows, nc + 1:]
    cvals = np.array([c.value for c in ckt.caps])
    sigma = np.array([np.sqrt(src.intensity) for src in ckt.noise])
    ss = StateSpace(
        capacitors=tuple(c.name for c in ckt.caps),
        F=P / cvals[:, None], f=r / cvals, B=(Rn * sigma[None, :]) / cvals[:, None],
        nodes=tuple(ckt.nodes), Pz=Z[:nn, :nc], rz=Z[:nn, nc],
        Rz_noise=Z[:nn, nc + 1:] * sigma[None, :])
    return ss, ckt.noise, ckt.warnings


def extract_system(parsed: ParsedDeck, outputs: list[str] | None = None,
                   volts_per_unit: float | None = None, *, deck_dir: str | Path | None = None,
                   noise_step_s: float | None = None) -> Extracted:
    """The linear system the circuit realises, by nodal analysis of the deck as written.

    Method. The MNA of the linear circuit reads G z + C dz/dt = s + S ξ (z: node voltages
    and the branch currents of V, E, H sources; ξ: unit white noises). Every capacitor k is
    replaced by a voltage source holding its voltage w_k = V(n+) − V(n−); solving the
    resulting resistive network for unit w_k, for the sources and for each noise input gives
    the capacitor currents q = P w + r + R ξ and every node voltage V = Pz w + rz. This is the
    Kron reduction (Schur complement) of all algebraic unknowns onto the capacitor states:
    C_d dw/dt = q, i.e. dw/dt = F w + f + B ξ with F = C_d⁻¹P, f = C_d⁻¹r.
    The outputs y = V(outputs) = H w + h (H = Pz rows, h = rz rows) must be one per
    capacitor with H invertible; with x = y/v₀:
        dx/dt = −M x + c + Bx ξ,  M = −H F H⁻¹,  c = H (f − F H⁻¹ h)/v₀,  Bx = H B/v₀.
    For a time unit τ the circuit is τ dx = −(A x − b) dt + … with A = τM, b = τc
    (`Extracted.as_system(tau)`); at equilibrium the capacitor currents vanish, so
    M⁻¹c is the DC operating point of the outputs (over v₀).

    Noise. A white current of intensity σ_I² (A²·s: TRNOISE σ_I² = NA²·NT; a filesource
    column of unit-variance samples every NT scaled by amplscale: σ_I² = amplscale²·NT)
    enters the state equation through its column of B (for a noise current straight into an
    integrator's node: σ_I/C_i). In x units the diffusion is D = Bx Bxᵀ (x²/s); for a single
    source into node i of capacitance C_i, D_ii = (σ_I/(C_i v₀))². Matching
    τ dx = … + sqrt(2κ₀τ) dW, whose diffusion is 2κ₀/τ, gives κ₀ = D_ii τ/2 per variable
    (`EffectiveSystem.kappa0`); with the compiler's σ_I = (v₀/R₀)·sqrt(2κ₀τ) and τ = R₀C
    this returns κ₀. Noise that reaches the outputs without passing a capacitor (algebraic
    feed-through) has no finite variance and is only reported in `warnings`.
    No noise sources: D = 0, κ₀ = 0. A filesource's sample period is read from its file
    (needs `deck_dir`) or given as `noise_step_s`; otherwise its intensity is NaN.

    outputs: output node names in variable order (default: `default_outputs`);
    volts_per_unit: v₀ (default 1: x in volts).
    """
    v0 = 1.0 if volts_per_unit is None else float(volts_per_unit)
    if not (math.isfinite(v0) and v0 > 0):
        raise InputError(f"volts_per_unit must be a positive number, got {volts_per_unit!r}")
    if noise_step_s is not None and not (math.isfinite(noise_step_s) and noise_step_s > 0):
        raise InputError(f"noise_step_s must be a positive number, got {noise_step_s!r}")
    ss, noise, notes = state_space(parsed, deck_dir=deck_dir, noise_step_s=noise_step_s)
    outs = default_outputs(parsed) if outputs is None else [str(o).lower() for o in outputs]
    nidx = {n: k for k, n in enumerate(ss.nodes)}
    missing = [o for o in outs if o not in nidx]
    if missing:
        raise InputError(f"output node(s) not in the circuit: {', '.join(missing[:5])}")
    if len(set(outs)) != len(outs):
        raise InputError("output nodes repeat")
    nc = len(ss.capacitors)
    if len(outs) != nc:
        raise InputError(
            f"{len(outs)} output node(s) for {nc} capacitor state(s): the outputs must "
            "determine the state (one per capacitor); use state_space() for the full model")
    rows = [nidx[o] for o in outs]
    H, h = ss.Pz[rows], ss.rz[rows]
    cond = np.linalg.cond(H)
    if not np.isfinite(cond) or cond > 1e12:
        raise InputError(f"the output voltages do not determine the capacitor states "
                         f"(readout condition number {cond:.3g})")
    Hinv = np.linalg.inv(H)
    M = -(H @ ss.F) @ Hinv
    c = H @ (ss.f - ss.F @ (Hinv @ h)) / v0
    Bx = H @ ss.B / v0
    D = Bx @ Bx.T
    trace = float(np.trace(M))
    tau_nat = len(outs) / trace if trace > 0 else float("nan")
    ft = np.abs(ss.Rz_noise[rows])
    ft = ft[np.isfinite(ft)]
    if ft.size and ft.max() > 0:
        ref = np.nanmax(np.abs(H @ ss.B)) * (tau_nat if tau_nat > 0 else 1.0)
        if not ft.max() <= 1e-9 * ref:
            notes.append("some noise reaches the outputs without passing a capacitor "
                            "(feed-through), not included in the diffusion")
    G = ss.Pz @ Hinv
    return Extracted(outputs=tuple(outs), volts_per_unit=v0, M=M, c=c, diffusion=D,
                     tau_natural_s=tau_nat, nodes=ss.nodes, node_gain=G * v0,
                     node_offset=ss.rz - G @ h, noise_sources=tuple(noise), state=ss,
                     warnings=tuple(notes))
