"""What the experiments run: the MNIST methods (keyword arguments of
:func:`tngd.train.train`), their groups, and the MNIST and benchmark presets."""

from __future__ import annotations

from typing import Any

#: Paper settings: λ = 0.01, η = 0.01 for the SGD-like rules, batch 64. Adam (and the Adam rule
#: of TNGD-Adam, β₁ = β₂ = 0, fed with g̃) use lr 1e-3.
LAMBDA = 0.01
SMOOTH = 20


def method_specs() -> dict[str, dict[str, Any]]:
    """Every MNIST method: name -> keyword arguments of :func:`tngd.train.train`."""
    tn = {"optimizer_name": "tngd", "solver": "ou-exact", "lr": 0.01, "damping": LAMBDA}
    specs: dict[str, dict[str, Any]] = {
        "adam": {"optimizer_name": "adam", "lr": 1e-3},
        "sgd": {"optimizer_name": "sgd", "lr": 0.01},
        "ngd": {"optimizer_name": "ngd", "solver": "woodbury", "lr": 0.01, "damping": LAMBDA},
        "ngd-cg": {
            "optimizer_name": "ngd",
            "solver": "cg",
            "lr": 0.01,
            "damping": LAMBDA,
            "solver_kwargs": {"max_iter": 100, "tol": 1e-10},
        },
    }
    for t in (5.0, 10.0, 20.0, 50.0):
        specs[f"tngd-t{t:g}"] = {**tn, "t": t}
    for td in (0.2, 1.0):  # t_d = 0 at t = 5 is tngd-t5
        specs[f"tngd-t5-td{td:g}"] = {**tn, "t": 5.0, "t_d": td}
    for k in (1e-3, 1e-2, 1e-1):  # κ₀ = 0 at t = 50 is tngd-t50
        specs[f"tngd-t50-k{k:g}"] = {**tn, "t": 50.0, "kappa0": k}
    specs["tngd-adam"] = {**tn, "t": 50.0, "base": "adam", "lr": 1e-3}
    for t in (2.0, 5.0, 10.0):  # the second-order (oscillator) device, γ = 2√λ_min(F̃) = 2√λ
        specs[f"tngd2-t{t:g}"] = {**tn, "solver": "ou2-exact", "t": t}
    specs["ngd-dense"] = {"optimizer_name": "ngd", "solver": "exact", "lr": 0.01, "damping": LAMBDA}
    return specs


TSWEEP = ["tngd-t5", "tngd-t10", "tngd-t20", "tngd-t50"]
DELAY_SWEEP = ["tngd-t5", "tngd-t5-td0.2", "tngd-t5-td1"]
NOISE_SWEEP = ["tngd-t50", "tngd-t50-k0.001", "tngd-t50-k0.01", "tngd-t50-k0.1"]
MAIN_METHODS = ["adam", "sgd", "ngd", "ngd-cg", "tngd-t5", "tngd-t50", "tngd-adam"]
ALL_METHODS = list(dict.fromkeys(MAIN_METHODS + TSWEEP + DELAY_SWEEP + NOISE_SWEEP))

#: steps, seeds, methods, eval_every; ``exact_check_steps``: dense-Cholesky NGD run (seed 0)
#: to compare with the Woodbury "ngd" (0: skipped).
MNIST_PRESETS: dict[str, dict[str, Any]] = {
    "smoke": {
        "steps": 4,
        "seeds": [0],
        "methods": ["adam", "ngd", "tngd-t5"],
        "eval_every": 2,
        "exact_check_steps": 0,
    },
    "quick": {
        "steps": 200,
        "seeds": [0],
        "methods": ["adam", "sgd", "ngd", "ngd-cg", "tngd-t5", "tngd-t50", "tngd-adam"],
        "eval_every": 20,
        "exact_check_steps": 0,
    },
    "full": {
        "steps": 400,
        "seeds": [0, 1, 2],
        "methods": ALL_METHODS,
        "eval_every": 20,
        "exact_check_steps": 10,
    },
}


BENCH_PRESETS: dict[str, dict[str, Any]] = {
    "smoke": {
        "repeats": 2,
        "cnn_batch": 8,
        "step_methods": ["adam", "sgd", "ngd-woodbury", "tngd-ou-exact", "tngd-ou-exact-gram",
                         "tngd-ou-euler"],
        "small_cases": [],
        "widths": [8],
        "dzs": [2],
        "scaling_batch": 4,
        "scaling_repeats": 2,
        "dense_max_N": 0,
    },
    "quick": {
        "repeats": 5,
        "cnn_batch": 64,
        "step_methods": [
            "adam",
            "sgd",
            "ngd-dense",
            "ngd-cg",
            "ngd-woodbury",
            "tngd-ou-euler",
            "tngd-ou-exact",
            "tngd-ou-exact-gram",
        ],
        "small_cases": [("cnn", 8), ("mlp-mse-dz2", 8)],
        "widths": [8, 32, 128],
        "dzs": [2, 10],
        "scaling_batch": 32,
        "scaling_repeats": 3,
        "dense_max_N": 7000,
    },
    "full": {
        "repeats": 7,
        "cnn_batch": 64,
        "step_methods": [
            "adam",
            "sgd",
            "ngd-dense",
            "ngd-cg",
            "ngd-woodbury",
            "tngd-ou-euler",
            "tngd-ou-euler-matfree",
            "tngd-ou-exact",
            "tngd-ou-exact-gram",
        ],
        "small_cases": [("cnn", 16), ("cnn", 8), ("mlp-mse-dz2", 8), ("mlp-mse-dz2", 32)],
        "widths": [8, 16, 32, 64, 128],
        "dzs": [2, 5, 10, 20],
        "scaling_batch": 32,
        "scaling_repeats": 3,
        "dense_max_N": 7000,
    },
}

SMALL_CASE_METHODS = [
    "adam",
    "ngd-woodbury",
    "tngd-ou-euler",
    "tngd-ou-euler-matfree",
    "tngd-ou-exact",
]
SCALING_METHODS = [
    "adam",
    "ngd-cg",
    "ngd-woodbury",
    "tngd-ou-euler",
    "tngd-ou-euler-matfree",
    "tngd-ou-exact",
]
