"""Curvature of a torch model at flat parameters θ ∈ R^N (torch.func, per-sample vmap).

Conventions (b = batch size, N = number of parameters):

* The model is called per batch as ``model(x) -> (b, …)``; x is a tensor or a dict/tuple of
  tensors (passed as the one argument). Only parameters with ``requires_grad`` are part of θ;
  buffers and frozen parameters are taken from the module unchanged.
* Losses are :class:`tngd.losses.OutputLoss` objects (or their names ``"ce"``, ``"mse"``,
  ``"bce"``, ``"nll"``, torch loss modules, callables). The two historical ones:

  - ``"ce"``:  ℓ = logsumexp(z) − z[y]          (softmax cross-entropy, integer labels y)
  - ``"mse"``: ℓ = ½‖z − y‖²                    (NB: *not* torch's ``MSELoss``, which averages
    over all b·d_z entries and has no ½; ours has the unit loss Hessian H = I)

* With ℓ's Hessian w.r.t. the outputs written H = L Lᵀ (closed form: CE H = diag(p) − p pᵀ,
  L = diag(√p) − p √pᵀ; MSE L = I) and J_i = ∂z_i/∂θ (d_z × N), the generalised Gauss-Newton
  matrix of the mean loss is

      G = (1/b) Σ_i J_iᵀ H_i J_i = SᵀS,     S = [L_iᵀ J_i / √b]_i ∈ R^{r×N},  r = b·d_z.

  In general the factor F (b, P, C, k) of :mod:`tngd.losses` (block-diagonal over P positions,
  e.g. the T tokens of (b, T, C) outputs) gives the cotangents. Row k of the block S_i is the
  vector-Jacobian product of one cotangent, so S is built with one batched vjp per output
  direction (vmap over samples and directions), in O(r N) memory without forming J separately.
* The empirical Fisher is (1/b) Σ_i g_i g_iᵀ (uncentred, per-sample gradients g_i), i.e. SᵀS
  with S = [g_iᵀ / √b]_i ∈ R^{b×N}.

This module evaluates the model once per sample (``functional_call`` under ``vmap``): O(r N)
work, but the model must not couple samples. :mod:`tngd.curvature_graph` builds the same S from
the graph of the user's own batch forward (any module: BatchNorm, Dropout).

dtype and device follow the parameter vector; floating inputs x are cast to its dtype.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.func import functional_call, jvp, vjp, vmap
from torch.utils._pytree import tree_flatten, tree_map

from spu_circuits.errors import InputError
from tngd.losses import OutputLoss, resolve_loss

__all__ = [
    "Curvature",
    "batch_size",
    "check_per_sample_model",
    "factor_cotangents",
    "output_factor",
    "sample_cotangents",
    "ParamSpec",
    "compute_curvature",
    "dense_ggn",
    "flatten_params",
    "ggn_vp",
    "load_params_",
    "loss_grad_outputs",
    "loss_hessian_factor",
    "make_ggn_vp",
    "per_sample_loss",
]

LossName = Literal["ce", "mse"]
LossSpec = str | nn.Module | Callable[..., Tensor] | OutputLoss
FisherName = Literal["ggn", "empirical"]
_LOSSES = ("ce", "mse")
_FISHERS = ("ggn", "empirical")


# --------------------------------------------------------------------------- parameters


@dataclass(frozen=True)
class ParamSpec:
    """Names and shapes of a module's trainable parameters, in ``named_parameters`` order.

    ``flatten``/``unflatten`` map between a ``{name: tensor}`` dict and θ ∈ R^N.
    """

    names: tuple[str, ...]
    shapes: tuple[torch.Size, ...]

    @classmethod
    def from_module(cls, model: nn.Module) -> ParamSpec:
        items = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        return cls(tuple(n for n, _ in items), tuple(p.shape for _, p in items))

    @property
    def numels(self) -> tuple[int, ...]:
        return tuple(math.prod(s) for s in self.shapes)

    @property
    def numel(self) -> int:
        """N, the length of θ."""
        return sum(self.numels)

    def flatten(self, params: Mapping[str, Tensor]) -> Tensor:
        """``{name: tensor}`` -> θ (N,)."""
        return torch.cat([params[n].reshape(-1) for n in self.names])

    def unflatten(self, vec: Tensor) -> dict[str, Tensor]:
        """θ (N,) -> ``{name: view of θ}`` (differentiable, works under vmap/jvp)."""
        if vec.shape != (self.numel,):
            raise ValueError(f"expected a vector of shape ({self.numel},), got {tuple(vec.shape)}")
        chunks = torch.split(vec, self.numels)
        return {n: c.view(s) for n, c, s in zip(self.names, chunks, self.shapes, strict=True)}


def flatten_params(model: nn.Module) -> tuple[Tensor, ParamSpec]:
    """Return (θ (N,), spec): a detached copy of the model's trainable parameters."""
    spec = ParamSpec.from_module(model)
    params = dict(model.named_parameters())
    return spec.flatten({n: params[n].detach() for n in spec.names}).clone(), spec


@torch.no_grad()
def load_params_(model: nn.Module, vec: Tensor, spec: ParamSpec | None = None) -> None:
    """Copy θ (N,) into the model's parameters in place."""
    spec = spec or ParamSpec.from_module(model)
    params = dict(model.named_parameters())
    for n, t in spec.unflatten(vec).items():
        params[n].copy_(t)


# --------------------------------------------------------------------------- losses


def _check_loss(loss: str) -> None:
    if loss not in _LOSSES:
        raise InputError(f"unknown loss {loss!r}; expected one of {_LOSSES}")


def per_sample_loss(z: Tensor, y: Tensor, loss: LossName) -> Tensor:
    """ℓ(z, y) for one sample: z (d_z,), y () int label (CE) or (d_z,) target (MSE) -> ()."""
    _check_loss(loss)
    if loss == "ce":
        return torch.logsumexp(z, dim=-1) - z.gather(-1, y.long().reshape(1)).squeeze(-1)
    return 0.5 * (z - y.reshape(z.shape)).pow(2).sum(-1)


def loss_grad_outputs(z: Tensor, y: Tensor, loss: LossName) -> Tensor:
    """∂ℓ/∂z for one sample (d_z,): CE p − onehot(y), MSE z − y."""
    _check_loss(loss)
    if loss == "ce":
        p = torch.softmax(z, dim=-1)
        classes = torch.arange(z.shape[-1], device=z.device)
        return p - (classes == y.long()).to(z.dtype)
    return z - y.reshape(z.shape)


def loss_hessian_factor(z: Tensor, loss: LossName) -> Tensor:
    """L (d_z, d_z) with L Lᵀ = ∂²ℓ/∂z² for one sample z (d_z,).

    CE: L = diag(√p) − p √pᵀ (column k is √p_k (e_k − p)); MSE: L = I.
    """
    _check_loss(loss)
    if loss == "ce":
        p = torch.softmax(z, dim=-1)
        sp = p.sqrt()
        return torch.diag_embed(sp) - p.unsqueeze(-1) * sp.unsqueeze(-2)
    return torch.eye(z.shape[-1], dtype=z.dtype, device=z.device)


def _loss_hessian_vp(z: Tensor, u: Tensor, loss: LossName) -> Tensor:
    """H(z) u for a batch: z, u (b, d_z) -> (b, d_z)."""
    if loss == "ce":
        p = torch.softmax(z, dim=-1)
        return p * u - p * (p * u).sum(-1, keepdim=True)
    return u


# --------------------------------------------------------------------------- model functions


def _leaves(x: Any) -> list[Tensor]:
    return [t for t in tree_flatten(x)[0] if isinstance(t, Tensor)]


def batch_size(x: Any) -> int:
    """b of an input batch: the first dimension of its first tensor (tensor, dict, tuple…)."""
    leaves = _leaves(x)
    if not leaves or leaves[0].ndim == 0:
        raise InputError(f"inputs must hold tensors with a batch dimension, got {type(x).__name__}")
    b = int(leaves[0].shape[0])
    for t in leaves:
        if t.ndim == 0 or int(t.shape[0]) != b:
            raise InputError(
                f"every input tensor needs the batch size {b} as its first dimension, got "
                f"shape {tuple(t.shape)}"
            )
    return b


def _prepare(
    model: nn.Module, params_vec: Tensor | None, x: Any, spec: ParamSpec | None
) -> tuple[Tensor, ParamSpec, Any]:
    spec = spec or ParamSpec.from_module(model)
    if params_vec is None:
        params_vec, _ = flatten_params(model)
    params_vec = params_vec.detach()

    def cast(t: Any) -> Any:
        if not isinstance(t, Tensor):
            return t
        if t.is_floating_point():
            t = t.to(dtype=params_vec.dtype)
        return t.to(params_vec.device)

    return params_vec, spec, tree_map(cast, x)


def _batch_fn(model: nn.Module, spec: ParamSpec, x: Any) -> Callable[[Tensor], Tensor]:
    """θ -> outputs (b, d_z) on the whole batch."""
    b = batch_size(x)

    def f(theta: Tensor) -> Tensor:
        out = functional_call(model, spec.unflatten(theta), (x,))
        return out.reshape(b, -1)

    return f


def check_per_sample_model(model: nn.Module) -> None:
    """Refuse modules whose per-sample evaluation differs from the batch (BatchNorm in train
    mode): the per-sample vmap path would compute the GGN of another function."""
    for name, m in model.named_modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training:
            raise InputError(
                f"module {name or type(m).__name__!r} ({type(m).__name__}) couples the samples "
                "of a batch in train mode, which the per-sample path TNGD(model).step(x, y) "
                "cannot evaluate; use TNGD(model.parameters(), ...) with "
                "opt.step(model(x), y), which builds S from the batch's own graph"
            )


# --------------------------------------------------------------------------- curvature


def sample_cotangents(Fi: Tensor) -> Tensor:
    """One sample's S-row cotangents: Fi (P, C, k) -> E (P·k, P·C), row (p, j) holding
    Fi[p, :, j] at position p (block-diagonal over positions)."""
    P, C, k = Fi.shape
    eye = torch.eye(P, dtype=Fi.dtype, device=Fi.device)
    E = eye[:, None, :, None] * Fi.permute(0, 2, 1)[:, :, None, :]  # (P, k, P, C)
    return E.reshape(P * k, P * C)


def factor_cotangents(F: Tensor, start: int, stop: int) -> Tensor:
    """Batch cotangents of S's rows [start, stop): F (b, P, C, k) -> E (stop − start, b, P, C)
    with E[ρ, i, p, :] = F[i, p, :, j] for row ρ = (i·P + p)·k + j."""
    b, P, C, k = F.shape
    idx = torch.arange(start, stop, device=F.device)
    i, p, j = idx // (P * k), (idx // k) % P, idx % k
    E = F.new_zeros(stop - start, b, P, C)
    E[torch.arange(stop - start, device=F.device), i, p, :] = F[i, p, :, j]
    return E


@dataclass
class Curvature:
    """Loss, gradient and curvature factor at θ.

    Attributes:
        loss: scalar batch loss.
        grad: g (N,).
        S: factor (r, N) with F = SᵀS; r = b·P·k (GGN, see :mod:`tngd.losses`) or b
            (empirical). None if not built.
        outputs: model outputs (b, …), detached.
        fisher: "ggn" or "empirical"; loss_name: the loss's name.
    """

    loss: Tensor
    grad: Tensor
    S: Tensor | None
    outputs: Tensor
    spec: ParamSpec
    fisher: str
    loss_name: str

    @property
    def N(self) -> int:
        return self.grad.shape[0]

    @property
    def r(self) -> int:
        if self.S is None:
            raise ValueError("factor S was not built")
        return self.S.shape[0]

    def fvp(self, v: Tensor) -> Tensor:
        """F v = Sᵀ(S v) for v (N,) or (N, k)."""
        if self.S is None:
            raise ValueError("factor S was not built")
        return self.S.T @ (self.S @ v)

    def dense(self) -> Tensor:
        """F = SᵀS (N, N)."""
        if self.S is None:
            raise ValueError("factor S was not built")
        return self.S.T @ self.S


def _check_fisher(fisher: str) -> None:
    if fisher not in _FISHERS:
        raise InputError(f"unknown fisher {fisher!r}; expected one of {_FISHERS}")


def output_factor(loss: OutputLoss, outputs: Tensor, targets: Any, fisher: str,
                  grad_outputs: Tensor) -> Tensor:
    """F (b, P, C, k) whose cotangent rows give S: the loss Hessian's factor (GGN) or
    √b ∂L/∂z_i at sample i (empirical Fisher, rows g_iᵀ/√b for a mean loss)."""
    if fisher == "ggn":
        return loss.hessian_factor(outputs, targets)
    b = outputs.shape[0]
    return (math.sqrt(b) * grad_outputs).reshape(b, 1, -1, 1)


def compute_curvature(
    model: nn.Module,
    params_vec: Tensor | None,
    x: Any,
    y: Any,
    loss: LossSpec = "ce",
    fisher: FisherName = "ggn",
    *,
    spec: ParamSpec | None = None,
    with_factor: bool = True,
    chunk_size: int | None = None,
) -> Curvature:
    """Loss, gradient g (N,) and factor S of F = SᵀS at θ = ``params_vec`` (per-sample vmap).

    Args:
        model: any module mapping x (b, ...) -> outputs (b, ...); called per sample (as a batch
            of one) via ``functional_call``, so it must not couple samples (BatchNorm in train
            mode is refused; Dropout in train mode fails: use the outputs-graph path,
            :func:`tngd.curvature_graph.curvature_from_outputs`).
        params_vec: θ (N,) in ``spec`` order; None takes the model's current parameters.
        x: inputs with batch dimension b: a tensor, or a dict/tuple of tensors passed as the
            model's one argument. y: targets of the loss (see :mod:`tngd.losses`).
        loss: a name (``"ce"``, ``"mse"``, ``"bce"``, ``"nll"``), a torch loss module, a callable
            or a :class:`tngd.losses.OutputLoss`.
        fisher: "ggn" -> S (b·P·k, N), rows F[i,p,:,j]ᵀ J_{i,p} sample-major (for CE/MSE on
            (b, d_z) outputs: L_iᵀ J_i / √b); "empirical" -> S (b, N), rows g_iᵀ / √b.
        with_factor: False skips S (loss and gradient only).
        chunk_size: forwarded to the sample ``vmap`` to bound memory.
    """
    loss_obj = resolve_loss(loss)
    _check_fisher(fisher)
    theta, spec, x = _prepare(model, params_vec, x, spec)
    check_per_sample_model(model)
    if isinstance(y, Tensor):
        y = y.to(theta.device)
    b = batch_size(x)
    with torch.no_grad():
        z = functional_call(model, spec.unflatten(theta), (x,))
    if not isinstance(z, Tensor) or z.shape[:1] != (b,):
        raise InputError(f"the model must return a tensor (b, …) with b = {b}, got "
                         f"{tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__}")
    zd = z.detach().requires_grad_(True)
    with torch.enable_grad():
        value = loss_obj.value(zd, y)
        (gz,) = torch.autograd.grad(value, zd)
    F = output_factor(loss_obj, z, y, fisher, gz) if with_factor else None

    def per_sample(xi: Any, gzi: Tensor, Fi: Tensor | None) -> tuple[Tensor, Tensor]:
        def f(th: Tensor) -> Tensor:
            xb = tree_map(lambda t: t.unsqueeze(0) if isinstance(t, Tensor) else t, xi)
            return functional_call(model, spec.unflatten(th), (xb,)).reshape(-1)

        _, vjp_fn = vjp(f, theta)
        cot = gzi.reshape(1, -1)
        if Fi is not None:  # one vmapped VJP for the gradient and S's rows together
            cot = torch.cat([cot, sample_cotangents(Fi)], dim=0)
        (out,) = vmap(vjp_fn)(cot)
        return out[0], out[1:]

    try:
        gi, si = vmap(per_sample, in_dims=(0, 0, None if F is None else 0),
                      chunk_size=chunk_size)(x, gz, F)
    except RuntimeError as exc:
        if "randomness" in str(exc):
            raise InputError(
                "the model draws random numbers (Dropout in train mode?), which the per-sample "
                "path TNGD(model).step(x, y) cannot reproduce; use TNGD(model.parameters(), "
                "...) with opt.step(model(x), y), which uses the batch's own graph"
            ) from None
        raise
    S = None if F is None else si.reshape(-1, spec.numel)
    return Curvature(
        loss=value.detach(),
        grad=gi.sum(0),
        S=S,
        outputs=z,
        spec=spec,
        fisher=fisher,
        loss_name=loss_obj.name,
    )


def make_ggn_vp(
    model: nn.Module,
    params_vec: Tensor | None,
    x: Any,
    loss: LossSpec = "ce",
    *,
    spec: ParamSpec | None = None,
    y: Any = None,
) -> Callable[[Tensor], Tensor]:
    """Matrix-free GGN-vector product v (N,) -> G v (N,) at θ.

    G v = Jᵀ (∇²_Z L) (J v): one jvp (forward mode) then one vjp (reverse mode, graph reused
    between calls) on the whole batch; J is never formed. ``"ce"``/``"mse"`` on (b, d_z)
    outputs need no targets; other losses take the targets ``y`` (their Hessian may depend on
    them) and use the factor of :mod:`tngd.losses`.
    """
    theta, spec, x = _prepare(model, params_vec, x, spec)
    b = batch_size(x)

    def f(th: Tensor) -> Tensor:
        return functional_call(model, spec.unflatten(th), (x,))

    z, vjp_fn = vjp(f, theta)
    z = z.detach()
    legacy = isinstance(loss, str) and loss in _LOSSES and y is None and z.ndim == 2
    if legacy:
        def hvp(u: Tensor) -> Tensor:
            return _loss_hessian_vp(z, u, loss) / b  # type: ignore[arg-type]
    else:
        F = resolve_loss(loss).hessian_factor(z, y)  # (b, P, C, k)

        def hvp(u: Tensor) -> Tensor:
            uf = u.reshape(F.shape[:3])
            w = torch.einsum("bpck,bpc->bpk", F, uf)
            return torch.einsum("bpck,bpk->bpc", F, w).reshape(z.shape)

    def gvp(v: Tensor) -> Tensor:
        _, jv = jvp(f, (theta,), (v.to(theta.dtype),))
        (out,) = vjp_fn(hvp(jv))
        return out

    return gvp


def ggn_vp(
    model: nn.Module,
    params_vec: Tensor | None,
    x: Any,
    v: Tensor,
    loss: LossSpec = "ce",
    *,
    spec: ParamSpec | None = None,
) -> Tensor:
    """One matrix-free GGN-vector product G v (N,); see :func:`make_ggn_vp`."""
    return make_ggn_vp(model, params_vec, x, loss, spec=spec)(v)


def dense_ggn(
    model: nn.Module,
    params_vec: Tensor | None,
    x: Any,
    y: Any,
    loss: LossSpec = "ce",
    fisher: FisherName = "ggn",
    *,
    spec: ParamSpec | None = None,
) -> Tensor:
    """Dense F = SᵀS (N, N); for small models (tests, exact solver)."""
    return compute_curvature(model, params_vec, x, y, loss, fisher, spec=spec).dense()
