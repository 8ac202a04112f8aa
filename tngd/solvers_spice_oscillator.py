"""The `spice` solver with the oscillator topology: ngspice runs the second-order device.

``make_solver("spice", topology="oscillator", …)`` builds a :class:`SpiceOscillatorSolver`:
each segment compiles F̃ x = g into an `oscillator` deck (the factored stages when S exists and
2r < N, else the dense array), runs an ngspice transient from the device state (x, v) for the
segment's time and reads x and v back (sidecar outputs and velocity nodes). State, warm start,
reset, delay and γ behave as in ``ou2-exact`` (:mod:`tngd.solvers_ou2`); κ₀ > 0 adds seeded
file noise (samples drawn from the solver's generator), so a seeded run is repeatable.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from spu_circuits.backends import Backend, Tran
from spu_circuits.compiler import compile_system
from spu_circuits.compiler.noise import NoiseSpec
from spu_circuits.sidecar import OscillatorRecord
from spu_circuits.simulate import Deck, interp_at
from spu_circuits.spec import HardwareSpec
from spu_circuits.system import FactoredSystem, LinearSystem
from tngd.solvers import LinearProblem
from tngd.solvers_ou2 import OU2ExactSolver
from tngd.spice_backend import BackendOwner, OwnedBackend

__all__ = ["SpiceOscillatorSolver"]


class SpiceOscillatorSolver(BackendOwner, OU2ExactSolver):
    """Second-order device segments simulated by ngspice.

    Args (beyond t, t_d, kappa0, gamma, seed of ``ou2-exact``): backend ('shared' | 'cli' | a
    Backend), spec (HardwareSpec), tmax_frac (internal step ≤ tmax_frac·T_fast, T_fast =
    1/max(√λ_max, γ)), timeout_s, keep_dir (keep every deck there, else a temporary folder).
    """

    name = "spice"
    _allow_inf = False

    def __init__(self, t: float = 10.0, t_d: float = 0.0, kappa0: float = 0.0, *,
                 gamma: float | None = None, backend: str | Backend = "shared",
                 spec: HardwareSpec | None = None, tmax_frac: float = 0.02,
                 timeout_s: float = 120.0, keep_dir: str | Path | None = None,
                 topology: str = "oscillator", **kwargs: Any) -> None:
        if topology != "oscillator":
            raise ValueError(f"SpiceOscillatorSolver runs the oscillator topology, got "
                             f"{topology!r}")
        super().__init__(t, t_d, kappa0, gamma=gamma, method="dense", **kwargs)
        self.topology = topology
        self.spec = spec or HardwareSpec()
        self.tmax_frac = float(tmax_frac)
        self.timeout_s = float(timeout_s)
        self.keep_dir = Path(keep_dir) if keep_dir else None
        self._spice = OwnedBackend(backend, self.timeout_s)
        self.n_solves = 0

    def __repr__(self) -> str:
        return (f"SpiceOscillatorSolver(t={self.t:g}, t_d={self.t_d:g}, kappa0={self.kappa0:g}, "
                f"gamma={self.gamma})")

    def _system(self, problem: LinearProblem):
        g = problem.g.detach().double().cpu().numpy()
        if problem.S is not None and 2 * problem.S.shape[0] < problem.N:
            S = problem.S.detach().double().cpu().numpy()
            return FactoredSystem.from_arrays(S, float(problem.damping), g, name="tngd")
        F = problem.dense().detach().double().cpu().numpy()
        return LinearSystem.from_arrays(0.5 * (F + F.T), g, name="tngd")

    def _evolve2(self, problem, y: Tensor, h: float, gen, cache) -> tuple[Tensor, int]:
        system = self._system(problem)
        noise = NoiseSpec()
        if self.kappa0 > 0:
            seed = int(torch.randint(0, 2**31 - 1, (1,), generator=gen).item())
            noise = NoiseSpec("file", self.kappa0, seed=seed, duration_tau=h)
        compiled = compile_system(system, "oscillator", self.spec, name="tngd", noise=noise,
                                  predict=False, gamma=self.gamma)
        osc = OscillatorRecord.of(compiled.sidecar)
        cache["gamma"] = osc.damping_gamma
        k = self.n_solves
        self.n_solves += 1
        with tempfile.TemporaryDirectory(prefix="tngd-spice2-") as tmp:
            folder = self.keep_dir / f"step_{k:04d}" if self.keep_dir else Path(tmp)
            deck = Deck.load(compiled.write(folder, "tngd"))
            tau = deck.tau_s
            tmax = self.tmax_frac * osc.T_fast_tau
            an = Tran(step_s=min(h, tmax) * tau, stop_s=h * tau, tmax_s=tmax * tau,
                      ic=deck.ic_voltages(y.detach().double().cpu().numpy()), uic=True)
            res = self.backend.run(deck.text, an, cwd=deck.cwd, deck_name=str(deck.path))
        nodes = list(deck.outputs) + list(osc.velocity_nodes)
        Y = res.voltages(nodes) / deck.volts_per_unit
        y_h = interp_at(res.time / tau, Y, [h])[0]
        return torch.as_tensor(np.asarray(y_h), dtype=y.dtype, device=y.device), 0

    def _solve(self, problem, x0, state):
        x, it, info = super()._solve(problem, x0, state)
        cache = info["state"].decomposition or {}
        info["gamma"] = cache.get("gamma")
        return x, it, info
