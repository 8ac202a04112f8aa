"""The paper's MNIST experiments and the per-step cost benchmark (``tngd experiments``).

* :func:`run_mnist` — the paper's CNN (1 conv + 2 FC, N = 5,074) on 5,000 real MNIST images,
  batch 64, several seeds: Adam, SGD, NGD (exact), NGD-CG, TNGD (ou-exact) with a t-sweep, a
  delay sweep, a noise sweep, and TNGD-Adam. Writes ``mnist_<preset>.json`` and the figures
  ``mnist_loss.png``, ``mnist_tsweep.png``, ``mnist_delay.png``, ``mnist_noise.png``.
* :func:`run_benchmark` — time per optimizer step of every method on the same model and batch,
  interleaved over repeats (fair on a noisy machine), as a ratio to Adam's median step; plus the
  scaling of the step cost with N (MLP width) and with d_z (number of outputs). Writes
  ``bench_step.json/.png`` and ``bench_scaling.json/.png``.

"Exact NGD" in the MNIST runs is the Woodbury solve: it is exact for F̃ = SᵀS + λI (the same
matrix the dense Cholesky factors, up to rounding) and ~20× cheaper on CPU; the dense Cholesky
solver is checked against it for a few steps (``exact_check`` in the JSON) and timed in the
benchmark.
"""

from __future__ import annotations

from tngd.experiments.benchmark import BENCH_PRESETS, run_benchmark, step_ratios, time_interleaved
from tngd.experiments.cli import experiments_cmd
from tngd.experiments.plots import plot_bench, plot_mnist
from tngd.experiments.runner import run_mnist
from tngd.experiments.specs import LAMBDA, MNIST_PRESETS, SMOOTH, method_specs
from tngd.experiments.summary import smooth, summarise_mnist

__all__ = [
    "BENCH_PRESETS",
    "LAMBDA",
    "MNIST_PRESETS",
    "SMOOTH",
    "experiments_cmd",
    "method_specs",
    "plot_bench",
    "plot_mnist",
    "run_benchmark",
    "run_mnist",
    "smooth",
    "step_ratios",
    "summarise_mnist",
    "time_interleaved",
]
