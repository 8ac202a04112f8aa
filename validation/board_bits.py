"""DC solution error of a programmed board vs coupling bits, measured in ngspice.

    python -m validation.board_bits [--out validation/board] [--systems 3]

For condition numbers 10, 100, 1000 and bits 8, 10, 12, 14, 16: an 8-cell dense MDAC board
(range 1, 20-bit bias DACs, op-amp gain 1e6), `--systems` random SPD systems per condition
number (`random_spd`, scaled to max|A| = 0.9, b uniform in ±0.5·λ_min so x stays within the
rails), programmed with `round` and with `optimal` codes; ngspice `.op` (shared back-end) of
each programmed board gives x. Reported per (cond, bits, method), median over the systems:
the measured ‖x − A⁻¹b‖/‖A⁻¹b‖, the predicted error of the codes (A_q⁻¹b_q, part laws), the
first-order estimate cond·(LSB/2)/‖A‖₂ (LSB = range/(2^B − 1): "cond·2^−B scaled by the
range use"), and max ‖x − A_eff⁻¹b_eff‖/‖·‖ against the extractor. Writes bits.json,
bits.md and bits.png.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from spu_circuits.figures import png_bytes

CONDS = (10.0, 100.0, 1000.0)
BITS = (8, 10, 12, 14, 16)
N = 8
#: bias DACs (AD5791-class): enough bits that the couplings dominate the error
BIAS_BITS = 20


def systems(cond: float, k: int):
    from spu_circuits.system import LinearSystem, random_spd

    out = []
    for s in range(k):
        A = random_spd(N, cond=cond, seed=100 + s)
        A = A / np.abs(A).max() * 0.9
        lam_min = float(np.linalg.eigvalsh(A)[0])
        b = np.random.default_rng(200 + s).uniform(-0.5, 0.5, N) * lam_min * 4
        out.append(LinearSystem.from_arrays(A, b, name=f"cond{cond:g}_{s}"))
    return out


def run(out: Path, k: int) -> list[dict]:
    from spu_circuits.backends import get_backend
    from spu_circuits.board import (
        BoardLayout,
        BoardSpec,
        board_circuit,
        board_effective,
        build_board,
        program,
        programmed_deck,
    )
    from spu_circuits.errors import InputError
    from spu_circuits.simulate import Deck, solve_op

    rows = []
    with get_backend("shared", 120.0) as be:
        for bits in BITS:
            spec = BoardSpec(n=N, bits=bits, bias_bits=BIAS_BITS, range=1.0)
            path = board_circuit(build_board(spec), "b").write(out / "_decks" / f"b{bits}",
                                                               "b")
            deck = Deck.load(path)
            lay = BoardLayout.from_sidecar(deck.sidecar)
            for cond in CONDS:
                for method in ("round", "optimal"):
                    meas, pred, first, ext, refused = [], [], [], [], 0
                    for sysm in systems(cond, k):
                        try:
                            prog = program(sysm, lay, method)
                        except InputError:
                            refused += 1  # A_q not positive definite at these bits
                            continue
                        x = solve_op(programmed_deck(deck, prog), be)
                        eff = board_effective(deck, prog)
                        ref = sysm.solution()
                        meas.append(np.linalg.norm(x - ref) / np.linalg.norm(ref))
                        pred.append(prog.rel_error)
                        first.append(prog.first_order)
                        ext.append(np.linalg.norm(x - eff.x_dc) / np.linalg.norm(eff.x_dc))
                    if not meas:
                        rows.append({"cond": cond, "bits": bits, "method": method,
                                     "measured": None, "refused": refused, "systems": k})
                        print(f"cond {cond:6g} bits {bits:2d} {method:7s} refused", flush=True)
                        continue
                    rows.append({"cond": cond, "bits": bits, "method": method,
                                 "measured": float(np.median(meas)),
                                 "measured_max": float(np.max(meas)),
                                 "predicted_codes": float(np.median(pred)),
                                 "first_order": float(np.median(first)),
                                 "max_rel_vs_extractor": float(np.max(ext)), "systems": k,
                                 "refused": refused})
                    print(f"cond {cond:6g} bits {bits:2d} {method:7s} measured "
                          f"{rows[-1]['measured']:.3e} predicted {rows[-1]['predicted_codes']:.3e}"
                          f" first-order {rows[-1]['first_order']:.3e}", flush=True)
    return rows


def write(out: Path, rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from spu_circuits.netlist import atomic_write

    md = ["| cond | bits | method | measured (median) | measured (max) | predicted by codes | "
          "first-order cond·LSB/2/‖A‖ | ngspice vs extractor (max) |",
          "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["measured"] is None:
            md.append(f"| {r['cond']:g} | {r['bits']} | {r['method']} | refused: A_q not "
                      f"positive definite ({r['refused']}/{r['systems']}) | | | | |")
            continue
        md.append(f"| {r['cond']:g} | {r['bits']} | {r['method']} | {r['measured']:.2e} | "
                  f"{r['measured_max']:.2e} | {r['predicted_codes']:.2e} | "
                  f"{r['first_order']:.2e} | {r['max_rel_vs_extractor']:.1e} |")
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for c, col in zip(CONDS, ("C0", "C1", "C2"), strict=True):
        for method, ls in (("round", "-o"), ("optimal", "--s")):
            rr = [r for r in rows if r["cond"] == c and r["method"] == method
                  and r["measured"] is not None]
            ax.plot([r["bits"] for r in rr], [r["measured"] for r in rr], ls, color=col,
                    label=f"cond {c:g}, {method} (ngspice)")
        rr = [r for r in rows if r["cond"] == c and r["method"] == "round"
              and r["measured"] is not None]
        ax.plot([r["bits"] for r in rr], [r["first_order"] for r in rr], ":", color=col)
    ax.set_yscale("log")
    ax.set_xlabel("coupling bits B (MDAC)")
    ax.set_ylabel("DC error ||x - A^-1 b|| / ||A^-1 b||")
    ax.set_title("8-cell dense MDAC board; dotted: first-order cond·LSB/2/||A||")
    ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_write({out / "bits.json": json.dumps(rows, indent=1) + "\n",
                  out / "bits.md": "\n".join(md) + "\n", out / "bits.png": png_bytes(fig)})


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("validation/board"))
    ap.add_argument("--systems", type=int, default=3)
    a = ap.parse_args(argv)
    rows = run(a.out, a.systems)
    write(a.out, rows)
    import shutil

    shutil.rmtree(a.out / "_decks", ignore_errors=True)
    print(f"wrote {a.out / 'bits.md'}, bits.json, bits.png")


if __name__ == "__main__":
    main()
