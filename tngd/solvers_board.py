"""The `spice` solver's board mode: TNGD on one programmable board, re-programmed every step.

`spice-board` (:class:`BoardSpiceSolver`; both are entries of `tngd.solvers.REGISTRY`): one
factored board deck (N cells, r stages, MDAC couplings of `bits` bits) is written once per
run; every OU segment only chooses new codes (`spu_circuits.board.program`) and runs
ngspice on the same deck with the new `.param` program. `board-surrogate`
(:class:`BoardSurrogateSolver`): the same codes, read back by the extractor into A_eff,
b_eff (codes, INL draws, finite gain), evolved by the exact OU transition
x(h) = x* + e^{−A_eff h}(x₀ − x*): the float surrogate of the quantised board.

Scaling (the controller's job): F̃ = SᵀS + λI and g are mapped onto the
board's range by S' = S/σ, λ' = λ/σ², g' = g/γ with σ = max(max|S|, √λ)/range and γ chosen so
that |g'| ≤ range² and the solution stays within half the rails (from max|F̃⁻¹g|); then
x = x'·γ/σ² and the board runs for σ²·h (its time unit is τ of the board). Deterministic
(κ₀ = 0) only. Timings: `program_s` (code choice) and `spice_s` (ngspice) per solve.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.linalg
import torch
from torch import Tensor

from spu_circuits.backends import Backend
from spu_circuits.board import (
    BoardLayout,
    BoardSpec,
    board_circuit,
    board_effective,
    build_board,
    program,
    programmed_deck,
)
from spu_circuits.netlist import deck_digest
from spu_circuits.simulate import Deck, interp_at, transient
from spu_circuits.system import FactoredSystem
from tngd.solvers import LinearProblem
from tngd.solvers_ou import OUSolverBase
from tngd.spice_backend import BackendOwner, OwnedBackend

__all__ = ["BoardSpiceSolver", "BoardSurrogateSolver"]


class _BoardBase(OUSolverBase):
    def __init__(self, t: float = 50.0, t_d: float = 0.0, kappa0: float = 0.0, *,
                 bits: int = 12, r: int | None = None, method: str = "round",
                 board_range: float = 1.0, seed: int | None = None,
                 generator: torch.Generator | None = None, compute_residual: bool = True,
                 workdir: str | Path | None = None):
        if kappa0 != 0:
            raise ValueError("the board solvers are deterministic (kappa0 = 0)")
        super().__init__(t, t_d, 0.0, seed=seed, generator=generator,
                         compute_residual=compute_residual)
        self.bits, self.r, self.method, self.range = int(bits), r, method, float(board_range)
        self._workdir = Path(workdir) if workdir else None
        self._tmp: tempfile.TemporaryDirectory | None = None
        self.deck: Deck | None = None
        self.layout: BoardLayout | None = None
        self.board_sha256: str | None = None
        self.timings: list[dict] = []
        INSTANCES.append(self)

    def _board(self, problem: LinearProblem) -> Deck:
        if self.deck is None:
            if problem.S is None:
                raise ValueError("the board solvers need the factor S (curvature 'factor')")
            n, r = problem.N, self.r or problem.S.shape[0]
            spec = BoardSpec(n=n, r=r, bits=self.bits, range=self.range)
            if self._workdir is None:
                self._tmp = tempfile.TemporaryDirectory(prefix="tngd-board-")
                self._workdir = Path(self._tmp.name)
            path = board_circuit(build_board(spec), "board").write(self._workdir, "board")
            self.deck = Deck.load(path)
            self.layout = BoardLayout.from_sidecar(self.deck.sidecar)
            self.board_sha256 = self.deck.sidecar.deck_sha256
        return self.deck

    def _programmed(self, problem: LinearProblem, x: Tensor):
        deck = self._board(problem)
        S = problem.S.detach().double().cpu().numpy()
        g = problem.g.detach().double().cpu().numpy()
        lam = float(problem.damping)
        R = self.range
        sigma = max(float(np.abs(S).max()), np.sqrt(lam)) / R * (1 + 1e-9)
        F = S.T @ S + lam * np.eye(S.shape[1])
        x_ref = np.linalg.solve(F, g)
        x0 = x.detach().double().cpu().numpy()
        v_room = 0.5 * self.layout.spec.v_sat / self.layout.spec.v0
        gamma = max(float(np.abs(g).max()) / R ** 2,
                    sigma ** 2 * float(np.abs(x_ref).max()) / v_room, 1e-300) * (1 + 1e-9)
        t0 = time.perf_counter()
        prog = program(FactoredSystem.from_arrays(S / sigma, lam / sigma ** 2, g / gamma),
                       self.layout, self.method)
        t_prog = time.perf_counter() - t0
        return deck, prog, sigma, gamma, x0, t_prog

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


class BoardSpiceSolver(BackendOwner, _BoardBase):
    """OU segments run by ngspice on one programmable board (see the module docstring)."""

    def __init__(self, *a, backend: str | Backend = "shared", timeout_s: float = 300.0,
                 tmax_frac: float = 0.02, **kw):
        super().__init__(*a, **kw)
        self.timeout_s, self.tmax_frac = float(timeout_s), float(tmax_frac)
        self._spice = OwnedBackend(backend, self.timeout_s)

    def __repr__(self) -> str:
        return f"BoardSpiceSolver(t={self.t:g}, bits={self.bits}, method={self.method})"

    def _evolve(self, problem, setup, x, h, gen):
        deck, prog, sigma, gamma, x0, t_prog = self._programmed(problem, x)
        pd = programmed_deck(deck, prog)
        lam_max = float(np.linalg.eigvalsh(0.5 * (prog.A_q + prog.A_q.T))[-1])
        h_b = sigma ** 2 * h
        t0 = time.perf_counter()
        u, X = transient(pd, x0 * sigma ** 2 / gamma, h_b, h_b,
                         tmax_tau=self.tmax_frac / lam_max, backend=self._spice.get(),
                         timeout_s=self.timeout_s)
        t_spice = time.perf_counter() - t0
        self.timings.append({"program_s": t_prog, "spice_s": t_spice,
                             "predicted_rel_error": prog.rel_error,
                             "codes_sha256": _codes_digest(prog),
                             "deck_sha256": deck_digest(deck.path.read_text())})
        xh = interp_at(u, X, [h_b])[0] * gamma / sigma ** 2
        return torch.as_tensor(xh, dtype=x.dtype, device=x.device), 0

class BoardSurrogateSolver(_BoardBase):
    """The quantised board's exact OU transition with the extractor's A_eff, b_eff."""

    def __repr__(self) -> str:
        return f"BoardSurrogateSolver(t={self.t:g}, bits={self.bits}, method={self.method})"

    def _evolve(self, problem, setup, x, h, gen):
        deck, prog, sigma, gamma, x0, t_prog = self._programmed(problem, x)
        eff = board_effective(deck, prog)
        h_b = sigma ** 2 * h
        xs = eff.x_dc
        xb = x0 * sigma ** 2 / gamma
        xh = xs + scipy.linalg.expm(-eff.A * h_b) @ (xb - xs)
        self.timings.append({"program_s": t_prog, "predicted_rel_error": prog.rel_error,
                             "codes_sha256": _codes_digest(prog)})
        return torch.as_tensor(xh * gamma / sigma ** 2, dtype=x.dtype, device=x.device), 0


def _codes_digest(prog) -> str:
    return deck_digest(" ".join(f"{k}={v}" for k, v in prog.params.items()))


#: the board solvers built so far (the training script reads their timings)
INSTANCES: list[_BoardBase] = []
