"""Benchmark: size and ngspice speed of the `factored` and `dense` decks of the same F̃.

For F̃ = SᵀS + λI (S: r×N random, λ = 0.1) both topologies are compiled with TRNOISE at
the same noise step h = 0.05/λ_max(F̃) and simulated by the shared back-end. The figure of
merit is seconds per noise step. Each deck runs for `--steps` noise steps (20,000 for the
acceptance case N = 128, r = 16) unless a trial run shows that would exceed `--budget`
seconds: then it runs for as many steps as fit (at least its trial run), and the JSON says so
(the factored deck of the acceptance case always runs all steps). ngspice's
cost per step is constant along a run, so the per-step ratio is the speed-up at any length.

    python -m validation.bench_topologies --out validation/bench
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from spu_circuits.backends import get_backend
from spu_circuits.compiler import compile_system
from spu_circuits.compiler.noise import NoiseSpec
from spu_circuits.simulate import Deck, transient
from spu_circuits.spec import HardwareSpec
from spu_circuits.system import FactoredSystem
from spu_circuits.timesteps import NOISE_STEP_FRAC

CASES = [(32, 8), (32, 32), (128, 8), (128, 16), (128, 32), (512, 8), (512, 32)]
ACCEPTANCE = (128, 16)


def _run(deck: Deck, steps: int, h: float, be) -> float:
    t0 = time.perf_counter()
    transient(deck, np.zeros(len(deck.outputs)), steps * h, steps * h, tmax_tau=h / 4,
              backend=be, timeout_s=3600)
    return time.perf_counter() - t0


def bench_case(n: int, r: int, steps: int, budget: float, be, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    fs = FactoredSystem.from_arrays(rng.standard_normal((r, n)) / np.sqrt(n), 0.1,
                                    rng.standard_normal(n))
    lam_max = float(np.linalg.eigvalsh(fs.A)[-1])
    h = NOISE_STEP_FRAC / lam_max
    spec = HardwareSpec(r_max_ohm=1e12)  # no pruning: both decks realise the same F̃
    out = {"N": n, "r": r, "noise_step_tau": h}
    for topo in ("factored", "dense"):
        c = compile_system(fs, topo, spec, noise=NoiseSpec("trnoise", 0.01, step_tau=h),
                           predict=False)
        deck = Deck.from_compiled(c)
        counts = c.sidecar.element_counts
        trial = 5
        t_trial = _run(deck, trial, h, be)
        if t_trial < 1.0:  # cheap deck: a longer trial amortises the start-up
            trial = 200
            t_trial = _run(deck, trial, h, be)
        per = t_trial / trial
        full = (n, r) == ACCEPTANCE and topo == "factored"  # the acceptance run: all steps
        run_steps = steps if full or per * steps <= budget else max(trial, int(budget / per))
        t = _run(deck, run_steps, h, be) if run_steps != trial else t_trial
        out[topo] = {"element_counts": counts,
                     "resistors": counts.get("resistor", 0),
                     "opamps": counts.get("vcvs", 0),
                     "noise_steps_run": run_steps, "seconds": t,
                     "seconds_per_noise_step": t / run_steps,
                     "truncated": run_steps < steps}
        print(f"  N={n:4d} r={r:3d} {topo:8s}: {counts.get('resistor', 0):7d} R, "
              f"{run_steps:6d} steps in {t:7.2f} s = {1e3 * t / run_steps:8.3f} ms/step"
              + (" (truncated to the budget)" if run_steps < steps else ""), flush=True)
    out["speedup_per_step"] = (out["dense"]["seconds_per_noise_step"]
                               / out["factored"]["seconds_per_noise_step"])
    out["resistor_ratio"] = out["dense"]["resistors"] / out["factored"]["resistors"]
    return out


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for r in sorted({c["r"] for c in results}):
        rows = [c for c in results if c["r"] == r]
        ns = [c["N"] for c in rows]
        axes[0].loglog(ns, [1e3 * c["factored"]["seconds_per_noise_step"] for c in rows],
                       "o-", label=f"factored, r = {r}")
        axes[1].loglog(ns, [c["speedup_per_step"] for c in rows], "o-", label=f"r = {r}")
    rows = [c for c in results if c["r"] == min(c["r"] for c in results)]
    axes[0].loglog([c["N"] for c in rows],
                   [1e3 * c["dense"]["seconds_per_noise_step"] for c in rows], "ks--",
                   label="dense (same F̃)")
    axes[0].set_xlabel("N")
    axes[0].set_ylabel("ngspice ms per noise step")
    axes[0].legend()
    axes[1].axhline(10, color="gray", ls=":", label="10×")
    axes[1].set_yscale("log")
    axes[1].set_xlabel("N")
    axes[1].set_ylabel("dense / factored time per step")
    axes[1].legend()
    fig.suptitle("factored vs dense decks of F̃ = SᵀS + λI (ngspice, TRNOISE)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("validation/bench"))
    ap.add_argument("--steps", type=int, default=20_000)
    ap.add_argument("--budget", type=float, default=60.0,
                    help="seconds per deck before the run is shortened")
    ap.add_argument("--quick", action="store_true", help="N ≤ 128 only")
    ap.add_argument("--replot", action="store_true",
                    help="only redraw the figure from OUT/bench_topologies.json")
    args = ap.parse_args(argv)
    if args.replot:
        doc = json.loads((args.out / "bench_topologies.json").read_text())
        plot(doc["results"], args.out / "bench_topologies.png")
        return
    cases = [c for c in CASES if not args.quick or c[0] <= 128]
    results = []
    with get_backend("shared", timeout_s=3600) as be:
        for n, r in cases:
            results.append(bench_case(n, r, args.steps, args.budget, be))
    acc = next((c for c in results if (c["N"], c["r"]) == ACCEPTANCE), None)
    doc = {"definition": "ngspice (shared back-end) seconds per TRNOISE noise step for the "
                         "factored and dense decks of the same F̃ = SᵀS + λI; speedup = dense/"
                         "factored per step",
           "machine": {"cpu_count": __import__("os").cpu_count(),
                       "platform": platform.platform()},
           "target_noise_steps": args.steps, "budget_s_per_deck": args.budget,
           "results": results,
           "acceptance_N128_r16": None if acc is None else {
               "speedup_per_step": acc["speedup_per_step"],
               "factored_noise_steps_run": acc["factored"]["noise_steps_run"],
               "factored_seconds": acc["factored"]["seconds"],
               "dense_noise_steps_run": acc["dense"]["noise_steps_run"],
               "dense_seconds_extrapolated_to_same_steps":
                   acc["dense"]["seconds_per_noise_step"] * acc["factored"]["noise_steps_run"],
               "passes_10x": acc["speedup_per_step"] >= 10}}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_topologies.json").write_text(json.dumps(doc, indent=1) + "\n")
    plot(results, args.out / "bench_topologies.png")
    print(f"wrote {args.out / 'bench_topologies.json'} and bench_topologies.png")


if __name__ == "__main__":
    main()
