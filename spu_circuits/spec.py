"""Physical parameters of the SPU hardware (the paper's defaults: 1 kΩ, 1 nF, τ = 1 µs)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

from .errors import InputError


@dataclass(frozen=True)
class HardwareSpec:
    """Hardware parameters shared by every compiler pass.

    R0_ohm: unit resistance R₀ (Ω); C_F: integrating capacitor (F); τ = R₀C (s).
    volts_per_unit: v₀, volts per unit of x. r_min_ohm/r_max_ohm: realisable resistor range.
    opamp_gain: open-loop gain of the ideal-VCVS op-amp model. prune_rel: entries with
    |A_ij| < prune_rel·max|A| are dropped (their mass is reported). auto_prune: also drop
    couplings too weak for the resistor range (r_min/r_max·max|A|) instead of failing.
    """

    R0_ohm: float = 1e3
    C_F: float = 1e-9
    volts_per_unit: float = 1.0
    r_min_ohm: float = 100.0
    r_max_ohm: float = 10e6
    opamp_gain: float = 1e6
    prune_rel: float = 0.0
    auto_prune: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.auto_prune, bool):
            raise InputError("hardware spec: auto_prune must be true or false")
        for name in ("R0_ohm", "C_F", "volts_per_unit", "r_min_ohm", "r_max_ohm", "opamp_gain"):
            v = getattr(self, name)
            if isinstance(v, bool) or not (isinstance(v, int | float) and math.isfinite(v)
                                           and v > 0):
                raise InputError(
                    f"hardware spec: {name} must be a positive finite number, got {v!r}")
        if self.r_min_ohm >= self.r_max_ohm:
            raise InputError(
                f"hardware spec: r_min_ohm ({self.r_min_ohm:g}) must be below "
                f"r_max_ohm ({self.r_max_ohm:g})")
        if not (self.r_min_ohm <= self.R0_ohm <= self.r_max_ohm):
            raise InputError(
                f"hardware spec: R0_ohm = {self.R0_ohm:g} Ω lies outside the resistor range "
                f"[{self.r_min_ohm:g}, {self.r_max_ohm:g}] Ω")
        if isinstance(self.prune_rel, bool) or not (0.0 <= self.prune_rel < 1.0):
            raise InputError(f"hardware spec: prune_rel must lie in [0, 1), got {self.prune_rel!r}")

    @property
    def tau_s(self) -> float:
        """Device time constant τ = R₀C in seconds."""
        return self.R0_ohm * self.C_F

    def with_(self, **changes) -> HardwareSpec:
        return replace(self, **changes)

    def to_dict(self) -> dict:
        return asdict(self)
