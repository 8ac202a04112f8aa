"""Sampling loops shared by every OU surrogate (:mod:`tngd.surrogate`, :mod:`tngd.lowrank_ou`,
:mod:`tngd.krylov`): a subclass supplies ``step(x, h, generator)``, ``b``, ``kappa0`` and ``n``.

States are ``(chains, N)`` or ``(N,)``; times are in units of τ; randomness comes only from a
``torch.Generator`` (or torch's global RNG when None).
"""

from __future__ import annotations

import torch
from torch import Tensor

from spu_circuits import ou_math

Generator = torch.Generator | None

__all__ = ["ExactOU", "Generator", "MatrixFunctionsOU", "OUBase", "TensorState",
           "times_tensor"]


def times_tensor(u, dtype, device) -> tuple[Tensor, bool]:
    """u (scalar or 1-D) as a 1-D tensor, and whether it was a scalar."""
    ut = torch.as_tensor(u, dtype=dtype, device=device)
    if ut.ndim > 1:
        raise ValueError("u must be a scalar or 1-D")
    return ut.reshape(-1), ut.ndim == 0


class TensorState:
    """dtype and device of a surrogate (those of its ``b``) and its normal draws."""

    b: Tensor

    @property
    def dtype(self) -> torch.dtype:
        return self.b.dtype

    @property
    def device(self) -> torch.device:
        return self.b.device

    def _randn(self, shape, generator: Generator) -> Tensor:
        return torch.randn(shape, generator=generator, dtype=self.dtype, device=self.device)


class OUBase(TensorState):
    """Shared state and the sampling loops; subclasses implement :meth:`step`."""

    kappa0: float
    n: int

    def _init(self, x0, chains: int | None) -> Tensor:
        x0 = torch.as_tensor(x0, dtype=self.dtype, device=self.device)
        if chains is None:
            chains = x0.shape[0] if x0.ndim == 2 else 1
        return x0.expand(chains, self.n).clone()

    def step(self, x: Tensor, h: float, generator: Generator = None) -> Tensor:
        raise NotImplementedError

    def trajectory(
        self, x0, h: float, n_steps: int, chains: int | None = None, generator: Generator = None
    ) -> tuple[Tensor, Tensor]:
        """States at u = 0, h, …, n_steps·h from x0 (broadcast to (chains, N)).

        Returns ``(times (n_steps+1,), samples (n_steps+1, chains, N))``; samples[0] = x0.
        """
        return self.sample(
            x0, h, n_steps, burn_in=0, thin=1, chains=chains, generator=generator,
            include_start=True,
        )

    def sample(
        self,
        x0,
        h: float,
        n_steps: int,
        burn_in: int = 0,
        thin: int = 1,
        chains: int | None = None,
        generator: Generator = None,
        include_start: bool = False,
    ) -> tuple[Tensor, Tensor]:
        """Run ``burn_in`` steps of size h, then ``n_steps`` more, keeping every ``thin``-th state.

        Returns ``(times (T,), samples (T, chains, N))`` with T = n_steps // thin; the kept
        states are those after steps ``burn_in + thin·j``, j = 1..T (plus the state after the
        burn-in, j = 0, first, if include_start). Times are in units of τ.
        """
        if thin < 1 or n_steps < 0 or burn_in < 0:
            raise ValueError("need thin ≥ 1, n_steps ≥ 0, burn_in ≥ 0")
        x = self._init(x0, chains)
        for _ in range(burn_in):
            x = self.step(x, h, generator)
        kept, idx = ([x], [burn_in]) if include_start else ([], [])
        for i in range(1, n_steps + 1):
            x = self.step(x, h, generator)
            if i % thin == 0:
                kept.append(x)
                idx.append(burn_in + i)
        times = torch.tensor(idx, dtype=self.dtype, device=self.device) * h
        if not kept:
            return times, torch.empty(0, x.shape[0], self.n, dtype=self.dtype, device=self.device)
        return times, torch.stack(kept)


class MatrixFunctionsOU:
    """What follows from ``apply_function(fn, v) = f(A) v`` alone: A v, dense f(A), the exact
    transition and the stationary covariance. Shared by the spectral (dense) and low-rank
    surrogates; a subclass supplies ``apply_function``, ``n``, ``dtype``, ``device``,
    ``x_star`` and ``kappa0``."""

    def matvec(self, v: Tensor) -> Tensor:
        """``A v`` for v of shape (..., N)."""
        return self.apply_function(lambda a: a, v)

    def dense(self, fn=None) -> Tensor:
        """The N×N matrix f(A) (A itself if fn is None); for checks at small N."""
        eye = torch.eye(self.n, dtype=self.dtype, device=self.device)
        m = self.apply_function(fn if fn is not None else (lambda a: a), eye)
        return 0.5 * (m + m.T)

    def transition(self, h: float) -> tuple[Tensor, Tensor]:
        """Exact transition of step h: ``x_next ~ N(x* + Φ (x − x*), C)``; returns (Φ, C), N×N."""
        phi = self.dense(lambda a: ou_math.decay(a, h))
        cov = self.dense(lambda a: ou_math.transition_var(a, h, self.kappa0))
        return phi, cov

    def transition_mean(self, x: Tensor, h: float) -> Tensor:
        """``x* + e^{−Ah}(x − x*)`` (deterministic part of :meth:`step`)."""
        return self.x_star + self.apply_function(lambda a: ou_math.decay(a, h), x - self.x_star)

    def stationary_cov(self) -> Tensor:
        """``κ₀ A⁻¹`` (N×N)."""
        return self.dense(lambda a: ou_math.stationary_var(a, self.kappa0))


class ExactOU(MatrixFunctionsOU, OUBase):
    """The exact surrogates (spectral and low-rank): matrix functions, the sampling loops and
    exact integration of interpolated noise; a subclass supplies ``run_interpolated(h, z,
    x0)`` besides what its bases need."""

    def run_interpolated(self, h: float, z: Tensor, x0) -> Tensor:
        raise NotImplementedError

    def sample_interpolated(
        self, x0, h: float, n_steps: int, chains: int | None = None, generator: Generator = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Draw z (n_steps+1, chains, N) and integrate it exactly; returns (times, x, z)."""
        xs = self._init(x0, chains)
        z = self._randn((n_steps + 1, *xs.shape), generator)
        times = torch.arange(n_steps + 1, dtype=self.dtype, device=self.device) * h
        return times, self.run_interpolated(h, z, xs), z
