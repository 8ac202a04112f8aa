"""Benchmark: the work of compile + realize + compensate, and the split of one `spice` step.

Measured twice in one invocation: in the tree of commit `--before` (checked out by
`git worktree add` into a temporary folder for the run, then removed) and in the current
tree, each in a fresh interpreter with one BLAS thread (`OMP_NUM_THREADS=1` ...).

1. Compile + realize + compensate, as a ratio to a plain compile of the same system: the
   committed 8×8 example (`spu_circuits.demo.example_system`) and a 32×32 dense SPD system
   (`random_spd(32, 10, seed=32)`, b standard normal, seed 1), dense topology, C = 100 nF,
   realised as the committed hardware decks are (E96 parts of 0.1 %, op-amp A0 = 1e5 with a
   10 MHz GBW macromodel, v₀ for ±10 V rails at κ₀ = 0.01, compensation with trims). Times
   are the median of `--reps` runs of CPU time of the measuring process (`time.process_time`:
   this machine is shared, CPU time is what the work costs; wall times are recorded too).
2. One step of the `spice` solver (`tngd.solvers_spice.SpiceSolver`, factored topology, file
   noise κ₀ = 0.01, one segment of t = 0.25 τ) at N = 200 and 2,000 with r = 8 (S: random signs
   times U(0.5, 1.5)/√N, λ = 0.1), wall time split into compile (`compile_system`), write (the deck
   and sidecar written, and read back by `Deck.load`), ngspice (the back-end's `run`), read
   back (the rest of `transient` and the interpolation) and other (the solver's own work:
   the system, λ_max, ...). The phases are found by wrapping those functions; the JSON
   records which wrappers took effect.

    python -m validation.bench_compile --out validation/bench [--before 4307273] [--reps 5]
        [--rounds 3]   (before and after alternate in --rounds rounds; about 6 minutes)

Writes `bench_compile.json` and `bench_compile.png` under `--out`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: main when issue 10's structural work started (the "before" of this benchmark)
BEFORE_COMMIT = "4307273"
SPICE_SIZES = (200, 2000)
SPICE_RANK = 8
#: segment length of the measured step (τ): ngspice's share scales with it, the rest does not
SPICE_T = 0.25


# ------------------------------------------------------------------------------ measuring
# (runs inside the tree being measured: only public names present in both trees)


def _realize_options():
    from spu_circuits.compiler.realize import RealizeOptions

    return RealizeOptions(series="e96", tolerance=0.001, opamp_gain=1e5, gbw_hz=10e6,
                          v_sat=10.0, kappa0_swing=0.01, n_sigma=4.0, temperature_K=300.0,
                          compensate=True, trim="all")


def _systems():
    import numpy as np

    from spu_circuits.demo import example_system
    from spu_circuits.system import LinearSystem, random_spd

    A = random_spd(32, 10.0, seed=32)
    b = np.random.default_rng(1).standard_normal(32)
    return {"8x8": example_system(), "32x32": LinearSystem.from_arrays(A, b, name="dense32")}


def _timed(fn, reps: int) -> dict:
    cpu, wall = [], []
    for _ in range(reps):
        c0, w0 = time.process_time(), time.perf_counter()
        fn()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    return {"cpu_s": statistics.median(cpu), "wall_s": statistics.median(wall),
            "cpu_all_s": cpu, "wall_all_s": wall}


def measure_realize(reps: int) -> dict:
    from spu_circuits.compiler import compile_system
    from spu_circuits.compiler.realize import realize
    from spu_circuits.spec import HardwareSpec

    spec, opt = HardwareSpec(C_F=100e-9), _realize_options()
    out = {}
    for name, system in _systems().items():
        compile_system(system, "dense", spec)                       # warm caches and imports
        plain = _timed(lambda s=system: compile_system(s, "dense", spec), max(reps, 5) * 3)
        full = _timed(lambda s=system: realize(compile_system(s, "dense", spec), opt), reps)
        out[name] = {"n": system.n, "compile": plain, "compile_realize_compensate": full,
                     "ratio_cpu": full["cpu_s"] / plain["cpu_s"],
                     "ratio_wall": full["wall_s"] / plain["wall_s"]}
    return out


class _Clock:
    """Wall time spent inside wrapped functions, per phase (outermost call only)."""

    def __init__(self):
        self.t: dict[str, float] = {}
        self.hooks: list[str] = []
        self._depth: dict[str, int] = {}

    def wrap(self, owner, attr: str, phase: str, kind: str = "function") -> None:
        raw = owner.__dict__.get(attr) if isinstance(owner, type) else getattr(owner, attr, None)
        if raw is None:
            return
        fn = raw.__func__ if isinstance(raw, classmethod | staticmethod) else raw
        clock = self

        def wrapped(*a, **k):
            clock._depth[phase] = clock._depth.get(phase, 0) + 1
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                clock._depth[phase] -= 1
                if clock._depth[phase] == 0:
                    clock.t[phase] = clock.t.get(phase, 0.0) + time.perf_counter() - t0

        new = classmethod(wrapped) if isinstance(raw, classmethod) else (
            staticmethod(wrapped) if isinstance(raw, staticmethod) else wrapped)
        setattr(owner, attr, new)
        self.hooks.append(f"{getattr(owner, '__name__', owner)}.{attr} -> {phase}")


def measure_spice(sizes) -> dict:
    import numpy as np
    import torch

    import spu_circuits.compiler as compiler
    import spu_circuits.simulate as simulate
    import tngd.solvers_spice as ss
    from tngd.solvers import LinearProblem

    out = {}
    for n in sizes:
        rng = np.random.default_rng(n)
        # entries of one magnitude class (|S_kj| in [0.5, 1.5]/√N): realisable at any N
        S = rng.choice([-1.0, 1.0], (SPICE_RANK, n)) * rng.uniform(0.5, 1.5, (SPICE_RANK, n))
        S /= np.sqrt(n)
        g = rng.standard_normal(n)
        problem = LinearProblem(g=torch.as_tensor(g), damping=0.1, S=torch.as_tensor(S))
        solver = ss.SpiceSolver(t=SPICE_T, kappa0=0.01, topology="factored", seed=0,
                                compute_residual=False, timeout_s=600.0)
        clock = _Clock()
        saved = [(o, a, o.__dict__.get(a) if isinstance(o, type) else getattr(o, a, None))
                 for o, a in ((ss, "compile_system"), (compiler.CompiledCircuit, "write"),
                              (simulate.Deck, "load"), (ss, "transient"), (ss, "interp_at"))]
        try:
            be = solver.backend
            clock.wrap(ss, "compile_system", "compile")
            clock.wrap(compiler.CompiledCircuit, "write", "write")
            clock.wrap(simulate.Deck, "load", "write")
            clock.wrap(ss, "transient", "transient")
            clock.wrap(ss, "interp_at", "read_back")
            clock.wrap(type(be), "run", "ngspice")
            saved.append((type(be), "run", type(be).__dict__.get("run")))
            t0 = time.perf_counter()
            solver.solve(problem)
            total = time.perf_counter() - t0
        except Exception as exc:                    # recorded, the other sizes still run
            out[str(n)] = {"n": n, "error": f"{type(exc).__name__}: {exc}"}
            continue
        finally:
            solver.close()
            for owner, attr, orig in saved:         # unwrap for the next size
                if orig is not None:
                    setattr(owner, attr, orig)
        t = dict(clock.t)
        ngspice = t.get("ngspice", 0.0)
        read_back = max(t.get("transient", 0.0) - ngspice, 0.0) + t.get("read_back", 0.0)
        phases = {"compile": t.get("compile", 0.0), "write": t.get("write", 0.0),
                  "ngspice": ngspice, "read_back": read_back}
        phases["other"] = max(total - sum(phases.values()), 0.0)
        out[str(n)] = {"n": n, "r": SPICE_RANK, "total_s": total, "phases_s": phases,
                       "non_ngspice_s": total - ngspice, "hooks": clock.hooks}
    return out


def measure(reps: int, what: str) -> dict:
    if what == "realize":
        return {"realize": measure_realize(reps)}
    try:
        return {"spice_step": measure_spice(SPICE_SIZES)}
    except Exception as exc:                        # recorded, the other figures stand
        return {"spice_step": {"error": f"{type(exc).__name__}: {exc}"}}


# ------------------------------------------------------------------------------ driver


def _run_tree(tree: Path, reps: int, what: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree), OMP_NUM_THREADS="1",
               OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        dest = fh.name
    try:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--measure", dest,
               "--reps", str(reps), "--what", what]
        subprocess.run(cmd, env=env, cwd=str(tree), check=True)
        return json.loads(Path(dest).read_text())
    finally:
        Path(dest).unlink(missing_ok=True)


def _median_rounds(runs: list[dict]) -> dict:
    """Per system: the run (of the interleaved rounds) with the median compile+realize."""
    out = {}
    for name in runs[0]["realize"]:
        recs = sorted((r["realize"][name] for r in runs),
                      key=lambda x: x["compile_realize_compensate"]["cpu_s"])
        best = dict(recs[len(recs) // 2])
        best["rounds_ratio_cpu"] = [x["ratio_cpu"] for x in recs]
        out[name] = best
    return out


def run(out: Path, before: str, reps: int, spice: bool = True, rounds: int = 3) -> dict:
    rev = subprocess.run(["git", "rev-parse", before], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout.strip()
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, check=True,
                          capture_output=True, text=True).stdout.strip()
    tmp = Path(tempfile.mkdtemp(prefix="bench-before-"))
    tree = tmp / "tree"
    subprocess.run(["git", "worktree", "add", "--detach", "-f", str(tree), rev], cwd=ROOT,
                   check=True, capture_output=True)
    runs_b, runs_a = [], []
    try:
        # interleaved rounds: before, after, before, after, ... (a shared machine's load
        # changes over minutes; both trees see the same load)
        for _ in range(rounds):
            runs_b.append(_run_tree(tree, reps, "realize"))
            runs_a.append(_run_tree(ROOT, reps, "realize"))
        res_before = {"realize": _median_rounds(runs_b)}
        res_after = {"realize": _median_rounds(runs_a)}
        if spice:
            res_before.update(_run_tree(tree, reps, "spice"))
            res_after.update(_run_tree(ROOT, reps, "spice"))
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT,
                       check=False, capture_output=True)
    summary = {}
    for name in res_after["realize"]:
        b, a = res_before["realize"][name], res_after["realize"][name]
        summary[name] = {
            "ratio_before": b["ratio_cpu"], "ratio_after": a["ratio_cpu"],
            "ratio_lower_by": b["ratio_cpu"] / a["ratio_cpu"],
            "compile_realize_cpu_s_before": b["compile_realize_compensate"]["cpu_s"],
            "compile_realize_cpu_s_after": a["compile_realize_compensate"]["cpu_s"],
            "compile_cpu_s_before": b["compile"]["cpu_s"],
            "compile_cpu_s_after": a["compile"]["cpu_s"]}
    report = {
        "benchmark": "compile + realize + compensate vs plain compile; one spice-solver step",
        "before": {"commit": rev, "results": res_before},
        "after": {"commit": head, "worktree_dirty": _dirty(), "results": res_after},
        "summary": summary,
        "reps": reps, "rounds": rounds,
        "timing": "median CPU time (process_time) of the measuring process over `reps` runs, "
                  "one BLAS thread; before and after measured in interleaved rounds, the "
                  "round with the median compile+realize kept; spice step: wall time",
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cpus": os.cpu_count(), "load_avg": list(os.getloadavg())},
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_compile.json").write_text(json.dumps(report, indent=2) + "\n")
    _plot(report, out / "bench_compile.png")
    return report


def _dirty() -> bool:
    st = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                        capture_output=True, text=True).stdout
    return bool(st.strip())


def _plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rb, ra = report["before"]["results"], report["after"]["results"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    ax = axes[0]
    names = list(ra["realize"])
    xs = range(len(names))
    ax.bar([x - 0.2 for x in xs], [rb["realize"][k]["ratio_cpu"] for k in names], 0.4,
           label=f"before ({report['before']['commit'][:7]})", color="#bbbbbb")
    ax.bar([x + 0.2 for x in xs], [ra["realize"][k]["ratio_cpu"] for k in names], 0.4,
           label=f"after ({report['after']['commit'][:7]})", color="#3366aa")
    ax.set_xticks(list(xs), names)
    ax.set_yscale("log")
    ax.set_ylabel("(compile + realize + compensate) / compile  [CPU time]")
    ax.set_title("realisation cost relative to a plain compile")
    ax.legend()
    ax = axes[1]
    phases = ["compile", "write", "ngspice", "read_back", "other"]
    colors = ["#3366aa", "#66aa33", "#aaaaaa", "#cc6633", "#884488"]
    labels, bars = [], []
    for tag, res in (("before", rb), ("after", ra)):
        for n, rec in (res.get("spice_step") or {}).items():
            if isinstance(rec, dict) and "phases_s" in rec:
                labels.append(f"N={n}\n{tag}")
                bars.append(rec["phases_s"])
    bottom = [0.0] * len(bars)
    for ph, col in zip(phases, colors, strict=True):
        vals = [b.get(ph, 0.0) for b in bars]
        ax.bar(range(len(bars)), vals, bottom=bottom, color=col, label=ph)
        bottom = [x + v for x, v in zip(bottom, vals, strict=True)]
    ax.set_xticks(range(len(bars)), labels)
    ax.set_ylabel("wall time (s)")
    ax.set_title(f"one spice-solver step (factored, r = {SPICE_RANK}, t = {SPICE_T:g} τ)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "validation" / "bench")
    ap.add_argument("--before", default=BEFORE_COMMIT, help="commit measured as 'before'")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--no-spice", action="store_true", help="skip the spice-solver step")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved before/after rounds")
    ap.add_argument("--measure", help=argparse.SUPPRESS)
    ap.add_argument("--what", default="realize", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.measure:
        res = measure(args.reps, args.what)
        Path(args.measure).write_text(json.dumps(res))
        return
    rep = run(args.out, args.before, args.reps, spice=not args.no_spice, rounds=args.rounds)
    for name, s in rep["summary"].items():
        print(f"{name}: ratio {s['ratio_before']:.1f} -> {s['ratio_after']:.1f} "
              f"({s['ratio_lower_by']:.2f}x lower); compile+realize CPU "
              f"{s['compile_realize_cpu_s_before']:.3f} -> "
              f"{s['compile_realize_cpu_s_after']:.3f} s")
    for tag in ("before", "after"):
        for n, rec in (rep[tag]["results"].get("spice_step") or {}).items():
            if isinstance(rec, dict) and "phases_s" in rec:
                ph = ", ".join(f"{k} {v:.2f}" for k, v in rec["phases_s"].items())
                print(f"spice step N={n} {tag}: {rec['total_s']:.2f} s ({ph})")
            elif n == "error":
                print(f"spice step {tag}: {rec}")


if __name__ == "__main__":
    main()
