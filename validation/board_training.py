"""TNGD on the programmable board: logistic regression on digits with ngspice in the loop.

    python -m validation.board_training [--out validation/board] [--steps 20]

The task of `netlists/factored_digits.*` (3 PCA features, N = 40 parameters, empirical Fisher
of batches of 4: S is 4×40, λ = 0.01, t = 50τ, lr 0.1, float64): TNGD whose natural gradient
comes from one factored MDAC board (N = 40, r = 4, range 1) re-programmed every step with
`round` codes, at 8, 10 and 12 bits, in ngspice (`spice-board`) and in the quantised surrogate
(`board-surrogate`: the extractor's A_eff, b_eff of the same codes, exact OU transition);
beside them the float surrogate (`ou-exact`) and exact NGD. Writes training.json, training.md
and training.png (loss curves).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from spu_circuits.figures import png_bytes

BITS = (8, 10, 12)


def run(steps: int) -> list[dict]:
    import tngd.solvers_board as sb
    from tngd.train import train

    common = dict(task="digits", model="logreg", steps=steps, seed=0, batch_size=4,
                  damping=0.01, t=50.0, n_pca=3, dtype=torch.float64, eval_every=steps,
                  quiet=True, fisher="empirical", lr=0.1)
    runs = [("exact NGD", "ngd", None, None), ("TNGD float surrogate (ou-exact)", "tngd",
                                                "ou-exact", None)]
    for b in BITS:
        runs += [(f"TNGD board {b}-bit, ngspice", "tngd", "spice-board", b),
                 (f"TNGD board {b}-bit, quantised surrogate", "tngd", "board-surrogate", b)]
    rows = []
    for label, opt, solver, bits in runs:
        print(f"  {label} …", flush=True)
        kw = {"bits": bits} if bits else None
        t0 = time.perf_counter()
        m = train(optimizer_name=opt, solver=solver, solver_kwargs=kw, **common)
        wall = time.perf_counter() - t0
        row = {"label": label, "solver": solver, "bits": bits, "wall_s": wall,
               "loss": [s["loss"] for s in m["steps"]],
               "final_loss": m["steps"][-1]["loss"],
               "final_accuracy": m["steps"][-1].get("accuracy")}
        if bits:
            inst = sb.INSTANCES[-1]
            tm = inst.timings
            row["program_s_per_step"] = float(np.mean([t["program_s"] for t in tm]))
            if solver == "spice-board":
                row["spice_s_per_step"] = float(np.mean([t["spice_s"] for t in tm]))
            row["predicted_rel_error_median"] = float(
                np.median([t["predicted_rel_error"] for t in tm]))
            row["board_sha256"] = inst.board_sha256
            row["codes_sha256"] = [t["codes_sha256"] for t in tm]
            inst.close()
        rows.append(row)
    return rows


def write(out: Path, rows: list[dict]) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from spu_circuits.netlist import atomic_write

    by = {(r["solver"], r["bits"]): r for r in rows}
    summary, same_codes = {}, {}
    for b in BITS:
        a, s = by[("spice-board", b)], by[("board-surrogate", b)]
        summary[b] = float(np.max(np.abs(np.array(a["loss"]) - np.array(s["loss"]))))
        diff = [k for k, (x, y) in enumerate(zip(a["codes_sha256"], s["codes_sha256"],
                                                 strict=True)) if x != y]
        # solves (one per step) until the two runs first programmed different codes
        k0 = diff[0] if diff else len(a["codes_sha256"])
        same_codes[b] = {"first_solve_with_different_codes": diff[0] if diff else None,
                         "max_abs_dloss_while_codes_equal":
                             float(np.max(np.abs(np.array(a["loss"][:k0 + 1])
                                                 - np.array(s["loss"][:k0 + 1]))))}
    md = ["| run | final loss | test accuracy | max abs(loss − quantised surrogate) | "
          "programming s/step | ngspice s/step | median predicted x error |",
          "|---|---|---|---|---|---|---|"]
    def num(v, f):
        return "" if v is None else format(v, f)

    for r in rows:
        d = f"{summary[r['bits']]:.2e}" if r["solver"] == "spice-board" else ""
        md.append(f"| {r['label']} | {r['final_loss']:.4f} | {num(r['final_accuracy'], '.3f')}"
                  f" | {d} | {num(r.get('program_s_per_step'), '.3f')} | "
                  f"{num(r.get('spice_s_per_step'), '.2f')} | "
                  f"{num(r.get('predicted_rel_error_median'), '.2e')} |")
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for r in rows:
        ls = "-" if r["solver"] == "spice-board" else "--" if r["bits"] else ":"
        ax.plot(range(len(r["loss"])), r["loss"], ls, label=r["label"], lw=1.5)
    ax.set_xlabel("iteration")
    ax.set_ylabel("training loss (batch of 4)")
    ax.set_title("TNGD on a factored MDAC board (N = 40, r = 4), digits logreg")
    ax.legend(fontsize=7)
    fig.tight_layout()
    png = png_bytes(fig)
    shas = {r["board_sha256"] for r in rows if r.get("board_sha256")}
    rec = {"runs": rows, "max_abs_dloss_spice_vs_quantised_surrogate": summary,
           "codes_agreement": same_codes,
           "board_decks_distinct_per_bits": len(shas)}
    atomic_write({out / "training.json": json.dumps(rec, indent=1) + "\n",
                  out / "training.md": "\n".join(md) + "\n", out / "training.png": png})
    return rec


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("validation/board"))
    ap.add_argument("--steps", type=int, default=20)
    a = ap.parse_args(argv)
    rec = write(a.out, run(a.steps))
    print(json.dumps(rec["max_abs_dloss_spice_vs_quantised_surrogate"]))
    print(json.dumps(rec["codes_agreement"]))
    print(f"wrote {a.out / 'training.md'}, training.json, training.png")


if __name__ == "__main__":
    main()
