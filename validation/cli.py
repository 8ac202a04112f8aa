"""`spu validate`: check a deck (or a freshly compiled one) against the system it should realise.

    spu validate DECK.cir --report DIR [--matrix A.npy --rhs b.npy] [--backend shared|cli]
                 [--quick | --thorough] [--allow-unsafe]
    spu validate --matrix A.npy --rhs b.npy [--topology dense|ideal|oscillator] [--kappa0 K]
                 --report DIR

Exit status: 0 every check passed, 1 a check failed, 2 bad input (files, options, decks),
3 ngspice failed.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click
import numpy as np

from spu_circuits.backends import Op, Tran
from spu_circuits.cli_common import (
    SPEC_KEYS,
    check_writable,
    friendly,
    spec_from_options,
    spec_options,
)
from spu_circuits.errors import InputError
from spu_circuits.safety import check_untrusted_deck
from spu_circuits.timesteps import VALIDATION_NOISE_STEP_FRAC


def _echo(msg: str) -> None:
    click.echo(msg)


def _target_system(matrix, rhs, deck):
    """The system given on the command line; b defaults to the sidecar's (deck mode)."""
    from spu_circuits.system import LinearSystem, load_system

    system = load_system(matrix, rhs)
    if rhs is None and deck is not None:
        has_b = False
        if str(matrix).endswith(".npz"):
            with np.load(matrix, allow_pickle=False) as z:
                has_b = "b" in z.files
        side = deck.system()
        if not has_b and side is not None and side.n == system.n:
            system = LinearSystem.from_arrays(system.A, np.array(side.b), name=system.name)
    return system


@click.command("validate")
@click.argument("decks", metavar="[DECK.cir]...", nargs=-1, type=click.Path(dir_okay=False))
@click.option("--matrix", type=click.Path(dir_okay=False),
              help="A as .npy (or .npz with A and b): the system to check against, or to "
                   "compile when no DECK is given.")
@click.option("--rhs", type=click.Path(dir_okay=False),
              help="b as .npy (default: the sidecar's b for a DECK, ones when compiling).")
@click.option("--report", "report_dir", type=click.Path(file_okay=False), default=None,
              help="Folder for report.json, report.md and the figures.")
@click.option("--topology", type=click.Choice(["dense", "ideal", "oscillator"]),
              default="dense",
              show_default=True, help="Compile mode: the circuit topology.")
@click.option("--name", default=None, help="Compile mode: deck name (default: matrix stem).")
@click.option("--kappa0", type=float, default=None,
              help="Noise level κ₀ (default: the deck's, else 0.01).")
@click.option("--noise-step", "noise_step", type=float, default=None,
              help="Noise step in units of τ (default: the deck's, else "
                   f"{VALIDATION_NOISE_STEP_FRAC}/λ_max(A)).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the pathwise noise files and the surrogate.")
@click.option("--backend", type=click.Choice(["shared", "cli"]), default="shared",
              show_default=True)
@click.option("--quick", is_flag=True, help="Shorter runs (B = 24 batches, 10 τ_slow path).")
@click.option("--thorough", is_flag=True, help="Longer runs (8 chains, B = 80).")
@click.option("--checks", "checks", default=None,
              help="Comma-separated subset of dc,transient,pathwise,statistical,surrogate.")
@click.option("--timeout", "timeout_s", type=float, default=600.0, show_default=True,
              help="Seconds before one ngspice run is stopped.")
@click.option("--no-figures", is_flag=True, help="Skip the PNG figures.")
@click.option("--no-budget", is_flag=True,
              help="Skip the error-budget section (realised decks; see spu budget).")
@click.option("--max-error", "max_error", type=float, default=None,
              help="The spec: dc and transient fail when the error vs A^-1 b exceeds this, "
                   "whatever the deck predicts of itself.")
@click.option("--allow-unsafe", is_flag=True,
              help="Run decks with .control blocks, shell/file commands or outside includes.")
@click.option("--codes", "codes_path", type=click.Path(dir_okay=False),
              help="Programmable board: validate DECK.cir as programmed by these codes.")
@click.option("--sweep", is_flag=True,
              help="Validate every DECK × --seeds as one sweep (sweep.json/md/png in --report).")
@click.option("--seeds", default="0", show_default=True,
              help="With --sweep: seeds, e.g. 0,1,2 or 0-9.")
@click.option("--scheduler", default="local", show_default=True,
              help="With --sweep: serial, local[:N] (Dask LocalCluster) or tcp://HOST:PORT.")
@click.option("--cache", "cache_dir", type=click.Path(file_okay=False), default=None,
              help="With --sweep: keep finished runs here and resume from them.")
@spec_options
@click.pass_context
@friendly
def validate_cmd(ctx, decks, matrix, rhs, report_dir, topology, name, kappa0, noise_step,
                 seed, backend, quick, thorough, checks, timeout_s, no_figures, no_budget,
                 max_error, allow_unsafe, sweep, seeds, scheduler, cache_dir, codes_path, **kw):
    """Check DECK.cir (or the deck compiled from --matrix/--rhs) in ngspice against its
    target: DC solution, noiseless transient, pathwise agreement with the surrogate on the
    same noise, and the stationary statistics (mean, covariance, autocovariance) of SPICE
    and of the surrogate. Exits 1 when a check fails."""
    from spu_circuits.compiler import compile_system
    from spu_circuits.compiler.noise import NoiseSpec
    from spu_circuits.simulate import Deck
    from spu_circuits.system import load_system

    from .checks import Validation, settings_for
    from .report import summary_table, write_report

    if codes_path:
        if len(decks) != 1:
            raise InputError("--codes needs one board deck: spu validate BOARD.cir --codes "
                             "codes.json")
        from spu_circuits.cli_board import board_validate

        sys.exit(board_validate(decks[0], codes_path, backend, timeout_s, report_dir))
    if report_dir is None:
        raise InputError("--report DIR is required (the folder for report.json)")
    if quick and thorough:
        raise InputError("choose one of --quick and --thorough")
    preset = "quick" if quick else "thorough" if thorough else "default"
    names = None
    if checks:
        names = [c.strip() for c in checks.split(",") if c.strip()]
    if sweep:
        from .sweep import SEEDED_CHECKS, run_validate_sweep

        if matrix or rhs or allow_unsafe:
            raise InputError("--sweep takes decks with sidecars (no --matrix/--rhs, no "
                             "--allow-unsafe)")
        for d in decks:
            from spu_circuits.simulate import Deck

            check_untrusted_deck(Deck.load(d, require_sidecar=True, check_digest=False),
                                 [Op(), Tran(step_s=1.0, stop_s=1.0)], allow_unsafe=False)
        ok = run_validate_sweep(list(decks), seeds, tuple(names or SEEDED_CHECKS),
                                "quick" if preset == "default" else preset, scheduler,
                                Path(report_dir), timeout_s,
                                Path(cache_dir) if cache_dir else None, _echo)
        if not ok:
            sys.exit(1)
        return
    if len(decks) > 1:
        raise InputError("give one DECK.cir (or several with --sweep)")
    deck_path = decks[0] if decks else None
    if max_error is not None and not (np.isfinite(max_error) and max_error > 0):
        raise InputError(f"--max-error must be a positive number, got {max_error!r}")
    settings = settings_for(preset, seed=seed, max_error=max_error)
    given_spec = [k for k in SPEC_KEYS
                  if ctx.get_parameter_source(k) == click.core.ParameterSource.COMMANDLINE]
    info: dict = {"preset": preset}
    out = Path(report_dir)
    check_writable(out, "--report", folder=True)  # before any check runs
    if deck_path is None:
        if matrix is None:
            raise InputError("give a DECK.cir to check, or --matrix (and --rhs) to compile one")
        system = load_system(matrix, rhs, name=name)
        spec = spec_from_options(kw)
        lam = np.linalg.eigvalsh(system.A)
        k0 = kappa0 if kappa0 is not None else settings.kappa0
        h = noise_step if noise_step is not None else settings.noise_step_frac / lam[-1]
        # the oscillator's checks draw their own seeded file noise (never TRNOISE)
        noise = (NoiseSpec("none") if topology == "oscillator"
                 else NoiseSpec("trnoise", k0, step_tau=h))
        compiled = compile_system(system, topology, spec, name=name or system.name,
                                  noise=noise)
        path = compiled.write(out, name or system.name)
        _echo(f"compiled {topology} deck {path} (N = {system.n}, κ₀ = {k0:g}, noise step "
              f"{h:.3g} τ)")
        deck = Deck.load(path)
        info.update(deck=str(path), system_source=f"{matrix}" + (f", {rhs}" if rhs else ""))
        target = None
    else:
        if given_spec:
            raise InputError("hardware options (--" + ", --".join(
                k for k in given_spec) + ") only apply when compiling (no DECK given)")
        deck = Deck.load(deck_path, require_sidecar=True, check_digest=False)
        # validate runs .op and transients of this text
        check_untrusted_deck(deck, [Op(), Tran(step_s=1.0, stop_s=1.0)],
                             allow_unsafe=allow_unsafe)
        if deck.edited:
            _echo(f"note: {deck_path} differs from what was compiled (sha256 mismatch); "
                  "checking it against " + ("the given system" if matrix else
                                            "the system in its sidecar"))
        if rhs is not None and matrix is None:
            raise InputError("--rhs needs --matrix")
        target = _target_system(matrix, rhs, deck) if matrix is not None else None
        info.update(deck=str(deck_path),
                    system_source=(f"{matrix}" + (f", {rhs}" if rhs else ", b from the sidecar")
                                   if matrix else "the sidecar's system"))
    t0 = time.monotonic()
    with Validation(deck, target, settings=settings, backend=backend, kappa0=kappa0,
                    noise_step=noise_step, log=_echo, timeout_s=timeout_s) as v:
        info.update(v.describe())
        p = v.plan
        _echo(f"validating {info['deck']}: N = {v.n}, λ(A) ∈ [{v.lam_min:.3g}, "
              f"{v.lam_max:.3g}], κ₀ = {v.kappa0:g}, h = {v.h:.3g} τ; preset {preset}: "
              f"{p.chains} runs × {p.burn_in + p.chain_duration:.3g} τ")
        results = v.run(names)
    section = None
    if not no_budget:
        from .budget_section import budget_section

        section = budget_section(deck, target, backend=backend, timeout_s=timeout_s,
                                 max_error=max_error, log=_echo)
    info["total_seconds"] = round(time.monotonic() - t0, 2)
    paths = write_report(out, results, info, figures=not no_figures, budget=section)
    _echo("")
    _echo(summary_table(results))
    ok = all(r.passed for r in results)
    if section is not None and section.budget is not None:
        _echo(section.verdict())
    _echo(f"\n{'PASS' if ok else 'FAIL'}: {sum(r.passed for r in results)}/{len(results)} "
          f"checks passed in {info['total_seconds']:.1f} s; report {paths['md']}")
    if not ok:
        sys.exit(1)
