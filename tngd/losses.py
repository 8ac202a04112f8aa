"""Losses of model outputs for TNGD: the batch loss, its gradient and a factor of its Hessian.

A loss maps outputs Z (b, …) and targets to the batch loss L(Z) (a scalar). TNGD needs the GGN
G = Jᵀ (∇²_Z L) J, so every loss here gives a factor of ∇²_Z L, block-diagonal over
*positions*: Z is viewed as (b, P, C) and block (i, p) of ∇²_Z L is F[i, p] F[i, p]ᵀ with the
factor F (b, P, C, k) of :meth:`OutputLoss.hessian_factor`. The rows of S (r = b·P·k of them,
sample-major) are then F[i, p, :, j]ᵀ J_{i,p}; with L = (1/b) Σ_i ℓ(z_i) and H_i = L_i L_iᵀ this
is the familiar S = [L_iᵀ J_i / √b]_i (the 1/b of the mean lives in F).

Named losses (closed forms; classes on the LAST axis, so outputs (b, C) or (b, T, C)):

=========  ==========================================================  =====================
name       L (reduction "mean")                                        Hessian block (×1/n)
=========  ==========================================================  =====================
``"ce"``   torch's cross_entropy over the b·T positions (integer ids    s (diag p − p pᵀ)
           (b,)/(b, T) or soft targets (b, C)/(b, T, C))
``"nll"``  torch's nll_loss of log-probabilities z over the positions   diag(exp z) (Fisher)
``"bce"``  torch's binary_cross_entropy_with_logits (mean of elements)  diag(σ(1 − σ))
``"mse"``  ½‖z_i − y_i‖² summed over a sample's outputs, mean over b    I/b
=========  ==========================================================  =====================

Torch loss modules map to the same closed forms with their options: ``nn.CrossEntropyLoss``
(``weight``, ``ignore_index``, ``label_smoothing``, reduction mean/sum), ``nn.NLLLoss``,
``nn.BCEWithLogitsLoss`` (``weight``, ``pos_weight``) and ``nn.MSELoss`` (torch's convention:
mean over all b·d entries, no ½: Hessian 2/(b·d) I). ``"nll"`` uses the categorical Fisher
diag(exp z) instead of NLL's zero Hessian: with z = log_softmax(a) it equals the GGN of the
logits a (J_zᵀ diag(p) J_z = J_aᵀ (diag p − p pᵀ) J_a).

Any other callable ``loss(outputs, targets)`` (mean over the batch) is :class:`CallableLoss`:
ℓ_i(z_i) = loss(z_i[None], y_i[None]) must be a per-sample loss with L = mean_i ℓ_i (checked
at every call), and its per-sample Hessians come from ``torch.func.hessian``. A Hessian that is
not positive semi-definite is replaced by its PSD part (negative eigenvalues set to 0) with a
:class:`NonPSDHessianWarning` stating the most negative eigenvalue.
"""

from __future__ import annotations

import math
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as fn
from torch import Tensor, nn
from torch.func import jacrev, vmap

from spu_circuits.errors import InputError

__all__ = [
    "LOSS_NAMES",
    "BCEWithLogits",
    "CallableLoss",
    "CrossEntropy",
    "HalfSquaredError",
    "MeanSquaredError",
    "NLL",
    "NonPSDHessianWarning",
    "OutputLoss",
    "resolve_loss",
]

LOSS_NAMES = ("ce", "mse", "bce", "nll")


class NonPSDHessianWarning(UserWarning):
    """A loss Hessian had negative eigenvalues; its PSD part was used for the GGN."""


def _reductions(reduction: str) -> str:
    if reduction not in ("mean", "sum"):
        raise InputError(
            f"loss reduction {reduction!r} is not supported; TNGD needs a scalar loss "
            "(reduction 'mean' or 'sum')"
        )
    return reduction


class OutputLoss(ABC):
    """A batch loss L(Z, Y) with a block factor of ∇²_Z L (see the module docstring)."""

    name: str = "loss"

    @abstractmethod
    def value(self, outputs: Tensor, targets: Any) -> Tensor:
        """L (scalar), differentiable in ``outputs``."""

    @abstractmethod
    def hessian_factor(self, outputs: Tensor, targets: Any) -> Tensor:
        """F (b, P, C, k) with block (i, p) of ∇²_Z L = F[i, p] F[i, p]ᵀ (no graph)."""

    @abstractmethod
    def factor_shape(self, outputs_shape: torch.Size) -> tuple[int, int, int]:
        """(P, C, k) of the factor for outputs of this shape (for size checks)."""

    def rows(self, outputs_shape: torch.Size) -> int:
        """r = b·P·k, the number of rows of S."""
        P, _, k = self.factor_shape(outputs_shape)
        return int(outputs_shape[0]) * P * k

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


# --------------------------------------------------------------------------- helpers


def _need_batch(outputs: Tensor, what: str) -> None:
    if not isinstance(outputs, Tensor):
        raise InputError(f"outputs must be a tensor, got {type(outputs).__name__}")
    if outputs.ndim < 1 or outputs.shape[0] == 0:
        raise InputError(f"{what}: outputs must have a batch dimension (b, …), got shape "
                         f"{tuple(outputs.shape)}")
    if not outputs.is_floating_point():
        raise InputError(f"{what}: outputs must be floating point, got {outputs.dtype}")


def _same_shape_targets(outputs: Tensor, targets: Any, what: str) -> Tensor:
    if not isinstance(targets, Tensor):
        raise InputError(f"{what} needs a target tensor, got {type(targets).__name__}")
    if not targets.is_floating_point():
        raise InputError(
            f"{what} needs float targets of the outputs' shape {tuple(outputs.shape)}, got "
            f"{targets.dtype} targets of shape {tuple(targets.shape)} (class ids? use loss='ce')"
        )
    if targets.shape != outputs.shape:
        if targets.numel() == outputs.numel() and targets.shape[:1] == outputs.shape[:1]:
            return targets.reshape(outputs.shape).to(outputs.dtype)
        raise InputError(
            f"{what}: targets of shape {tuple(targets.shape)} do not match outputs of shape "
            f"{tuple(outputs.shape)}"
        )
    return targets.to(outputs.dtype)


def _diag_factor(coef: Tensor) -> Tensor:
    """Per-element Hessian coefficients (b, …) -> factor (b, D, 1, 1) of diag(coef)."""
    b = coef.shape[0]
    return coef.clamp_min(0).sqrt().reshape(b, -1, 1, 1)


def _softmax_factor(p: Tensor) -> Tensor:
    """L (…, C, C) with L Lᵀ = diag(p) − p pᵀ: L = diag(√p) − p √pᵀ."""
    sp = p.sqrt()
    return torch.diag_embed(sp) - p.unsqueeze(-1) * sp.unsqueeze(-2)


class _Classes(OutputLoss):
    """Shared parts of the losses over classes on the last axis (CE, NLL)."""

    def __init__(self, weight: Tensor | None = None, ignore_index: int = -100,
                 reduction: str = "mean") -> None:
        self.weight = weight
        self.ignore_index = int(ignore_index)
        self.reduction = _reductions(reduction)

    def factor_shape(self, outputs_shape: torch.Size) -> tuple[int, int, int]:
        C = int(outputs_shape[-1]) if len(outputs_shape) > 1 else 1
        P = math.prod(outputs_shape[1:-1]) if len(outputs_shape) > 2 else 1
        return int(P), C, C

    def _split(self, outputs: Tensor, targets: Any) -> tuple[Tensor, Tensor, bool]:
        """(z (n, C), y (n,) ids or (n, C) probabilities, soft) with n = b·P."""
        _need_batch(outputs, self.name)
        if outputs.ndim < 2:
            raise InputError(f"{self.name}: outputs must be (b, C) or (b, …, C) with classes "
                             f"last, got shape {tuple(outputs.shape)}")
        if not isinstance(targets, Tensor):
            raise InputError(f"{self.name} needs a target tensor, got {type(targets).__name__}")
        C = outputs.shape[-1]
        z = outputs.reshape(-1, C)
        if targets.is_floating_point() and targets.shape == outputs.shape:
            return z, targets.reshape(-1, C).to(outputs.dtype), True
        if targets.is_floating_point() or targets.dtype == torch.bool:
            raise InputError(
                f"{self.name}: targets must be class ids of shape {tuple(outputs.shape[:-1])} "
                f"or probabilities of shape {tuple(outputs.shape)} (classes last), got "
                f"{targets.dtype} of shape {tuple(targets.shape)}"
            )
        if targets.shape != outputs.shape[:-1]:
            raise InputError(
                f"{self.name}: class-id targets must have shape {tuple(outputs.shape[:-1])} "
                f"(outputs {tuple(outputs.shape)}, classes last), got {tuple(targets.shape)}"
            )
        y = targets.reshape(-1).long()
        bad = (y != self.ignore_index) & ((y < 0) | (y >= C))
        if bool(bad.any()):
            v = int(y[bad][0])
            raise InputError(f"{self.name}: class id {v} is out of range for {C} classes")
        return z, y, False

    def _weights(self, y: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """(w_y (n,), valid (n,)) for hard targets."""
        valid = y != self.ignore_index
        safe = torch.where(valid, y, torch.zeros_like(y))
        w = (self.weight.to(dtype=dtype, device=y.device)[safe] if self.weight is not None
             else torch.ones(y.shape, dtype=dtype, device=y.device))
        return w * valid, valid


class CrossEntropy(_Classes):
    """Softmax cross-entropy, torch's ``cross_entropy`` with classes on the last axis."""

    name = "ce"

    def __init__(self, weight: Tensor | None = None, ignore_index: int = -100,
                 reduction: str = "mean", label_smoothing: float = 0.0) -> None:
        super().__init__(weight, ignore_index, reduction)
        self.label_smoothing = float(label_smoothing)
        if not 0.0 <= self.label_smoothing <= 1.0:
            raise InputError(f"label_smoothing must lie in [0, 1], got {label_smoothing}")

    def __repr__(self) -> str:
        return (f"CrossEntropy(label_smoothing={self.label_smoothing:g}, "
                f"weight={'yes' if self.weight is not None else 'no'}, "
                f"reduction={self.reduction!r})")

    def value(self, outputs: Tensor, targets: Any) -> Tensor:
        z, y, _ = self._split(outputs, targets)
        w = None if self.weight is None else self.weight.to(z)
        return fn.cross_entropy(z, y, weight=w, ignore_index=self.ignore_index,
                                reduction=self.reduction, label_smoothing=self.label_smoothing)

    def position_scale(self, z: Tensor, y: Tensor, soft: bool) -> Tensor:
        """s (n,): block (position) Hessian = s (diag p − p pᵀ), as torch reduces."""
        eps, C, n = self.label_smoothing, z.shape[-1], z.shape[0]
        mean = self.reduction == "mean"
        if soft:  # ℓ = −Σ_c w_c q'_c log p_c, q' = (1 − ε) q + ε/C; mean over n
            q = (1 - eps) * y + eps / C
            if self.weight is not None:
                q = q * self.weight.to(z)
            s = q.sum(-1)
            return s / n if mean else s
        w_y, valid = self._weights(y, z.dtype)
        vf = valid.to(z.dtype)
        if self.weight is None:
            nll = (1 - eps) * vf / (vf.sum() if mean else 1.0)
            smooth = eps * vf / (n if mean else 1.0)  # torch averages the smoothing term over n
            return nll + smooth
        denom = w_y.sum() if mean else torch.ones((), dtype=z.dtype, device=z.device)
        w_bar = self.weight.to(z).sum() / C
        return ((1 - eps) * w_y + eps * w_bar * vf) / denom

    def hessian_factor(self, outputs: Tensor, targets: Any) -> Tensor:
        z, y, soft = self._split(outputs.detach(), targets)
        s = self.position_scale(z, y, soft)
        L = _softmax_factor(torch.softmax(z, dim=-1)) * s.clamp_min(0).sqrt()[:, None, None]
        P, C, k = self.factor_shape(outputs.shape)
        return L.reshape(outputs.shape[0], P, C, k)


class NLL(_Classes):
    """Negative log-likelihood of log-probabilities z; curvature: the Fisher diag(exp z)."""

    name = "nll"

    def __repr__(self) -> str:
        return f"NLL(weight={'yes' if self.weight is not None else 'no'})"

    def value(self, outputs: Tensor, targets: Any) -> Tensor:
        z, y, soft = self._split(outputs, targets)
        if soft:
            raise InputError("nll takes class-id targets; for soft targets use loss='ce'")
        w = None if self.weight is None else self.weight.to(z)
        return fn.nll_loss(z, y, weight=w, ignore_index=self.ignore_index,
                           reduction=self.reduction)

    def hessian_factor(self, outputs: Tensor, targets: Any) -> Tensor:
        z, y, soft = self._split(outputs.detach(), targets)
        if soft:
            raise InputError("nll takes class-id targets; for soft targets use loss='ce'")
        w_y, _ = self._weights(y, z.dtype)
        s = w_y / w_y.sum() if self.reduction == "mean" else w_y
        L = torch.diag_embed((z.exp() * s[:, None]).sqrt())
        P, C, k = self.factor_shape(outputs.shape)
        return L.reshape(outputs.shape[0], P, C, k)


class _Elementwise(OutputLoss):
    """Losses with a diagonal Hessian: factor (b, D, 1, 1)."""

    def factor_shape(self, outputs_shape: torch.Size) -> tuple[int, int, int]:
        return math.prod(outputs_shape[1:]), 1, 1


class HalfSquaredError(_Elementwise):
    """``"mse"``: L = (1/b) Σ_i ½‖z_i − y_i‖² (unit per-sample Hessian; sum over outputs)."""

    name = "mse"

    def value(self, outputs: Tensor, targets: Any) -> Tensor:
        _need_batch(outputs, self.name)
        y = _same_shape_targets(outputs, targets, self.name)
        return 0.5 * (outputs - y).pow(2).sum() / outputs.shape[0]

    def hessian_factor(self, outputs: Tensor, targets: Any) -> Tensor:
        _need_batch(outputs, self.name)
        _same_shape_targets(outputs, targets, self.name)
        return _diag_factor(torch.full_like(outputs.detach(), 1.0 / outputs.shape[0]))


class MeanSquaredError(_Elementwise):
    """torch's ``nn.MSELoss``: mean (or sum) of (z − y)² over all entries."""

    name = "MSELoss"

    def __init__(self, reduction: str = "mean") -> None:
        self.reduction = _reductions(reduction)

    def value(self, outputs: Tensor, targets: Any) -> Tensor:
        _need_batch(outputs, self.name)
        y = _same_shape_targets(outputs, targets, self.name)
        return fn.mse_loss(outputs, y, reduction=self.reduction)

    def hessian_factor(self, outputs: Tensor, targets: Any) -> Tensor:
        _need_batch(outputs, self.name)
        _same_shape_targets(outputs, targets, self.name)
        c = 2.0 / outputs.numel() if self.reduction == "mean" else 2.0
        return _diag_factor(torch.full_like(outputs.detach(), c))


class BCEWithLogits(_Elementwise):
    """Binary cross-entropy on logits, torch's ``binary_cross_entropy_with_logits``."""

    name = "bce"

    def __init__(self, weight: Tensor | None = None, pos_weight: Tensor | None = None,
                 reduction: str = "mean") -> None:
        self.weight = weight
        self.pos_weight = pos_weight
        self.reduction = _reductions(reduction)

    def value(self, outputs: Tensor, targets: Any) -> Tensor:
        _need_batch(outputs, self.name)
        y = _same_shape_targets(outputs, targets, self.name)
        w = None if self.weight is None else self.weight.to(outputs)
        pw = None if self.pos_weight is None else self.pos_weight.to(outputs)
        return fn.binary_cross_entropy_with_logits(outputs, y, weight=w, pos_weight=pw,
                                                   reduction=self.reduction)

    def hessian_factor(self, outputs: Tensor, targets: Any) -> Tensor:
        _need_batch(outputs, self.name)
        y = _same_shape_targets(outputs, targets, self.name)
        z = outputs.detach()
        s = torch.sigmoid(z)
        c = s * (1 - s)
        if self.pos_weight is not None:  # ℓ'' = w σ(1 − σ)(p_w y + 1 − y)
            c = c * (self.pos_weight.to(z) * y + 1 - y)
        if self.weight is not None:
            c = c * self.weight.to(z)
        if self.reduction == "mean":
            c = c / z.numel()
        return _diag_factor(c.expand(z.shape))


class CallableLoss(OutputLoss):
    """Any ``loss(outputs, targets)`` that is the mean over the batch of a per-sample loss.

    Per-sample Hessians H_i (D × D, D = outputs per sample) come from ``torch.func.hessian`` of
    ℓ_i(z) = loss(z[None], y_i[None]) (vmapped over samples, a loop if the loss has no batching
    rule); the factor is Q diag(√max(μ, 0)) / √b from H_i = Q diag(μ) Qᵀ. Costs O(b D³): meant
    for outputs of moderate size (D ≲ 1000).
    """

    def __init__(self, fn_: Callable[[Tensor, Any], Tensor], *, check_mean: bool = True,
                 psd_rtol: float = 1e-10) -> None:
        if not callable(fn_):
            raise InputError(f"loss must be a name, a torch loss module or a callable, got "
                             f"{type(fn_).__name__}")
        self.fn = fn_
        self.check_mean = check_mean
        self.psd_rtol = float(psd_rtol)
        self.name = getattr(fn_, "__name__", type(fn_).__name__)
        self.n_psd_warnings = 0

    def __repr__(self) -> str:
        return f"CallableLoss({self.name})"

    def factor_shape(self, outputs_shape: torch.Size) -> tuple[int, int, int]:
        D = math.prod(outputs_shape[1:])
        return 1, D, D

    def value(self, outputs: Tensor, targets: Any) -> Tensor:
        _need_batch(outputs, self.name)
        out = self.fn(outputs, targets)
        if not isinstance(out, Tensor) or out.numel() != 1:
            shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise InputError(f"loss {self.name!r} must return a scalar (mean reduction), "
                             f"got {shape}")
        return out.reshape(())

    def _per_sample(self, z: Tensor, y: Any) -> Callable[..., Tensor]:
        shape = z.shape[1:]

        def ell(zi: Tensor, yi: Any) -> Tensor:
            yb = None if yi is None else yi.unsqueeze(0)
            return self.fn(zi.reshape(1, *shape), yb).reshape(())

        return ell

    def hessian_factor(self, outputs: Tensor, targets: Any) -> Tensor:
        z = outputs.detach()
        b = z.shape[0]
        if targets is not None and not isinstance(targets, Tensor):
            raise InputError(f"loss {self.name!r}: targets must be a tensor or None, got "
                             f"{type(targets).__name__}")
        if isinstance(targets, Tensor) and targets.shape[:1] != z.shape[:1]:
            raise InputError(f"loss {self.name!r}: targets have {targets.shape[0]} rows, the "
                             f"outputs {b}")
        ell = self._per_sample(z, targets)
        zf = z.reshape(b, -1)
        h = jacrev(jacrev(ell))  # reverse-over-reverse: no forward-mode set-up cost
        try:
            in_dims = (0, None if targets is None else 0)
            H = vmap(h, in_dims=in_dims)(zf, targets)
            per = vmap(ell, in_dims=in_dims)(zf, targets)
        except RuntimeError:  # no batching rule for some op: one sample at a time
            rows = [(zf[i], None if targets is None else targets[i]) for i in range(b)]
            H = torch.stack([h(zi, yi) for zi, yi in rows])
            per = torch.stack([ell(zi, yi) for zi, yi in rows])
        if self.check_mean:
            total = self.value(z, targets).detach()
            mean = per.mean()
            tol = 1e-5 * (1.0 + float(total.abs())) if z.dtype != torch.float64 else \
                1e-9 * (1.0 + float(total.abs()))
            if abs(float(total - mean)) > tol:
                raise InputError(
                    f"loss {self.name!r} is not the mean of per-sample losses: "
                    f"loss(outputs, targets) = {float(total):.6g} but the mean of "
                    f"loss(z_i[None], y_i[None]) is {float(mean):.6g}; use reduction='mean' "
                    "over samples (or CallableLoss(..., check_mean=False))"
                )
        H = 0.5 * (H + H.transpose(-1, -2)) / b
        mu, Q = torch.linalg.eigh(H)
        top = mu.abs().amax().clamp_min(torch.finfo(mu.dtype).tiny)
        worst = float(mu.min())
        if worst < -self.psd_rtol * float(top):
            self.n_psd_warnings += 1
            warnings.warn(
                f"loss {self.name!r}: the Hessian with respect to the outputs is not positive "
                f"semi-definite (most negative eigenvalue {worst:.3g}, largest "
                f"|eigenvalue| {float(top):.3g}); TNGD uses its PSD part",
                NonPSDHessianWarning, stacklevel=3,
            )
        L = Q * mu.clamp_min(0).sqrt().unsqueeze(-2)
        D = zf.shape[1]
        return L.reshape(b, 1, D, D)


# --------------------------------------------------------------------------- resolution


def _named(name: str) -> OutputLoss:
    if name == "ce":
        return CrossEntropy()
    if name == "mse":
        return HalfSquaredError()
    if name == "bce":
        return BCEWithLogits()
    if name == "nll":
        return NLL()
    raise InputError(f"unknown loss {name!r}; expected one of {LOSS_NAMES}, a torch loss "
                     "module or a callable loss(outputs, targets)")


def resolve_loss(loss: str | nn.Module | Callable[..., Tensor] | OutputLoss) -> OutputLoss:
    """An :class:`OutputLoss` from a name, a torch loss module, a callable or an instance."""
    if isinstance(loss, OutputLoss):
        return loss
    if isinstance(loss, str):
        return _named(loss)
    if isinstance(loss, nn.CrossEntropyLoss):
        return CrossEntropy(loss.weight, loss.ignore_index, loss.reduction, loss.label_smoothing)
    if isinstance(loss, nn.NLLLoss):
        return NLL(loss.weight, loss.ignore_index, loss.reduction)
    if isinstance(loss, nn.BCEWithLogitsLoss):
        return BCEWithLogits(loss.weight, loss.pos_weight, loss.reduction)
    if isinstance(loss, nn.MSELoss):
        return MeanSquaredError(loss.reduction)
    if isinstance(loss, nn.modules.loss._Loss) and getattr(loss, "reduction", "mean") != "mean":
        _reductions(loss.reduction)
    return CallableLoss(loss)
