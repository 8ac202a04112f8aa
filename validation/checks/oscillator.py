"""Cross-checks of an `oscillator` (second-order) deck: ngspice ⇄ exact theory ⇄ torch surrogate.

The state is y = (x, v) (2N): x read at the sidecar's ``outputs``, v at its
``velocity_nodes``. Dynamics (units of the sidecar's τ): dx = v du, dv = −(Ax − b) du − γv du
+ sqrt(2γκ₀) dW with γ the sidecar's ``damping_gamma`` (spu_circuits.theory_second_order).

Time scales: T_slow = max(γ/λ_min, 1/r_min) (r_min the slowest modal decay rate; γ/λ_min is
the correlation time of the slowest mode's position when it is (near-)critically damped, twice
1/r_min), T_fast = 1/max(√λ_max, γ). The validator's noise step is h = noise_step_frac·T_fast.
The plan is the first-order one (presets in units of T_slow) with these scales.

Checks (the same names as for first-order decks):

* ``dc`` — as for every deck (`.op` vs A⁻¹b, threshold from the sidecar's prediction).
* ``transient`` — noiseless run from (x₀, v₀) = (0, x*) (v₀ ≠ 0 exercises the velocity's
  initial condition) vs the exact mean ``y* + e^{Mu}(y₀ − y*)`` at 8 log-spaced times in
  [0.1 T_fast, 3 T_slow] (x and v): max ‖y − m‖/max(‖y₀ − y*‖, ‖x*‖) ≤ 10·d + 1e-4.
* ``pathwise`` — file noise: ngspice and ``run_interpolated2`` integrate the same samples from
  (x*, 0); RMS of the difference over time and the 2N coordinates in units of the stationary
  SD (sqrt(κ₀(A⁻¹)_ii) for x, sqrt(κ₀) for v) ≤ 5 %.
* ``statistical`` — seeded file noise (chain c uses seed settings.seed + 1 + c; never
  TRNOISE), each chain burnt in and cut into batches; :func:`second_order_statistics` tests the
  mean of (x, v), the force residual A x̄ − b, the 2N×2N covariance and the autocovariance at
  the plan's lags against the exact interpolated-noise theory, with batch-means error bars and
  the Bonferroni rule of the first-order check.
* ``surrogate`` — the same statistics for the torch surrogate on the same plan: interpolated
  noise (run_interpolated2, exact interpolated-noise theory) and exact transitions
  (DenseOU2.sample at the sampling interval, white-noise theory diag(κ₀A⁻¹, κ₀I) and
  e^{M·lag}Σ).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from spu_circuits import theory_second_order as t2
from spu_circuits.backends import Tran
from spu_circuits.compiler.noise import NoiseSpec, read_noise_files
from spu_circuits.errors import InputError
from spu_circuits.sidecar import OscillatorRecord
from spu_circuits.simulate import Deck, interp_at
from validation.checks.context import (
    Plan,
    Validation,
    deterministic_threshold,
    make_plan,
    torch_threads,
)
from validation.checks.dc import check_dc
from validation.checks.pathwise import noise_samples, path_verdict
from validation.checks.results import CheckResult, verdict
from validation.checks.statistics import stats_arrays, stats_metrics
from validation.checks.statistics_second_order import second_order_statistics
from validation.checks.surrogate import max_z_text, surrogate_verdict
from validation.checks.variants import with_noise

__all__ = ["OSCILLATOR_CHECKS", "OscillatorContext", "context"]


# ----------------------------------------------------------------------------- context


#: the oscillator's sampling plan is the first-order one (in units of τ, on the noise grid)
OscPlan = Plan


@dataclass
class OscillatorContext:
    """What the oscillator checks share: γ, the velocity nodes, the time scales and the plan."""

    gamma: float
    velocity_nodes: list[str]
    T_slow: float
    T_fast: float
    h: float
    plan: OscPlan


def context(v) -> OscillatorContext:
    """The oscillator context of a Validation `v` (cached on it)."""
    ctx = getattr(v, "_osc_ctx", None)
    if ctx is not None:
        return ctx
    side = v.deck.sidecar
    osc = OscillatorRecord.of(side)
    if osc is None:
        raise InputError("the sidecar records no oscillator damping γ / velocity nodes "
                         "(compile with --topology oscillator)")
    gamma = osc.damping_gamma
    vel = list(osc.velocity_nodes)
    if len(vel) != v.n:
        raise InputError(f"the sidecar lists {len(vel)} velocity nodes for N = {v.n}")
    r_min = t2.slowest_rate(v.A, gamma)
    T_slow = max(gamma / v.lam_min, 1.0 / r_min)
    T_fast = 1.0 / max(math.sqrt(v.lam_max), gamma)
    s = v.settings
    given = getattr(v, "noise_step_given", None)
    h = float(given or side.noise.step_tau or s.noise_step_frac * T_fast)
    plan = make_plan(s, h, T_slow)
    ctx = OscillatorContext(gamma, vel, T_slow, T_fast, h, plan)
    v._osc_ctx = ctx
    return ctx


def ic_voltages(deck: Deck, y0: np.ndarray) -> dict[str, float]:
    """Initial node voltages from y0 = (x₀, v₀) (2N) through the sidecar's ic_map."""
    return deck.ic_voltages(np.asarray(y0, dtype=float))


def run_states(v, deck: Deck, y0, t_stop: float, step: float, tmax: float
               ) -> tuple[np.ndarray, np.ndarray]:
    """Transient of `deck` from y0; returns (u (T,) in τ, y (T, 2N) = (x, v))."""
    ctx = context(v)
    tau = deck.tau_s
    an = Tran(step_s=step * tau, stop_s=t_stop * tau, tmax_s=tmax * tau,
              ic=ic_voltages(deck, y0), uic=True)
    res = v.backend.run(deck.text, an, cwd=deck.cwd, deck_name=str(deck.path or "<deck>"))
    Y = res.voltages(list(deck.outputs) + ctx.velocity_nodes) / deck.volts_per_unit
    return res.time / tau, Y


def file_deck(v, duration: float, seed: int, tag: str) -> Deck:
    """A copy of the deck with file noise of `seed` over `duration` τ at the plan's step."""
    ctx = context(v)
    return with_noise(v.deck, NoiseSpec("file", v.kappa0, step_tau=ctx.h, seed=seed,
                                        duration_tau=duration), v.A,
                      workdir=v.tmpdir / tag, name=f"osc{tag}")


def sample_states(v, deck: Deck, burn_in: float, duration: float, dt: float, y0
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(grid, y) of a noisy run sampled every dt after burn_in (linear interpolation of the
    simulator's points onto the grid; internal step ≤ h/2, as for first-order decks)."""
    ctx = context(v)
    u, Y = run_states(v, deck, y0, burn_in + duration, min(dt, ctx.h / 2), ctx.h / 2)
    grid = burn_in + dt * np.arange(int(np.floor(duration / dt + 1e-9)) + 1)
    grid = grid[grid <= u[-1] * (1 + 1e-12)]
    return grid, interp_at(u, Y, grid)


def spice_samples(v) -> np.ndarray:
    """(chains, T, 2N) seeded file-noise samples on the plan (cached on v)."""
    X = getattr(v, "_osc_X", None)
    if X is not None:
        return X
    ctx = context(v)
    p = ctx.plan
    y0 = t2.stationary_mean(v.A, v.b)
    chains = []
    for c in range(p.chains):
        seed = v.settings.seed + 1 + c
        deck = file_deck(v, p.burn_in + p.chain_duration, seed, f"stat{c}")
        v.log(f"[statistical]   chain {c + 1}/{p.chains}: file noise seed {seed}, "
              f"{p.burn_in + p.chain_duration:.4g} τ at step {p.h:.3g} τ")
        _, Y = sample_states(v, deck, p.burn_in, p.chain_duration, p.dt, y0)
        if Y.shape[0] < p.samples_per_chain + 1:
            raise InputError(f"ngspice returned {Y.shape[0]} samples, expected "
                             f"{p.samples_per_chain + 1}")
        chains.append(Y[1:p.samples_per_chain + 1])
    v._osc_X = np.stack(chains)
    return v._osc_X


def noise_files(deck: Deck) -> np.ndarray:
    return read_noise_files(deck.path.parent, deck.need_sidecar().noise)


def _sd(v, kappa0: float) -> np.ndarray:
    """Stationary SD of (x, v) (2N,)."""
    return np.sqrt(np.diag(t2.stationary_cov(v.A, kappa0)))


# ----------------------------------------------------------------------------- checks


def check_transient(v: Validation) -> CheckResult:
    ctx = context(v)
    n = v.n
    xs = v.x_star
    y0 = np.concatenate([np.zeros(n), xs]) if np.linalg.norm(xs) > 0 else np.ones(2 * n)
    t_stop = 3.0 * ctx.T_slow
    times = np.geomspace(0.1 * ctx.T_fast, t_stop, 8)
    step = 0.05 * ctx.T_fast
    u, Y = run_states(v, v.noiseless(), y0, t_stop, step, 0.01 * ctx.T_fast)
    got = interp_at(u, Y, times)
    want = t2.transient_mean(v.A, v.b, ctx.gamma, y0, times)
    ys = t2.stationary_mean(v.A, v.b)
    scale = max(float(np.linalg.norm(y0 - ys)), float(np.linalg.norm(xs)))
    errs = np.linalg.norm(got - want, axis=1) / scale
    err = float(errs.max())
    thr, why = deterministic_threshold(v, v.settings.transient_floor)
    sel = np.linspace(0, len(u) - 1, min(len(u), 400)).astype(int)
    details = (f"noiseless transient of the oscillator from (x₀, v₀) = "
               f"({'0, x*' if y0[0] == 0 else '1, 1'}) over {t_stop:.3g} τ (γ = "
               f"{ctx.gamma:.4g}) vs the exact mean y* + e^(Mu)(y₀ − y*) of x and v at "
               f"{len(times)} times: max relative error {err:.3g} (threshold {thr:.3g} = {why})")
    return verdict("transient", {"max rel. error": err}, {"max rel. error": thr}, details,
                   arrays={"times_tau": times, "rel_error": errs},
                   raw={"u": u[sel], "x": Y[sel],
                        "exact": t2.transient_mean(v.A, v.b, ctx.gamma, y0, u[sel])})


def check_pathwise(v: Validation) -> CheckResult:
    import torch

    from tngd.surrogate_second_order import run_interpolated2

    ctx = context(v)
    p, s = ctx.plan, v.settings
    deck = file_deck(v, p.path_duration, s.seed, "pathwise")
    y0 = t2.stationary_mean(v.A, v.b)
    u, Y = sample_states(v, deck, 0.0, p.path_duration, p.h, y0)
    z = noise_samples(noise_files(deck), len(u))
    with torch_threads(1):
        Ys = run_interpolated2(torch.as_tensor(v.A), torch.as_tensor(v.b), ctx.gamma,
                               v.kappa0, p.h, torch.as_tensor(z), torch.as_tensor(y0)).numpy()
    return path_verdict(
        u, Y, Ys, _sd(v, v.kappa0), s.path_rms_max,
        lambda rms, worst: (f"ngspice vs run_interpolated2 on the same file-noise samples "
                            f"(seed {s.seed}), {p.path_duration:.3g} τ from (x*, 0) at step "
                            f"{p.h:.3g} τ, κ₀ = {v.kappa0:g}, γ = {ctx.gamma:.4g}: RMS "
                            f"difference {100 * rms:.3g} % of the stationary SD over x and v "
                            f"(max over coordinates {100 * worst:.3g} %)"))


def _curves(v, Y: np.ndarray, dt: float, theory_fn) -> dict:
    """Autocovariance curves for the report: x along the slowest and the fastest eigenvector
    of A (the fastest one oscillates) and v averaged over coordinates, with their theory."""
    from validation.checks.statistics import autocov_curves

    ctx = context(v)
    n = v.n
    _, Q = np.linalg.eigh(v.A)
    P = np.zeros((2 * n, 2 + n))
    P[:n, 0], P[:n, 1] = Q[:, 0], Q[:, -1]
    P[n:, 2:] = np.eye(n)
    max_lag = max(1, min(Y.shape[1] // 4, round(3.0 * ctx.T_slow / dt)))
    lags = np.unique(np.linspace(0, max_lag, 41).round().astype(int))
    emp_all = autocov_curves(Y, dt, int(lags[-1]), P)[lags]
    emp = np.column_stack([emp_all[:, :2], emp_all[:, 2:].mean(axis=1)])
    th = []
    for L in lags:
        C = theory_fn(int(L))
        th.append([P[:, 0] @ C @ P[:, 0], P[:, 1] @ C @ P[:, 1], np.trace(C[n:, n:]) / n])
    return {"lags_tau": lags * dt, "empirical": emp, "theory": np.array(th),
            "labels": ["x, slowest mode", "x, fastest mode", "v, mean over coordinates"]}


def _interp_theory(v, dt: float):
    ctx = context(v)
    steps = int(round(dt / ctx.h))
    return lambda L: t2.interpolated_noise_autocov(v.A, ctx.gamma, v.kappa0, ctx.h, L * steps)


def _stats(v, Y, h):
    ctx = context(v)
    p, s = ctx.plan, v.settings
    return second_order_statistics(Y, A=v.A, b=v.b, gamma=ctx.gamma, kappa0=v.kappa0, dt=p.dt,
                                   lags=p.lags, n_batches=p.n_batches, h=h, alpha=s.alpha,
                                   z_floor=s.z_floor)


def check_statistical(v: Validation) -> CheckResult:
    ctx = context(v)
    p = ctx.plan
    Y = spice_samples(v)
    st = _stats(v, Y, p.h)
    metrics, thresholds = stats_metrics(st)
    mz = st["max_abs_z"]
    details = (f"{p.chains} seeded file-noise runs (seeds {v.settings.seed + 1}–"
               f"{v.settings.seed + p.chains}), each {p.burn_in:.3g} τ burn-in + "
               f"{p.chain_duration:.3g} τ sampled every {p.dt:.3g} τ (B = "
               f"{st['n_batches_total']} batches of {p.chain_duration / p.n_batches:.3g} τ = "
               f"{p.chain_duration / p.n_batches / ctx.T_slow:.3g} T_slow, T_slow = "
               f"{ctx.T_slow:.3g} τ). State (x, v), 2N = {2 * v.n}; theory: y* = (A⁻¹b, 0) and "
               f"the exact interpolated-noise covariance/autocovariance at h = {p.h:.3g} τ, "
               f"κ₀ = {v.kappa0:g}, γ = {ctx.gamma:.4g}. max|z|: mean {mz['mean']:.2f}, "
               f"residual {mz['residual']:.2f}, cov {mz['cov']:.2f}, autocov {mz['autocov']:.2f} "
               f"(lags {', '.join(f'{t:.3g}' for t in st['lags_tau'])} τ); thresholds "
               + ", ".join(f"{k} {c:.2f}" for k, c in st["critical_z"].items()))
    raw = {"X": Y, "curves": _curves(v, Y, p.dt, _interp_theory(v, p.dt)), "stats": st}
    return verdict("statistical", metrics, thresholds, details, arrays=stats_arrays(st),
                   raw=raw)


def surrogate_samples(v, generator) -> np.ndarray:
    """Interpolated-noise surrogate samples (chains, T, 2N) on the plan."""
    import torch

    from tngd.surrogate_second_order import run_interpolated2

    ctx = context(v)
    p = ctx.plan
    m = int(round(p.dt / p.h))
    burn = int(round(p.burn_in / p.h))
    total = burn + p.samples_per_chain * m
    z = torch.randn((total + 1, p.chains, v.n), generator=generator, dtype=torch.float64)
    y0 = torch.as_tensor(t2.stationary_mean(v.A, v.b))
    Y = run_interpolated2(torch.as_tensor(v.A), torch.as_tensor(v.b), ctx.gamma, v.kappa0,
                          p.h, z, y0).numpy()
    idx = burn + m * np.arange(1, p.samples_per_chain + 1)
    return Y[idx].transpose(1, 0, 2)


def check_surrogate(v: Validation) -> CheckResult:
    with torch_threads(1):
        return _check_surrogate(v)


def _check_surrogate(v: Validation) -> CheckResult:
    import torch

    from tngd.surrogate_second_order import DenseOU2

    ctx = context(v)
    p = ctx.plan
    gen = torch.Generator().manual_seed(v.settings.seed)
    Yi = surrogate_samples(v, gen)
    st_i = _stats(v, Yi, p.h)
    dev = DenseOU2(torch.as_tensor(v.A), torch.as_tensor(v.b), ctx.gamma, v.kappa0)
    _, ye = dev.sample(dev.y_star, p.dt, p.samples_per_chain,
                       burn_in=int(round(p.burn_in / p.dt)), chains=p.chains, generator=gen)
    Ye = ye.numpy().transpose(1, 0, 2)
    st_e = _stats(v, Ye, None)
    details = (f"torch second-order surrogate on the plan ({p.chains} chains, B = "
               f"{st_i['n_batches_total']}, γ = {ctx.gamma:.4g}): interpolated noise "
               f"(run_interpolated2, h = {p.h:.3g} τ) vs its exact theory — max|z| "
               f"{max_z_text(st_i)}; exact transitions (DenseOU2.sample, step {p.dt:.3g} τ) vs "
               f"diag(κ₀A⁻¹, κ₀I) and e^(M·lag)Σ — max|z| {max_z_text(st_e)}")
    raw = {"X": Yi, "curves": _curves(v, Yi, p.dt, _interp_theory(v, p.dt)), "stats": st_i}
    return surrogate_verdict(st_i, st_e, details, raw)


#: the checks of an oscillator deck, by the names of the first-order ones
OSCILLATOR_CHECKS = {
    "dc": check_dc,
    "transient": check_transient,
    "pathwise": check_pathwise,
    "statistical": check_statistical,
    "surrogate": check_surrogate,
}

