"""Batch-means tests of second-order (x, v) samples against the exact theory."""

from __future__ import annotations

import math

import numpy as np

from spu_circuits import theory_second_order as t2
from validation.checks.statistics import _batch_stat, _lagged_batch, family_z, lagged_z

__all__ = ["second_order_statistics"]


def second_order_statistics(Y: np.ndarray, *, A, b, gamma: float, kappa0: float, dt: float,
                            lags: list[int], n_batches: int, h: float | None,
                            alpha: float = 1e-3, z_floor: float = 4.0) -> dict:
    """Test samples Y (chains, T, 2N) of (x, v), taken every dt (τ), against the theory.

    h: the interpolated-noise step (Y on its grid, dt a multiple of h): exact grid theory
    (:func:`~spu_circuits.theory_second_order.interpolated_noise_stationary_cov` / ``_autocov``);
    None: white noise (diag(κ₀A⁻¹, κ₀I), e^{M·lag}Σ). Families of z-scores (estimate −
    theory)/SE, every SE a batch-means SE over B = chains·n_batches batches:
      mean      ȳ_i vs y*_i                      (2N tests: x and v)
      residual  (A x̄ − b)_i vs 0                 (N tests: a wrong coupling into row i shows here)
      cov       Σ̂_ij vs Σ_ij, i ≤ j             (2N(2N+1)/2: x and v marginals and x–v terms)
      autocov   Ĉ_ij(lag) vs C_ij(lag)           ((2N)²·L)
    As in the first-order check: the covariance theory is lowered by Var(ȳ) (the centred
    estimators' bias; long-run covariance −(M⁻¹Σ + ΣM⁻ᵀ)/T per chain), every SE is inflated by
    1/sqrt(1 − (1 − e^{−q})/q) with q = r·L_batch, r = λ_min/γ for means and 2λ_min/γ for products
    (the slowest position's correlation rate, conservative when underdamped), and a family
    passes iff max|z| ≤ t_{B−1}.isf(α/(8m)), at least z_floor.
    """
    Y = np.asarray(Y, dtype=float)
    if Y.ndim != 3:
        raise ValueError("Y must be (chains, T, 2N)")
    A = np.asarray(A, dtype=float)
    C, T, m2 = Y.shape
    n = m2 // 2
    if m2 != 2 * A.shape[0]:
        raise ValueError(f"Y has {m2} coordinates, expected 2N = {2 * A.shape[0]}")
    y_star = t2.stationary_mean(A, b)
    if h is None:
        cov_th = t2.stationary_cov(A, kappa0)
        ac_th = [t2.autocov(A, gamma, kappa0, L * dt) for L in lags]
    else:
        steps = dt / h
        if abs(steps - round(steps)) > 1e-6:
            raise ValueError("dt must be a multiple of the noise step h")
        cov_th = t2.interpolated_noise_stationary_cov(A, gamma, kappa0, h)
        ac_th = [t2.interpolated_noise_autocov(A, gamma, kappa0, h, int(round(L * steps)))
                 for L in lags]
    M = t2.drift_matrix(A, gamma)
    Sig = t2.stationary_cov(A, kappa0)
    Minv_S = np.linalg.solve(M, Sig)
    long_run = -(Minv_S + Minv_S.T)
    var_bar = long_run / (T * dt) / C
    cov_th = cov_th - var_bar
    ac_th = [a - var_bar for a in ac_th]
    lam_min = float(np.linalg.eigvalsh(A)[0])
    r = min(lam_min / gamma, t2.slowest_rate(A, gamma))
    L_batch = (T // n_batches) * dt
    infl = {k: 1.0 / math.sqrt(1.0 - -math.expm1(-f * r * L_batch) / (f * r * L_batch))
            for k, f in (("x", 1.0), ("products", 2.0))}
    mean, mean_se, B = _batch_stat(Y, n_batches)
    mean_se = mean_se * infl["x"]
    z_mean = (mean - y_star) / np.maximum(mean_se, 1e-300)
    R = Y[..., :n] @ A.T - np.asarray(b, dtype=float)
    res, res_se, _ = _batch_stat(R, n_batches)
    res_se = res_se * infl["x"]
    z_res = res / np.maximum(res_se, 1e-300)
    d = Y - Y.reshape(-1, m2).mean(axis=0)
    cov, cov_se = _lagged_batch(d, 0, n_batches)
    corr = (C * T) / (C * T - 1)
    cov, cov_se = corr * cov, corr * cov_se * infl["products"]
    z_cov = (cov - cov_th) / np.maximum(cov_se, 1e-300)
    ac_est, ac_se, z_ac = lagged_z(d, lags, ac_th, n_batches, infl["products"])
    crit, maxz, rmsz = family_z(z_mean, z_res, z_cov, z_ac, n_residual=n, dof=B - 1,
                                alpha=alpha, z_floor=z_floor)
    se_th = np.sqrt(np.maximum(np.diag(long_run) / (C * T * dt), 0.0))
    return {
        "n_batches_total": B, "dof": B - 1, "samples": C * T, "simulated_tau": C * T * dt,
        "x_star": y_star, "mean": mean, "mean_se": mean_se, "z_mean": z_mean,
        "residual": res, "residual_se": res_se, "z_residual": z_res,
        "cov": cov, "cov_se": cov_se, "cov_theory": cov_th, "z_cov": z_cov,
        "lags_samples": list(lags), "lags_tau": [L * dt for L in lags],
        "autocov": ac_est, "autocov_se": ac_se, "autocov_theory": ac_th, "z_autocov": z_ac,
        "critical_z": crit, "max_abs_z": maxz, "rms_z": rmsz, "se_inflation": infl,
        "se_ratio_mean": float(np.median(mean_se[:n] / np.maximum(se_th[:n], 1e-300))),
        "rel_cov_error": float(np.linalg.norm(cov - cov_th) / np.linalg.norm(cov_th)),
        "passed": all(maxz[k] <= crit[k] for k in crit),
    }
