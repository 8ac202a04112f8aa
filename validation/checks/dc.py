"""Check ``dc``: ``.op`` of the noise-free deck vs A⁻¹b."""

from __future__ import annotations

import numpy as np

from spu_circuits.simulate import solve_op
from validation.checks.context import Validation, deterministic_threshold, predicted_deviation
from validation.checks.results import CheckResult, verdict


def check_dc(v: Validation) -> CheckResult:
    s = v.settings
    pred = predicted_deviation(v)
    x = solve_op(v.noiseless(), v.backend)
    ref = v.x_star
    nref = float(np.linalg.norm(ref))
    err = float(np.linalg.norm(x - ref) / (nref if nref > 0 else 1.0))
    thr, why = deterministic_threshold(v, s.dc_floor)
    metrics = {"rel. error vs A^-1 b": err}
    if pred is not None:
        metrics["predicted deviation"] = pred
    xdc = v.sidecar.predicted.x_dc if v.sidecar.predicted is not None else None
    if xdc is not None and len(xdc) == v.n:
        xdc = np.asarray(xdc, dtype=float)
        metrics["rel. distance to predicted x_dc"] = float(
            np.linalg.norm(x - xdc) / max(float(np.linalg.norm(xdc)), 1e-300))
    details = (f".op of the noise-free deck vs A⁻¹b: relative error {err:.3g} (threshold "
               f"{thr:.3g} = {why})"
               + ("" if nref > 0 else "; A⁻¹b = 0, so the error is absolute"))
    return verdict("dc", metrics, {"rel. error vs A^-1 b": thr}, details,
                    arrays={"x_spice": x, "x_exact": ref})
