"""Sampling throughput: ngspice (cli and shared back-ends, TRNOISE, dense and ideal decks) vs
the torch surrogates, at N = 8, 32, 128.

    python -m validation.bench_sampling --out DIR [--sizes 8,32,128] [--quick]

Definition. Every system is ``random_spd(N, cond=10)`` (λ(A) ∈ [1, 10], T_slow = 1 τ), κ₀ =
0.01, and every sampler delivers the stationary process on a grid of ``DT = 0.1 τ``. The
throughput is **samples per wall-clock second at that fixed interval**, i.e.
``(simulated τ / wall s) / DT``; one sample every DT is ~10 samples per slowest relaxation
time, so independent samples per second are ≈ 1/10 of it. Set-up costs (compiling, eigen/SVD
decompositions, ngspice start) are excluded; the ngspice figure includes the per-run
overhead of one run of `duration` τ (shorter at large N, see DURATIONS).

Samplers:
* ngspice — decks from the compiler's defaults (TRNOISE, noise step 0.05/λ_max = 0.005 τ,
  reltol 1e-6), ``spu_circuits.simulate.sample`` with its default internal step; one chain.
* ``dense_exact`` — ``DenseOU.sample`` with step DT (exact transitions), 1 chain and 64 chains
  (samples of all chains counted);
* ``lowrank_exact`` — ``LowRankOU`` on A = λI + SᵀS (λ = 1, S of rank r = max(2, N/8) scaled
  to λ_max = 10), step DT;
* ``euler_maruyama`` — ``EulerMaruyamaOU`` with δu = 0.1/λ_max (10 steps per sample);
* ``interpolated`` — ``run_interpolated`` on pre-drawn noise at the SPICE noise step
  0.05/λ_max (20 steps per sample), noise drawing included.
Torch runs on one thread (the many small products are fastest there).

Ratios are to the ngspice shared back-end on the same N (dense and ideal decks).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from pathlib import Path

import numpy as np

from spu_circuits.timesteps import NOISE_STEP_FRAC

DT = 0.1
KAPPA0 = 1e-2
COND = 10.0
#: simulated τ per ngspice run (N → duration); N = 128 dense costs ~40 s per τ
DURATIONS = {8: 20.0, 32: 5.0, 128: 0.5}
SURROGATE_SAMPLES = {8: 20000, 32: 20000, 128: 5000}


def _system(n: int):
    from spu_circuits.system import LinearSystem, random_spd

    A = random_spd(n, COND, seed=n)
    b = np.random.default_rng(n + 1).standard_normal(n)
    return LinearSystem.from_arrays(A, b, name=f"bench{n}")


def bench_ngspice(n: int, topology: str, backend, duration: float) -> dict:
    from spu_circuits.compiler import compile_system
    from spu_circuits.compiler.noise import NoiseSpec
    from spu_circuits.simulate import Deck, sample
    from spu_circuits.spec import HardwareSpec

    system = _system(n)
    compiled = compile_system(system, topology, HardwareSpec(r_max_ohm=1e13),
                              noise=NoiseSpec("trnoise", KAPPA0))
    deck = Deck.from_compiled(compiled)
    t0 = time.perf_counter()
    u, X = sample(deck, burn_in_tau=0.0, duration_tau=duration, dt_tau=DT, backend=backend,
                  timeout_s=3600)
    wall = time.perf_counter() - t0
    assert np.all(np.isfinite(X))
    return {"sampler": f"ngspice_{backend.name}_{topology}", "n": n, "simulated_tau": duration,
            "wall_s": wall, "samples_per_s": duration / DT / wall,
            "tau_per_s": duration / wall, "noise_step_tau": compiled.sidecar.noise.step_tau}


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench_surrogates(n: int, n_samples: int) -> list[dict]:
    import torch

    from tngd.surrogate import DenseOU, EulerMaruyamaOU, LowRankOU, run_interpolated

    system = _system(n)
    A = torch.as_tensor(np.array(system.A))
    b = torch.as_tensor(np.array(system.b))
    x0 = torch.linalg.solve(A, b)
    lam_max = float(torch.linalg.eigvalsh(A)[-1])
    gen = torch.Generator().manual_seed(0)
    out = []

    def rec(name, wall, samples, **extra):
        out.append({"sampler": name, "n": n, "wall_s": wall, "samples": samples,
                    "samples_per_s": samples / wall, "tau_per_s": samples * DT / wall, **extra})

    dense = DenseOU(A, b, KAPPA0)
    for chains in (1, 64):
        m = n_samples if chains == 1 else max(200, n_samples // 16)
        w = _timed(lambda c=chains, m=m: dense.sample(x0, DT, m, chains=c, generator=gen))
        rec(f"dense_exact_x{chains}", w, m * chains, chains=chains)
    r = max(2, n // 8)
    S = torch.randn(r, n, generator=gen, dtype=torch.float64)
    S = S * math.sqrt(COND - 1.0) / torch.linalg.svdvals(S)[0]
    low = LowRankOU(S, 1.0, b, KAPPA0)
    w = _timed(lambda: low.sample(low.x_star, DT, n_samples, chains=1, generator=gen))
    rec("lowrank_exact_x1", w, n_samples, rank=r)
    du = 0.1 / lam_max
    thin = int(round(DT / du))
    em = EulerMaruyamaOU(A, b, KAPPA0)
    m = max(100, n_samples // 10)
    w = _timed(lambda: em.sample(x0, du, m * thin, thin=thin, chains=1, generator=gen))
    rec("euler_maruyama_x1", w, m, step_tau=du)
    h = NOISE_STEP_FRAC / lam_max
    k = int(round(DT / h))

    def interp():
        z = torch.randn(m * k + 1, n, generator=gen, dtype=torch.float64)
        return run_interpolated(A, b, KAPPA0, h, z, x0)[::k]

    w = _timed(interp)
    rec("interpolated_x1", w, m, step_tau=h)
    return out


def run(out_dir: Path, sizes: list[int], quick: bool = False) -> dict:
    import torch

    from spu_circuits.backends import get_backend

    out_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    rows = []
    for n in sizes:
        dur = DURATIONS.get(n, 1.0) * (0.25 if quick else 1.0)
        for bname in ("shared", "cli"):
            with get_backend(bname, timeout_s=3600) as be:
                if bname == "shared":  # start the worker outside the timing
                    bench_ngspice(3, "ideal", be, 0.5)
                for topo in ("dense", "ideal"):
                    row = bench_ngspice(n, topo, be, dur)
                    rows.append(row)
                    print(f"N={n:4d} {row['sampler']:22s} {row['samples_per_s']:12.1f} "
                          f"samples/s ({row['wall_s']:.1f} s for {dur:g} τ)", flush=True)
        for row in bench_surrogates(n, SURROGATE_SAMPLES.get(n, 5000) // (4 if quick else 1)):
            rows.append(row)
            print(f"N={n:4d} {row['sampler']:22s} {row['samples_per_s']:12.1f} samples/s",
                  flush=True)
    for row in rows:
        for topo in ("dense", "ideal"):
            ref = next(r for r in rows
                       if r["n"] == row["n"] and r["sampler"] == f"ngspice_shared_{topo}")
            row[f"ratio_to_ngspice_shared_{topo}"] = row["samples_per_s"] / ref["samples_per_s"]
    doc = {"definition": f"samples per wall second on a grid of dt = {DT} τ of the stationary "
                         f"process (random_spd(N, cond={COND:g}), κ₀ = {KAPPA0}); ratios to "
                         "the ngspice shared back-end at the same N",
           "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                       "python": platform.python_version(), "torch": torch.__version__,
                       "torch_threads": 1},
           "results": rows}
    (out_dir / "bench_sampling.json").write_text(json.dumps(doc, indent=1) + "\n")
    plot(rows, out_dir / "bench_sampling.png")
    return doc


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(r["sampler"] for r in rows))
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for k, name in enumerate(names):
        pts = sorted((r["n"], r["samples_per_s"]) for r in rows if r["sampler"] == name)
        ls = "--" if name.startswith("ngspice") else "-"
        ax.plot([p[0] for p in pts], [p[1] for p in pts], ls, marker="o", ms=4,
                color=f"C{k % 10}", label=name)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("N")
    ax.set_ylabel(f"samples / s (dt = {DT} τ)")
    ax.set_title("sampling throughput: ngspice vs torch surrogates (CPU, 1 thread)",
                 fontsize=9)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--sizes", default="8,32,128", help="comma-separated N values")
    ap.add_argument("--quick", action="store_true", help="4× shorter runs")
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    run(Path(args.out), sizes, args.quick)


if __name__ == "__main__":
    main()
