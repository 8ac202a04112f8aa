"""Thermodynamic natural gradient descent (Donatella et al. 2024, arXiv 2405.13817, Algorithm 1).

The torch.optim way (the primary API; any module, any inputs, any loss of :mod:`tngd.losses`)::

    opt = TNGD(model.parameters(), lr=0.01, damping=0.01, t=50, loss="ce")   # or param groups
    for inputs, targets in loader:
        opt.zero_grad()
        outputs = model(inputs)
        loss = opt.step(outputs, targets)   # g and S from outputs' graph; fills .grad; updates
        print(opt.last_diagnostics)         # residual, curvature and solve time, loss, ...

The model-based convenience ``TNGD(model).step(x, y)`` builds S by per-sample vmap instead (no
graph needed, faster, but the model must not couple samples).

Iteration k (k = number of updates applied so far; ``lr`` and ``damping`` may be callables of k):

1. loss, gradient g_k and the curvature factor S_k (F = SᵀS, GGN or empirical Fisher) at θ_k
   (:func:`tngd.curvature_graph.curvature_from_outputs` or
   :func:`tngd.curvature.compute_curvature`); sizes are checked first (:mod:`tngd.limits`);
2. the device (a :class:`tngd.solvers.Solver`, by default the exact OU surrogate) runs with
   A = F̃_k = S_kᵀS_k + λ_k I, b = g_k for the analog time t, starting from its previous output
   g̃_{k−1} (``warm_start=True``; the first start is g̃₀ = g₀) or from g_k (``warm_start=False``,
   a reset: t = 0 then gives SGD, t → ∞ NGD). With a delay t_d the device first evolves t_d under
   the previous system (see :mod:`tngd.solvers_ou`). Its output is g̃_k;
3. update with the base rule: ``"sgd"``: θ ← θ − η g̃_k; ``"adam"`` (TNGD-Adam): torch's Adam
   rule fed with g̃_k, ``betas`` default (0, 0) as in the paper.

Numerical guards: a NaN/Inf in the loss, the gradient, the curvature factor, the solver output or
the updated parameters raises :class:`NumericalError` naming the quantity, with the parameters
and the optimizer state untouched; with ``on_nonfinite="skip"`` the step is skipped instead (no
update, the step counter k does not advance, ``last_diagnostics["n_skipped"]`` counts them).

``state_dict()``/``load_state_dict()`` carry, besides torch's param groups, the step count, the
device state g̃, the Adam moments, the solver's previous system (used by the delay) and the
solver's generator state, so that a reloaded optimizer takes identical subsequent steps.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor, nn

from spu_circuits.errors import InputError
from tngd.curvature import (
    ParamSpec,
    _leaves,
    _prepare,
    compute_curvature,
    flatten_params,
    load_params_,
    make_ggn_vp,
)
from tngd.curvature_graph import curvature_from_outputs
from tngd.limits import SizeLimits, check_step_size
from tngd.losses import resolve_loss
from tngd.solvers import LinearProblem, Solver, SolveResult, build_solver

__all__ = ["NGD", "TNGD", "NumericalError", "build_solver", "device_solve", "solver_name"]

Schedule = float | Callable[[int], float]


class NumericalError(RuntimeError):
    """A NaN or Inf appeared in a quantity of the TNGD step (named in the message)."""


def _nonfinite(x: Tensor | None) -> bool:
    return x is not None and not bool(torch.isfinite(x).all())


def solver_name(solver: Solver) -> str:
    """The registered name of a solver instance (``"spice"`` for the ngspice solver)."""
    if type(solver).__name__ == "SpiceSolver":
        return "spice"
    return str(getattr(solver, "name", type(solver).__name__))


def device_solve(
    solver: Solver,
    g: Tensor,
    damping: Tensor | float,
    *,
    S: Tensor | None = None,
    fvp: Callable[[Tensor], Tensor] | None = None,
    x0: Tensor | None = None,
    state: Any = None,
) -> tuple[Tensor, SolveResult]:
    """Run the solver on F̃ = F + Λ, b = g; returns (x, result).

    ``damping`` is λ (a float: F̃ = F + λI) or a vector (N,) of per-parameter damping (param
    groups with their own λ). A vector with unequal entries is solved through the symmetric
    rescaling D̂ = diag(λ/λ_max): the solver sees S D̂^{-1/2}, λ_max and D̂^{-1/2} g, and
    x = D̂^{-1/2} y, exact for the t → ∞ limit (NGD); at finite t the device runs the rescaled
    system's dynamics.
    """
    if isinstance(damping, Tensor):
        lam_max = float(damping.max())
        if float(damping.min()) == lam_max:
            damping = lam_max
    if not isinstance(damping, Tensor):
        problem = LinearProblem(g=g, damping=float(damping), S=S, fvp=fvp)
        result = solver.solve(problem, x0=x0, state=state)
        return result.x, result
    if not float(damping.min()) > 0:
        raise InputError("param groups with different damping need every damping > 0, got "
                         f"min {float(damping.min()):g}")
    sq = (damping / lam_max).sqrt()
    fvp_s = None if fvp is None else (lambda v: fvp(v / sq) / sq)
    problem = LinearProblem(g=g / sq, damping=lam_max, S=None if S is None else S / sq,
                            fvp=fvp_s)
    result = solver.solve(problem, x0=None if x0 is None else x0 * sq, state=state)
    return result.x / sq, result


class TNGD(torch.optim.Optimizer):
    """Thermodynamic natural gradient descent, a ``torch.optim.Optimizer``.

    Two ways to use it (see the module docstring and the README):

    * ``TNGD(model.parameters(), ...)`` or param groups (``[{"params": ..., "lr": ...,
      "damping": ...}, ...]``), then ``loss = opt.step(outputs, targets)`` with
      ``outputs = model(inputs)`` from your own forward pass: the gradient and S come from the
      outputs' graph (:mod:`tngd.curvature_graph`; any module, BatchNorm and Dropout as in
      training), ``.grad`` is filled with the gradient, and the given parameters are updated.
      Returns the batch loss (a 0-d tensor) before the update. ``opt.step(closure)`` with a
      closure returning ``(outputs, targets)`` works too.
    * ``TNGD(model, ...)`` then ``loss = opt.step(x, y)`` (a float): S by per-sample vmap
      (:mod:`tngd.curvature`), faster for models that do not couple samples.

    Args:
        params: an iterable of tensors or param groups, or an ``nn.Module``.
        lr: η, a float or a callable of the step k (0, 1, …); per group.
        damping: λ, a float or a callable of k; per group (unequal groups: see
            :func:`device_solve`).
        t: analog time per iteration in units of τ (default 50; OU solvers only).
        t_d: delay, 0 ≤ t_d ≤ t (default 0, the synchronous loop; OU solvers only).
        kappa0: device noise κ₀ (default 0; OU solvers only).
        warm_start: start the device from its previous output g̃ (True) or reset it to g_k.
        base: ``"sgd"`` or ``"adam"`` (TNGD-Adam); ``betas``/``eps`` for Adam (first group's).
        solver: a registered name (``"ou-exact"``, ``"ou-euler"``, ``"exact"``, ``"cg"``,
            ``"woodbury"``, ``"spice"``) or a :class:`~tngd.solvers.Solver` instance (then leave
            t, t_d, kappa0 unset). ``solver_kwargs`` go to the factory (e.g. ``dt`` for
            ou-euler, ``max_iter`` for cg).
        loss: ``"ce"``, ``"mse"``, ``"bce"``, ``"nll"``, a torch loss module, a callable
            ``loss(outputs, targets)`` or a :class:`tngd.losses.OutputLoss`.
        fisher: ``"ggn"`` or ``"empirical"``.
        curvature: ``"factor"`` (build S, default) or ``"matvec"`` (no S: matrix-free GGN
            products, for ou-euler/cg; GGN only; model-based API only).
        seed: seeds the solver's noise generator (reproducible κ₀ > 0 runs).
        on_nonfinite: ``"raise"`` (:class:`NumericalError`) or ``"skip"``.
        chunk_size: rows of S per batched VJP (graph path) / samples per vmap chunk (model).
        limits: :class:`tngd.limits.SizeLimits` checked before the first step.
    """

    def __init__(
        self,
        params: Any,
        lr: Schedule = 0.01,
        damping: Schedule = 0.01,
        t: float | None = None,
        t_d: float | None = None,
        kappa0: float | None = None,
        *,
        warm_start: bool = True,
        base: str = "sgd",
        betas: tuple[float, float] = (0.0, 0.0),
        eps: float = 1e-8,
        solver: str | Solver = "ou-exact",
        solver_kwargs: dict[str, Any] | None = None,
        loss: Any = "ce",
        fisher: str = "ggn",
        curvature: str = "factor",
        seed: int | None = None,
        on_nonfinite: str = "raise",
        chunk_size: int | None = None,
        limits: SizeLimits | None = None,
    ) -> None:
        if isinstance(params, Tensor):
            raise TypeError("params must be an iterable of tensors or param groups (e.g. "
                            "model.parameters()), or the model; got a single tensor")
        model = params if isinstance(params, nn.Module) else None
        if model is None and not isinstance(params, Iterable):
            raise TypeError(f"TNGD takes model.parameters(), param groups or the model, got "
                            f"{type(params).__name__}")
        if base not in ("sgd", "adam"):
            raise ValueError(f"base must be 'sgd' or 'adam', got {base!r}")
        self.loss = resolve_loss(loss)
        if fisher not in ("ggn", "empirical"):
            raise ValueError(f"fisher must be 'ggn' or 'empirical', got {fisher!r}")
        if curvature not in ("factor", "matvec"):
            raise ValueError(f"curvature must be 'factor' or 'matvec', got {curvature!r}")
        if curvature == "matvec" and fisher != "ggn":
            raise ValueError("curvature='matvec' supports fisher='ggn' only")
        if curvature == "matvec" and model is None:
            raise InputError("curvature='matvec' needs the model-based API TNGD(model) (it "
                             "re-evaluates the model); TNGD(model.parameters()) builds S")
        if on_nonfinite not in ("raise", "skip"):
            raise ValueError(f"on_nonfinite must be 'raise' or 'skip', got {on_nonfinite!r}")
        b1, b2 = (float(b) for b in betas)
        if not (0 <= b1 < 1 and 0 <= b2 < 1):
            raise ValueError(f"betas must lie in [0, 1), got {betas}")
        if model is not None:
            groups: Any = [p for p in model.parameters() if p.requires_grad]
            if not groups:
                raise ValueError("the model has no trainable parameters")
        else:
            groups = list(params)
            if not groups:
                raise InputError("TNGD got an empty parameter list")
        defaults = {"lr": lr, "damping": damping, "betas": (b1, b2), "eps": float(eps)}
        super().__init__(groups, defaults)
        for group in self.param_groups:
            for name in ("lr", "damping"):
                if not callable(group[name]):
                    self._check_hp(name, group[name])
        self.model = model
        self.warm_start = bool(warm_start)
        self.base = base
        self.loss_name = self.loss.name
        self.fisher = fisher
        self.curvature = curvature
        self.on_nonfinite = on_nonfinite
        self.chunk_size = chunk_size
        self.limits = limits or SizeLimits()
        self.solver = build_solver(
            solver, t=t, t_d=t_d, kappa0=kappa0, seed=seed, **(solver_kwargs or {})
        )
        self.t = getattr(self.solver, "t", None)
        self.t_d = getattr(self.solver, "t_d", None)
        self.kappa0 = getattr(self.solver, "kappa0", None)
        self._tngd: dict[str, Any] = {
            "step": 0,
            "n_skipped": 0,
            "device_state": None,
            "exp_avg": None,
            "exp_avg_sq": None,
            "solver_state": None,
        }
        self._checked: set[tuple[int, int]] = set()
        self.last_diagnostics: dict[str, Any] = {}

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _check_hp(name: str, v: Any) -> float:
        v = float(v)
        if not math.isfinite(v) or v < 0:
            raise ValueError(f"{name} must be finite and ≥ 0, got {v}")
        return v

    def _group_hp(self, group: dict[str, Any], name: str, k: int) -> float:
        v = group[name]
        return self._check_hp(name, v(k) if callable(v) else v)

    def _hp(self, name: str, k: int) -> float:
        return self._group_hp(self.param_groups[0], name, k)

    def _params(self) -> list[tuple[dict[str, Any], Tensor]]:
        """(group, parameter) pairs of θ, in group order (parameters needing grad)."""
        return [(g, p) for g in self.param_groups for p in g["params"] if p.requires_grad]

    @property
    def step_count(self) -> int:
        """Number of updates applied (k of the next step)."""
        return self._tngd["step"]

    @property
    def device_state(self) -> Tensor | None:
        """g̃, the device's last output (None before the first step)."""
        return self._tngd["device_state"]

    def _fail(self, what: str, diag: dict[str, Any]) -> float:
        msg = f"non-finite {what} at step {self._tngd['step']}; parameters left unchanged"
        if self.on_nonfinite == "raise":
            raise NumericalError(msg)
        self._tngd["n_skipped"] += 1
        diag.update(skipped=True, reason=msg, n_skipped=self._tngd["n_skipped"])
        self.last_diagnostics = diag
        return diag.get("loss", math.nan)

    def _check_size(self, N: int, r: int, ref: Tensor) -> None:
        if (N, r) in self._checked:
            return
        check_step_size(N, r, dtype=ref.dtype, device=ref.device,
                        solver=solver_name(self.solver), curvature=self.curvature,
                        limits=self.limits)
        self._checked.add((N, r))

    # ------------------------------------------------------------------ the step

    def step(self, outputs: Any = None, targets: Any = None, *,  # type: ignore[override]
             model: nn.Module | None = None, inputs: Any = None) -> Any:
        """One TNGD iteration.

        Parameter API: ``step(outputs, targets)`` (outputs with their graph) or
        ``step(closure)`` (closure() -> (outputs, targets)); returns the loss (0-d tensor).
        The per-sample fast path for models that do not couple samples:
        ``step(targets=y, model=model, inputs=x)`` (S by vmap over samples, no graph needed).
        Model API: ``step(x, y)``; returns the loss (float). All: the loss before the update.
        """
        if self.model is not None:
            return self._step_model(outputs, targets)
        if model is not None:
            if outputs is not None:
                raise InputError("give either outputs or model= and inputs=, not both")
            return self._step_params(None, targets, model=model, inputs=inputs)
        if callable(outputs) and targets is None and not isinstance(outputs, Tensor):
            with torch.enable_grad():
                got = outputs()
            if not (isinstance(got, tuple) and len(got) == 2):
                raise InputError("the closure must return (outputs, targets)")
            outputs, targets = got
        if outputs is None:
            raise InputError("TNGD.step needs the model outputs and the targets: "
                             "opt.step(model(inputs), targets)")
        return self._step_params(outputs, targets)

    def _lam(self, k: int, pairs: list[tuple[dict[str, Any], Tensor]], ref: Tensor
             ) -> tuple[float | Tensor, Tensor | float]:
        """(damping: float or (N,) vector, lr: float or (N,) vector) at step k."""
        groups = {id(g): g for g, _ in pairs}
        lams = {i: self._group_hp(g, "damping", k) for i, g in groups.items()}
        lrs = {i: self._group_hp(g, "lr", k) for i, g in groups.items()}

        def vec(vals: dict[int, float]) -> float | Tensor:
            if len(set(vals.values())) <= 1:
                return next(iter(vals.values()))
            return torch.cat([torch.full((p.numel(),), vals[id(g)], dtype=ref.dtype,
                                         device=ref.device) for g, p in pairs])

        return vec(lams), vec(lrs)

    def _step_params(self, outputs: Tensor | None, targets: Any, *,
                     model: nn.Module | None = None, inputs: Any = None) -> Tensor:
        st = self._tngd
        k = st["step"]
        pairs = self._params()
        if not pairs:
            raise InputError("none of TNGD's parameters requires grad")
        params = [p for _, p in pairs]
        ref = params[0]
        lam, lr = self._lam(k, pairs, ref)
        N = sum(p.numel() for p in params)
        theta = torch.cat([p.detach().reshape(-1) for p in params])
        spec = None
        if model is not None:  # per-sample path: θ = the optimizer's tensors, by name
            names = {id(p): n for n, p in model.named_parameters()}
            missing = [i for i, p in enumerate(params) if id(p) not in names]
            if missing:
                raise InputError(f"{len(missing)} of TNGD's parameters are not parameters of "
                                 "the model given to step(model=...)")
            spec = ParamSpec(tuple(names[id(p)] for p in params), tuple(p.shape for p in params))
            with torch.no_grad():
                _, _, xc = _prepare(model, theta, inputs, spec)
                outputs = torch.func.functional_call(model, spec.unflatten(theta), (xc,))
        if isinstance(outputs, Tensor) and outputs.ndim >= 1:
            r = (self.loss.rows(outputs.shape) if self.fisher == "ggn"
                 else int(outputs.shape[0]))
            self._check_size(N, r, ref)
        diag = self._diag(k, lam, lr, st)
        t0 = time.perf_counter()
        if model is not None:
            curv = compute_curvature(model, theta, inputs, targets, self.loss, self.fisher,
                                     spec=spec, chunk_size=self.chunk_size)
        else:
            curv = curvature_from_outputs(outputs, targets, params, self.loss, self.fisher,
                                          chunk_size=self.chunk_size)
        diag["curvature_time_s"] = time.perf_counter() - t0
        o = 0
        for p in params:  # .grad holds the plain gradient g
            p.grad = curv.grad[o:o + p.numel()].view_as(p).clone()
            o += p.numel()
        new_theta = self._advance(theta, curv.grad, curv.S, None, lam, lr, curv.loss, diag, t0)
        if new_theta is not None:
            with torch.no_grad():
                o = 0
                for p in params:
                    p.copy_(new_theta[o:o + p.numel()].view_as(p))
                    o += p.numel()
        return curv.loss

    def _step_model(self, x: Tensor, y: Tensor) -> float:
        st = self._tngd
        k = st["step"]
        assert self.model is not None
        pairs = self._params()
        theta, spec = flatten_params(self.model)
        lam, lr = self._lam(k, pairs, theta)
        if self.curvature == "factor" and self.fisher == "ggn":
            shape_key = tuple(tuple(t.shape) for t in _leaves(x))
            if shape_key not in self._checked_shapes:
                with torch.no_grad():
                    _, _, xc = _prepare(self.model, theta, x, spec)
                    z = torch.func.functional_call(self.model, spec.unflatten(theta), (xc,))
                self._check_size(theta.numel(), self.loss.rows(z.shape), theta)
                self._checked_shapes.add(shape_key)
        diag = self._diag(k, lam, lr, st)
        t0 = time.perf_counter()
        curv = compute_curvature(
            self.model,
            theta,
            x,
            y,
            self.loss,
            self.fisher,
            spec=spec,
            with_factor=self.curvature == "factor",
            chunk_size=self.chunk_size,
        )
        diag["curvature_time_s"] = time.perf_counter() - t0
        fvp = None
        if self.curvature != "factor":
            fvp = make_ggn_vp(self.model, theta, x, self.loss, spec=spec, y=y)
        new_theta = self._advance(theta, curv.grad, curv.S, fvp, lam, lr, curv.loss, diag, t0)
        if new_theta is None:
            return diag.get("loss", math.nan)
        load_params_(self.model, new_theta, spec)
        return diag["loss"]

    @property
    def _checked_shapes(self) -> set[Any]:
        if not hasattr(self, "_shapes_seen"):
            self._shapes_seen: set[Any] = set()
        return self._shapes_seen

    def _diag(self, k: int, lam: Any, lr: Any, st: dict[str, Any]) -> dict[str, Any]:
        def num(v: Any) -> Any:
            return v if not isinstance(v, Tensor) else [float(v.min()), float(v.max())]

        return {"step": k, "lr": num(lr), "damping": num(lam), "skipped": False,
                "n_skipped": st["n_skipped"]}

    def _advance(self, theta: Tensor, g: Tensor, S: Tensor | None,
                 fvp: Callable[[Tensor], Tensor] | None, lam: Any, lr: Any, loss_t: Tensor,
                 diag: dict[str, Any], t0: float) -> Tensor | None:
        """Solve, update the optimizer state and return the new θ (None: skipped)."""
        st = self._tngd
        k = st["step"]
        group = self.param_groups[0]
        loss = float(loss_t)
        diag["loss"] = loss
        diag["grad_norm"] = float(torch.linalg.vector_norm(g))
        if not math.isfinite(loss):
            self._fail("loss", diag)
            return None
        if _nonfinite(g):
            self._fail("gradient", diag)
            return None
        if _nonfinite(S):
            self._fail("curvature", diag)
            return None
        if isinstance(lam, Tensor) and (self.t_d or 0.0) > 0:
            raise InputError("param groups with different damping do not support a delay "
                             "t_d > 0")
        prev_out = st["device_state"]
        x0 = prev_out if (self.warm_start and prev_out is not None) else g
        g_tilde, result = device_solve(self.solver, g, lam, S=S, fvp=fvp, x0=x0,
                                       state=st["solver_state"])
        diag.update(
            residual=result.residual,
            solve_time_s=result.time_s,
            iterations=result.iterations,
            matvecs=result.info.get("matvecs", result.iterations),
        )
        if _nonfinite(g_tilde):
            self._fail("solver output", diag)
            return None

        # ---- commit: optimizer state, then the parameters
        if self.base == "sgd":
            new_theta = theta - lr * g_tilde if isinstance(lr, Tensor) else \
                theta.add(g_tilde, alpha=-lr)
        else:
            b1, b2 = group["betas"]
            eps = group["eps"]
            m = st["exp_avg"] if st["exp_avg"] is not None else torch.zeros_like(theta)
            v = st["exp_avg_sq"] if st["exp_avg_sq"] is not None else torch.zeros_like(theta)
            m = m.lerp(g_tilde, 1 - b1)
            v = v.mul(b2).addcmul(g_tilde, g_tilde, value=1 - b2)
            n = k + 1
            denom = (v.sqrt() / math.sqrt(1 - b2**n)).add_(eps)
            if isinstance(lr, Tensor):
                new_theta = theta - (lr / (1 - b1**n)) * m / denom
            else:
                new_theta = theta.addcdiv(m, denom, value=-lr / (1 - b1**n))
        if _nonfinite(new_theta):
            self._fail("updated parameters", diag)
            return None
        if self.base == "adam":
            st["exp_avg"], st["exp_avg_sq"] = m, v
        st["device_state"] = g_tilde
        st["solver_state"] = result.state
        st["step"] = k + 1
        diag["update_norm"] = float(torch.linalg.vector_norm(new_theta - theta))
        diag["time_s"] = time.perf_counter() - t0
        self.last_diagnostics = diag
        return new_theta

    # ------------------------------------------------------------------ state

    def state_dict(self) -> dict[str, Any]:
        sd = super().state_dict()
        st = self._tngd
        sd["tngd"] = copy.deepcopy(
            {
                "step": st["step"],
                "n_skipped": st["n_skipped"],
                "device_state": st["device_state"],
                "exp_avg": st["exp_avg"],
                "exp_avg_sq": st["exp_avg_sq"],
                "solver_state": self.solver.save_state(st["solver_state"]),
                "solver_rng_state": self.solver.get_rng_state(),
            }
        )
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = dict(state_dict)
        extra = state_dict.pop("tngd", None)
        super().load_state_dict(state_dict)
        if extra is None:
            return
        extra = copy.deepcopy(extra)
        ref = next(iter(self.param_groups[0]["params"]))

        def cast(v: Tensor | None) -> Tensor | None:
            return None if v is None else v.to(dtype=ref.dtype, device=ref.device)

        st = self._tngd
        st["step"] = int(extra["step"])
        st["n_skipped"] = int(extra["n_skipped"])
        st["device_state"] = cast(extra["device_state"])
        st["exp_avg"] = cast(extra["exp_avg"])
        st["exp_avg_sq"] = cast(extra["exp_avg_sq"])
        st["solver_state"] = self.solver.load_state(extra.get("solver_state"), like=ref)
        self.solver.set_rng_state(extra.get("solver_rng_state"))


class NGD(TNGD):
    """Natural gradient descent θ ← θ − η (F + λI)⁻¹ g: :class:`TNGD` with a direct solver
    (default ``"exact"``, dense Cholesky; ``"woodbury"`` scales to larger N)."""

    def __init__(
        self,
        params: Any,
        lr: Schedule = 0.01,
        damping: Schedule = 0.01,
        *,
        solver: str | Solver = "exact",
        **kwargs: Any,
    ) -> None:
        super().__init__(params, lr, damping, solver=solver, **kwargs)
