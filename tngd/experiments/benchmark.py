"""The per-step cost benchmark (:func:`run_benchmark`): time per optimizer step of every
method on the same model and batches, interleaved over repeats, as a ratio to Adam's median;
plus the scaling with N (MLP width) and d_z. Writes ``bench_step.json/.png`` and
``bench_scaling.json/.png``."""

from __future__ import annotations

import json
import random
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from tngd.experiments.plots import plot_bench
from tngd.experiments.records import environment, json_default, set_one_thread
from tngd.experiments.specs import BENCH_PRESETS, LAMBDA, SCALING_METHODS, SMALL_CASE_METHODS


def step_ratios(timings: dict[str, Sequence[float]], ref: str = "adam") -> dict[str, dict]:
    """Median time per step of each method and its ratio to ``ref``'s median."""
    if ref not in timings or not timings[ref]:
        raise ValueError(f"no timings for the reference {ref!r}")
    ref_med = statistics.median(timings[ref])
    out = {}
    for m, ts in timings.items():
        med = statistics.median(ts)
        out[m] = {
            "median_s": med,
            "min_s": min(ts),
            "max_s": max(ts),
            "n": len(ts),
            "ratio_to_" + ref: med / ref_med,
        }
    return out


def time_interleaved(
    steppers: dict[str, Callable[[int], Any]], repeats: int, warmup: int = 1, seed: int = 0
) -> dict[str, list[float]]:
    """Call every stepper once per round, in a fresh random order each round (so slow drifts of a
    shared machine hit all methods alike); the first ``warmup`` rounds are not recorded."""
    rng = random.Random(seed)
    names = list(steppers)
    times: dict[str, list[float]] = {n: [] for n in names}
    for k in range(warmup + repeats):
        rng.shuffle(names)
        for n in names:
            t0 = time.perf_counter()
            steppers[n](k)
            dt = time.perf_counter() - t0
            if k >= warmup:
                times[n].append(dt)
    return times


def _make_steppers(model_fn, batches, methods, loss="ce", t=50.0, dt=0.1):
    """name -> stepper(k) doing one optimizer step on batches[k % len]; plus the TNGD objects
    and, per TNGD/NGD method, the diagnostics of every step taken (for the curvature / solve /
    update split)."""
    from tngd.optimizer import TNGD
    from tngd.train import batch_loss

    steppers, tngds, diags = {}, {}, {}
    nores = {"compute_residual": False}
    for m in methods:
        model = model_fn()
        if m in ("adam", "sgd"):
            opt = (
                torch.optim.Adam(model.parameters(), lr=1e-3)
                if m == "adam"
                else torch.optim.SGD(model.parameters(), lr=0.01)
            )

            def step(k, model=model, opt=opt):
                xb, yb = batches[k % len(batches)]
                opt.zero_grad(set_to_none=True)
                lv = batch_loss(model(xb), yb, loss)
                lv.backward()
                opt.step()

        else:
            kw: dict[str, Any] = {"lr": 0.01, "damping": LAMBDA, "loss": loss}
            sk = dict(nores)
            if m == "ngd-dense":
                kw["solver"] = "exact"
            elif m == "ngd-cg":
                kw["solver"] = "cg"
                sk.update(max_iter=100, tol=1e-10)
            elif m == "ngd-woodbury":
                kw["solver"] = "woodbury"
            elif m == "tngd-ou-exact":
                kw.update(solver="ou-exact", t=t)
            elif m == "tngd-ou-exact-gram":  # the r×r eigendecomposition (float64 Gram)
                kw.update(solver="ou-exact", t=t)
                sk["method"] = "gram"
            elif m == "tngd-ou-euler":
                kw.update(solver="ou-euler", t=t)
                sk["dt"] = dt
            elif m == "tngd-ou-euler-matfree":
                kw.update(solver="ou-euler", t=t, curvature="matvec")
                sk["dt"] = dt
            else:
                raise ValueError(f"unknown benchmark method {m!r}")
            opt = TNGD(model, solver_kwargs=sk, on_nonfinite="skip", **kw)
            tngds[m] = opt
            diags[m] = []

            def step(k, opt=opt, log=diags[m]):
                xb, yb = batches[k % len(batches)]
                opt.step(xb, yb)
                log.append(dict(opt.last_diagnostics))

        steppers[m] = step
    return steppers, tngds, diags


def _split(log: list[dict[str, Any]], repeats: int) -> dict[str, float]:
    """Median curvature / solve / update seconds over the timed steps (the last ``repeats``;
    update = the step's time after the curvature and the solve: problem set-up, update rule,
    parameter write-back)."""
    rows = [d for d in log[-repeats:] if not d.get("skipped")]
    if not rows:
        return {}
    cur = [d["curvature_time_s"] for d in rows]
    sol = [d["solve_time_s"] for d in rows]
    upd = [d["time_s"] - c - s for d, c, s in zip(rows, cur, sol, strict=True)]
    return {"curvature_s": statistics.median(cur), "solve_s": statistics.median(sol),
            "update_s": statistics.median(upd)}


def _lambda_max(model, xb, yb, loss) -> float:
    """λ_max(F̃) = λ + largest eigenvalue of the Gram SSᵀ at the model's parameters."""
    from tngd.curvature import compute_curvature, flatten_params

    theta, spec = flatten_params(model)
    curv = compute_curvature(model, theta, xb, yb, loss, "ggn", spec=spec)
    S = curv.S.double()
    return float(torch.linalg.eigvalsh(S @ S.T)[-1]) + LAMBDA


def _bench_case(model_fn, batches, methods, repeats, loss="ce", label="", split=True):
    steppers, tngds, diags = _make_steppers(model_fn, batches, methods, loss=loss)
    timings = time_interleaved(steppers, repeats)
    res = step_ratios(timings)
    if "ngd-woodbury" in res:
        wb = res["ngd-woodbury"]["median_s"]
        for m in res:
            res[m]["ratio_to_woodbury"] = res[m]["median_s"] / wb
    if split:  # curvature / solve / update of the TNGD/NGD steps (medians over the repeats)
        for m, opt in tngds.items():
            d = opt.last_diagnostics
            res[m]["split"] = _split(diags[m], repeats)
            res[m]["last_curvature_s"] = d.get("curvature_time_s")
            res[m]["last_solve_s"] = d.get("solve_time_s")
            res[m]["matvecs"] = d.get("matvecs")
            res[m]["n_skipped"] = opt._tngd["n_skipped"]
    m0 = model_fn()
    xb, yb = batches[0]
    from tngd.models import n_params

    lam_max = _lambda_max(m0, xb, yb, loss)
    out_dim = m0(xb[:1]).shape[-1]
    return {
        "label": label,
        "N": n_params(m0),
        "batch": xb.shape[0],
        "d_z": out_dim,
        "r": xb.shape[0] * out_dim,
        "lambda_max_at_init": lam_max,
        "euler_dt_times_lambda_max": 0.1 * lam_max,
        "repeats": repeats,
        "methods": res,
    }


def _mnist_batches(bs, n=4, flatten=False, seed=0):
    from tngd.data import BatchIterator, load_task

    task = load_task("mnist")
    it = BatchIterator(task.x_train, task.y_train, bs, seed=seed)
    out = [next(it) for _ in range(n)]
    if flatten:
        out = [(x.reshape(x.shape[0], -1), y) for x, y in out]
    return task, out


def _regression_batches(bs, d_z, n=4, seed=0):
    """MNIST inputs with a fixed random linear regression target of d_z outputs (MSE)."""
    _, bt = _mnist_batches(bs, n=n, flatten=True, seed=seed)
    g = torch.Generator().manual_seed(1234 + d_z)
    W = torch.randn(784, d_z, generator=g) / 28.0
    return [(x, x @ W) for x, _ in bt]


def _mlp(d_in, hidden, d_out, seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(d_in, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, d_out)
    )


def _acceptance(case: dict[str, Any]) -> dict[str, Any]:
    m = case["methods"]
    if "tngd-ou-exact" not in m:
        return {}
    ex = m["tngd-ou-exact"]
    out = {"ou_exact_over_adam": ex["ratio_to_adam"]}
    out["ou_exact_le_3x_adam"] = ex["ratio_to_adam"] <= 3.0
    out["ou_exact_le_15x_adam"] = ex["ratio_to_adam"] <= 15.0  # issue 14, item 4
    if "ngd-woodbury" in m:
        out["ou_exact_over_woodbury"] = ex["median_s"] / m["ngd-woodbury"]["median_s"]
        out["ou_exact_le_1.2x_woodbury"] = out["ou_exact_over_woodbury"] <= 1.2
        out["woodbury_over_adam"] = m["ngd-woodbury"]["ratio_to_adam"]
    if "tngd-ou-exact-gram" in m:  # the eigendecomposition route, as before the Krylov one
        g = m["tngd-ou-exact-gram"]
        out["gram_eigh_over_adam"] = g["ratio_to_adam"]
        if "ngd-woodbury" in m:
            out["gram_eigh_over_woodbury"] = g["median_s"] / m["ngd-woodbury"]["median_s"]
        out["gram_eigh_over_krylov"] = g["median_s"] / ex["median_s"]
    if "tngd-ou-euler" in m:
        eu = m["tngd-ou-euler"]
        out["euler_over_ou_exact_step"] = eu["median_s"] / ex["median_s"]
        out["ou_exact_50x_cheaper_than_euler"] = out["euler_over_ou_exact_step"] >= 50
        if ex.get("last_solve_s") and eu.get("last_solve_s"):
            out["euler_over_ou_exact_solve_only"] = eu["last_solve_s"] / ex["last_solve_s"]
    if "tngd-ou-euler-matfree" in m:
        out["euler_matfree_over_ou_exact_step"] = (
            m["tngd-ou-euler-matfree"]["median_s"] / ex["median_s"]
        )
    return out


def run_benchmark(
    out_dir: str | Path, preset: str = "quick", *, plots: bool = True
) -> dict[str, Any]:
    """Per-step cost of every method (ratios to Adam) and its scaling with N and d_z; writes
    ``bench_step.json/.png`` and ``bench_scaling.json/.png`` in ``out_dir``."""
    if preset not in BENCH_PRESETS:
        raise ValueError(f"unknown preset {preset!r}; expected one of {list(BENCH_PRESETS)}")
    cfg = BENCH_PRESETS[preset]
    set_one_thread()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    from tngd.models import make_model

    t0 = time.perf_counter()
    task, batches = _mnist_batches(cfg["cnn_batch"])
    main_case = _bench_case(
        lambda: make_model("cnn", task, seed=0),
        batches,
        cfg["step_methods"],
        cfg["repeats"],
        label=f"mnist cnn, batch {cfg['cnn_batch']}",
    )
    main_case["acceptance"] = _acceptance(main_case)
    small = []
    for kind, bs in cfg["small_cases"]:
        if kind == "cnn":
            _, bt = _mnist_batches(bs)
            case = _bench_case(
                lambda: make_model("cnn", task, seed=0),
                bt,
                SMALL_CASE_METHODS,
                cfg["repeats"],
                label=f"mnist cnn, batch {bs}",
            )
        else:
            bt = _regression_batches(bs, 2)
            case = _bench_case(
                lambda: _mlp(784, 32, 2),
                bt,
                SMALL_CASE_METHODS,
                cfg["repeats"],
                loss="mse",
                label=f"mnist mlp(32) mse d_z=2, batch {bs}",
            )
        case["acceptance"] = _acceptance(case)
        small.append(case)
    step = {
        "preset": preset,
        "config": {k: v for k, v in cfg.items()},
        "notes": (
            "time per optimizer step (loss, gradient, curvature, solve, update), median over "
            "interleaved repeats (random order per round, one warm-up round), 1 torch thread, "
            "residual checks off. tngd-ou-euler: δt=0.1τ, t=50τ (500 F̃ products with the "
            "factor S, O(rN) each); tngd-ou-euler-matfree: the same with matrix-free GGN-vector "
            "products (jvp+vjp through the network); tngd-ou-exact: t=50τ, the Krylov route "
            "(one Cholesky of the r×r λI+SSᵀ shared with the Woodbury solve, Lanczos in r-space "
            "for e^{−At}); tngd-ou-exact-gram: t=50τ, the r×r float64 Gram eigendecomposition "
            "(the previous ou-exact). split: medians of curvature / solve / update (the rest of "
            "the step) from the optimizer's diagnostics over the timed steps."
        ),
        "main": main_case,
        "smaller_cases": small,
        "environment": environment(),
    }

    scaling: dict[str, Any] = {"preset": preset, "width": [], "d_z": []}
    bs = cfg["scaling_batch"]
    _, bt = _mnist_batches(bs, flatten=True)
    for h in cfg["widths"]:
        N = 784 * h + h + 10 * h + 10
        ms = list(SCALING_METHODS) + (["ngd-dense"] if N <= cfg["dense_max_N"] else [])
        case = _bench_case(
            lambda h=h: _mlp(784, h, 10),
            bt,
            ms,
            cfg["scaling_repeats"],
            label=f"mlp({h}) ce d_z=10, batch {bs}",
        )
        case["hidden"] = h
        scaling["width"].append(case)
    for dz in cfg["dzs"]:
        bt2 = _regression_batches(bs, dz)
        case = _bench_case(
            lambda dz=dz: _mlp(784, 32, dz),
            bt2,
            SCALING_METHODS,
            cfg["scaling_repeats"],
            loss="mse",
            label=f"mlp(32) mse d_z={dz}, batch {bs}",
        )
        scaling["d_z"].append(case)
    scaling["notes"] = (
        f"MLP 784→h→d_z (tanh) on MNIST inputs, batch {bs}; width sweep: CE with d_z=10; d_z "
        "sweep: MSE on a fixed random linear target, h=32. Same timing protocol as bench_step."
    )
    wall = time.perf_counter() - t0
    step["wall_s"] = wall
    (out_dir / "bench_step.json").write_text(json.dumps(step, indent=1, default=json_default))
    (out_dir / "bench_scaling.json").write_text(json.dumps(scaling, indent=1, default=json_default))
    if plots:
        plot_bench(step, scaling, out_dir)
    return {"step": step, "scaling": scaling}
