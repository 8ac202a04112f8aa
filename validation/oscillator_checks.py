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
from spu_circuits.simulate import Deck, interp_at

__all__ = ["OscillatorContext", "context", "second_order_statistics"]


# ----------------------------------------------------------------------------- statistics


def _batch_stat(series: np.ndarray, n_batches: int) -> tuple[np.ndarray, np.ndarray, int]:
    c, t = series.shape[:2]
    m = t // n_batches
    if m < 1:
        raise InputError(f"need at least {n_batches} samples per chain, got {t}")
    x = series[:, t - m * n_batches:].reshape(c * n_batches, m, *series.shape[2:])
    bm = x.mean(axis=1)
    return bm.mean(axis=0), bm.std(axis=0, ddof=1) / math.sqrt(bm.shape[0]), bm.shape[0]


def _lagged_batch(d: np.ndarray, lag: int, n_batches: int):
    c, t, n = d.shape
    tl = t - lag
    m = tl // n_batches
    if m < 1:
        raise InputError(f"lag {lag} leaves fewer than {n_batches} samples per chain")
    a = d[:, lag:][:, tl - m * n_batches:].reshape(c * n_batches, m, n)
    z = d[:, :tl][:, tl - m * n_batches:].reshape(c * n_batches, m, n)
    bm = np.einsum("btj,btk->bjk", a, z) / m
    return bm.mean(axis=0), bm.std(axis=0, ddof=1) / math.sqrt(bm.shape[0])


def _critical_z(alpha: float, m: int, dof: int, floor: float) -> float:
    import scipy.stats

    return max(floor, float(scipy.stats.t.isf(alpha / (2.0 * max(m, 1)), dof)))


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
    iu = np.triu_indices(m2)
    ac_est, ac_se, z_ac = [], [], []
    for L, th in zip(lags, ac_th, strict=True):
        e, s = _lagged_batch(d, L, n_batches)
        s = s * infl["products"]
        ac_est.append(e)
        ac_se.append(s)
        z_ac.append((e - th) / np.maximum(s, 1e-300))
    fam = alpha / 4.0
    crit = {"mean": _critical_z(fam, m2, B - 1, z_floor),
            "residual": _critical_z(fam, n, B - 1, z_floor),
            "cov": _critical_z(fam, len(iu[0]), B - 1, z_floor),
            "autocov": _critical_z(fam, m2 * m2 * len(lags), B - 1, z_floor)}
    zs = {"mean": z_mean, "residual": z_res, "cov": z_cov[iu],
          "autocov": np.concatenate([z.ravel() for z in z_ac]) if lags else np.zeros(0)}
    maxz = {k: float(np.max(np.abs(v))) if v.size else 0.0 for k, v in zs.items()}
    rmsz = {k: float(np.sqrt(np.mean(v**2))) if v.size else 0.0 for k, v in zs.items()}
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


# ----------------------------------------------------------------------------- context


@dataclass(frozen=True)
class OscPlan:
    """Sampling plan in units of τ (on the noise grid)."""

    h: float
    dt: float
    burn_in: float
    chain_duration: float
    samples_per_chain: int
    n_batches: int
    lags: list[int]
    path_duration: float
    chains: int


@dataclass
class OscillatorContext:
    """What the oscillator checks share: γ, the velocity nodes, the time scales and the plan."""

    gamma: float
    velocity_nodes: list[str]
    T_slow: float
    T_fast: float
    h: float
    plan: OscPlan


def _meta(v) -> dict:
    return v.deck._need_meta()


def context(v) -> OscillatorContext:
    """The oscillator context of a Validation `v` (cached on it)."""
    ctx = getattr(v, "_osc_ctx", None)
    if ctx is not None:
        return ctx
    meta = _meta(v)
    osc = meta.get("oscillator") or {}
    if "damping_gamma" not in osc or "velocity_nodes" not in osc:
        raise InputError("the sidecar records no oscillator damping γ / velocity nodes "
                         "(compile with --topology oscillator)")
    gamma = float(osc["damping_gamma"])
    vel = [str(x) for x in osc["velocity_nodes"]]
    if len(vel) != v.n:
        raise InputError(f"the sidecar lists {len(vel)} velocity nodes for N = {v.n}")
    r_min = t2.slowest_rate(v.A, gamma)
    T_slow = max(gamma / v.lam_min, 1.0 / r_min)
    T_fast = 1.0 / max(math.sqrt(v.lam_max), gamma)
    s = v.settings
    nz = meta.get("noise") or {}
    given = getattr(v, "_noise_step_given", None)
    h = float(given or nz.get("step_tau") or s.noise_step_frac * T_fast)
    m = max(1, round(s.sample_dt * T_slow / h))
    dt = m * h
    burn = math.ceil(s.burn_in * T_slow / h) * h
    per_batch = max(1, math.ceil(s.batch * T_slow / dt))
    n_samples = per_batch * s.batches_per_chain
    lags = sorted({max(1, round(lag * T_slow / dt)) for lag in s.lags})
    lags = [L for L in lags if L < per_batch] or [1]
    path = math.ceil(s.path_duration * T_slow / h) * h
    plan = OscPlan(h=h, dt=dt, burn_in=burn, chain_duration=n_samples * dt,
                   samples_per_chain=n_samples, n_batches=s.batches_per_chain, lags=lags,
                   path_duration=path, chains=s.chains)
    ctx = OscillatorContext(gamma, vel, T_slow, T_fast, h, plan)
    v._osc_ctx = ctx
    return ctx


def ic_voltages(deck: Deck, y0: np.ndarray) -> dict[str, float]:
    """Initial node voltages from y0 = (x₀, v₀) (2N) through the sidecar's ic_map."""
    m = deck._need_meta()["ic_map"]
    y0 = np.asarray(y0, dtype=float)
    ic = {node: coef * y0[var] for node, var, coef in m["linear"]}
    ic.update({node: val for node, val in m["const"]})
    return ic


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
    from validation.checks.variants import with_noise

    ctx = context(v)
    return with_noise(v.deck, NoiseSpec("file", v.kappa0, step_tau=ctx.h, seed=seed,
                                        duration_tau=duration), v.A,
                      workdir=v.tmpdir / tag, name=f"osc{tag}")


def sample_states(v, deck: Deck, burn_in: float, duration: float, dt: float, y0
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(grid, y) of a noisy run sampled every dt after burn_in (linear interpolation of the
    simulator's points onto the grid; internal step ≤ h/4)."""
    ctx = context(v)
    u, Y = run_states(v, deck, y0, burn_in + duration, min(dt, ctx.h / 4), ctx.h / 4)
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
    return read_noise_files(deck.path.parent, deck.meta)
