"""Scaling pass: prune tiny couplings and choose the global scale α so every resistor fits.

The circuit realises α·A: a coupling A_ij becomes a resistor R₀/(α|A_ij|) (or a VCCS of
α·A_ij/R₀ siemens, whose equivalent resistance obeys the same range). The scale only speeds
up or slows down the dynamics: the effective time unit is τ/α, recorded as `tau_s`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import CompileError
from ..spec import HardwareSpec
from ..system import FactoredSystem, LinearSystem


@dataclass(frozen=True)
class Scaled:
    """Output of the scaling pass.

    A: the pruned matrix (N, N) the circuit will realise (before α); b: (N,);
    alpha: global scale; tau_s: effective time unit τ/α (s);
    pruned: number of off-diagonal entries dropped (counted once per symmetric pair);
    pruned_rel_mass: ‖A − A_pruned‖_F / ‖A‖_F.
    """

    A: np.ndarray
    b: np.ndarray
    alpha: float
    tau_s: float
    pruned: int
    pruned_rel_mass: float

    def resistance(self, a_ij: float, spec: HardwareSpec) -> float:
        """Resistor (Ω) realising the coupling a_ij."""
        return spec.R0_ohm / (self.alpha * abs(a_ij))


def prune(A: np.ndarray, rel: float) -> tuple[np.ndarray, int, float]:
    """Drop off-diagonal |A_ij| < rel·max|A|. Returns (A_pruned, pairs dropped, relative mass)."""
    if rel <= 0:
        return A.copy(), 0, 0.0
    thresh = rel * np.max(np.abs(A))
    off = ~np.eye(A.shape[0], dtype=bool)
    drop = off & (np.abs(A) < thresh) & (A != 0)
    Ap = np.where(drop, 0.0, A)
    mass = float(np.linalg.norm(A - Ap) / np.linalg.norm(A))
    return Ap, int(drop.sum() // 2), mass


def scale(system: LinearSystem, spec: HardwareSpec) -> Scaled:
    """Prune, check positive definiteness survives, and pick α (1 when the values already fit).

    Couplings weaker than (r_min/r_max)·max|A| cannot be realised next to the strongest one;
    with `spec.auto_prune` they are dropped (and reported), otherwise CompileError.
    """
    A0 = system.A
    rel = spec.prune_rel
    a_max = float(np.max(np.abs(A0)))
    mags = np.abs(A0[A0 != 0])
    span_limit = spec.r_max_ohm / spec.r_min_ohm
    if a_max / float(mags.min()) > span_limit:
        if not spec.auto_prune:
            raise CompileError(
                f"A's nonzero entries span a ratio of {a_max / mags.min():.3g} "
                f"({mags.min():.3g} to {a_max:.3g}), more than the resistor range "
                f"{spec.r_min_ohm:g}–{spec.r_max_ohm:g} Ω can realise (ratio "
                f"{span_limit:.3g}); prune small entries (--prune) or widen the range")
        rel = max(rel, (1.0 + 1e-9) / span_limit)
    A, n_pruned, mass = prune(A0, rel)
    if n_pruned:
        try:
            np.linalg.cholesky(A)
        except np.linalg.LinAlgError:
            raise CompileError(
                f"pruning at {rel:.3g}·max|A| dropped {n_pruned} couplings and left A "
                "not positive definite; use a smaller --prune or a wider resistor range"
            ) from None
    mags = np.abs(A[A != 0])
    a_max, a_min = float(mags.max()), float(mags.min())
    if a_max / a_min > span_limit * (1 + 1e-9):
        raise CompileError(
            f"A's diagonal spans a ratio of {a_max / a_min:.3g}, more than the resistor range "
            f"{spec.r_min_ohm:g}–{spec.r_max_ohm:g} Ω can realise; rescale the system")
    r0 = spec.R0_ohm
    # resistor range: r_min ≤ R0/(α a) ≤ r_max for all nonzero a
    alpha_hi = r0 / (spec.r_min_ohm * a_max)   # smallest resistor stays ≥ r_min
    alpha_lo = r0 / (spec.r_max_ohm * a_min)   # largest resistor stays ≤ r_max
    alpha = min(max(1.0, alpha_lo), alpha_hi)
    return Scaled(A=A, b=system.b.copy(), alpha=float(alpha), tau_s=spec.tau_s / alpha,
                  pruned=n_pruned, pruned_rel_mass=mass)


@dataclass(frozen=True)
class ScaledFactored:
    """Scaling-pass output for F̃ = SᵀS + λI: pruned S (r, N), λ, b, α (β = √α per array)."""

    S: np.ndarray
    damping: float
    b: np.ndarray
    alpha: float
    tau_s: float
    pruned: int
    pruned_rel_mass: float

    @property
    def A(self) -> np.ndarray:
        """The F̃ realised (pruned S), (N, N)."""
        return self.S.T @ self.S + self.damping * np.eye(self.S.shape[1])


def scale_factored(system: FactoredSystem, spec: HardwareSpec) -> ScaledFactored:
    """Prune S and pick α so that R₀/(αλ) and every R₀/(√α|S_kj|) lie in the spec's range."""
    S0 = system.S
    span_limit = spec.r_max_ohm / spec.r_min_ohm
    S, n_pruned, mass = S0.copy(), 0, 0.0
    nz = np.abs(S0[S0 != 0])
    if nz.size:
        s_max = float(nz.max())
        rel = spec.prune_rel
        if s_max / float(nz.min()) > span_limit:
            if not spec.auto_prune:
                raise CompileError(
                    f"S's nonzero entries span a ratio of {s_max / nz.min():.3g}, more than "
                    f"the resistor range can realise (ratio {span_limit:.3g}); prune small "
                    "entries (--prune) or widen the range")
            rel = max(rel, (1.0 + 1e-9) / span_limit)
        if rel > 0:
            drop = (np.abs(S0) < rel * s_max) & (S0 != 0)
            S = np.where(drop, 0.0, S0)
            n_pruned = int(drop.sum())
            mass = float(np.linalg.norm(S0 - S) / np.linalg.norm(S0))
    r0, lam = spec.R0_ohm, system.damping
    lo = [r0 / (spec.r_max_ohm * lam)]
    hi = [r0 / (spec.r_min_ohm * lam)]
    nz = np.abs(S[S != 0])
    if nz.size:
        lo.append((r0 / (spec.r_max_ohm * float(nz.min()))) ** 2)
        hi.append((r0 / (spec.r_min_ohm * float(nz.max()))) ** 2)
    a_lo, a_hi = max(lo), min(hi)
    if a_lo > a_hi * (1 + 1e-12):
        raise CompileError(
            f"damping λ = {lam:.3g} and max|S| = {float(nz.max()) if nz.size else 0:.3g} "
            f"need resistors beyond the range {spec.r_min_ohm:g}–{spec.r_max_ohm:g} Ω at "
            "any scale; rescale S or λ, or widen the range")
    alpha = min(max(1.0, a_lo), a_hi)
    return ScaledFactored(S=S, damping=lam, b=system.b.copy(), alpha=float(alpha),
                          tau_s=spec.tau_s / alpha, pruned=n_pruned, pruned_rel_mass=mass)
