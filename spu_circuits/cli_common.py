"""What the command lines share: one-line errors with exit codes (`friendly`), and the
hardware-spec and noise options of the commands that compile (`spec_options`,
`noise_options`, read back with `spec_from_options` / `noise_from_options`).

Exit codes: 0 success, 1 a check failed (or an internal error), 2 bad input, 3 ngspice failed,
130 interrupted.
"""

from __future__ import annotations

import functools
import os
import sys
import tempfile
from pathlib import Path

import click

from .errors import InputError, SimulationError, SpuError
from .spec import HardwareSpec
from .timesteps import NOISE_STEP_FRAC

#: the HardwareSpec fields `spec_options` adds, in order
SPEC_KEYS = ("R0_ohm", "C_F", "volts_per_unit", "opamp_gain", "r_min_ohm", "r_max_ohm",
             "prune_rel", "auto_prune")


def _fail(msg: str, code: int = 2) -> None:
    click.echo(f"error: {msg}", err=True)
    sys.exit(code)


def friendly(fn):
    """Turn SpuError (and unexpected exceptions) into one-line errors with exit codes."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except SimulationError as exc:
            _fail(exc.details(), exc.exit_code)
        except SpuError as exc:
            _fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            _fail("interrupted", 130)
        except Exception as exc:  # noqa: BLE001 - last resort: no traceback for CLI users
            if os.environ.get("SPU_DEBUG"):
                raise
            _fail(f"internal error: {type(exc).__name__}: {exc} (rerun with SPU_DEBUG=1 for "
                  "the traceback)", 1)

    return wrapper


def spec_options(fn):
    """Hardware-spec options shared by the commands that compile."""
    opts = [
        click.option("--r0", "R0_ohm", default="1k", show_default=True,
                     help="Unit resistance R0 (ohm; SI prefixes: 10k, 4.7kohm)."),
        click.option("--cap", "C_F", default="1nF", show_default=True,
                     help="Integrating capacitor C (F; 100nF, 1e-7); tau = R0*C. With "
                          "--realize and an op-amp GBW, an unset C is raised to suit it."),
        click.option("--v0", "volts_per_unit", default="1V", show_default=True,
                     help="Volts per unit of x (V)."),
        click.option("--gain", "opamp_gain", type=float, default=1e6, show_default=True,
                     help="Op-amp open-loop gain (ideal VCVS model)."),
        click.option("--rmin", "r_min_ohm", default="100", show_default=True,
                     help="Smallest realisable resistor (ohm; 100, 1k)."),
        click.option("--rmax", "r_max_ohm", default="10M", show_default=True,
                     help="Largest realisable resistor (ohm; 10M = 10 megohm)."),
        click.option("--prune", "prune_rel", type=float, default=0.0, show_default=True,
                     help="Drop couplings below this fraction of max|A|."),
        click.option("--auto-prune/--no-auto-prune", "auto_prune", default=True,
                     show_default=True,
                     help="Drop couplings too weak for the resistor range (else fail)."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def noise_options(fn):
    """Noise-source options shared by the commands that compile."""
    opts = [
        click.option("--noise", "noise_kind", type=click.Choice(["none", "trnoise", "file"]),
                     default="none", show_default=True,
                     help="Noise sources: ngspice TRNOISE, or reproducible seeded noise "
                          "fed from files beside the deck (XSPICE filesource)."),
        click.option("--kappa0", type=float, default=0.0, show_default=True,
                     help="Noise level kappa0: stationary covariance kappa0*A^-1."),
        click.option("--noise-step", "noise_step", type=float, default=None,
                     help="Noise step NT in units of tau "
                          f"(default {NOISE_STEP_FRAC}/lambda_max(A))."),
        click.option("--noise-duration", "noise_duration", type=float, default=100.0,
                     show_default=True, help="file noise: length covered, units of tau."),
        click.option("--seed", type=int, default=0, show_default=True,
                     help="file noise: random seed."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def noise_from_options(kw: dict):
    """The NoiseSpec of `noise_options`' values (popped from kw)."""
    from .compiler.noise import NoiseSpec

    return NoiseSpec(kind=kw.pop("noise_kind"), kappa0=kw.pop("kappa0"),
                     step_tau=kw.pop("noise_step"), duration_tau=kw.pop("noise_duration"),
                     seed=kw.pop("seed"))


#: spec options given as physical quantities: (unit, option name)
_QUANTITIES = {"R0_ohm": ("ohm", "--r0"), "C_F": ("F", "--cap"),
               "volts_per_unit": ("V", "--v0"), "r_min_ohm": ("ohm", "--rmin"),
               "r_max_ohm": ("ohm", "--rmax")}


def spec_from_options(kw: dict) -> HardwareSpec:
    """The HardwareSpec of `spec_options`' values (popped from kw; quantities with SI
    prefixes and units parsed)."""
    from .units import parse_quantity

    vals = {k: kw.pop(k) for k in SPEC_KEYS}
    for k, (unit, opt) in _QUANTITIES.items():
        if isinstance(vals[k], str):
            vals[k] = parse_quantity(vals[k], unit, what=opt)
    return HardwareSpec(**vals)


def check_writable(path: Path, option: str, folder: bool = False) -> None:
    """Before any work: InputError (exit 2) when `path` (a file, or with folder=True a
    folder) cannot be written: it exists as the other kind, an ancestor is a file, or the
    folder where it would be created refuses a file (probed with a temporary file)."""
    path = Path(path)
    if path.exists() and path.is_dir() != folder:
        kind = "a folder" if path.is_dir() else "a file"
        raise InputError(f"{option} {path}: exists and is {kind}")
    anc = path if path.exists() and folder else path.parent
    while not anc.exists():
        anc = anc.parent
    if not anc.is_dir():
        raise InputError(f"{option} {path}: {anc} is a file, not a folder")
    if path.exists() and not folder and not os.access(path, os.W_OK):
        raise InputError(f"{option} {path}: the file is not writable")
    try:
        fd, probe = tempfile.mkstemp(dir=anc, prefix=".spu-write-check-")
    except OSError as exc:
        raise InputError(f"{option} {path}: cannot write in {anc} ({exc.strerror})") from None
    os.close(fd)
    os.unlink(probe)
