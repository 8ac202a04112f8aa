"""Shared statistics of the stochastic checks: batch means, z-scores, Bonferroni thresholds,
the OU test families (:func:`ou_statistics`) and the autocovariance curves of the report."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import scipy.stats

from spu_circuits import theory
from spu_circuits.batch_means import batch_mean_se, batch_means, split_batches
from spu_circuits.errors import InputError

if TYPE_CHECKING:
    from validation.checks.context import Validation


def _batch_stat(series: np.ndarray, n_batches: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Batch-means estimate and SE of E[series]; series (C, T, ...) → (mean, se, B)."""
    return batch_means(series, n_batches)


def _lagged_batch(d: np.ndarray, lag: int, n_batches: int):
    """Batch-means estimate and SE of Cov(x_{t+lag}, x_t) from centred d (C, T, N)."""
    tl = d.shape[1] - lag
    if tl // n_batches < 1:
        raise InputError(f"lag {lag} leaves fewer than {n_batches} samples per chain")
    a = split_batches(d[:, lag:], n_batches)
    z = split_batches(d[:, :tl], n_batches)
    return batch_mean_se(np.einsum("btj,btk->bjk", a, z) / a.shape[1])


def lagged_z(d: np.ndarray, lags, theory, n_batches: int, inflation: float
             ) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """Per lag: the batch-means autocovariance of the centred chains d (C, T, M), its SE
    (times the SE inflation) and its z-scores against `theory` (one (M, M) per lag)."""
    est, se, z = [], [], []
    for L, th in zip(lags, theory, strict=True):
        e, s = _lagged_batch(d, L, n_batches)
        s = s * inflation
        est.append(e)
        se.append(s)
        z.append(_zscores(e, th, s))
    return est, se, z


def family_z(z_mean: np.ndarray, z_res: np.ndarray, z_cov: np.ndarray, z_ac: list[np.ndarray],
             *, n_residual: int, dof: int, alpha: float, z_floor: float
             ) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """The four families (mean, residual, upper triangle of the covariance, autocovariance),
    each at level alpha/4 with a Bonferroni critical |z| over its size: (critical, max |z|,
    RMS z) by family."""
    m = z_mean.size
    iu = np.triu_indices(m)
    zs = {"mean": z_mean, "residual": z_res, "cov": z_cov[iu],
          "autocov": np.concatenate([z.ravel() for z in z_ac]) if z_ac else np.zeros(0)}
    sizes = {"mean": m, "residual": n_residual, "cov": len(iu[0]),
             "autocov": m * m * len(z_ac)}
    crit = {k: critical_z(alpha / 4.0, sizes[k], dof, z_floor) for k in zs}
    maxz = {k: float(np.max(np.abs(v))) if v.size else 0.0 for k, v in zs.items()}
    rmsz = {k: float(np.sqrt(np.mean(v**2))) if v.size else 0.0 for k, v in zs.items()}
    return crit, maxz, rmsz


def _zscores(est, ref, se):
    se = np.asarray(se, dtype=float)
    tiny = 1e-300
    return (np.asarray(est) - np.asarray(ref)) / np.maximum(se, tiny)


def _fun_sym(A: np.ndarray, fw: np.ndarray) -> np.ndarray:
    """Q diag(fw) Qᵀ for A = Q diag(w) Qᵀ (fw given on A's ascending eigenvalues)."""
    _, Q = np.linalg.eigh(A)
    return (Q * fw) @ Q.T


def critical_z(alpha: float, m: int, dof: int, floor: float) -> float:
    """Bonferroni threshold: two-sided Student-t (dof) quantile at α/(2m), at least `floor`."""
    return max(floor, float(scipy.stats.t.isf(alpha / (2.0 * max(m, 1)), dof)))


def ou_statistics(X: np.ndarray, *, A, b, kappa0: float, dt: float, lags: list[int],
                  n_batches: int, h: float | None, alpha: float = 1e-3,
                  z_floor: float = 4.0) -> dict:
    """Test samples X (chains, T, N), taken every dt (τ), against the OU theory.

    h: the interpolated-noise step (X on its grid, dt a multiple of h) — theory from
    ``interpolated_noise_stationary_cov``/``_autocov``; None: white noise (κ₀A⁻¹, e^{−A·lag}Σ).
    lags: autocovariance lags in samples. Each chain is cut into n_batches batches (B =
    chains·n_batches batch means in all) and every SE is a batch-means SE.

    Four families of z-scores (estimate − theory)/SE:
      mean      x̄_i vs (A⁻¹b)_i                                 (N tests)
      residual  (A x̄ − b)_i vs 0                                 (N tests)
      cov       Σ̂_ij vs Σ_ij, i ≤ j                              (N(N+1)/2 tests)
      autocov   Ĉ_ij(lag) vs C_ij(lag), all i, j and lags        (N²·L tests)
    Two refinements keep the false-alarm rate at α (calibrated on the surrogate): the
    covariance/autocovariance theory is lowered by Var(x̄) (the centred estimators' expected
    bias, O(1/(λT)), which otherwise shows as z ≈ −0.1 on every entry), and every SE is
    inflated by 1/sqrt(1 − (1 − e^{−x})/x), x = λ_min·L_batch for x and 2λ_min·L_batch for
    products (the batch-means SE of an exponentially correlated series of rate λ is low by
    that factor: 5 % at x = 10).
    The residual family is the whitened mean test: Cov(A x̄) ≈ (2κ₀/T) I, so its coordinates
    are independent and a fault in row i of the realised A (a wrong coupling resistor into
    node i) concentrates in residual_i — the most powerful way to see it, where the plain
    mean spreads the same shift over A⁻¹'s column. Rule: each family gets α/4 and within a
    family Bonferroni over its m tests: pass iff max|z| ≤ t_{B−1}.isf(α/(8m)) (Student t, as
    the SE comes from B batch means), and never below z_floor (4). With independent batches
    the false-alarm probability of the whole check is ≤ α.
    """
    X = np.asarray(X, dtype=float)
    if X.ndim != 3:
        raise ValueError("X must be (chains, T, N)")
    A = np.asarray(A, dtype=float)
    b = np.asarray(b, dtype=float)
    C, T, n = X.shape
    x_star = theory.stationary_mean(A, b)
    if h is None:
        cov_th = theory.stationary_cov(A, kappa0)
        ac_th = [theory.autocov(A, kappa0, L * dt) for L in lags]
    else:
        steps = dt / h
        if abs(steps - round(steps)) > 1e-6:
            raise ValueError("dt must be a multiple of the noise step h")
        cov_th = theory.interpolated_noise_stationary_cov(A, kappa0, h)
        ac_th = [theory.interpolated_noise_autocov(A, kappa0, h, int(round(L * steps)))
                 for L in lags]
    w = np.linalg.eigvalsh(A)
    # (1) the centred estimators average (x − x̄)(x − x̄)ᵀ: their expectation under H0 is the
    # theory minus Var(x̄), the variance of the pooled mean of C chains of length T_c
    t_chain = T * dt
    y = w * t_chain
    var_bar = _fun_sym(A, 2.0 * kappa0 / (w**2 * t_chain) * (1.0 - -np.expm1(-y) / y)) / C
    cov_th = cov_th - var_bar
    ac_th = [m - var_bar for m in ac_th]
    # (2) finite batches: for a mode of rate λ a batch of length L keeps only
    # 1 − (1 − e^{−λL})/(λL) of the long-run variance of its mean, so the batch-means SE runs
    # low; inflate by the slowest mode's factor (λ_min for x, 2λ_min for products) —
    # exact for the slowest mode, conservative for the others
    L_batch = (T // n_batches) * dt
    infl = {k: 1.0 / math.sqrt(1.0 - -math.expm1(-r * w[0] * L_batch) / (r * w[0] * L_batch))
            for k, r in (("x", 1.0), ("products", 2.0))}
    mean, mean_se, B = _batch_stat(X, n_batches)
    mean_se = mean_se * infl["x"]
    z_mean = _zscores(mean, x_star, mean_se)
    R = X @ A.T - b
    res, res_se, _ = _batch_stat(R, n_batches)
    res_se = res_se * infl["x"]
    z_res = _zscores(res, 0.0, res_se)
    cov, cov_se = theory.batch_cov_se(X, n_batches)
    cov_se = cov_se * infl["products"]
    z_cov = _zscores(cov, cov_th, cov_se)
    d = X - X.reshape(-1, n).mean(axis=0)
    ac_est, ac_se, z_ac = lagged_z(d, lags, ac_th, n_batches, infl["products"])
    crit, maxz, rmsz = family_z(z_mean, z_res, z_cov, z_ac, n_residual=n, dof=B - 1,
                                alpha=alpha, z_floor=z_floor)
    # diagnostic: batch-means SE of the mean vs the theoretical long-run SE sqrt(2κ₀(A⁻²)_ii/T)
    t_total = C * T * dt
    ainv = np.linalg.inv(A)
    se_th = np.sqrt(np.maximum(np.diag(2.0 * kappa0 * ainv @ ainv) / t_total, 0.0))
    rel_cov_err = float(np.linalg.norm(cov - cov_th) / np.linalg.norm(cov_th))
    return {
        "n_batches_total": B, "dof": B - 1, "samples": C * T, "simulated_tau": t_total,
        "x_star": x_star, "mean": mean, "mean_se": mean_se, "z_mean": z_mean,
        "residual": res, "residual_se": res_se, "z_residual": z_res,
        "cov": cov, "cov_se": cov_se, "cov_theory": cov_th, "z_cov": z_cov,
        "lags_samples": list(lags), "lags_tau": [L * dt for L in lags],
        "autocov": ac_est, "autocov_se": ac_se, "autocov_theory": ac_th, "z_autocov": z_ac,
        "critical_z": crit, "max_abs_z": maxz, "rms_z": rmsz, "se_inflation": infl,
        "se_ratio_mean": float(np.median(mean_se / np.maximum(se_th, 1e-300))),
        "rel_cov_error": rel_cov_err,
        "passed": all(maxz[k] <= crit[k] for k in crit),
    }


def stats_metrics(st: dict, prefix: str = "") -> tuple[dict, dict]:
    metrics, thresholds = {}, {}
    for fam in ("mean", "residual", "cov", "autocov"):
        metrics[f"{prefix}max|z| {fam}"] = st["max_abs_z"][fam]
        thresholds[f"{prefix}max|z| {fam}"] = st["critical_z"][fam]
    for fam in ("mean", "residual", "cov", "autocov"):
        metrics[f"{prefix}rms z {fam}"] = st["rms_z"][fam]
    metrics[f"{prefix}rel. cov error"] = st["rel_cov_error"]
    metrics[f"{prefix}batch/theory SE of mean"] = st["se_ratio_mean"]
    metrics[f"{prefix}batches"] = st["n_batches_total"]
    return metrics, thresholds


def _round(a, digits: int = 6):
    """Floats, arrays or lists of them rounded to `digits` significant digits."""
    if isinstance(a, list | tuple):
        return [_round(v, digits) for v in a]
    if np.ndim(a) == 0:
        return float(f"{float(a):.{digits}g}")
    return np.vectorize(lambda v: float(f"{v:.{digits}g}"), otypes=[float])(np.asarray(a))


def stats_arrays(st: dict, full: bool = True) -> dict:
    """The per-entry numbers for report.json (6 significant digits): vectors in full, matrices
    as their upper triangle (row-major, i ≤ j), autocovariances as their diagonal and the
    largest |z| per lag. full=False keeps only the z-scores."""
    iu = np.triu_indices(len(st["x_star"]))
    out = {"z_mean": st["z_mean"], "z_residual": st["z_residual"],
           "z_cov_upper": st["z_cov"][iu], "lags_tau": st["lags_tau"],
           "max_abs_z_autocov_per_lag": [float(np.abs(z).max()) for z in st["z_autocov"]]}
    if full:
        out |= {k: st[k] for k in ("x_star", "mean", "mean_se", "residual", "residual_se")}
        out |= {f"{k}_upper": st[k][iu] for k in ("cov", "cov_se", "cov_theory")}
        out |= {f"{k}_diag": [np.diag(m) for m in st[k]]
                for k in ("autocov", "autocov_se", "autocov_theory", "z_autocov")}
    return {k: _round(v) for k, v in out.items()}


def autocov_curves(X: np.ndarray, dt: float, max_lag: int, Q: np.ndarray) -> np.ndarray:
    """Empirical autocovariance of the projections y = X Q (C, T, K) at lags 0..max_lag
    (samples), pooled over chains: (max_lag + 1, K)."""
    Y = np.asarray(X) @ Q
    Y = Y - Y.reshape(-1, Y.shape[-1]).mean(axis=0)
    T = Y.shape[1]
    out = []
    for L in range(max_lag + 1):
        out.append(np.mean(Y[:, L:] * Y[:, :T - L], axis=(0, 1)))
    return np.array(out)


def autocov_plot_curves(v: Validation, X: np.ndarray, interpolated: bool, dt: float) -> dict:
    """Autocovariance decay curves (slowest/fastest eigenvector and the mean over
    coordinates) with their theory, for the report's plot."""
    w, Q = np.linalg.eigh(v.A)
    proj = np.column_stack([Q[:, 0], Q[:, -1]])
    max_lag = max(1, min(X.shape[1] // 4, round(3.0 * v.T_s / dt)))
    lags = np.unique(np.linspace(0, max_lag, 31).round().astype(int))
    emp_all = autocov_curves(X, dt, int(lags[-1]), np.column_stack([proj, np.eye(v.n)]))[lags]
    emp = np.column_stack([emp_all[:, :2], emp_all[:, 2:].mean(axis=1)])
    th = []
    for L in lags:
        if interpolated:
            C = theory.interpolated_noise_autocov(v.A, v.kappa0, v.h, int(round(L * dt / v.h)))
        else:
            C = theory.autocov(v.A, v.kappa0, L * dt)
        th.append([proj[:, 0] @ C @ proj[:, 0], proj[:, 1] @ C @ proj[:, 1],
                   np.trace(C) / v.n])
    return {"lags_tau": lags * dt, "empirical": emp, "theory": np.array(th),
            "labels": ["slowest mode", "fastest mode", "mean over coordinates"]}
