"""Float64 checks of tngd.curvature against dense references built independently."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.func import functional_call, hessian, jacrev

from tngd.curvature import (
    ParamSpec,
    compute_curvature,
    dense_ggn,
    flatten_params,
    ggn_vp,
    load_params_,
    loss_hessian_factor,
    make_ggn_vp,
)

# torch's forward-mode AD (jvp) scripts its decompositions on first use: not ours to fix.
pytestmark = pytest.mark.filterwarnings(
    "ignore:`torch.jit.script` is deprecated:DeprecationWarning"
)

TOL = dict(rtol=1e-10, atol=1e-10)
B = 4
D_Z = 3


def _mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, D_Z))


def _cnn() -> nn.Module:
    # 1x6x6 -> conv3x3 (2 ch) -> 2x4x4 -> tanh -> linear(32, 3): 20 + 99 = 119 params
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.Tanh(), nn.Flatten(), nn.Linear(32, D_Z))


MODELS = {"mlp": (_mlp, (5,)), "cnn": (_cnn, (1, 6, 6))}


def _setup(kind: str, loss: str, dtype=torch.float64, seed: int = 0):
    torch.manual_seed(seed)
    make, in_shape = MODELS[kind]
    model = make().to(dtype)
    x = torch.randn(B, *in_shape, dtype=dtype)
    if loss == "ce":
        y = torch.randint(0, D_Z, (B,))
    else:
        y = torch.randn(B, D_Z, dtype=dtype)
    theta, spec = flatten_params(model)
    return model, theta, spec, x, y


def _ref_loss(z: torch.Tensor, y: torch.Tensor, loss: str) -> torch.Tensor:
    """Per-sample loss written independently of tngd (torch's own CE)."""
    if loss == "ce":
        return nn.functional.cross_entropy(z.unsqueeze(0), y.reshape(1))
    return 0.5 * ((z - y) ** 2).sum()


def _ref_ggn(model, theta, spec, x, y, loss):
    """(1/b) Σ J_iᵀ H_i J_i with J from jacrev and H from torch.func.hessian."""

    def f(th):
        return functional_call(model, spec.unflatten(th), (x,))

    J = jacrev(f)(theta)  # (b, d_z, N)
    z = f(theta).detach()
    G = torch.zeros(spec.numel, spec.numel, dtype=theta.dtype)
    for i in range(B):
        H = hessian(lambda zi, i=i: _ref_loss(zi, y[i], loss))(z[i])
        G += J[i].T @ H @ J[i]
    return G / B


def _autograd_loss_grad(model, x, y, loss):
    model.zero_grad()
    z = model(x)
    if loss == "ce":
        L = nn.functional.cross_entropy(z, y)
    else:
        L = 0.5 * ((z - y) ** 2).sum(1).mean()
    L.backward()
    g = torch.cat([p.grad.reshape(-1) for p in model.parameters() if p.requires_grad])
    return L.detach(), g


@pytest.mark.parametrize("kind", sorted(MODELS))
@pytest.mark.parametrize("loss", ["ce", "mse"])
def test_ggn_factor_and_products_match_dense_reference(kind, loss):
    model, theta, spec, x, y = _setup(kind, loss)
    G_ref = _ref_ggn(model, theta, spec, x, y, loss)

    curv = compute_curvature(model, theta, x, y, loss=loss, fisher="ggn")
    assert curv.S.shape == (B * D_Z, spec.numel)
    assert curv.r == B * D_Z and curv.N == spec.numel
    torch.testing.assert_close(curv.S.T @ curv.S, G_ref, **TOL)
    torch.testing.assert_close(curv.dense(), G_ref, **TOL)
    torch.testing.assert_close(dense_ggn(model, theta, x, y, loss), G_ref, **TOL)

    gen = torch.Generator().manual_seed(1)
    V = torch.randn(spec.numel, 3, dtype=torch.float64, generator=gen)
    gvp = make_ggn_vp(model, theta, x, loss)
    for v in V.T:
        torch.testing.assert_close(gvp(v), G_ref @ v, **TOL)
        torch.testing.assert_close(curv.fvp(v), G_ref @ v, **TOL)
    torch.testing.assert_close(ggn_vp(model, theta, x, V[:, 0], loss), G_ref @ V[:, 0], **TOL)


@pytest.mark.parametrize("kind", sorted(MODELS))
@pytest.mark.parametrize("loss", ["ce", "mse"])
def test_loss_and_gradient_match_autograd(kind, loss):
    model, theta, spec, x, y = _setup(kind, loss)
    L_ref, g_ref = _autograd_loss_grad(model, x, y, loss)
    curv = compute_curvature(model, theta, x, y, loss=loss)
    torch.testing.assert_close(curv.loss, L_ref, **TOL)
    torch.testing.assert_close(curv.grad, g_ref, **TOL)
    torch.testing.assert_close(curv.outputs, model(x).detach(), **TOL)
    # params_vec=None uses the model's own parameters; with_factor=False skips S
    curv2 = compute_curvature(model, None, x, y, loss=loss, with_factor=False)
    assert curv2.S is None
    torch.testing.assert_close(curv2.grad, g_ref, **TOL)


@pytest.mark.parametrize("kind", sorted(MODELS))
@pytest.mark.parametrize("loss", ["ce", "mse"])
def test_empirical_fisher_is_mean_of_per_sample_outer_products(kind, loss):
    model, theta, spec, x, y = _setup(kind, loss)
    grads = []
    for i in range(B):
        _, gi = _autograd_loss_grad(model, x[i : i + 1], y[i : i + 1], loss)
        grads.append(gi)
    G = torch.stack(grads)
    F_ref = G.T @ G / B
    curv = compute_curvature(model, theta, x, y, loss=loss, fisher="empirical")
    assert curv.S.shape == (B, spec.numel)
    torch.testing.assert_close(curv.dense(), F_ref, **TOL)
    torch.testing.assert_close(curv.grad, G.mean(0), **TOL)


@pytest.mark.parametrize("loss", ["ce", "mse"])
def test_loss_hessian_factor_closed_form(loss):
    z = torch.randn(5, dtype=torch.float64) * 3
    y = torch.tensor(2) if loss == "ce" else torch.randn(5, dtype=torch.float64)
    H = hessian(lambda zz: _ref_loss(zz, y, loss))(z)
    L = loss_hessian_factor(z, loss)
    torch.testing.assert_close(L @ L.T, H, **TOL)


def test_param_spec_roundtrip_and_load():
    model, theta, spec, x, _ = _setup("cnn", "ce")
    assert spec.numel == sum(p.numel() for p in model.parameters()) == 119
    d = spec.unflatten(theta)
    assert list(d) == [n for n, _ in model.named_parameters()]
    torch.testing.assert_close(spec.flatten(d), theta)
    with pytest.raises(ValueError):
        spec.unflatten(theta[:-1])
    new = torch.randn_like(theta)
    load_params_(model, new, spec)
    torch.testing.assert_close(flatten_params(model)[0], new)
    assert ParamSpec.from_module(model) == spec


def test_frozen_parameters_are_excluded():
    model, *_ = _setup("mlp", "ce")
    model[0].bias.requires_grad_(False)
    theta, spec = flatten_params(model)
    assert "0.bias" not in spec.names and spec.numel == 66 - 7
    x = torch.randn(B, 5, dtype=torch.float64)
    y = torch.randint(0, D_Z, (B,))
    _, g_ref = _autograd_loss_grad(model, x, y, "ce")
    curv = compute_curvature(model, theta, x, y)
    torch.testing.assert_close(curv.grad, g_ref, **TOL)


@pytest.mark.parametrize("loss", ["ce", "mse"])
def test_float32_follows_params_dtype(loss):
    model64, theta64, _, x64, y64 = _setup("mlp", loss)
    model32 = _mlp().float()
    load_params_(model32, theta64.float())
    theta32 = theta64.float()
    c32 = compute_curvature(model32, theta32, x64, y64, loss=loss)  # x cast to float32
    c64 = compute_curvature(model64, theta64, x64, y64, loss=loss)
    assert c32.S.dtype == c32.grad.dtype == torch.float32
    torch.testing.assert_close(c32.dense().double(), c64.dense(), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(c32.grad.double(), c64.grad, rtol=1e-4, atol=1e-5)
    v = torch.randn(theta32.shape[0])
    out = ggn_vp(model32, theta32, x64.float(), v, loss)
    assert out.dtype == torch.float32


def test_chunked_vmap_matches():
    model, theta, _, x, y = _setup("cnn", "ce")
    a = compute_curvature(model, theta, x, y, chunk_size=1)
    b = compute_curvature(model, theta, x, y)
    torch.testing.assert_close(a.S, b.S, **TOL)


def test_bad_arguments():
    model, theta, _, x, y = _setup("mlp", "ce")
    with pytest.raises(ValueError, match="loss"):
        compute_curvature(model, theta, x, y, loss="hinge")
    with pytest.raises(ValueError, match="fisher"):
        compute_curvature(model, theta, x, y, fisher="kfac")
