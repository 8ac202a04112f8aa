"""The `spice` solver: ngspice in the training loop.

Each OU segment compiles the system (F̃ = SᵀS + λI, b = g) into a netlist (topology
`factored` when S is available, else `dense` from the dense F̃), runs an ngspice transient
from the device state x for the segment's time h (units of τ) and reads x(h) back through
the sidecar. κ₀ > 0 adds reproducible noise: standard-normal samples drawn from the solver's
torch generator, written beside the deck and fed through XSPICE filesource, so a seeded run
is repeatable. Delay, warm start and reset behave as in the OU solvers (tngd.solvers_ou).

Decks are written under `keep_dir/step_NNNN/` every `keep_every` solves. The others are
never written: ngspice gets the deck text in memory, and only noise files (which the XSPICE
filesource reads from disk) go to a temporary folder. Nothing is re-read or fsync'ed on the
way; λ_max(F̃), which sets the noise and internal steps, is λ + σ_max(S)² from the r×r Gram
SSᵀ. A simulator fault stops training with a SimulationError naming the deck and the ngspice
log it kept.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import scipy.linalg as sla
import torch
from torch import Tensor

from spu_circuits.backends import Backend
from spu_circuits.compiler import compile_system
from spu_circuits.compiler.noise import NoiseSpec
from spu_circuits.errors import SimulationError
from spu_circuits.simulate import Deck, interp_at, transient
from spu_circuits.spec import HardwareSpec
from spu_circuits.system import FactoredSystem, LinearSystem
from spu_circuits.timesteps import NOISE_STEP_FRAC, TRAINING_INTERNAL_STEP_FRAC
from tngd.solvers import LinearProblem
from tngd.solvers_ou import OUSolverBase
from tngd.spice_backend import BackendOwner, OwnedBackend

__all__ = ["SpiceSolver"]


class SpiceSolver(BackendOwner, OUSolverBase):
    """OU segments simulated by ngspice.

    Args (beyond t, t_d, kappa0, seed of the OU solvers):
        topology: 'factored' (needs S), 'dense' or 'ideal'; None picks the smaller array:
            factored (2rN resistors) when S exists and 2r < N, else dense (N²).
        backend: 'shared' (default) or 'cli', or a Backend instance.
        spec: HardwareSpec (default: the paper's 1 kΩ, 1 nF, op-amp gain 1e6).
        keep_dir: folder for kept decks; keep_every: keep every k-th solve (0: none).
        tmax_frac: ngspice's internal step ≤ tmax_frac/λ_max(F̃) (units of τ; default
            :data:`spu_circuits.timesteps.TRAINING_INTERNAL_STEP_FRAC`).
        noise_step_frac: noise step NT = noise_step_frac/λ_max(F̃) when κ₀ > 0 (default
            :data:`spu_circuits.timesteps.NOISE_STEP_FRAC`).
        timeout_s: per ngspice run.
    """

    def __init__(self, t: float = 50.0, t_d: float = 0.0, kappa0: float = 0.0, *,
                 topology: str | None = None, backend: str | Backend = "shared",
                 spec: HardwareSpec | None = None, keep_dir: str | Path | None = None,
                 keep_every: int = 1, tmax_frac: float = TRAINING_INTERNAL_STEP_FRAC,
                 noise_step_frac: float = NOISE_STEP_FRAC,
                 timeout_s: float = 120.0, seed: int | None = None,
                 generator: torch.Generator | None = None, compute_residual: bool = True):
        super().__init__(t, t_d, kappa0, seed=seed, generator=generator,
                         compute_residual=compute_residual)
        if topology not in (None, "factored", "dense", "ideal"):
            raise ValueError(f"unknown topology {topology!r}")
        self.topology = topology
        self.spec = spec or HardwareSpec()
        self.keep_dir = Path(keep_dir) if keep_dir else None
        self.keep_every = int(keep_every)
        self.tmax_frac = float(tmax_frac)
        self.noise_step_frac = float(noise_step_frac)
        self.timeout_s = float(timeout_s)
        self._spice = OwnedBackend(backend, self.timeout_s)
        self.n_solves = 0
        self.kept: list[Path] = []

    def __repr__(self) -> str:
        return (f"SpiceSolver(t={self.t:g}, t_d={self.t_d:g}, kappa0={self.kappa0:g}, "
                f"topology={self.topology or 'auto'})")

    def _system(self, problem: LinearProblem):
        """(system, topology, λ_max(F̃)); λ_max from the r×r Gram for a factored system."""
        g = problem.g.detach().double().cpu().numpy()
        lam = float(problem.damping)
        topo = self.topology
        if topo == "factored" and problem.S is None:
            raise ValueError("the factored topology needs the factor S (curvature='factor')")
        auto_factored = problem.S is not None and 2 * problem.S.shape[0] < problem.N
        if topo == "factored" or (topo is None and auto_factored):
            S = problem.S.detach().double().cpu().numpy()
            top = float(np.linalg.eigvalsh(S @ S.T)[-1]) if S.shape[0] else 0.0
            system = FactoredSystem.from_arrays(S, lam, g, name="tngd")
            return system, "factored", lam + max(top, 0.0)
        F = problem.dense().detach().double().cpu().numpy()
        A = 0.5 * (F + F.T)
        n = A.shape[0]
        lam_max = float(sla.eigh(A, eigvals_only=True, subset_by_index=[n - 1, n - 1])[0])
        return LinearSystem.from_arrays(A, g, name="tngd"), topo or "dense", lam_max

    def _evolve(self, problem: LinearProblem, setup, x: Tensor, h: float,
                gen: torch.Generator | None) -> tuple[Tensor, int]:
        system, topo, lam_max = self._system(problem)
        noise = NoiseSpec()
        if self.kappa0 > 0:
            seed = int(torch.randint(0, 2**31 - 1, (1,), generator=gen).item())
            noise = NoiseSpec("file", self.kappa0, step_tau=self.noise_step_frac / lam_max,
                              seed=seed, duration_tau=h)
        compiled = compile_system(system, topo, self.spec, name="tngd", noise=noise,
                                  predict=False)
        k = self.n_solves
        self.n_solves += 1
        keep = self.keep_dir is not None and self.keep_every > 0 and k % self.keep_every == 0
        x0 = x.detach().double().cpu().numpy()
        with tempfile.TemporaryDirectory(prefix="tngd-spice-") as tmp:
            if keep:
                folder = self.keep_dir / f"step_{k:04d}"
                deck_path = compiled.write(folder, "tngd", durable=False)
                self.kept.append(deck_path)
            else:  # only the noise files go to disk (filesource reads them)
                folder = Path(tmp)
                deck_path = folder / "tngd.cir"
                for fname, content in compiled.extra_files.items():
                    (folder / fname).write_bytes(content)
            deck = Deck.from_compiled(compiled, deck_path)
            try:
                u, X = transient(deck, x0, h, h, tmax_tau=self.tmax_frac / lam_max,
                                 backend=self.backend, timeout_s=self.timeout_s)
            except SimulationError as exc:
                raise self._kept_failure(exc, compiled, k) from None
        x_h = interp_at(u, X, [h])[0]
        return torch.as_tensor(x_h, dtype=x.dtype, device=x.device), 0

    def _kept_failure(self, exc: SimulationError, compiled, k: int) -> SimulationError:
        """Keep the failing deck and its log where the user can find them."""
        folder = (self.keep_dir or Path(tempfile.mkdtemp(prefix="tngd-spice-fail-")))
        folder = folder / f"failed_step_{k:04d}"
        deck_path = compiled.write(folder, "tngd")
        log_path = folder / "ngspice.log"
        log_path.write_text(exc.log_excerpt + "\n")
        return SimulationError(f"ngspice failed at solve {k} of the spice solver: {exc}",
                               exc.log_excerpt, deck=str(deck_path), log_path=str(log_path))

    def _solve(self, problem, x0, state):
        x, it, info = super()._solve(problem, x0, state)
        info["decks_kept"] = len(self.kept)
        return x, it, info


def make_spice_solver(**kw: Any) -> OUSolverBase:
    """The registry's factory for "spice": :class:`SpiceSolver`, or with
    ``topology="oscillator"`` the second-order device
    (:class:`tngd.solvers_spice_oscillator.SpiceOscillatorSolver`)."""
    if kw.get("topology") == "oscillator":  # the second-order device (tngd.solvers_ou2)
        from tngd.solvers_spice_oscillator import SpiceOscillatorSolver

        return SpiceOscillatorSolver(**kw)
    return SpiceSolver(**kw)
