"""Default time steps, as fractions of the fastest relaxation time 1/λ_max(A) (units of τ).

The one place these numbers live: the compiler, the simulators, the validator, the `spice`
solver of the training loop and the command-line help all read them from here. A step
``h = FRAC / λ_max(A)`` puts ``y = λ_max h = FRAC`` on the fastest mode; for linearly
interpolated noise that mode's stationary variance is ``r(y) ≈ 1 − y/2`` of the white-noise
value κ₀/a (:func:`spu_circuits.ou_math.interpolated_variance_ratio`), slower modes closer to 1.
"""

from __future__ import annotations

#: Noise step NT of a compiled deck (and of the `spice` solver's noise files) when none is
#: given: the fastest mode's stationary variance is 2.5 % low (r(0.05) = 0.975), which the
#: exact interpolated-noise theory accounts for.
NOISE_STEP_FRAC = 0.05

#: Noise step at which the white-noise theory κ₀A⁻¹ itself holds to 0.5 % (r(0.01) = 0.995):
#: :func:`spu_circuits.theory.default_noise_step`.
WHITE_NOISE_STEP_FRAC = 0.01

#: Noise step of the sources the validator creates: the fastest mode's variance is 9.5 % low,
#: compared against the exact interpolated-noise theory; ngspice's cost is ∝ 1/h.
VALIDATION_NOISE_STEP_FRAC = 0.2

#: Bound on ngspice's internal step (``.tran`` tmax) of the simulators: the trapezoidal rule's
#: error on the fastest mode is (λδ)²/12 ≈ 1e-5 at this step (also at most a quarter of the
#: noise step, see :func:`spu_circuits.simulate.default_tmax_tau`).
INTERNAL_STEP_FRAC = 0.01

#: Internal step bound of the `spice` solver in the training loop: twice the simulators' (error
#: ≈ 3e-5 on the fastest mode, below the device noise TNGD runs with), half the ngspice time.
TRAINING_INTERNAL_STEP_FRAC = 0.02

__all__ = [
    "INTERNAL_STEP_FRAC",
    "NOISE_STEP_FRAC",
    "TRAINING_INTERNAL_STEP_FRAC",
    "VALIDATION_NOISE_STEP_FRAC",
    "WHITE_NOISE_STEP_FRAC",
]
