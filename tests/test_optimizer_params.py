"""The torch.optim way: TNGD(params).step(outputs, targets), param groups, schedulers, LoRA,
state_dict, the preconditioner, size limits and CUDA (float64, dense references)."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
import torch.nn.functional as fn
from torch import nn

from spu_circuits.errors import InputError
from tngd.curvature import compute_curvature, flatten_params
from tngd.limits import SizeLimits, SizeWarning, check_step_size
from tngd.optimizer import NGD, TNGD
from tngd.preconditioner import TNGDPreconditioner

F64 = torch.float64

pytestmark = pytest.mark.filterwarnings(
    "ignore:`torch.jit.script` is deprecated:DeprecationWarning"
)


def _model(seed: int = 0, bn: bool = False) -> nn.Module:
    torch.manual_seed(seed)
    mid = [nn.BatchNorm1d(6)] if bn else []
    return nn.Sequential(nn.Linear(4, 6), *mid, nn.Tanh(), nn.Linear(6, 3)).to(F64)


def _batches(n: int, seed: int = 1, b: int = 8):
    gen = torch.Generator().manual_seed(seed)
    return [(torch.randn(b, 4, dtype=F64, generator=gen), torch.randint(0, 3, (b,), generator=gen))
            for _ in range(n)]


def _theta(m):
    return flatten_params(m)[0]


def _rel(a, b) -> float:
    return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b))


def _ngd_direction(m, x, y, lam_vec):
    curv = compute_curvature(m, None, x, y)
    A = curv.dense() + torch.diag(lam_vec)
    return torch.linalg.solve(A, curv.grad), curv.grad


@pytest.mark.parametrize("kw", [{"solver": "woodbury"}, {"t": 3.0}, {"t": 2.0, "base": "adam",
                                                                       "betas": (0.9, 0.99)}])
def test_param_api_equals_model_api(kw):
    a, b = _model(), _model()
    oa = TNGD(a, lr=0.05, damping=0.1, **kw)
    ob = TNGD(b.parameters(), lr=0.05, damping=0.1, **kw)
    for x, y in _batches(3):
        la = oa.step(x, y)
        ob.zero_grad()
        lb = ob.step(b(x), y)
        assert isinstance(lb, torch.Tensor) and lb.ndim == 0
        assert abs(la - float(lb)) < 1e-12
    assert _rel(_theta(b), _theta(a)) < 1e-11
    assert _rel(ob.device_state, oa.device_state) < 1e-10


def test_grad_is_filled_and_closure_works():
    m = _model()
    x, y = _batches(1)[0]
    ref = copy.deepcopy(m)
    fn.cross_entropy(ref(x), y).backward()
    opt = TNGD(m.parameters(), lr=0.0, solver="woodbury")
    loss = opt.step(lambda: (m(x), y))
    torch.testing.assert_close(loss, fn.cross_entropy(ref(x), y).detach(), rtol=1e-12, atol=0)
    for p, q in zip(m.parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-12, atol=1e-14)
    with pytest.raises(InputError, match="closure must return \\(outputs, targets\\)"):
        opt.step(lambda: m(x))


def test_param_groups_lr_and_damping():
    """Groups with their own lr and damping: θ_g ← θ_g − lr_g [(F + diag λ)⁻¹ g]_g (NGD)."""
    m = _model()
    groups = [{"params": m[0].parameters(), "lr": 0.1, "damping": 0.05},
              {"params": m[2].parameters(), "lr": 0.02, "damping": 0.3}]
    opt = NGD(groups)  # dense Cholesky of the rescaled F̃
    x, y = _batches(1)[0]
    n0 = sum(p.numel() for p in m[0].parameters())
    N = _theta(m).numel()
    lam = torch.cat([torch.full((n0,), 0.05, dtype=F64), torch.full((N - n0,), 0.3, dtype=F64)])
    lr = torch.cat([torch.full((n0,), 0.1, dtype=F64), torch.full((N - n0,), 0.02, dtype=F64)])
    th = _theta(m)
    nat, _ = _ngd_direction(m, x, y, lam)
    opt.step(m(x), y)
    assert _rel(_theta(m), th - lr * nat) < 1e-12
    assert opt.last_diagnostics["damping"] == [0.05, 0.3]
    # Woodbury on the rescaled factor gives the same natural gradient (to its own accuracy)
    m2 = _model()
    groups2 = [{"params": m2[0].parameters(), "lr": 0.1, "damping": 0.05},
               {"params": m2[2].parameters(), "lr": 0.02, "damping": 0.3}]
    NGD(groups2, solver="woodbury").step(m2(x), y)
    assert _rel(_theta(m2) - th, _theta(m) - th) < 1e-8
    with pytest.raises(InputError, match="do not support a delay"):
        TNGD(groups2, t=2.0, t_d=1.0).step(m2(x), y)


def test_scheduler_and_state_dict_round_trip():
    batches = _batches(6)
    m = _model()
    opt = TNGD(m.parameters(), lr=0.1, damping=0.05, t=2.0, kappa0=0.01, seed=3)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    lrs = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "scheduler.step() before optimizer.step()" warning
        for x, y in batches[:3]:
            opt.zero_grad()
            opt.step(m(x), y)
            lrs.append(opt.last_diagnostics["lr"])
            sched.step()
    assert lrs == [0.1, 0.1, 0.05]
    sd, ssd = opt.state_dict(), sched.state_dict()
    params = copy.deepcopy(m.state_dict())
    for x, y in batches[3:]:
        opt.step(m(x), y)
        sched.step()
    after = _theta(m)
    m2 = _model(seed=5)
    m2.load_state_dict(params)
    opt2 = TNGD(m2.parameters(), lr=0.1, damping=0.05, t=2.0, kappa0=0.01, seed=3)
    sched2 = torch.optim.lr_scheduler.StepLR(opt2, step_size=2, gamma=0.5)
    opt2.load_state_dict(sd)
    sched2.load_state_dict(ssd)
    for x, y in batches[3:]:
        opt2.step(m2(x), y)
        sched2.step()
    assert torch.equal(_theta(m2), after)


def test_lora_only_given_parameters_change():
    m = _model()
    for p in m[0].parameters():
        p.requires_grad_(False)
    frozen = [p.detach().clone() for p in m[0].parameters()]
    opt = TNGD([m[2].weight], lr=0.1, t=5.0)
    bias = m[2].bias.detach().clone()
    for x, y in _batches(2):
        opt.step(m(x), y)
    for p, q in zip(m[0].parameters(), frozen, strict=True):
        assert torch.equal(p, q) and p.grad is None
    assert torch.equal(m[2].bias.detach(), bias)  # trainable but not given: untouched
    assert m[2].weight.grad is not None


def test_batchnorm_model_trains_with_the_param_api_and_is_refused_by_the_model_api():
    m = _model(bn=True).train()
    opt = TNGD(m.parameters(), lr=0.5, damping=0.01, t=50.0)
    x, y = _batches(1, b=32)[0]
    losses = [float(opt.step(m(x), y)) for _ in range(15)]
    assert losses[-1] < 0.6 * losses[0]
    with pytest.raises(InputError, match="couples the samples"):
        TNGD(_model(bn=True).train()).step(x, y)


def test_preconditioner_matches_the_optimizer():
    """SGD preconditioned by TNGD == TNGD's own update; g from .grad or from the loss."""
    batches = _batches(3)
    a, b, c = _model(), _model(), _model()
    ref = TNGD(a.parameters(), lr=0.05, damping=0.1, t=3.0)
    pb = TNGDPreconditioner(b.parameters(), damping=0.1, t=3.0)
    sb = torch.optim.SGD(b.parameters(), lr=0.05)
    pc = TNGDPreconditioner(c.parameters(), damping=0.1, t=3.0)
    sc = torch.optim.SGD(c.parameters(), lr=0.05)
    for x, y in batches:
        ref.step(a(x), y)
        sb.zero_grad()
        out = b(x)
        fn.cross_entropy(out, y).backward(retain_graph=True)  # the user's own gradient
        pb.step(out, y)
        sb.step()
        sc.zero_grad()
        pc.step(c(x), y)  # no backward: the preconditioner computes g
        sc.step()
    assert pb.last_diagnostics["grad_source"] == "param.grad"
    assert pc.last_diagnostics["grad_source"] == "loss"
    assert _rel(_theta(b), _theta(a)) < 1e-11 and _rel(_theta(c), _theta(a)) < 1e-11
    # forgetting retain_graph gives a clear message
    sb.zero_grad()
    out = b(batches[0][0])
    fn.cross_entropy(out, batches[0][1]).backward()
    with pytest.raises(InputError, match="retain_graph=True"):
        pb.step(out, batches[0][1])
    sd = pc.state_dict()
    pd = TNGDPreconditioner(c.parameters(), damping=0.1, t=3.0)
    pd.load_state_dict(sd)
    assert pd.steps == 3 and torch.equal(pd.device_state, pc.device_state)


def test_size_limits_refuse_before_the_first_step():
    m = _model()
    x, y = _batches(1)[0]
    th = _theta(m)
    tiny = SizeLimits(max_memory_bytes=1000)
    with pytest.raises(InputError, match=r"S would hold r × N = 24 × 51 = 1,224 float64"):
        TNGD(m.parameters(), limits=tiny).step(m(x), y)
    with pytest.raises(InputError, match=r"S would hold r × N = 24 × 51"):
        TNGD(m, limits=tiny).step(x, y)
    assert torch.equal(_theta(m), th)
    with pytest.raises(InputError, match="exact solver forms the dense F̃ of N × N = 51²"):
        NGD(m.parameters(), limits=SizeLimits(max_dense_n=50)).step(m(x), y)
    with pytest.raises(InputError, match=r"factored deck \(2·r·N = 2 × 24 × 51\) ≈ 2,448 res"):
        check_step_size(51, 24, dtype=F64, device=torch.device("cpu"), solver="spice",
                        limits=SizeLimits(max_spice_elements=100))
    with pytest.raises(InputError, match=r"dense deck \(N² = 20²\) ≈ 400 resistors"):
        check_step_size(20, 24, dtype=F64, device=torch.device("cpu"), solver="spice",
                        limits=SizeLimits(max_spice_elements=100))
    with pytest.warns(SizeWarning, match="S holds r × N = 24 × 51"):
        TNGD(m.parameters(), limits=SizeLimits(warn_memory_bytes=100)).step(m(x), y)
    # the 1.07 M-parameter MLP of issue 14 at batch 64 with 10 classes, float32, on 8 GiB
    with pytest.raises(InputError, match=r"640 × 1,070,000 .* \(2.55 GiB\)"):
        check_step_size(1_070_000, 640, dtype=torch.float32, device=torch.device("cpu"),
                        solver="ou-exact", limits=SizeLimits(max_memory_bytes=2 * 1024**3))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_step_on_cuda():
    dev = torch.device("cuda")
    m = _model().to(dev)
    ref = _model()
    x, y = _batches(1)[0]
    opt = TNGD(m.parameters(), lr=0.1, t=5.0)
    opt_ref = TNGD(ref.parameters(), lr=0.1, t=5.0)
    for _ in range(2):
        loss = opt.step(m(x.to(dev)), y.to(dev))
        opt_ref.step(ref(x), y)
    assert loss.device.type == "cuda" and opt.device_state.device.type == "cuda"
    assert all(p.device.type == "cuda" and p.grad.device.type == "cuda" for p in m.parameters())
    assert _rel(_theta(m).cpu(), _theta(ref)) < 1e-9


def test_per_sample_fast_path_of_the_param_api():
    """step(targets=y, model=m, inputs=x) (vmap over samples) == step(m(x), y) (graph)."""
    a, b = _model(), _model()
    for m in (a, b):
        m[0].bias.requires_grad_(False)
    oa = TNGD([a[2].weight, a[0].weight], lr=0.1, t=3.0)  # any order, a subset
    ob = TNGD([b[2].weight, b[0].weight], lr=0.1, t=3.0)
    for x, y in _batches(2):
        la = oa.step(a(x), y)
        lb = ob.step(targets=y, model=b, inputs=x)
        assert abs(float(la) - float(lb)) < 1e-12
    assert _rel(_theta(b), _theta(a)) < 1e-11
    assert _rel(b[2].weight.grad, a[2].weight.grad) < 1e-11
    with pytest.raises(InputError, match="not parameters of the model"):
        TNGD([torch.nn.Parameter(torch.zeros(2, dtype=F64))]).step(
            targets=y, model=b, inputs=x)


def test_matvec_curvature_follows_the_loss_options():
    """Model API, matrix-free GGN products with a weighted, label-smoothed CE == the factor."""
    w = torch.tensor([0.5, 2.0, 1.0], dtype=F64)
    loss = nn.CrossEntropyLoss(weight=w, label_smoothing=0.2)
    a, b = _model(), _model()
    oa = TNGD(a, lr=0.1, damping=0.5, t=1.0, solver="ou-euler", curvature="matvec", loss=loss)
    ob = TNGD(b, lr=0.1, damping=0.5, t=1.0, solver="ou-euler", loss=loss)
    for x, y in _batches(2):
        oa.step(x, y)
        ob.step(x, y)
    assert _rel(_theta(a), _theta(b)) < 1e-12


def test_the_issue_14_mlp_is_warned_before_any_work():
    """The 1.07 M-parameter MLP at batch 64: the SizeWarning (2.55 GiB of S) comes before the
    curvature is built (raised as an error here, so the step stops there)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 1350), nn.Tanh(), nn.Linear(1350, 10))
    N = sum(p.numel() for p in model.parameters())
    assert 1_060_000 < N < 1_080_000
    x, y = torch.randn(64, 784), torch.randint(0, 10, (64,))
    for opt, args in ((TNGD(model.parameters()), (model(x), y)), (TNGD(model), (x, y))):
        with warnings.catch_warnings():
            warnings.simplefilter("error", SizeWarning)
            with pytest.raises(SizeWarning, match=r"S holds r × N = 640 × 1,073,260 float32 "
                                                  r"values \(2.56 GiB\)"):
                opt.step(*args)
        assert opt.step_count == 0
