"""The noise source as a hardware engineer specifies it: a current noise density and a band.

A white current noise of one-sided density i_n (A/√Hz, the datasheet convention: the power
in a band Δf is i_n²·Δf) flat up to a bandwidth B (Hz) is, for a circuit much slower than B,
a white current of intensity σ_I = i_n/√2 (A·√s; autocorrelation σ_I² δ(t), two-sided PSD
σ_I²). The noise pass writes σ_I = (α v₀/R₀)·sqrt(2κ₀τ) (DESIGN.md §3), so the source means

    κ₀ = σ_I² R₀² / (2 τ α² v₀²) = i_n² R₀² / (4 τ α² v₀²),

and, sampled at the Nyquist rate of its band, its step is NT = 1/(2B) (piecewise-linear
samples every NT; their spectrum is flat to ~B). The band must cover the circuit: NT at most
the compiler's default step NOISE_STEP_FRAC/λ_max(A) (in τ), i.e. B ≥ λ_max/(2·frac·τ);
otherwise the source is coloured within the circuit's own band and κ₀ means nothing.

Reference circuit (`reference_circuit`): a seeded pseudo-random DAC source: an LFSR/PRNG
(seed = the deck's noise seed) feeds a DAC updated at 2B, one per integrator, its output
through a series resistor R_n into the summing node (a virtual ground): I = V_DAC/R_n,
the samples' RMS current σ_I/√NT, so R_n = V_RMS·√NT/σ_I for a DAC of RMS voltage V_RMS
(R_n to a virtual ground does not change A; it does raise the op-amp's noise gain, which
the sizing ignores). The `file` noise
kind writes exactly those samples (Gaussian; an LFSR DAC's uniform samples have the same
spectrum and, for a circuit much slower than B, the same Gaussian limit).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from ..errors import InputError
from ..timesteps import NOISE_STEP_FRAC
from ..units import parse_quantity

_DENSITY_UNIT = re.compile(r"/\s*(rt|√|sqrt\(?)\s*hz\)?\s*$", re.IGNORECASE)
#: RMS voltage of the reference DAC source (V; 4σ = 4 V fits a ±5 V DAC); the series
#: resistor R_n = REFERENCE_V_RMS / I_rms, whose own Johnson noise is reported beside
REFERENCE_V_RMS = 1.0
BOLTZMANN = 1.380649e-23


def parse_density(text: str) -> float:
    """'1.2pA/rtHz' (also A/√Hz, A/sqrt(Hz)) → A/√Hz; a clear InputError otherwise."""
    s = str(text).strip()
    m = _DENSITY_UNIT.search(s)
    if not m:
        raise InputError(f"--noise-density {text!r}: give a current noise density with its "
                         "unit, e.g. 1.2pA/rtHz (or pA/√Hz)")
    return parse_quantity(s[:m.start()], "A", what="--noise-density", require_unit=True)


@dataclass(frozen=True)
class NoiseSource:
    """A source of density `density_A_rtHz` flat to `bandwidth_Hz` on a deck of time unit
    `tau_s`, scale α, v₀ and R₀: the κ₀ and step (in τ) it means."""

    density_A_rtHz: float
    bandwidth_Hz: float
    kappa0: float
    step_tau: float
    sigma_I: float          # A·√s (two-sided intensity)
    min_bandwidth_Hz: float

    def to_json(self) -> dict:
        return {"density_A_rtHz": self.density_A_rtHz, "bandwidth_Hz": self.bandwidth_Hz,
                "kappa0": self.kappa0, "step_tau": self.step_tau, "sigma_I": self.sigma_I,
                "min_bandwidth_Hz": self.min_bandwidth_Hz,
                "convention": "one-sided density i_n (A/sqrt(Hz)); sigma_I = i_n/sqrt(2); "
                              "kappa0 = i_n^2 R0^2/(4 tau alpha^2 v0^2); NT = 1/(2B)",
                "reference_circuit": reference_circuit(self)}


def noise_source(density_A_rtHz: float, bandwidth_Hz: float, *, tau_s: float, alpha: float,
                 v0_V: float, R0_ohm: float, lambda_max: float) -> NoiseSource:
    """The κ₀ and step of a density/bandwidth source on a deck (see the module doc); an
    InputError when the band does not cover the circuit's fastest mode."""
    for v, what in ((density_A_rtHz, "--noise-density"), (bandwidth_Hz, "--noise-bandwidth")):
        if not (math.isfinite(v) and v > 0):
            raise InputError(f"{what} must be positive, got {v!r}")
    b_min = lambda_max / (2.0 * NOISE_STEP_FRAC * tau_s)
    if bandwidth_Hz < b_min * (1 - 1e-12):
        raise InputError(f"--noise-bandwidth {bandwidth_Hz:.4g} Hz does not cover the "
                         f"circuit: its fastest mode (lambda_max {lambda_max:.4g} / tau "
                         f"{tau_s:.4g} s) needs >= {b_min:.4g} Hz for the source to be white")
    sigma = density_A_rtHz / math.sqrt(2.0)
    k0 = sigma ** 2 * R0_ohm ** 2 / (2.0 * tau_s * alpha ** 2 * v0_V ** 2)
    return NoiseSource(density_A_rtHz, bandwidth_Hz, k0, 1.0 / (2.0 * bandwidth_Hz * tau_s),
                       sigma, b_min)


def reference_circuit(src: NoiseSource, temperature_K: float = 300.0) -> str:
    """One line for the BOM: the seeded pseudo-random DAC source that makes this noise
    (one channel per integrator; R_n sized for REFERENCE_V_RMS at the DAC)."""
    fs = 2.0 * src.bandwidth_Hz
    i_rms = src.sigma_I * math.sqrt(fs)                   # sample RMS current (A)
    r_n = REFERENCE_V_RMS / i_rms
    johnson = math.sqrt(4 * BOLTZMANN * temperature_K / r_n)
    return (f"seeded pseudo-random DAC per integrator, update {fs:.4g} Hz, "
            f"{REFERENCE_V_RMS:g} V RMS through {r_n:.4g} ohm into the summing node "
            f"({src.density_A_rtHz:.3g} A/rtHz to {src.bandwidth_Hz:.4g} Hz; R_n's own Johnson "
            f"noise {johnson:.2g} A/rtHz at {temperature_K:g} K)")
