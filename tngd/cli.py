"""``tngd`` command line: train a small model with TNGD / NGD / Adam / SGD.

Example::

    tngd train --task digits --model mlp --optimizer tngd --solver ou-exact --steps 200 \\
        --lr 0.01 --damping 0.01 --t 50 --delay 0 --kappa0 0 --out runs/tngd

writes ``runs/tngd/metrics.json`` (see :func:`tngd.train.train`) and ``runs/tngd/loss.png``.
Bad options give a one-line error and a non-zero exit status (2 for usage errors, 1 for other
expected failures), without a traceback.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import click

SOLVERS = ("exact", "cg", "woodbury", "ou-exact", "ou-euler", "ou2-exact", "ou2-euler",
           "spice")


def _finite_nonneg(ctx: click.Context, param: click.Parameter, value: float | None):
    if value is not None and not (math.isfinite(value) and value >= 0):
        raise click.BadParameter(f"must be finite and ≥ 0, got {value}")
    return value


def _load_spice() -> None:
    """Fail early (before any training) when the spice solver cannot be imported."""
    from tngd.solvers import REGISTRY

    try:
        REGISTRY["spice"].load("spice")
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


def _spu_error() -> type[Exception]:
    """spu_circuits' base error (ngspice faults of the spice solver), if importable."""
    try:
        from spu_circuits.errors import SpuError
    except ImportError:  # pragma: no cover
        return ValueError
    return SpuError


def plot_metrics(metrics: dict[str, Any], path: Path) -> None:
    """Training loss per step (and test accuracy where evaluated) to ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = metrics["steps"]
    s = metrics["settings"]
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    ax.plot([r["step"] for r in steps], [r["loss"] for r in steps], lw=1, label="train loss")
    ax.set_xlabel("step")
    ax.set_ylabel("training-batch loss")
    ax.set_yscale("log")
    evals = [(r["step"], r["accuracy"]) for r in steps if r["accuracy"] is not None]
    if evals:
        ax2 = ax.twinx()
        ax2.plot(*zip(*evals, strict=True), "o-", color="tab:orange", ms=3, label="test acc")
        ax2.set_ylabel("test accuracy")
        ax2.set_ylim(0, 1)
    solver = f" ({s['solver']})" if s.get("solver") else ""
    ax.set_title(f"{s['task']} / {s['model']} / {s['optimizer']}{solver}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Thermodynamic natural gradient descent: training experiments."""


@main.command("train")
@click.option("--task", type=click.Choice(["digits", "mnist"]), default="digits", show_default=True)
@click.option(
    "--model", type=click.Choice(["mlp", "cnn", "logreg"]), default="mlp", show_default=True
)
@click.option(
    "--optimizer",
    "optimizer_name",
    type=click.Choice(["tngd", "adam", "sgd", "ngd"]),
    default="tngd",
    show_default=True,
)
@click.option(
    "--solver",
    type=click.Choice(SOLVERS),
    default=None,
    help="TNGD/NGD solver [default: ou-exact for tngd, exact for ngd]",
)
@click.option("--steps", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--lr",
    type=float,
    default=None,
    callback=_finite_nonneg,
    help="learning rate [default: 0.01, Adam 1e-3]",
)
@click.option("--damping", type=float, default=0.01, show_default=True, callback=_finite_nonneg)
@click.option(
    "--t",
    "t",
    type=float,
    default=50.0,
    show_default=True,
    callback=_finite_nonneg,
    help="analog time per iteration (units of τ)",
)
@click.option(
    "--delay",
    "--t-d",
    "t_d",
    type=float,
    default=0.0,
    show_default=True,
    callback=_finite_nonneg,
    help="delay t_d (units of τ), 0 ≤ t_d ≤ t",
)
@click.option(
    "--kappa0",
    type=float,
    default=0.0,
    show_default=True,
    callback=_finite_nonneg,
    help="device noise κ₀",
)
@click.option(
    "--dt", type=float, default=None, help="Euler step for ou-euler / ou2-euler [default: 0.1]"
)
@click.option(
    "--base",
    type=click.Choice(["sgd", "adam"]),
    default="sgd",
    show_default=True,
    help="TNGD's base rule (adam = TNGD-Adam, betas (0, 0))",
)
@click.option(
    "--reset/--warm-start",
    "reset",
    default=False,
    help="reset the device to g_k each step instead of warm-starting it",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--eval-every", type=click.IntRange(min=1), default=10, show_default=True)
@click.option(
    "--n-pca",
    type=click.IntRange(min=1, max=64),
    default=None,
    help="digits only: keep this many PCA features",
)
@click.option("--fisher", type=click.Choice(["ggn", "empirical"]), default="ggn", show_default=True)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="output directory (metrics.json, loss.png)",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="torch CPU threads [default: torch's choice]; 1 is often fastest for the small "
    "matrices here on a busy machine",
)
@click.option("--quiet", "-q", is_flag=True, help="no progress bar")
def train_cmd(
    task,
    model,
    optimizer_name,
    solver,
    steps,
    seed,
    lr,
    damping,
    t,
    t_d,
    kappa0,
    dt,
    base,
    reset,
    batch_size,
    eval_every,
    n_pca,
    fisher,
    out_dir,
    threads,
    quiet,
) -> None:
    """Train a model and write DIR/metrics.json and DIR/loss.png."""
    from tngd.optimizer import NumericalError
    from tngd.train import train

    if t_d > t:
        raise click.BadParameter(
            f"the delay must not exceed --t ({t_d} > {t})", param_hint="--delay"
        )
    if n_pca is not None and task != "digits":
        raise click.BadParameter("only the digits task supports PCA features", param_hint="--n-pca")
    if n_pca is not None and model == "cnn":
        raise click.BadParameter("the cnn needs images; drop --n-pca", param_hint="--n-pca")
    if solver is not None and optimizer_name in ("adam", "sgd"):
        raise click.BadParameter(
            f"applies to tngd/ngd only, not {optimizer_name}", param_hint="--solver"
        )
    if dt is not None and not (math.isfinite(dt) and dt > 0):
        raise click.BadParameter(f"must be positive, got {dt}", param_hint="--dt")
    effective = solver or ("ou-exact" if optimizer_name == "tngd" else None)
    if dt is not None and effective not in ("ou-euler", "ou2-euler"):
        raise click.BadParameter("applies to --solver ou-euler or ou2-euler only",
                                 param_hint="--dt")
    if solver == "spice":
        _load_spice()
    solver_kwargs = {"dt": dt} if dt is not None else None
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    try:
        metrics = train(
            task,
            model,
            optimizer_name,
            solver=solver,
            steps=steps,
            seed=seed,
            batch_size=batch_size,
            lr=lr,
            damping=damping,
            t=t,
            t_d=t_d,
            kappa0=kappa0,
            base=base,
            warm_start=not reset,
            eval_every=eval_every,
            n_pca=n_pca,
            fisher=fisher,
            solver_kwargs=solver_kwargs,
            quiet=quiet,
        )
    except (ValueError, TypeError, NumericalError, ImportError, _spu_error()) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        err = click.ClickException(msg)
        # spu_circuits' errors keep their exit status (2 bad input, 3 simulation)
        err.exit_code = getattr(exc, "exit_code", 1)
        raise err from None
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=1, allow_nan=True))
        plot_metrics(metrics, out_dir / "loss.png")
    except OSError as exc:
        raise click.ClickException(f"cannot write to {out_dir}: {exc.strerror or exc}") from None
    f = metrics["final"]
    click.echo(
        f"{optimizer_name}: final loss {f['loss']:.4g}, test accuracy {f['accuracy']:.3f}, "
        f"{f['time_s']:.2f} s -> {out_dir}"
    )


def _register_experiments() -> None:
    from tngd.experiments import experiments_cmd

    main.add_command(experiments_cmd, "experiments")


_register_experiments()

if __name__ == "__main__":  # pragma: no cover
    main()
