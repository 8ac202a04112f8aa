"""spu_circuits.ou_math (one definition for numpy and torch), batch_means and timesteps."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from spu_circuits import ou_math, timesteps
from spu_circuits.batch_means import batch_means, split_batches
from spu_circuits.errors import InputError

A = np.array([0.0, 1e-9, 1e-3, 0.3, 1.0, 7.5, 40.0])
POS = A[1:]


def _both(fn, *args):
    """fn on numpy and on torch float64 inputs; returns both as numpy."""
    out_np = fn(*[a if not isinstance(a, np.ndarray) else a for a in args])
    out_t = fn(*[torch.as_tensor(a) if isinstance(a, np.ndarray) else a for a in args])
    if isinstance(out_np, tuple):
        return [np.asarray(o) for o in out_np], [o.numpy() for o in out_t]
    return np.asarray(out_np), out_t.numpy()


@pytest.mark.parametrize("h", [1e-3, 0.5, 20.0])
def test_numpy_and_torch_agree_to_round_off(h):
    for fn, args in [
        (ou_math.decay, (POS, h)),
        (ou_math.transition_var, (POS, h, 0.3)),
        (ou_math.transition_std, (POS, h, 0.3)),
        (ou_math.stationary_var, (POS, 0.3)),
        (ou_math.interpolated_variance_ratio, (A * h,)),
    ]:
        a, b = _both(fn, *args)
        np.testing.assert_allclose(a, b, rtol=1e-14, atol=0, err_msg=fn.__name__)
    (p0, p1), (q0, q1) = _both(ou_math.interp_coefficients, A * h)
    np.testing.assert_allclose(p0, q0, rtol=1e-14)
    np.testing.assert_allclose(p1, q1, rtol=1e-14)


def test_closed_forms():
    h, k0 = 0.7, 0.3
    np.testing.assert_allclose(ou_math.decay(POS, h), np.exp(-POS * h), rtol=1e-15)
    big = POS[POS >= 1e-3]  # (1 − e^{−2ah}) itself cancels below
    np.testing.assert_allclose(ou_math.transition_var(big, h, k0),
                               k0 * (1 - np.exp(-2 * big * h)) / big, rtol=1e-11)
    assert ou_math.transition_var(np.array([1e-12]), h, k0)[0] == pytest.approx(2 * k0 * h)
    p0, p1 = ou_math.interp_coefficients(np.array([0.0, 0.49, 0.51, 3.0]))
    y = np.array([0.49, 0.51, 3.0])
    np.testing.assert_allclose(p0[1:], (1 - (1 + y) * np.exp(-y)) / y**2, rtol=1e-12)
    np.testing.assert_allclose(p1[1:], (y - 1 + np.exp(-y)) / y**2, rtol=1e-12)
    assert p0[0] == 0.5 and p1[0] == 0.5
    assert ou_math.interpolated_variance_ratio(np.array([0.1]))[0] == pytest.approx(0.952, abs=1e-3)


def test_divided_difference():
    lam = 0.05
    mu = np.array([0.0, 1e-14, 1e-6, 0.5, 10.0])
    q = ou_math.divided_difference(lambda a: np.exp(-3.0 * a), lam, mu)
    assert q[0] == 0.0
    np.testing.assert_allclose(q[3:], (np.exp(-3 * (lam + mu[3:])) - np.exp(-3 * lam)) / mu[3:],
                               rtol=1e-13)
    # tiny μ: the quotient tends to f'(λ), its contribution μ·q stays at round-off
    assert abs(mu[1] * q[1] - (-3 * math.exp(-3 * lam) * mu[1])) < 1e-15
    qt = ou_math.divided_difference(lambda a: torch.exp(-3.0 * a), lam, torch.as_tensor(mu))
    np.testing.assert_allclose(qt.numpy(), q, rtol=1e-14)


def test_batch_means():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 103, 2))
    b = split_batches(x, 10)
    assert b.shape == (30, 10, 2) and np.array_equal(b[0], x[0, 3:13])
    mean, se, B = batch_means(x, 10)
    bm = x[:, 3:].reshape(30, 10, 2).mean(axis=1)
    assert B == 30
    np.testing.assert_allclose(mean, bm.mean(axis=0), rtol=1e-14)
    np.testing.assert_allclose(se, bm.std(axis=0, ddof=1) / math.sqrt(30), rtol=1e-14)
    with pytest.raises(InputError, match="at least n_batches"):
        split_batches(x[:, :5], 10)


def test_step_fractions_reach_the_help_texts():
    from spu_circuits.cli import main as spu_main
    from validation.cli import validate_cmd

    out = CliRunner().invoke(spu_main, ["compile", "--help"]).output
    assert f"{timesteps.NOISE_STEP_FRAC}/lambda_max(A)" in " ".join(out.split())
    out = CliRunner().invoke(validate_cmd, ["--help"]).output
    assert f"{timesteps.VALIDATION_NOISE_STEP_FRAC}/λ_max(A)" in " ".join(out.split())
    from spu_circuits.compiler.noise import DEFAULT_STEP_FRAC
    from validation.checks import Settings

    assert DEFAULT_STEP_FRAC == timesteps.NOISE_STEP_FRAC
    assert Settings().noise_step_frac == timesteps.VALIDATION_NOISE_STEP_FRAC
