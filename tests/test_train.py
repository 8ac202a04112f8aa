"""Data, models, the training loop, the ``tngd`` CLI and the digits acceptance test."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from tngd.cli import main
from tngd.data import BatchIterator, load_digits_task, load_mnist_task, load_task
from tngd.models import MODELS, make_model, n_params
from tngd.train import train

# --------------------------------------------------------------------------- data and models


def test_digits_task():
    t = load_digits_task()
    assert t.x_train.shape == (1438, 64) and t.x_test.shape == (359, 64)
    assert t.y_train.dtype == torch.int64 and set(t.y_train.tolist()) == set(range(10))
    assert t.image_shape == (1, 8, 8) and t.input_dim == 64
    sd = t.x_train.std(0)
    assert torch.allclose(t.x_train.mean(0), torch.zeros(64), atol=1e-5)
    assert ((sd - 1).abs() < 1e-3).sum() >= 60  # a few constant pixels stay 0
    again = load_digits_task()
    assert torch.equal(again.x_train, t.x_train) and torch.equal(again.y_test, t.y_test)
    assert not torch.equal(load_digits_task(seed=1).y_train, t.y_train)
    p = load_digits_task(n_pca=10, flatten=False)
    assert p.x_train.shape == (1438, 10) and p.image_shape is None
    assert torch.allclose(p.x_train.std(0), torch.ones(10), atol=1e-3)
    img = load_digits_task(flatten=False, dtype=torch.float64)
    assert img.x_train.shape == (1438, 1, 8, 8) and img.x_train.dtype == torch.float64
    with pytest.raises(ValueError):
        load_digits_task(n_pca=100)
    with pytest.raises(ValueError):
        load_task("cifar")


@pytest.fixture(scope="module")
def mnist():
    return load_mnist_task()


def test_mnist_task(mnist):
    assert mnist.x_train.shape == (4000, 1, 28, 28) and mnist.x_test.shape == (1000, 1, 28, 28)
    assert float(mnist.x_train.min()) == 0.0 and float(mnist.x_train.max()) == 1.0
    assert len(set(mnist.y_train.tolist())) == 10
    flat = load_mnist_task(flatten=True)
    assert flat.x_train.shape == (4000, 784)
    assert torch.equal(flat.x_train.reshape(-1, 1, 28, 28), mnist.x_train)


def test_models(mnist):
    digits = load_digits_task()
    pca = load_digits_task(n_pca=8)
    for task in (digits, mnist, pca):
        for name in MODELS:
            if name == "cnn" and task.image_shape is None:
                with pytest.raises(ValueError, match="image"):
                    make_model(name, task)
                continue
            m = make_model(name, task)
            x = task.x_train[:5]
            assert m(x).shape == (5, 10)
            if task.image_shape is not None:  # flat or image inputs alike
                assert torch.allclose(m(x.reshape(5, *task.image_shape)), m(x.reshape(5, -1)))
    assert n_params(make_model("cnn", mnist)) < 6000  # exact NGD stays feasible
    a, b = make_model("mlp", digits, seed=3), make_model("mlp", digits, seed=3)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    with pytest.raises(ValueError):
        make_model("resnet", digits)


def test_batch_iterator():
    x = torch.arange(10.0).reshape(10, 1)
    y = torch.arange(10)
    it = BatchIterator(x, y, 4, seed=0)
    first = [next(it) for _ in range(6)]
    assert all(xb.shape == (4, 1) for xb, _ in first)
    assert all(torch.equal(xb[:, 0].long(), yb) for xb, yb in first)
    epoch0 = torch.cat([yb for _, yb in first[:2]])
    assert len(set(epoch0.tolist())) == 8  # no repeats within an epoch
    again = BatchIterator(x, y, 4, seed=0)
    assert all(torch.equal(next(again)[1], yb) for _, yb in first)
    assert it.epoch == 2


# --------------------------------------------------------------------------- training loop


def test_train_structure():
    m = train("digits", "logreg", "tngd", steps=5, eval_every=2, n_pca=6, quiet=True)
    assert set(m) >= {"settings", "steps"}
    assert m["settings"]["optimizer"] == "tngd" and m["settings"]["solver"] == "ou-exact"
    steps = m["steps"]
    assert [s["step"] for s in steps] == [1, 2, 3, 4, 5]
    assert all(set(s) == {"step", "loss", "accuracy", "time_s"} for s in steps)
    assert [s["accuracy"] is not None for s in steps] == [False, True, False, True, True]
    times = [s["time_s"] for s in steps]
    assert all(b >= a for a, b in zip(times, times[1:], strict=False)) and times[0] > 0
    assert all(np.isfinite(s["loss"]) for s in steps)
    json.dumps(m)
    for name in ("adam", "sgd", "ngd"):
        r = train("digits", "logreg", name, steps=3, n_pca=6, quiet=True)
        assert len(r["steps"]) == 3 and r["steps"][-1]["accuracy"] is not None
    with pytest.raises(ValueError, match="solver"):
        train("digits", "logreg", "adam", solver="exact", steps=2, quiet=True)
    with pytest.raises(ValueError, match="optimizer"):
        train("digits", "logreg", "lbfgs", steps=2, quiet=True)


def test_train_reproducible():
    kw = dict(steps=4, n_pca=6, quiet=True, kappa0=0.01, t=5.0, t_d=1.0, seed=4)
    a = train("digits", "logreg", "tngd", **kw)
    b = train("digits", "logreg", "tngd", **kw)
    assert [s["loss"] for s in a["steps"]] == [s["loss"] for s in b["steps"]]


# --------------------------------------------------------------------------- CLI


def test_cli_train_writes_metrics(tmp_path):
    out = tmp_path / "run"
    res = CliRunner().invoke(
        main,
        [
            "train",
            "--task",
            "digits",
            "--model",
            "logreg",
            "--n-pca",
            "8",
            "--optimizer",
            "tngd",
            "--solver",
            "ou-euler",
            "--t",
            "2",
            "--delay",
            "0.5",
            "--steps",
            "4",
            "--seed",
            "1",
            "--lr",
            "0.05",
            "--damping",
            "0.1",
            "--batch-size",
            "32",
            "--eval-every",
            "2",
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["settings"]["solver"] == "ou-euler" and metrics["settings"]["t_d"] == 0.5
    assert metrics["settings"]["batch_size"] == 32
    assert [s["step"] for s in metrics["steps"]] == [1, 2, 3, 4]
    assert all(set(s) == {"step", "loss", "accuracy", "time_s"} for s in metrics["steps"])
    assert (out / "loss.png").stat().st_size > 1000
    res = CliRunner().invoke(
        main,
        [
            "train",
            "--model",
            "logreg",
            "--n-pca",
            "4",
            "--optimizer",
            "adam",
            "--steps",
            "2",
            "--out",
            str(tmp_path / "adam"),
        ],
    )
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--task", "cifar"], "cifar"),
        (["--steps", "0"], "--steps"),
        (["--t", "1", "--delay", "2"], "delay"),
        (["--lr", "-1"], "--lr"),
        (["--optimizer", "adam", "--solver", "exact"], "--solver"),
        (["--dt", "0.01"], "--dt"),
        (["--task", "mnist", "--n-pca", "5"], "--n-pca"),
        (["--model", "cnn", "--n-pca", "5"], "--n-pca"),
        (["--solver", "ou-euler", "--t", "nan"], "--t"),
    ],
)
def test_cli_bad_input(tmp_path, args, fragment):
    res = CliRunner().invoke(main, ["train", "--steps", "1", "--out", str(tmp_path)] + args)
    assert res.exit_code != 0
    assert "Traceback" not in res.output and not isinstance(res.exception, Exception | None)
    assert fragment in res.output
    assert not (tmp_path / "metrics.json").exists()


def test_cli_runtime_errors_are_one_line(tmp_path, monkeypatch):
    import tngd.train

    def boom(*a, **k):
        raise ValueError("something expected went wrong\nsecond line")

    monkeypatch.setattr(tngd.train, "train", boom)
    res = CliRunner().invoke(main, ["train", "--out", str(tmp_path)])
    assert res.exit_code == 1
    assert res.output.strip() == "Error: something expected went wrong"
    # the spice solver: a clean error when its module is missing
    try:
        import tngd.solvers_spice  # noqa: F401
    except ImportError:
        res = CliRunner().invoke(main, ["train", "--solver", "spice", "--out", str(tmp_path)])
        assert res.exit_code == 1 and "spice" in res.output and "Traceback" not in res.output


# --------------------------------------------------------------------------- acceptance


@pytest.mark.slow
def test_acceptance_digits_tngd_vs_adam_and_ngd():
    """Digits, logistic regression on 10 PCA features (N = 110), batch 64, 200 steps, λ = 0.01,
    η = 0.01, seeds 0 and 1 (same batches for every optimizer of a seed).

    * TNGD (ou-exact, t = 50τ, κ₀ = 0, warm start) ends lower than Adam (lr 1e-3): its mean
      training loss over the last 20 steps is below Adam's by more than 5 standard deviations of
      the step-to-step batch-loss noise (std over those 20 steps).
    * "Within noise" of exact NGD: for every seed, |mean₂₀(TNGD) − mean₂₀(NGD)| is smaller than
      the standard error of such a 20-step mean, sd₂₀/√20 (sd₂₀: the larger of the two
      optimizers' std over the last 20 steps), i.e. the difference could not be told apart from
      batch noise; and the two curves never differ by more than sd₂₀ at any step.
    """
    results = {}
    for seed in (0, 1):
        common = dict(
            task="digits",
            model="logreg",
            steps=200,
            seed=seed,
            n_pca=10,
            batch_size=64,
            quiet=True,
            eval_every=200,
        )
        curves = {
            "tngd": train(
                optimizer_name="tngd", solver="ou-exact", lr=0.01, damping=0.01, t=50.0, **common
            ),
            "ngd": train(optimizer_name="ngd", lr=0.01, damping=0.01, **common),
            "adam": train(optimizer_name="adam", lr=1e-3, **common),
        }
        L = {k: np.array([s["loss"] for s in v["steps"]]) for k, v in curves.items()}
        mean20 = {k: float(v[-20:].mean()) for k, v in L.items()}
        sd20 = max(float(L["tngd"][-20:].std()), float(L["ngd"][-20:].std()))
        results[seed] = (mean20, sd20, float(np.abs(L["tngd"] - L["ngd"]).max()))
        print(
            f"seed {seed}: mean of last 20 losses {mean20}, sd20 {sd20:.4f}, "
            f"max |TNGD − NGD| {results[seed][2]:.4f}"
        )
        assert mean20["tngd"] < mean20["adam"] - 5 * sd20
        assert abs(mean20["tngd"] - mean20["ngd"]) < sd20 / np.sqrt(20)
        assert results[seed][2] < sd20
