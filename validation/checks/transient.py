"""Check ``transient``: the noiseless transient vs the exact mean trajectory."""

from __future__ import annotations

import numpy as np

from spu_circuits import theory
from spu_circuits.simulate import interp_at, transient
from validation.checks.context import Validation, deterministic_threshold
from validation.checks.results import CheckResult, verdict


def check_transient(v: Validation) -> CheckResult:
    x0 = np.zeros(v.n) if np.linalg.norm(v.x_star) > 0 else np.ones(v.n)
    t_stop = 3.0 * v.T_s
    times = np.geomspace(0.1 * v.T_f, t_stop, 8)
    u, X = transient(v.noiseless(), x0, t_stop, 0.05 * v.T_f, backend=v.backend,
                     timeout_s=v.timeout_s)
    got = interp_at(u, X, times)
    want = theory.transient_mean(v.A, v.b, x0, times)
    scale = max(float(np.linalg.norm(x0 - v.x_star)), float(np.linalg.norm(v.x_star)))
    errs = np.linalg.norm(got - want, axis=1) / scale
    err = float(errs.max())
    thr, why = deterministic_threshold(v, v.settings.transient_floor)
    sel = np.linspace(0, len(u) - 1, min(len(u), 400)).astype(int)
    details = (f"noiseless transient from x₀ = {'0' if x0[0] == 0 else '1'} over {t_stop:.3g} τ "
               f"vs x* + e^(−Au)(x₀ − x*) at {len(times)} times: max relative error {err:.3g} "
               f"(threshold {thr:.3g} = {why})")
    return verdict("transient", {"max rel. error": err}, {"max rel. error": thr}, details,
                    arrays={"times_tau": times, "rel_error": errs},
                    raw={"u": u[sel], "x": X[sel],
                         "exact": theory.transient_mean(v.A, v.b, x0, u[sel])})
