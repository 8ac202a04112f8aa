"""Check ``surrogate``: the same statistics for the torch surrogate, interpolated-noise and
exact-transition modes."""

from __future__ import annotations

import numpy as np

from validation.checks.context import Validation, torch_threads
from validation.checks.results import CheckResult, verdict
from validation.checks.statistics import (
    autocov_plot_curves,
    ou_statistics,
    stats_arrays,
    stats_metrics,
)


def surrogate_samples(v: Validation, generator) -> np.ndarray:
    """Interpolated-noise surrogate samples (chains, T, N) on the same plan as SPICE."""
    import torch

    from tngd.surrogate import DenseOU

    p = v.plan
    ou = DenseOU(torch.as_tensor(v.A), torch.as_tensor(v.b), v.kappa0, dtype=torch.float64)
    m = int(round(p.dt / p.h))
    burn_steps = int(round(p.burn_in / p.h))
    total = burn_steps + p.samples_per_chain * m
    x = torch.as_tensor(v.x_star).expand(p.chains, v.n).clone()
    z_last = torch.randn((1, p.chains, v.n), generator=generator, dtype=torch.float64)
    kept, k0, seg = [], 0, 4096
    while k0 < total:
        nseg = min(seg, total - k0)
        z = torch.cat([z_last, torch.randn((nseg, p.chains, v.n), generator=generator,
                                           dtype=torch.float64)])
        xs = ou.run_interpolated(p.h, z, x)
        idx = np.arange(1, nseg + 1)
        k_abs = k0 + idx
        sel = idx[(k_abs > burn_steps) & ((k_abs - burn_steps) % m == 0)]
        if sel.size:
            kept.append(xs[torch.as_tensor(sel)].numpy())
        x, z_last, k0 = xs[-1], z[-1:], k0 + nseg
    return np.concatenate(kept).transpose(1, 0, 2)


def check_surrogate(v: Validation) -> CheckResult:
    with torch_threads(1):
        return _check_surrogate(v)


def _check_surrogate(v: Validation) -> CheckResult:
    import torch

    from tngd.surrogate import DenseOU

    p, s = v.plan, v.settings
    gen = torch.Generator().manual_seed(v.settings.seed)
    Xi = surrogate_samples(v, gen)
    st_i = ou_statistics(Xi, A=v.A, b=v.b, kappa0=v.kappa0, dt=p.dt, lags=p.lags,
                         n_batches=p.n_batches, h=p.h, alpha=s.alpha, z_floor=s.z_floor)
    ou = DenseOU(torch.as_tensor(v.A), torch.as_tensor(v.b), v.kappa0, dtype=torch.float64)
    _, xe = ou.sample(torch.as_tensor(v.x_star), p.dt, p.samples_per_chain,
                      burn_in=int(round(p.burn_in / p.dt)), chains=p.chains, generator=gen)
    Xe = xe.numpy().transpose(1, 0, 2)
    st_e = ou_statistics(Xe, A=v.A, b=v.b, kappa0=v.kappa0, dt=p.dt, lags=p.lags,
                         n_batches=p.n_batches, h=None, alpha=s.alpha, z_floor=s.z_floor)
    details = (f"torch surrogate, same plan as SPICE ({p.chains} chains, B = "
               f"{st_i['n_batches_total']}): interpolated-noise mode (DenseOU.run_interpolated, "
               f"h = {p.h:.3g} τ) vs the interpolated-noise theory — max|z| {max_z_text(st_i)}"
               f"; exact-transition mode (DenseOU.sample, step {p.dt:.3g} τ) vs κ₀A⁻¹ and "
               f"e^(−A·lag)κ₀A⁻¹ — max|z| {max_z_text(st_e)}")
    raw = {"X": Xi, "curves": autocov_plot_curves(v, Xi, True, p.dt), "stats": st_i}
    return surrogate_verdict(st_i, st_e, details, raw)


def max_z_text(st: dict) -> str:
    """'mean 1.23, cov 2.01, …': the largest |z| of each statistic."""
    return ", ".join(f"{k} {z:.2f}" for k, z in st["max_abs_z"].items())


def surrogate_verdict(st_i: dict, st_e: dict, details: str, raw: dict) -> CheckResult:
    """The surrogate check's verdict from the statistics of its interpolated-noise (st_i)
    and exact-transition (st_e) runs: every z within its threshold in both."""
    mi, ti = stats_metrics(st_i, "interp: ")
    me, te = stats_metrics(st_e, "exact: ")
    return verdict("surrogate", mi | me, ti | te, details,
                   arrays={"interp": stats_arrays(st_i, full=False),
                           "exact": stats_arrays(st_e, full=False)},
                   raw=raw)
