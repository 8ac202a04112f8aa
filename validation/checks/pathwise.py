"""Check ``pathwise``: ngspice and the surrogate integrate the same file-noise samples."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from spu_circuits import theory
from spu_circuits.compiler.noise import read_noise_files
from spu_circuits.errors import InputError
from spu_circuits.simulate import sample
from validation.checks.context import Validation, torch_threads
from validation.checks.results import CheckResult, verdict


def check_pathwise(v: Validation) -> CheckResult:
    import torch

    from tngd.surrogate import run_interpolated

    p, s = v.plan, v.settings
    deck, source = v.file_deck(p.path_duration)
    noise = deck.need_sidecar().noise
    h = float(noise.step_tau)
    kappa0 = float(noise.kappa0)
    u, X = sample(deck, burn_in_tau=0.0, duration_tau=p.path_duration, dt_tau=h,
                  x0=v.x_star, backend=v.backend, tmax_tau=h / 2, timeout_s=v.timeout_s)
    z = noise_samples(read_noise_files(deck.path.parent, noise), len(u))
    with torch_threads(1):
        Y = run_interpolated(torch.as_tensor(v.A), torch.as_tensor(v.b), kappa0, h,
                             torch.as_tensor(z), torch.as_tensor(v.x_star)).numpy()
    sd = np.sqrt(np.diag(theory.stationary_cov(v.A, kappa0)))
    return path_verdict(
        u, X, Y, sd, s.path_rms_max,
        lambda rms, worst: (f"ngspice vs run_interpolated on the same noise samples ({source}), "
                            f"{p.path_duration:.3g} τ from x* at step {h:.3g} τ, κ₀ = "
                            f"{kappa0:g}: RMS difference {100 * rms:.3g} % of the stationary SD "
                            f"(max over coordinates {100 * worst:.3g} %)"))


def noise_samples(z: np.ndarray, k: int) -> np.ndarray:
    """The first k samples of the noise files (K, …); InputError when they hold fewer."""
    if z.shape[0] < k:
        raise InputError(f"the noise files hold {z.shape[0]} samples, {k} needed")
    return z[:k]


def path_verdict(u: np.ndarray, spice: np.ndarray, surrogate: np.ndarray, sd: np.ndarray,
                 rms_max: float, describe: Callable[[float, float], str]) -> CheckResult:
    """The pathwise verdict: ngspice's states (K, M) against the surrogate's on the same
    noise, in units of the stationary SD (M,); passes when the RMS difference ≤ rms_max.
    describe(rms, worst coordinate's rms) → the details line."""
    D = (spice - surrogate) / sd
    rms = float(np.sqrt(np.mean(D**2)))
    per = np.sqrt(np.mean(D**2, axis=0))
    sel = np.linspace(0, len(u) - 1, min(len(u), 800)).astype(int)
    return verdict("pathwise",
                   {"rms diff / SD": rms, "max coord rms diff / SD": float(per.max()),
                    "max abs diff / SD": float(np.abs(D).max())},
                   {"rms diff / SD": rms_max}, describe(rms, float(per.max())),
                   arrays={"rms_per_coordinate": per},
                   raw={"u": u[sel], "spice": spice[sel], "surrogate": surrogate[sel],
                        "sd": sd})
