"""Circuit demo: compile an 8-variable system (an 8-cell SPU), run ngspice, compare with numpy.

    python -m spu_circuits.demo [--out DIR] [--backend shared|cli]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from .compiler import compile_system
from .simulate import Deck, solve_op
from .spec import HardwareSpec
from .system import LinearSystem, random_spd

EXAMPLE_SEED = 8


def example_system() -> LinearSystem:
    """The committed 8×8 example: a random SPD matrix with condition number 20."""
    # rounded to 12 decimals: the QR behind random_spd differs in the last bits between BLAS
    # builds, and the committed decks must not depend on which one this machine has
    A = np.round(random_spd(8, 20.0, seed=EXAMPLE_SEED), 12)
    b = np.random.default_rng(EXAMPLE_SEED).standard_normal(8)
    return LinearSystem.from_arrays(A, b, name="spu8")


def run(out: Path, backend: str = "shared") -> dict:
    system = example_system()
    rows = {}
    print(f"8-cell SPU demo: A is 8×8 SPD, cond(A) = {system.condition_number():.1f}")
    ref = np.linalg.solve(system.A, system.b)
    results = {}
    for topology in ("dense", "ideal"):
        compiled = compile_system(system, topology, HardwareSpec(), name=f"spu8_{topology}")
        deck_path = compiled.write(out, f"spu8_{topology}")
        t0 = time.perf_counter()
        x = solve_op(Deck.load(deck_path), backend)
        dt = time.perf_counter() - t0
        counts = ", ".join(f"{v} {k}" for k, v in compiled.sidecar.element_counts.items())
        print(f"  {topology:5s}: {deck_path} ({counts}); ngspice .op in {dt * 1e3:.0f} ms")
        results[topology] = x
        rows[topology] = float(np.linalg.norm(x - ref) / np.linalg.norm(ref))
    print(f"\n  {'i':>2s} {'numpy.linalg.solve':>20s} {'dense circuit':>16s} {'ideal gm-C':>16s}")
    for i in range(8):
        print(f"  {i:2d} {ref[i]:20.10f} {results['dense'][i]:16.10f} "
              f"{results['ideal'][i]:16.10f}")
    print(f"  relative error:  dense {rows['dense']:.2e} (op-amp gain 1e6), "
          f"ideal {rows['ideal']:.2e}")
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="out/demo/circuit", type=Path)
    ap.add_argument("--backend", default="shared", choices=["shared", "cli"])
    args = ap.parse_args(argv)
    run(args.out, args.backend)


if __name__ == "__main__":
    main()
