"""Float64: S, GGN products and gradients from the outputs-graph path (and the per-sample path)
against a dense reference: J from jacrev of the batch function, ∇²_Z L from torch.func.hessian
of the batch loss as torch computes it, G = Jᵀ (∇²_Z L) J."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as fn
from torch import nn
from torch.func import functional_call, hessian, jacrev

from spu_circuits.errors import InputError
from tngd.curvature import compute_curvature, make_ggn_vp
from tngd.curvature_graph import curvature_from_outputs
from tngd.losses import NonPSDHessianWarning, resolve_loss

F64 = torch.float64
TOL = dict(rtol=1e-10, atol=1e-10)
B = 5

pytestmark = pytest.mark.filterwarnings(
    "ignore:`torch.jit.script` is deprecated:DeprecationWarning"
)


class DictNet(nn.Module):
    """Dict inputs {"img": (b, 1, 6, 6), "meta": (b, 3)} -> (b, 4)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.meta = nn.Linear(3, 4)
        self.head = nn.Linear(32 + 4, 4)

    def forward(self, x):
        a = torch.tanh(self.conv(x["img"])).flatten(1)
        return self.head(torch.cat([a, torch.tanh(self.meta(x["meta"]))], dim=1))


class SeqNet(nn.Module):
    """(b, T, 3) -> (b, T, C) token logits with a mixing over positions."""

    def __init__(self, T: int = 4, C: int = 4) -> None:
        super().__init__()
        self.emb = nn.Linear(3, 6)
        self.mix = nn.Linear(T, T)
        self.out = nn.Linear(6, C)

    def forward(self, x):
        h = torch.tanh(self.emb(x))                     # (b, T, 6)
        h = self.mix(h.transpose(1, 2)).transpose(1, 2)  # couples positions
        return self.out(h)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _model(kind: str) -> tuple[nn.Module, object]:
    torch.manual_seed(0)
    g = _gen(1)
    if kind == "mlp":
        m, x = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 4)), torch.randn(B, 5)
    elif kind == "cnn":
        m = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Tanh(), nn.Flatten(), nn.Linear(32, 4))
        x = torch.randn(B, 1, 6, 6, generator=g)
    elif kind == "bn":
        m = nn.Sequential(nn.Linear(5, 6), nn.BatchNorm1d(6), nn.Tanh(), nn.Linear(6, 4))
        x = torch.randn(B, 5, generator=g)
    elif kind == "dict":
        m = DictNet()
        x = {"img": torch.randn(B, 1, 6, 6, generator=g), "meta": torch.randn(B, 3, generator=g)}
    elif kind == "seq":
        m, x = SeqNet(), torch.randn(B, 4, 3, generator=g)
    else:
        raise KeyError(kind)
    m = m.to(F64).train()
    x = {k: v.to(F64) for k, v in x.items()} if isinstance(x, dict) else x.to(F64)
    return m, x


def _reference(model, x, loss_fn, targets, seed=None):
    """(G, g, L): dense GGN Jᵀ ∇²L J of the batch function, gradient, loss."""
    params = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    names = list(params)
    buffers = dict(model.named_buffers())
    theta = torch.cat([params[n].reshape(-1) for n in names])
    sizes = [params[n].numel() for n in names]

    def f(th):
        if seed is not None:  # the same Dropout masks at every evaluation
            torch.manual_seed(seed)
        chunks = torch.split(th, sizes)
        pd = {n: c.view(params[n].shape) for n, c in zip(names, chunks, strict=True)}
        bufs = {n: b.clone() for n, b in buffers.items()}  # BN updates its copies in place
        return functional_call(model, {**pd, **bufs}, (x,))

    z = f(theta).detach()
    J = jacrev(f)(theta).reshape(z.numel(), -1)
    H = hessian(lambda zz: loss_fn(zz.reshape(z.shape), targets))(z.reshape(-1))
    zz = z.clone().requires_grad_(True)
    L = loss_fn(zz, targets)
    (gz,) = torch.autograd.grad(L, zz)
    return J.T @ H @ J, J.T @ gz.reshape(-1), L.detach()


def _params(model):
    return [p for p in model.parameters() if p.requires_grad]


def _check(curv, G, g, L, seed=3):
    torch.testing.assert_close(curv.S.T @ curv.S, G, **TOL)
    torch.testing.assert_close(curv.grad, g, **TOL)
    torch.testing.assert_close(curv.loss, L, **TOL)
    V = torch.randn(G.shape[0], 3, dtype=F64, generator=_gen(seed))
    torch.testing.assert_close(curv.fvp(V), G @ V, **TOL)


def _targets(case: str, z_shape):
    g = _gen(7)
    C = z_shape[-1]
    if case in ("ce", "ls", "ce-weighted", "ce-w-ls-ignore", "nll"):
        y = torch.randint(0, C, z_shape[:-1], generator=g)
        if case == "ce-w-ls-ignore":
            y.view(-1)[1] = -100
        return y
    if case == "soft":
        return torch.softmax(torch.randn(z_shape, generator=g, dtype=F64), -1)
    if case in ("bce", "bce-posw"):
        return torch.rand(z_shape, generator=g, dtype=F64)
    return torch.randn(z_shape, generator=g, dtype=F64)


W4 = torch.tensor([0.5, 1.0, 2.0, 1.5], dtype=F64)


def _custom(z, y):
    """A callable loss: logsumexp plus a quartic penalty (PSD Hessian), mean over the batch."""
    return (torch.logsumexp(z, -1) - (z * y).sum(-1) + 0.05 * (z**4).sum(-1)).mean()


LOSSES = {
    "ce": ("ce", lambda z, y: fn.cross_entropy(z, y)),
    "soft": ("ce", lambda z, y: fn.cross_entropy(z, y)),
    "ls": (nn.CrossEntropyLoss(label_smoothing=0.1),
           lambda z, y: fn.cross_entropy(z, y, label_smoothing=0.1)),
    "ce-weighted": (nn.CrossEntropyLoss(weight=W4), lambda z, y: fn.cross_entropy(z, y, W4)),
    "ce-w-ls-ignore": (nn.CrossEntropyLoss(weight=W4, label_smoothing=0.2, ignore_index=-100),
                       lambda z, y: fn.cross_entropy(z, y, W4, label_smoothing=0.2)),
    "bce": ("bce", fn.binary_cross_entropy_with_logits),
    "bce-posw": (nn.BCEWithLogitsLoss(pos_weight=torch.tensor([1.0, 2.0, 0.5, 3.0], dtype=F64)),
                 lambda z, y: fn.binary_cross_entropy_with_logits(
                     z, y, pos_weight=torch.tensor([1.0, 2.0, 0.5, 3.0], dtype=F64))),
    "mse": ("mse", lambda z, y: 0.5 * ((z - y) ** 2).sum() / z.shape[0]),
    "MSELoss": (nn.MSELoss(), fn.mse_loss),
    "custom": (_custom, _custom),
}


@pytest.mark.parametrize("kind", ["mlp", "cnn", "bn", "dict"])
@pytest.mark.parametrize("case", sorted(LOSSES))
def test_graph_path_matches_dense_reference(kind, case):
    model, x = _model(kind)
    ours, ref_fn = LOSSES[case]
    z_shape = model(x).shape
    y = _targets(case, z_shape)
    G, g, L = _reference(model, x, ref_fn, y)
    curv = curvature_from_outputs(model(x), y, _params(model), ours, chunk_size=7)
    _check(curv, G, g, L)
    assert curv.S.shape[0] == resolve_loss(ours).rows(z_shape)
    if kind != "bn":  # the per-sample path (vmap) gives the same for models without coupling
        c2 = compute_curvature(model, None, x, y, ours)
        _check(c2, G, g, L)
        gvp = make_ggn_vp(model, None, x, ours, y=y)
        v = torch.randn(G.shape[0], dtype=F64, generator=_gen(5))
        torch.testing.assert_close(gvp(v), G @ v, **TOL)


@pytest.mark.parametrize("case", ["ce", "soft", "ls", "ce-w-ls-ignore", "mse", "custom"])
def test_sequence_outputs_btc(case):
    """(b, T, C) outputs, classes last: CE over the b·T tokens (ignore_index among them)."""
    model, x = _model("seq")
    ours, ref = LOSSES[case]
    z = model(x)
    y = _targets(case, z.shape)

    def ref_fn(zz, yy):
        C = zz.shape[-1]
        if case in ("mse", "custom"):
            return ref(zz.reshape(-1, C), yy.reshape(-1, C)) * (1 if case == "custom" else 4)
        return ref(zz.reshape(-1, C), yy.reshape(-1) if not yy.is_floating_point()
                   else yy.reshape(-1, C))

    if case == "custom":  # a per-sample loss over a sequence: mean over b of the token sum
        def ours(zz, yy):
            return _custom(zz.reshape(-1, zz.shape[-1]), yy.reshape(-1, yy.shape[-1])) * 4

        ref_fn = ours
    G, g, L = _reference(model, x, ref_fn, y)
    curv = curvature_from_outputs(model(x), y, _params(model), ours)
    _check(curv, G, g, L)
    c2 = compute_curvature(model, None, x, y, ours)
    _check(c2, G, g, L)


def test_nll_uses_the_fisher_equal_to_the_logits_ggn():
    """nll on log_softmax outputs: diag(exp z) Fisher = the CE GGN of the logits model."""
    model, x = _model("mlp")
    y = _targets("ce", (B, 4))
    G, g, L = _reference(model, x, lambda z, yy: fn.cross_entropy(z, yy), y)
    logp = torch.log_softmax(model(x), -1)
    curv = curvature_from_outputs(logp, y, _params(model), "nll")
    _check(curv, G, g, L)
    c2 = curvature_from_outputs(torch.log_softmax(model(x), -1), y, _params(model),
                                nn.NLLLoss())
    torch.testing.assert_close(c2.S, curv.S, **TOL)


def test_dropout_graph_uses_the_forward_masks():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Dropout(0.3), nn.Linear(8, 3))
    model = model.to(F64).train()
    x = torch.randn(B, 5, dtype=F64, generator=_gen(2))
    y = torch.randint(0, 3, (B,), generator=_gen(3))
    torch.manual_seed(11)
    out = model(x)
    G, g, L = _reference(model, x, lambda z, yy: fn.cross_entropy(z, yy), y, seed=11)
    _check(curvature_from_outputs(out, y, _params(model), "ce"), G, g, L)
    with pytest.raises(InputError, match="draws random numbers"):
        compute_curvature(model, None, x, y, "ce")


def test_batched_and_row_by_row_and_chunks_agree():
    model, x = _model("cnn")
    y = _targets("ce", (B, 4))
    ref = curvature_from_outputs(model(x), y, _params(model), "ce", batched=False)
    for chunk in (1, 3, 20, 1000):
        c = curvature_from_outputs(model(x), y, _params(model), "ce", chunk_size=chunk)
        torch.testing.assert_close(c.S, ref.S, **TOL)
    emp = curvature_from_outputs(model(x), y, _params(model), "ce", fisher="empirical")
    emp2 = compute_curvature(model, None, x, y, "ce", fisher="empirical")
    torch.testing.assert_close(emp.S, emp2.S, **TOL)
    assert emp.S.shape[0] == B


def test_lora_style_subset_of_parameters():
    """Only the given tensors form θ; frozen ones get no gradient."""
    model, x = _model("mlp")
    model[0].weight.requires_grad_(False)
    y = _targets("ce", (B, 4))
    sub = [model[2].weight, model[2].bias]
    curv = curvature_from_outputs(model(x), y, sub, "ce")
    assert curv.S.shape == (B * 4, sum(p.numel() for p in sub))
    full = compute_curvature(model, None, x, y, "ce")  # θ = trainable params (0.bias, 2.*)
    n0 = model[0].bias.numel()
    torch.testing.assert_close(curv.S, full.S[:, n0:], **TOL)
    assert model[0].weight.grad is None


def test_non_psd_callable_loss_uses_the_psd_part_and_warns():
    model, x = _model("mlp")
    y = _targets("mse", (B, 4))

    def wavy(z, yy):  # Hessian −diag(cos(z − y))/b: indefinite
        return torch.cos(z - yy).sum(-1).mean()

    z = model(x)
    with pytest.warns(NonPSDHessianWarning, match="not positive semi-definite"):
        curv = curvature_from_outputs(z, y, _params(model), wavy)
    zd = z.detach()
    params = dict(model.named_parameters())
    J = jacrev(lambda th: functional_call(model, th, (x,)))(
        {n: p.detach() for n, p in params.items()})
    J = torch.cat([J[n].reshape(zd.numel(), -1) for n in params], 1)
    c = torch.clamp(-torch.cos(zd - y), min=0).reshape(-1) / B  # PSD part, per output
    torch.testing.assert_close(curv.S.T @ curv.S, J.T @ torch.diag(c) @ J, **TOL)


def test_refusals_name_the_problem():
    model, x = _model("mlp")
    z = model(x)
    with pytest.raises(InputError, match="class ids\\? use loss='ce'"):
        curvature_from_outputs(z, torch.randint(0, 4, (B,)), _params(model), "mse")
    with pytest.raises(InputError, match="class-id targets must have shape \\(5,\\)"):
        curvature_from_outputs(z, torch.randint(0, 4, (B, 2)), _params(model), "ce")
    with pytest.raises(InputError, match="class id 9 is out of range for 4 classes"):
        curvature_from_outputs(z, torch.full((B,), 9), _params(model), "ce")
    with pytest.raises(InputError, match="not the mean of per-sample losses"):
        curvature_from_outputs(z, None, _params(model), lambda zz, yy: zz.pow(2).sum())
    with pytest.raises(InputError, match="no autograd graph"):
        curvature_from_outputs(z.detach(), torch.zeros(B, dtype=torch.long), _params(model))
    with pytest.raises(InputError, match="reduction 'none' is not supported"):
        resolve_loss(nn.CrossEntropyLoss(reduction="none"))
    out = model(x)
    out.sum().backward()
    with pytest.raises(InputError, match="already freed"):
        curvature_from_outputs(out, torch.zeros(B, dtype=torch.long), _params(model))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a PSD callable loss does not warn
        curvature_from_outputs(model(x), _targets("mse", (B, 4)), _params(model), _custom)
