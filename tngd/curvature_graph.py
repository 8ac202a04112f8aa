"""Gradient and GGN factor S from the graph of the user's own forward pass.

``curvature_from_outputs(outputs, targets, params, loss)`` takes outputs (b, …) that still hold
their autograd graph (``outputs = model(inputs)`` in train mode, any module, any inputs) and
returns a :class:`tngd.curvature.Curvature` with

* the batch loss L and its gradient g = Jᵀ ∂L/∂Z (one backward), and
* S (r, N) whose row ρ = (i, p, j) is the vector-Jacobian product Eᵨᵀ J of the cotangent Eᵨ
  holding F[i, p, :, j] at position (i, p) (F: the loss's Hessian factor, :mod:`tngd.losses`),
  so SᵀS = Jᵀ (∇²_Z L) J, the GGN of the *batch* as a function: BatchNorm's batch statistics and
  Dropout's masks are those of this forward pass.

The rows are computed with batched VJPs (``torch.autograd.grad(..., is_grads_batched=True)``, a
vmap over the backward; the graph is kept for them and released when ``outputs`` is dropped) in
chunks of ``chunk_size`` rows, falling back to one backward per row
where an operation has no batching rule. Each batched VJP is a backward of the whole batch, so
the work is r backward passes, b times the per-sample path's O(r N) for models that do not
couple samples (:func:`tngd.curvature.compute_curvature`); ``validation/bench/bench_curvature``
measures both.

Everything stays on the outputs' device and dtype; nothing is copied to the CPU.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from spu_circuits.errors import InputError
from tngd.curvature import Curvature, ParamSpec, _check_fisher, factor_cotangents, output_factor
from tngd.losses import OutputLoss, resolve_loss

__all__ = ["DEFAULT_CHUNK", "curvature_from_outputs", "param_spec"]

#: Rows of S per batched VJP (bench_curvature: 32–64 are the fastest on the MNIST CNN).
DEFAULT_CHUNK = 32


def param_spec(params: Sequence[Tensor]) -> ParamSpec:
    """A :class:`ParamSpec` of a parameter list (names "0", "1", … in order)."""
    return ParamSpec(tuple(str(i) for i in range(len(params))), tuple(p.shape for p in params))


def _flat(grads: Sequence[Tensor | None], params: Sequence[Tensor], lead: tuple[int, ...]
          ) -> Tensor:
    parts = [
        (g if g is not None else p.new_zeros(*lead, *p.shape)).reshape(*lead, -1)
        for g, p in zip(grads, params, strict=True)
    ]
    return torch.cat(parts, dim=-1)


def _graph_error(exc: RuntimeError) -> InputError | None:
    msg = str(exc)
    if "backward through the graph a second time" in msg or "have already been freed" in msg:
        return InputError(
            "the graph of `outputs` was already freed (by loss.backward()?); call "
            "loss.backward(retain_graph=True) before TNGD's step, or let the step compute the "
            "gradient (no backward of your own)"
        )
    return None


def curvature_from_outputs(
    outputs: Tensor,
    targets: Any,
    params: Sequence[Tensor],
    loss: str | OutputLoss | Any = "ce",
    fisher: str = "ggn",
    *,
    with_factor: bool = True,
    chunk_size: int | None = None,
    grad: Tensor | None = None,
    retain_graph: bool = False,
    batched: bool = True,
) -> Curvature:
    """Loss, gradient and factor S from ``outputs``' graph (see the module docstring).

    Args:
        outputs: model outputs (b, …) with their graph to ``params``.
        targets: the loss's targets (moved to the outputs' device).
        params: the tensors θ is made of (in order; N = total numel).
        loss: a name, torch loss module, callable or :class:`~tngd.losses.OutputLoss`.
        fisher: "ggn" (S rows from the loss Hessian's factor) or "empirical" (rows g_iᵀ/√b).
        with_factor: False: loss and gradient only.
        chunk_size: rows of S per batched VJP (default :data:`DEFAULT_CHUNK`).
        grad: use this gradient (N,) instead of computing it (e.g. the user's own ``.grad``).
        retain_graph: keep the graph after the last VJP.
        batched: False: one backward per row (no vmap), the reference for the batched path.
    """
    loss_obj = resolve_loss(loss)
    _check_fisher(fisher)
    if not isinstance(outputs, Tensor):
        raise InputError(f"outputs must be a tensor (the model's output), got "
                         f"{type(outputs).__name__}")
    params = list(params)
    if not params:
        raise InputError("no parameters to differentiate")
    if not outputs.requires_grad:
        raise InputError(
            "outputs have no autograd graph to the parameters (computed under torch.no_grad(), "
            "detached, or no parameter requires grad); call the model in grad mode"
        )
    if isinstance(targets, Tensor):
        targets = targets.to(outputs.device)
    spec = param_spec(params)
    zd = outputs.detach().requires_grad_(True)
    with torch.enable_grad():
        value = loss_obj.value(zd, targets)
        (gz,) = torch.autograd.grad(value, zd)
    keep = with_factor or retain_graph
    try:
        if grad is None:
            gs = torch.autograd.grad(outputs, params, gz, retain_graph=keep, allow_unused=True)
            g = _flat(gs, params, ())
        else:
            g = grad.reshape(-1)
        S = None
        if with_factor:
            F = output_factor(loss_obj, outputs.detach(), targets, fisher, gz)
            S = _rows(outputs, params, F, chunk_size or DEFAULT_CHUNK, retain_graph, batched)
    except RuntimeError as exc:
        err = _graph_error(exc)
        if err is None:
            raise
        raise err from None
    if g.shape[0] != spec.numel:
        raise InputError(f"grad has {g.shape[0]} entries, the parameters {spec.numel}")
    return Curvature(loss=value.detach(), grad=g, S=S, outputs=outputs.detach(), spec=spec,
                     fisher=fisher, loss_name=loss_obj.name)


def _rows(outputs: Tensor, params: list[Tensor], F: Tensor, chunk: int, retain_graph: bool,
          batched: bool) -> Tensor:
    b, P, C, k = F.shape
    r = b * P * k
    if math.prod(outputs.shape[1:]) != P * C:
        raise InputError(f"loss factor covers {P * C} outputs per sample, the model gives "
                         f"{math.prod(outputs.shape[1:])}")
    N = sum(p.numel() for p in params)
    S = params[0].new_empty(r, N)  # the parameters' dtype and device
    chunk = max(1, int(chunk))
    for start in range(0, r, chunk):
        stop = min(r, start + chunk)
        E = factor_cotangents(F, start, stop).reshape(stop - start, *outputs.shape)
        keep = retain_graph or stop < r
        if batched:
            try:
                gs = torch.autograd.grad(outputs, params, E, retain_graph=True,
                                         is_grads_batched=True, allow_unused=True)
                S[start:stop] = _flat(gs, params, (stop - start,))
                continue
            except RuntimeError as exc:
                if _graph_error(exc) is not None:
                    raise
                batched = False  # an op without a batching rule: row by row from here on
        for q in range(stop - start):
            gs = torch.autograd.grad(outputs, params, E[q], allow_unused=True,
                                     retain_graph=keep or q < stop - start - 1)
            S[start + q] = _flat(gs, params, ())
    return S
