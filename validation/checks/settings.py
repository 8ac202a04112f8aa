"""The sampling plan and pass rules of the checks (:class:`Settings`) and the presets."""

from __future__ import annotations

from dataclasses import dataclass, replace

from spu_circuits.errors import InputError
from spu_circuits.timesteps import VALIDATION_NOISE_STEP_FRAC


@dataclass(frozen=True)
class Settings:
    """Sampling plan and pass rules; times in units of T_s = 1/λ_min(A) unless noted."""

    chains: int = 4
    burn_in: float = 5.0
    batch: float = 10.0
    batches_per_chain: int = 10
    sample_dt: float = 0.05
    lags: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0)
    path_duration: float = 20.0
    #: family-wise false-alarm probability of one statistical check (split over 4 families)
    alpha: float = 1e-3
    #: no z threshold below this (the "4 standard errors" rule)
    z_floor: float = 4.0
    path_rms_max: float = 0.05
    dc_factor: float = 10.0
    dc_floor: float = 1e-9
    #: dc/transient threshold when the sidecar predicts no deviation (compiled without it)
    dc_unknown: float = 1e-3
    transient_floor: float = 1e-4
    #: h = noise_step_frac/λ_max(A) when the validator creates noise sources
    noise_step_frac: float = VALIDATION_NOISE_STEP_FRAC
    #: κ₀ when neither the deck nor the user gives one
    kappa0: float = 1e-2
    seed: int = 0
    #: the engineer's spec: dc and transient fail when the error vs A⁻¹b exceeds it,
    #: whatever the deck predicts of itself (None: only the self-consistency threshold)
    max_error: float | None = None

    def __post_init__(self):
        if (self.chains < 2 or self.batches_per_chain < 1
                or self.chains * self.batches_per_chain < 8):
            raise InputError("statistics need ≥ 2 chains and ≥ 8 batches in all")
        for k in ("burn_in", "batch", "sample_dt", "path_duration", "alpha", "noise_step_frac",
                  "kappa0"):
            if not getattr(self, k) > 0:
                raise InputError(f"setting {k} must be positive")


PRESETS = {
    "quick": Settings(chains=4, burn_in=3.0, batch=10.0, batches_per_chain=6, path_duration=10.0),
    "default": Settings(),
    "thorough": Settings(chains=8, burn_in=5.0, batch=20.0, batches_per_chain=10,
                         path_duration=50.0),
}


def settings_for(preset: str = "default", **changes) -> Settings:
    """A preset ('quick', 'default', 'thorough') with some fields changed."""
    if preset not in PRESETS:
        raise InputError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    return replace(PRESETS[preset], **changes)
