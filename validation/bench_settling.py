"""Benchmark: analog settling time of the first-order and the second-order (oscillator) SPU.

Both devices solve the same A x = b (A: N×N with eigenvalues log-spaced in [1/κ, 1], so both
share λ_max = 1: the first order's fastest rate and the oscillator's fastest frequency) from
x₀ = 0 (and v₀ = 0). The settling time is the last time the exact mean's relative error
‖m(u) − x*‖/‖x*‖ exceeds ε = 1e-3 (units of τ). The oscillator runs at γ = 2√λ_min. Exact
mean trajectories (closed forms per eigenmode, spu_circuits.theory_second_order) for
κ = 10, 100, 1e3, 1e4; the ratio second/first is fitted to a power of κ (least squares in
log–log). ngspice confirms one point per κ up to 1e3: the noise-free oscillator and dense
decks of a small system (gain 1e9, so the finite-gain offset stays below ε) run from x₀ = 0
and their settling times are read off the simulated trajectories the same way.

    python -m validation.bench_settling --out validation/bench
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from spu_circuits import theory_second_order as t2

KAPPAS = (10.0, 100.0, 1e3, 1e4)
EPS = 1e-3


def system(kappa: float, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A (N, N) with eigenvalues geomspace(1/κ, 1, N) in a random basis, b ~ N(0, I)."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    w = np.geomspace(1.0 / kappa, 1.0, n)
    A = (Q * w) @ Q.T
    A = 0.5 * (A + A.T)
    return A, rng.standard_normal(n)


def exact_point(kappa: float, n: int, seed: int = 0) -> dict:
    A, b = system(kappa, n, seed)
    gamma = t2.default_gamma(1.0 / kappa)
    t1 = t2.first_order_settling_time(A, b, EPS)
    t_2 = t2.settling_time(A, b, gamma, EPS)
    return {"kappa": kappa, "gamma": gamma, "first_order_tau": t1, "second_order_tau": t_2,
            "ratio": t_2 / t1}


def _last_crossing(u: np.ndarray, err: np.ndarray, eps: float) -> float:
    above = np.nonzero(err > eps)[0]
    if above.size == 0:
        return 0.0
    k = int(above[-1])
    if k == u.size - 1:
        return float("inf")
    # linear interpolation of log error between the two samples
    e0, e1 = np.log(err[k]), np.log(max(err[k + 1], 1e-300))
    f = (np.log(eps) - e0) / (e1 - e0) if e1 != e0 else 0.0
    return float(u[k] + f * (u[k + 1] - u[k]))


def spice_point(kappa: float, n: int, t_exact: dict, be, seed: int = 0) -> dict:
    """ngspice settling times of the dense and oscillator decks of the same system."""
    from spu_circuits.compiler import compile_system
    from spu_circuits.simulate import Deck, transient
    from spu_circuits.spec import HardwareSpec
    from spu_circuits.system import LinearSystem

    A, b = system(kappa, n, seed)
    spec = HardwareSpec(opamp_gain=1e9)
    xs = np.linalg.solve(A, b)
    out = {"kappa": kappa, "N": n}
    for topo, key in (("dense", "first_order_tau"), ("oscillator", "second_order_tau")):
        c = compile_system(LinearSystem.from_arrays(A, b), topo, spec)
        deck = Deck.from_compiled(c)
        t_stop = 1.5 * t_exact[key]
        dt = min(0.05, t_stop / 4000) if topo == "oscillator" else min(0.2, t_stop / 4000)
        t0 = time.perf_counter()
        u, X = transient(deck, np.zeros(n), t_stop, dt, tmax_tau=dt, backend=be,
                         timeout_s=1800)
        sec = time.perf_counter() - t0
        err = np.linalg.norm(X - xs, axis=1) / np.linalg.norm(xs)
        out[topo] = {"settling_tau": _last_crossing(u, err, EPS), "exact_tau": t_exact[key],
                     "t_stop_tau": t_stop, "output_step_tau": dt, "points": int(u.size),
                     "seconds": sec, "final_rel_error": float(err[-1])}
        print(f"  ngspice κ={kappa:g} {topo:10s}: settles at {out[topo]['settling_tau']:.4g} τ "
              f"(exact {t_exact[key]:.4g} τ), {sec:.1f} s", flush=True)
    out["ratio"] = out["oscillator"]["settling_tau"] / out["dense"]["settling_tau"]
    return out


def fit_exponent(kappas, ratios) -> float:
    """Slope p of log(ratio) = p·log(κ) + c (least squares)."""
    p, _ = np.polyfit(np.log(kappas), np.log(ratios), 1)
    return float(p)


def plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ex = res["exact"]
    k = np.array([p["kappa"] for p in ex])
    t1 = np.array([p["first_order_tau"] for p in ex])
    t_2 = np.array([p["second_order_tau"] for p in ex])
    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    ax[0].loglog(k, t1, "o-", label="first order (RC integrators)")
    ax[0].loglog(k, t_2, "s-", label="second order (oscillator, γ = 2√λ_min)")
    ax[0].loglog(k, t1[0] * k / k[0], "k:", lw=1, label="∝ κ")
    ax[0].loglog(k, t_2[0] * np.sqrt(k / k[0]), "k--", lw=1, label="∝ √κ")
    for p in res.get("spice", []):
        ax[0].loglog([p["kappa"]], [p["dense"]["settling_tau"]], "x", color="C0", ms=10)
        ax[0].loglog([p["kappa"]], [p["oscillator"]["settling_tau"]], "x", color="C1", ms=10)
    ax[0].set_xlabel("condition number κ (λ_max = 1)")
    ax[0].set_ylabel(f"analog time to rel. error {EPS:g} (τ)")
    ax[0].set_title(f"settling time (lines: exact, N = {res['N']}; ×: ngspice, N = "
                    f"{res.get('spice_N', '-')})", fontsize=9)
    ax[0].legend(fontsize=8)
    r = t_2 / t1
    ax[1].loglog(k, r, "o-", label=f"second/first (fit ∝ κ^{res['fitted_exponent']:.3f})")
    ax[1].loglog(k, r[0] * np.sqrt(k[0] / k), "k--", lw=1, label="∝ 1/√κ")
    for p in res.get("spice", []):
        ax[1].loglog([p["kappa"]], [p["ratio"]], "x", color="C3", ms=10)
    ax[1].axhline(1 / 3, color="grey", lw=0.8, ls=":")
    ax[1].set_xlabel("condition number κ")
    ax[1].set_ylabel("time ratio")
    ax[1].set_title("speed-up of the oscillator")
    ax[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="validation/bench")
    ap.add_argument("--n", type=int, default=32, help="size for the exact points")
    ap.add_argument("--spice-n", type=int, default=4, help="size for the ngspice points")
    ap.add_argument("--spice-max-kappa", type=float, default=1e3)
    ap.add_argument("--no-spice", action="store_true")
    args = ap.parse_args(argv)
    ex = [exact_point(k, args.n) for k in KAPPAS]
    for p in ex:
        print(f"  exact κ={p['kappa']:g}: first {p['first_order_tau']:.4g} τ, second "
              f"{p['second_order_tau']:.4g} τ, ratio {p['ratio']:.4f}", flush=True)
    res = {"benchmark": "settling", "eps": EPS, "N": args.n, "kappas": list(KAPPAS),
           "spectrum": "eigenvalues geomspace(1/kappa, 1, N), random orthogonal basis, "
                       "b ~ N(0, I) (seed 0); x0 = 0, v0 = 0",
           "gamma_rule": "2*sqrt(lambda_min)", "exact": ex,
           "fitted_exponent": fit_exponent([p["kappa"] for p in ex], [p["ratio"] for p in ex]),
           "platform": platform.platform()}
    if not args.no_spice:
        from spu_circuits.backends import get_backend

        be = get_backend("shared", 1800)
        try:
            res["spice"] = []
            res["spice_N"] = args.spice_n
            for k in KAPPAS:
                if k > args.spice_max_kappa:
                    continue
                te = exact_point(k, args.spice_n)
                p = spice_point(k, args.spice_n, te, be)
                p["exact_ratio"] = te["ratio"]
                res["spice"].append(p)
        finally:
            be.close()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_settling.json").write_text(json.dumps(res, indent=1) + "\n")
    plot(res, out / "bench_settling.png")
    print(f"fitted exponent of the ratio: {res['fitted_exponent']:.3f}; wrote "
          f"{out / 'bench_settling.json'}")
    return res


if __name__ == "__main__":
    main()
