"""Check ``statistical``: TRNOISE samples of the deck vs the OU theory (:func:`ou_statistics`)."""

from __future__ import annotations

from validation.checks.context import Validation
from validation.checks.results import CheckResult, verdict
from validation.checks.statistics import (
    autocov_plot_curves,
    ou_statistics,
    stats_arrays,
    stats_metrics,
)


def check_statistical(v: Validation) -> CheckResult:
    p, s = v.plan, v.settings
    X = v.spice_samples()
    st = ou_statistics(X, A=v.A, b=v.b, kappa0=v.kappa0, dt=p.dt, lags=p.lags,
                       n_batches=p.n_batches, h=p.h, alpha=s.alpha, z_floor=s.z_floor)
    metrics, thresholds = stats_metrics(st)
    mz = st["max_abs_z"]
    details = (f"{p.chains} TRNOISE runs ({v._trnoise_source}), each {p.burn_in:.3g} τ burn-in + "
               f"{p.chain_duration:.3g} τ sampled every {p.dt:.3g} τ (B = {st['n_batches_total']} "
               f"batches of {p.chain_duration / p.n_batches:.3g} τ = "
               f"{p.chain_duration / p.n_batches / v.T_s:.3g} T_slow). Theory: A⁻¹b and the exact "
               f"interpolated-noise covariance/autocovariance at h = {p.h:.3g} τ, κ₀ = "
               f"{v.kappa0:g}. max|z|: mean {mz['mean']:.2f}, residual {mz['residual']:.2f}, "
               f"cov {mz['cov']:.2f}, autocov {mz['autocov']:.2f} (lags "
               f"{', '.join(f'{t:.3g}' for t in st['lags_tau'])} τ); Bonferroni thresholds "
               f"(α = {s.alpha:g}, t with {st['dof']} dof): "
               + ", ".join(f"{k} {c:.2f}" for k, c in st["critical_z"].items()))
    raw = {"X": X, "curves": autocov_plot_curves(v, X, True, p.dt), "stats": st}
    return verdict("statistical", metrics, thresholds, details, arrays=stats_arrays(st),
                    raw=raw)
