"""The settling benchmark's exact part (fast): the oscillator needs ≤ 1/3 of the first order's
analog time at κ = 100 and the ratio falls with κ like κ^(−1/2)."""

from __future__ import annotations

import numpy as np

from validation.bench_settling import KAPPAS, exact_point, fit_exponent


def test_second_order_settles_sqrt_kappa_faster():
    pts = [exact_point(k, 8) for k in KAPPAS]
    by = {p["kappa"]: p for p in pts}
    assert by[100.0]["ratio"] <= 1 / 3
    ratios = [p["ratio"] for p in pts]
    assert all(a > b for a, b in zip(ratios, ratios[1:], strict=False))
    p = fit_exponent(KAPPAS, ratios)
    assert -0.6 < p < -0.4
    # first order ∝ κ (slope ≈ 1), second order ∝ √κ (slope ≈ 1/2)
    k = np.log(KAPPAS)
    assert abs(np.polyfit(k, np.log([q["first_order_tau"] for q in pts]), 1)[0] - 1) < 0.05
    assert abs(np.polyfit(k, np.log([q["second_order_tau"] for q in pts]), 1)[0] - 0.5) < 0.1
