"""The curvature part of a TNGD step: building g and S = LᵀJ/√b on the MNIST CNN at batch 64.

    python -m validation.bench_curvature [--out validation/bench] [--repeats 7] [--quick]

Model: ``tngd.models.make_model("cnn")`` for 28×28 MNIST inputs (N = 5,074, d_z = 10), batch
b = 64 (r = 640 rows), float32, CE loss, random inputs (the cost does not depend on the
values), one torch thread (as ``tngd experiments``' per-step benchmark).

Methods (each returns the loss, g (N,) and S (640, N); all are checked to agree):

* ``adam_step``: forward, backward and ``torch.optim.Adam.step`` (the reference cost);
* ``per_sample_v0``: the per-sample path before issue 14 (vmap over samples of the loss, its
  gradient and d_z VJPs computed inside, reproduced here verbatim as the "before");
* ``per_sample``: :func:`tngd.curvature.compute_curvature` now (one batch forward for the loss,
  ∂L/∂Z and the Hessian factor, then vmap over samples of 1 + d_z VJPs);
* ``graph_chunkC``: :func:`tngd.curvature_graph.curvature_from_outputs` from the graph of the
  user's batch forward (the forward included), batched VJPs of C rows each;
* ``graph_loop``: the same, one backward per row (no vmap).

Median over interleaved repeats (random order per round, one warm-up round). Ratios are to
``adam_step`` and to ``per_sample_v0``, taken in the same run.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import random
import time
from pathlib import Path

import torch
from torch import nn

from spu_circuits.figures import png_bytes
from spu_circuits.netlist import atomic_write

B = 64


def _model_and_batch():
    from tngd.data import Task
    from tngd.models import make_model

    gen = torch.Generator().manual_seed(0)
    x = torch.rand(B, 784, generator=gen)
    y = torch.randint(0, 10, (B,), generator=gen)
    task = Task(name="mnist-shape", x_train=x, y_train=y, x_test=x[:2], y_test=y[:2],
                n_classes=10, image_shape=(1, 28, 28))
    return make_model("cnn", task, seed=0), x, y


def per_sample_v0(model: nn.Module, x, y):
    """The per-sample path as it was before issue 14 (tngd/curvature.py at 4307273)."""
    from torch.func import functional_call, vjp, vmap

    from tngd.curvature import flatten_params, loss_grad_outputs, loss_hessian_factor

    theta, spec = flatten_params(model)

    def per_sample(xi, yi):
        def f(th):
            return functional_call(model, spec.unflatten(th), (xi.unsqueeze(0),)).reshape(-1)

        z, vjp_fn = vjp(f, theta)
        li = torch.logsumexp(z, dim=-1) - z.gather(-1, yi.long().reshape(1)).squeeze(-1)
        (gi,) = vjp_fn(loss_grad_outputs(z, yi, "ce"))
        (si,) = vmap(vjp_fn)(loss_hessian_factor(z, "ce").T.contiguous())
        return li, gi, si

    li, gi, si = vmap(per_sample)(x, y)
    return li.mean(), gi.mean(0), si.reshape(-1, spec.numel) / math.sqrt(x.shape[0])


def _methods(model, x, y, quick: bool):
    from tngd.curvature import compute_curvature
    from tngd.curvature_graph import curvature_from_outputs

    params = [p for p in model.parameters() if p.requires_grad]
    adam = torch.optim.Adam(params, lr=0.0)  # lr 0: the timing loop leaves θ unchanged

    def adam_step():
        adam.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        adam.step()
        return None

    def per_sample():
        c = compute_curvature(model, None, x, y, "ce")
        return c.loss, c.grad, c.S

    def graph(chunk, batched=True):
        def run():
            c = curvature_from_outputs(model(x), y, params, "ce", chunk_size=chunk,
                                       batched=batched)
            return c.loss, c.grad, c.S
        return run

    out = {"adam_step": adam_step, "per_sample_v0": lambda: per_sample_v0(model, x, y),
           "per_sample": per_sample}
    for c in ((32,) if quick else (16, 32, 64, 640)):
        out[f"graph_chunk{c}"] = graph(c)
    if not quick:
        out["graph_loop"] = graph(1, batched=False)
    return out


def run(repeats: int = 7, quick: bool = False, seed: int = 0) -> dict:
    torch.set_num_threads(1)
    model, x, y = _model_and_batch()
    N = sum(p.numel() for p in model.parameters())
    methods = _methods(model, x, y, quick)
    # agreement (float32): every method's S, g, loss against per_sample_v0
    ref = methods["per_sample_v0"]()
    agree = {}
    for name, f in methods.items():
        if name == "adam_step":
            continue
        loss, g, S = f()
        agree[name] = {
            "rel_err_S": float(torch.linalg.norm(S - ref[2]) / torch.linalg.norm(ref[2])),
            "rel_err_g": float(torch.linalg.norm(g - ref[1]) / torch.linalg.norm(ref[1])),
            "abs_err_loss": float(abs(loss - ref[0])),
        }
    times: dict[str, list[float]] = {k: [] for k in methods}
    rng = random.Random(seed)
    for rnd in range(repeats + 1):
        order = list(methods)
        rng.shuffle(order)
        for name in order:
            t0 = time.perf_counter()
            methods[name]()
            dt = time.perf_counter() - t0
            if rnd > 0:  # round 0 warms up
                times[name].append(dt)
    med = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
    res = {}
    for k, v in times.items():
        res[k] = {"median_s": med[k], "min_s": min(v), "max_s": max(v), "n": len(v),
                  "ratio_to_adam": med[k] / med["adam_step"],
                  "ratio_to_per_sample_v0": med[k] / med["per_sample_v0"]}
        if k in agree:
            res[k].update(agree[k])
    graph_best = min((k for k in res if k.startswith("graph_chunk")),
                     key=lambda k: res[k]["median_s"])
    return {
        "definition": __doc__.split("\n\n")[0],
        "model": "tngd.models cnn (MNIST shape)", "N": N, "batch": B, "d_z": 10, "r": B * 10,
        "dtype": "float32", "threads": 1, "repeats": repeats,
        "machine": {"python": platform.python_version(), "torch": torch.__version__,
                    "platform": platform.platform()},
        "methods": res,
        "summary": {
            "before_per_sample_v0_s": med["per_sample_v0"],
            "after_per_sample_s": med["per_sample"],
            "per_sample_speedup": med["per_sample_v0"] / med["per_sample"],
            "best_graph": graph_best,
            "best_graph_over_per_sample": med[graph_best] / med["per_sample"],
        },
        "notes": ("per_sample needs a model that does not couple samples (TNGD(model).step); "
                  "the graph path works for any module (TNGD(params).step(outputs, targets)) "
                  "and costs r backward passes of the batch."),
    }


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result["methods"])
    vals = [result["methods"][k]["median_s"] * 1e3 for k in names]
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.barh(names, vals, color=["0.6" if n == "adam_step" else "C0" for n in names])
    ax.set_xscale("log")
    ax.set_xlabel("ms per call (median, 1 thread)")
    ax.set_title(f"g and S on the MNIST CNN (N = {result['N']:,}, b = {result['batch']}, "
                 f"r = {result['r']})", fontsize=9)
    for i, v in enumerate(vals):
        ax.text(v, i, f" {v:.1f}", va="center", fontsize=8)
    fig.tight_layout()
    atomic_write({Path(path): png_bytes(fig)})


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="validation/bench")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    res = run(args.repeats, args.quick)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_curvature.json").write_text(json.dumps(res, indent=1) + "\n")
    plot(res, out / "bench_curvature.png")
    for k, v in res["methods"].items():
        print(f"{k:16s} {v['median_s'] * 1e3:9.2f} ms  ×adam {v['ratio_to_adam']:7.1f}  "
              f"×before {v['ratio_to_per_sample_v0']:6.2f}")


if __name__ == "__main__":
    main()
