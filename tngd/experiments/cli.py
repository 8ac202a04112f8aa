"""``tngd experiments``: the MNIST experiments and the per-step benchmark, into a folder."""

from __future__ import annotations

from pathlib import Path

import click

from spu_circuits.cli_common import check_writable, friendly
from tngd.experiments.benchmark import run_benchmark
from tngd.experiments.records import set_one_thread
from tngd.experiments.runner import run_mnist


@click.command("experiments")
@click.option(
    "--preset", type=click.Choice(["smoke", "quick", "full"]), default="quick", show_default=True
)
@click.option("--only", type=click.Choice(["mnist", "bench", "oscillator"]), default=None,
              help="run one part (oscillator: second- vs first-order TNGD, only when asked)")
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    default=None,
    help="parallel MNIST runs on a local cluster (default 2; --scheduler overrides)",
)
@click.option(
    "--scheduler",
    default=None,
    help="where the MNIST runs go: serial, local[:N] (Dask LocalCluster) or tcp://HOST:PORT",
)
@click.option("--steps", type=click.IntRange(min=1), default=None, help="override the steps")
@click.option("--seeds", type=str, default=None, help="override the seeds, e.g. 0,1,2")
@click.option(
    "--cache",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="store each MNIST run here and reuse it (resumable)",
)
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True)
@friendly
def experiments_cmd(preset, only, jobs, scheduler, steps, seeds, cache, out_dir) -> None:
    """The paper's MNIST experiments and the per-step cost benchmark, into DIR."""
    set_one_thread()
    from spu_circuits.execution import parse_seeds

    seed_list = list(parse_seeds(seeds)) if seeds else None
    check_writable(out_dir, "--out", folder=True)  # before any run
    if only in (None, "mnist"):
        if scheduler is not None:
            from spu_circuits.execution import parse_scheduler

            parse_scheduler(scheduler)  # a bad --scheduler fails before any work
        res = run_mnist(preset, out_dir, jobs=jobs, scheduler=scheduler, steps=steps,
                        seeds=seed_list, cache=cache)
        click.echo(f"mnist: {out_dir}/mnist_{preset}.json ({res['timing']['wall_s']:.0f} s on "
                   f"{res['timing']['scheduler']})")
    if only == "oscillator":
        from spu_circuits.execution import parse_scheduler
        from tngd.experiments.oscillator import OSCILLATOR_PRESETS, run_oscillator
        from tngd.experiments.runner import _scheduler_for

        cfg = OSCILLATOR_PRESETS[preset]
        sched = _scheduler_for(scheduler, jobs)
        parse_scheduler(sched)  # a bad --scheduler fails before any work
        res = run_oscillator(out_dir, steps=steps or cfg["steps"],
                             seeds=seed_list or cfg["seeds"], methods=cfg["methods"],
                             scheduler=sched, cache=cache)
        click.echo(f"oscillator: {out_dir}/mnist_second_order.json "
                   f"({res['timing']['wall_s']:.0f} s on {res['timing']['scheduler']})")
    if only in (None, "bench"):
        res = run_benchmark(out_dir, preset)
        click.echo(f"bench: {out_dir}/bench_step.json ({res['step']['wall_s']:.0f} s)")
