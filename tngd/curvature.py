"""Curvature of a torch model at flat parameters θ ∈ R^N (torch.func).

Conventions (b = batch size, d_z = model outputs per sample, N = number of parameters):

* The model is called per batch as ``model(x) -> (b, d_z)`` (any per-sample output shape is
  flattened to ``d_z``). Only parameters with ``requires_grad`` are part of θ; buffers and frozen
  parameters are taken from the module unchanged.
* Losses are means over the batch of a per-sample loss ℓ(z, y):

  - ``"ce"``:  ℓ = logsumexp(z) − z[y]          (softmax cross-entropy, integer labels y)
  - ``"mse"``: ℓ = ½‖z − y‖²                    (NB: *not* torch's ``MSELoss``, which averages
    over all b·d_z entries and has no ½; ours has the unit loss Hessian H = I)

* With ℓ's Hessian w.r.t. the outputs written H = L Lᵀ (closed form: CE H = diag(p) − p pᵀ,
  L = diag(√p) − p √pᵀ; MSE L = I) and J_i = ∂z_i/∂θ (d_z × N), the generalised Gauss-Newton
  matrix of the mean loss is

      G = (1/b) Σ_i J_iᵀ H_i J_i = SᵀS,     S = [L_iᵀ J_i / √b]_i ∈ R^{r×N},  r = b·d_z.

  Row k of the block S_i is the vector-Jacobian product of the cotangent L_i[:, k], so S is
  built with one batched vjp per output direction (vmap over samples and directions), in
  O(b d_z N) memory without ever forming J separately.
* The empirical Fisher is (1/b) Σ_i g_i g_iᵀ (uncentred, per-sample gradients g_i), i.e. SᵀS
  with S = [g_iᵀ / √b]_i ∈ R^{b×N}.

dtype and device follow the parameter vector; floating inputs x are cast to its dtype.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn
from torch.func import functional_call, jvp, vjp, vmap

__all__ = [
    "Curvature",
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
        raise ValueError(f"unknown loss {loss!r}; expected one of {_LOSSES}")


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


def _prepare(
    model: nn.Module, params_vec: Tensor | None, x: Tensor, spec: ParamSpec | None
) -> tuple[Tensor, ParamSpec, Tensor]:
    spec = spec or ParamSpec.from_module(model)
    if params_vec is None:
        params_vec, _ = flatten_params(model)
    params_vec = params_vec.detach()
    if x.is_floating_point():
        x = x.to(dtype=params_vec.dtype)
    return params_vec, spec, x.to(params_vec.device)


def _batch_fn(model: nn.Module, spec: ParamSpec, x: Tensor) -> Callable[[Tensor], Tensor]:
    """θ -> outputs (b, d_z) on the whole batch."""

    def f(theta: Tensor) -> Tensor:
        out = functional_call(model, spec.unflatten(theta), (x,))
        return out.reshape(x.shape[0], -1)

    return f


# --------------------------------------------------------------------------- curvature


@dataclass
class Curvature:
    """Loss, gradient and curvature factor at θ.

    Attributes:
        loss: scalar mean loss.
        grad: g (N,).
        S: factor (r, N) with F = SᵀS; r = b·d_z (GGN) or b (empirical). None if not built.
        outputs: model outputs (b, d_z), detached.
        fisher: "ggn" or "empirical"; loss_name: "ce" or "mse".
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


def compute_curvature(
    model: nn.Module,
    params_vec: Tensor | None,
    x: Tensor,
    y: Tensor,
    loss: LossName = "ce",
    fisher: FisherName = "ggn",
    *,
    spec: ParamSpec | None = None,
    with_factor: bool = True,
    chunk_size: int | None = None,
) -> Curvature:
    """Loss, gradient g (N,) and factor S of F = SᵀS at θ = ``params_vec``.

    Args:
        model: any module mapping x (b, ...) -> (b, d_z); called per sample (as a batch of one)
            via ``functional_call``, so it must not couple samples (e.g. BatchNorm in train mode).
        params_vec: θ (N,) in ``spec`` order; None takes the model's current parameters.
        x: inputs (b, ...). y: labels (b,) for "ce", targets (b, d_z) for "mse".
        fisher: "ggn" -> S (b·d_z, N), rows L_iᵀ J_i / √b sample-major;
            "empirical" -> S (b, N), rows g_iᵀ / √b.
        with_factor: False skips S (loss and gradient only, same single pass otherwise).
        chunk_size: forwarded to the sample ``vmap`` to bound memory.
    """
    _check_loss(loss)
    if fisher not in _FISHERS:
        raise ValueError(f"unknown fisher {fisher!r}; expected one of {_FISHERS}")
    theta, spec, x = _prepare(model, params_vec, x, spec)
    y = y.to(theta.device)
    if loss == "mse":
        y = y.to(theta.dtype)
    b = x.shape[0]

    def per_sample(xi: Tensor, yi: Tensor) -> tuple[Tensor, ...]:
        def f(th: Tensor) -> Tensor:
            return functional_call(model, spec.unflatten(th), (xi.unsqueeze(0),)).reshape(-1)

        z, vjp_fn = vjp(f, theta)
        li = per_sample_loss(z, yi, loss)
        (gi,) = vjp_fn(loss_grad_outputs(z, yi, loss))
        if with_factor and fisher == "ggn":
            # columns of L are the cotangents: S_i[k] = L[:, k]ᵀ J_i
            (si,) = vmap(vjp_fn)(loss_hessian_factor(z, loss).T.contiguous())
        else:
            si = gi.new_zeros(0, gi.shape[0])
        return z, li, gi, si

    z, li, gi, si = vmap(per_sample, chunk_size=chunk_size)(x, y)
    scale = 1.0 / math.sqrt(b)
    S: Tensor | None
    if not with_factor:
        S = None
    elif fisher == "ggn":
        S = si.reshape(-1, spec.numel) * scale
    else:
        S = gi * scale
    return Curvature(
        loss=li.mean(),
        grad=gi.mean(0),
        S=S,
        outputs=z,
        spec=spec,
        fisher=fisher,
        loss_name=loss,
    )


def make_ggn_vp(
    model: nn.Module,
    params_vec: Tensor | None,
    x: Tensor,
    loss: LossName = "ce",
    *,
    spec: ParamSpec | None = None,
) -> Callable[[Tensor], Tensor]:
    """Matrix-free GGN-vector product v (N,) -> G v (N,) at θ (labels are not needed).

    G v = (1/b) Jᵀ H (J v): one jvp (forward mode) then one vjp (reverse mode, graph reused
    between calls) on the whole batch; J is never formed.
    """
    _check_loss(loss)
    theta, spec, x = _prepare(model, params_vec, x, spec)
    f = _batch_fn(model, spec, x)
    z, vjp_fn = vjp(f, theta)
    z = z.detach()
    b = x.shape[0]

    def gvp(v: Tensor) -> Tensor:
        _, jv = jvp(f, (theta,), (v.to(theta.dtype),))
        (out,) = vjp_fn(_loss_hessian_vp(z, jv, loss) / b)
        return out

    return gvp


def ggn_vp(
    model: nn.Module,
    params_vec: Tensor | None,
    x: Tensor,
    v: Tensor,
    loss: LossName = "ce",
    *,
    spec: ParamSpec | None = None,
) -> Tensor:
    """One matrix-free GGN-vector product G v (N,); see :func:`make_ggn_vp`."""
    return make_ggn_vp(model, params_vec, x, loss, spec=spec)(v)


def dense_ggn(
    model: nn.Module,
    params_vec: Tensor | None,
    x: Tensor,
    y: Tensor,
    loss: LossName = "ce",
    fisher: FisherName = "ggn",
    *,
    spec: ParamSpec | None = None,
) -> Tensor:
    """Dense F = SᵀS (N, N); for small models (tests, exact solver)."""
    return compute_curvature(model, params_vec, x, y, loss, fisher, spec=spec).dense()
