"""The headline demo (`make demo`): an analog SPU computes the natural gradient of a model.

1. Compile an 8-variable system into an 8-cell SPU netlist, simulate it in ngspice and print
   the circuit's solution beside numpy.linalg.solve.
2. Train logistic regression on 4 PCA features of scikit-learn's digits (50 parameters) for
   30 steps with TNGD whose natural gradient comes from ngspice simulating the compiled netlist
   at every step; beside it the same run with the torch surrogate (exact OU transitions), exact
   NGD and Adam. Writes some of the decks ngspice ran, a loss plot and metrics; prints a table.

    python -m tngd.demo [--out DIR] [--steps N]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

RUNS = [  # label, optimizer, solver, lr
    ("TNGD, ngspice in the loop", "tngd", "spice", 0.1),
    ("TNGD, torch surrogate (ou-exact)", "tngd", "ou-exact", 0.1),
    ("exact NGD", "ngd", None, 0.1),
    ("Adam (lr 1e-3)", "adam", None, 1e-3),
]


def training(out: Path, steps: int, seed: int = 0) -> list[dict]:
    from tngd.train import train

    common = dict(task="digits", model="logreg", steps=steps, seed=seed, batch_size=32,
                  damping=0.01, t=50.0, n_pca=4, dtype=torch.float64, eval_every=10,
                  quiet=True)
    rows = []
    for label, opt, solver, lr in RUNS:
        kw = {"keep_dir": str(out / "netlists"), "keep_every": 10} if solver == "spice" else None
        print(f"  training: {label} …", flush=True)
        t0 = time.perf_counter()
        m = train(optimizer_name=opt, solver=solver, lr=lr, solver_kwargs=kw, **common)
        rows.append({"label": label, "metrics": m, "wall_s": time.perf_counter() - t0})
    return rows


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    styles = ["-", "--", ":", "-."]
    for row, ls in zip(rows, styles, strict=False):
        steps = [s["step"] for s in row["metrics"]["steps"]]
        loss = [s["loss"] for s in row["metrics"]["steps"]]
        ax.plot(steps, loss, ls, label=row["label"], lw=2)
    ax.set_xlabel("iteration")
    ax.set_ylabel("training loss (batch)")
    ax.set_yscale("log")
    ax.set_title("digits, logistic regression on 4 PCA features (50 parameters)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="spu-tngd headline demo")
    ap.add_argument("--out", type=Path, default=Path("out/demo"))
    ap.add_argument("--steps", type=int, default=30)
    args = ap.parse_args(argv)
    from spu_circuits import demo as circuit_demo
    from spu_circuits.errors import SimulationError, SpuError

    try:
        print("== 1. An 8-cell SPU solves A x = b in ngspice ==")
        circuit_demo.run(args.out / "circuit")
        print(f"\n== 2. TNGD with ngspice in the loop ({args.steps} steps) ==")
        rows = training(args.out, args.steps)
    except SimulationError as exc:
        print(f"error: {exc.details()}", file=sys.stderr)
        return 3
    except SpuError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    ref = rows[1]["metrics"]["steps"]
    print(f"\n  {'method':34s} {'final loss':>10s} {'test acc':>8s} {'s/step':>7s} "
          f"{'max |Δloss| vs surrogate':>24s}")
    for row in rows:
        st = row["metrics"]["steps"]
        dmax = max(abs(a["loss"] - b["loss"]) for a, b in zip(st, ref, strict=True))
        per = st[-1]["time_s"] / len(st)
        print(f"  {row['label']:34s} {st[-1]['loss']:10.4f} {st[-1]['accuracy']:8.3f} "
              f"{per:7.3f} {dmax:24.2e}")
    args.out.mkdir(parents=True, exist_ok=True)
    plot(rows, args.out / "loss.png")
    with open(args.out / "metrics.json", "w") as fh:
        json.dump({r["label"]: r["metrics"] for r in rows}, fh, indent=1)
    kept = sorted((args.out / "netlists").glob("step_*/tngd.cir"))
    print(f"\n  wrote {args.out / 'loss.png'}, {args.out / 'metrics.json'} and {len(kept)} of "
          f"the decks ngspice ran ({', '.join(str(k) for k in kept[:3])}"
          f"{', …' if len(kept) > 3 else ''})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
