"""The hardware example decks (``python -m tngd.examples --out netlists``): the torch-free
parts live in :mod:`spu_circuits.examples`; this module adds the system of the
`factored_digits` example, which needs the optimizer side (curvature of a torch model).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from spu_circuits.compiler.realize import realize
from spu_circuits.examples import (
    EXAMPLE_OPTIONS,
    EXAMPLES,
    add_monte_carlo,
    compile_example,
    write_example,
)
from spu_circuits.system import FactoredSystem

DIGITS_PCA = 3
DIGITS_BATCH = 4
DIGITS_DAMPING = 0.01


def digits_fisher_system(n_pca: int = DIGITS_PCA, batch: int = DIGITS_BATCH,
                         damping: float = DIGITS_DAMPING, seed: int = 0) -> FactoredSystem:
    """F̃ = SᵀS + λI and g of a logistic regression on digits PCA features (float64): 3 PCA
    features, 10 classes (N = 40 parameters), empirical Fisher of a batch of 4 (S is 4×40,
    S = G/√b with G the per-sample gradients), λ = 0.01, b = the batch gradient g. The
    empirical Fisher keeps r = 4; the GGN of softmax would give r = b·10 = 40 = N rows."""
    from tngd.curvature import compute_curvature
    from tngd.data import load_digits_task
    from tngd.models import make_model

    task = load_digits_task(n_pca=n_pca, seed=seed, dtype=torch.float64)
    model = make_model("logreg", task, seed=seed, dtype=torch.float64)
    x, y = task.x_train[:batch], task.y_train[:batch]
    cv = compute_curvature(model, None, x, y, "ce", "empirical")
    return FactoredSystem.from_arrays(cv.S.detach().numpy(), damping,
                                      cv.grad.detach().numpy(), name="factored_digits")


def example_system(name: str) -> FactoredSystem | None:
    """The system an example needs from this side (None: the example builds its own)."""
    return digits_fisher_system() if name == "factored_digits" else None


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description="Write the hardware example decks, sidecars "
                                             "and BOMs.")
    ap.add_argument("--out", default="netlists", type=Path)
    ap.add_argument("--mc", default=100, type=int,
                    help="Monte-Carlo tolerance draws summarised in each sidecar (0: none)")
    args = ap.parse_args(argv)
    for name in EXAMPLES:
        t0 = time.perf_counter()
        compiled = compile_example(name, example_system(name))
        rc = realize(compiled, EXAMPLE_OPTIONS)
        if args.mc > 0:
            add_monte_carlo(rc, compiled, args.mc)
        deck = write_example(rc, args.out, name)
        rep = rc.report
        comp = ""
        if "rel_error_A_before" in rep:
            comp = (f"; compensation: |A_eff-A|/|A| {rep['rel_error_A_before']:.2e} -> "
                    f"{rep['rel_error_A_after']:.2e}")
        mc = rep.get("monte_carlo")
        mct = (f"; MC ({mc['n_draws']} draws, {mc['tolerance'] * 100:g}% parts): median "
               f"x error {mc['median_rel_error_x']:.2e}") if mc else ""
        print(f"{deck}: {rep['description']}\n  |A_eff-A|/|A| = {rep['rel_error_A']:.2e}, "
              f"x error {rep['rel_error_x']:.2e}{comp}{mct}; Johnson kappa0 "
              f"{rep['kappa0_johnson']:.2e}; parts {rep['parts']} "
              f"({time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main()
