"""Hardware commands of the `spu` CLI: `spu budget` (error budget of a realised deck) and
`spu yield` (Monte-Carlo boards against a spec)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .cli_common import friendly
from .errors import InputError


@click.command("budget")
@click.argument("deck_path", metavar="DECK.cir", type=click.Path(dir_okay=False))
@click.option("--matrix", type=click.Path(dir_okay=False), help="Target A (default: sidecar).")
@click.option("--rhs", type=click.Path(dir_okay=False), help="Target b (with --matrix).")
@click.option("--time", "t_tau", type=float, default=None,
              help="Run time t in units of tau (default 3/lambda_min(A)).")
@click.option("--adc-bits", type=int, default=16, show_default=True,
              help="Readout-ADC resolution (0: no ADC term).")
@click.option("--dac-bits", type=int, default=None,
              help="Bias-DAC resolution (default: the deck's, if it has one).")
@click.option("--dac-inl", "dac_inl_lsb", type=float, default=1.0, show_default=True,
              help="Bias-DAC INL bound in LSB (an endpoint-fit bow; 0: no INL term).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False),
              help="Write the budget as JSON here (and a bar chart PNG beside it).")
@click.option("--no-spice", is_flag=True, help="Skip the ngspice checks.")
@click.option("--allow-unsafe", is_flag=True, help="Run decks the safety rules refuse.")
@friendly
def budget_cmd(deck_path, matrix, rhs, t_tau, adc_bits, dac_bits, dac_inl_lsb, json_path,
               no_spice, allow_unsafe):
    """Error budget of DECK.cir: each non-ideality alone, DC and at the run time t."""
    from .backends import Op
    from .budget import bar_chart, error_budget
    from .netlist import atomic_write
    from .safety import check_untrusted_deck
    from .simulate import Deck
    from .system import load_system

    deck = Deck.load(deck_path, require_sidecar=True, check_digest=False)
    check_untrusted_deck(deck, [Op()], allow_unsafe=allow_unsafe)
    if rhs and not matrix:
        raise InputError("--rhs needs --matrix")
    system = load_system(matrix, rhs) if matrix else None
    b = error_budget(deck, system=system, t_tau=t_tau, adc_bits=adc_bits or None,
                     dac_bits=dac_bits, dac_inl_lsb=dac_inl_lsb, spice=not no_spice)
    click.echo(b.table())
    click.echo(f"dominant: {b.dominant}")
    if b.dac_bits is None and dac_inl_lsb and click.get_current_context().get_parameter_source(
            "dac_inl_lsb") == click.core.ParameterSource.COMMANDLINE:
        click.echo("note: the deck has no bias-DAC bits, so there is no INL term; give "
                   "--dac-bits B to budget a B-bit DAC")
    if json_path:
        p = Path(json_path)
        atomic_write({p: json.dumps(b.to_json(), indent=2, allow_nan=False) + "\n"})
        png = bar_chart(b, p.with_suffix(".png"))
        click.echo(f"wrote {p} and {png}")


@click.command("yield")
@click.argument("deck_path", metavar="DECK.cir", type=click.Path(dir_okay=False))
@click.option("--draws", type=int, default=100, show_default=True, help="Boards K.")
@click.option("--max-error", "max_error", type=float, required=True,
              help="The spec: a board passes when its error vs A^-1 b is at most this.")
@click.option("--seed", type=int, default=0, show_default=True, help="Monte-Carlo seed S.")
@click.option("--report", "report_dir", type=click.Path(file_okay=False), required=True)
@click.option("--scheduler", default="local", show_default=True,
              help="serial, local, local:N or tcp://HOST:PORT.")
@click.option("--timeout", "timeout_s", type=float, default=120.0, show_default=True)
@click.option("--allow-unsafe", is_flag=True, help="Run decks the safety rules refuse.")
@friendly
def yield_cmd(deck_path, draws, max_error, seed, report_dir, scheduler, timeout_s,
              allow_unsafe):
    """Yield of DECK.cir's design against --max-error over K Monte-Carlo boards."""
    from .backends import Op
    from .board_yield import run_yield
    from .safety import check_untrusted_deck
    from .simulate import Deck

    deck = Deck.load(deck_path, require_sidecar=True, check_digest=False)
    check_untrusted_deck(deck, [Op()], allow_unsafe=allow_unsafe)
    r = run_yield(deck, draws=draws, max_error=max_error, seed=seed, report_dir=report_dir,
                  scheduler=scheduler, timeout_s=timeout_s)
    click.echo(f"yield {r.yield_:.3f} ({r.within}/{r.draws} boards within {max_error:g}), "
               f"95% {r.interval}: [{r.ci_low:.3f}, {r.ci_high:.3f}]; median error "
               f"{r.median_error:.3g}, p90 {r.p90_error:.3g}; {r.scheduler}")
    click.echo(f"wrote {Path(report_dir) / 'yield.json'}, yield_hist.png and worst/")


@click.command("calibrate")
@click.argument("deck_path", metavar="DECK.cir", type=click.Path(dir_okay=False))
@click.option("--adc-bits", type=int, default=16, show_default=True,
              help="Readout-ADC resolution of the calibration measurements.")
@click.option("--study", "--draws", "study_draws", type=int, default=None,
              help="Instead: error before/after calibration over this many Monte-Carlo "
                   "boards per error source (writes --report).")
@click.option("--seed", type=int, default=0, show_default=True, help="--study: MC seed.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False), default=None,
              help="--study: JSON file to write.")
@click.option("--scheduler", default="local", show_default=True,
              help="--study: serial, local, local:N or tcp://HOST:PORT.")
@click.option("--allow-unsafe", is_flag=True, help="Run decks the safety rules refuse.")
@friendly
def calibrate_cmd(deck_path, adc_bits, study_draws, seed, report_path, scheduler,
                  allow_unsafe):
    """Measure DECK.cir at b = 0 and at probe vectors (ngspice) and write the bias-DAC
    offset trims into its sidecar (spu simulate applies them)."""
    from .backends import Op
    from .calibrate import calibrate_deck, calibration_study
    from .netlist import atomic_write, sidecar_path
    from .safety import check_untrusted_deck
    from .sidecar import Sidecar
    from .simulate import Deck

    deck = Deck.load(deck_path, require_sidecar=True, check_digest=False)
    check_untrusted_deck(deck, [Op()], allow_unsafe=allow_unsafe)
    if study_draws is not None:
        if not report_path:
            raise InputError("--study needs --report FILE.json")
        r = calibration_study(deck, draws=study_draws, seed=seed, scheduler=scheduler,
                              adc_bits=adc_bits or None)
        atomic_write({Path(report_path): json.dumps(r, indent=2, allow_nan=False) + "\n"})
        for s, v in r["sources"].items():
            click.echo(f"{s:>9s}: median error {v['median_before']:.3g} -> "
                       f"{v['median_after']:.3g} ({v['ratio_of_medians']:.3g}x) over "
                       f"{study_draws} boards")
        click.echo(f"wrote {report_path}")
        return
    side = Sidecar.from_json(calibrate_deck(deck, adc_bits=adc_bits or None))
    atomic_write({sidecar_path(deck_path): side.dumps()})
    cal = side.calibration
    worst = max(cal["bias_trim_V"].items(), key=lambda kv: abs(kv[1]))
    click.echo(f"calibrated {deck_path}: {cal['runs']} ngspice runs; offset trims written to "
               f"the sidecar (largest {worst[0]} {worst[1]:+.4g} V)")
