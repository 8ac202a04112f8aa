"""CLI commands of the programmable board and the KiCad export: `spu board`, `spu program`,
`spu kicad` (registered in `spu_circuits.cli`); `spu simulate --codes` and
`spu validate BOARD.cir --codes` use `load_programmed` and `board_validate`."""

from __future__ import annotations

import functools
import json
import time
from pathlib import Path

import click

from .errors import InputError


def friendly(fn):
    """spu_circuits.cli.friendly, looked up at call time (this module is imported by cli)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from .cli import friendly as _friendly

        return _friendly(fn)(*args, **kwargs)

    return wrapper


def _load_input(*args):
    from .cli import _load_input as load

    return load(*args)


@click.command("board")
@click.option("--cells", "n", type=int, required=True, help="Number of cells N.")
@click.option("--factored", "r", type=int, default=None,
              help="Factored board with R stages (2RN + N parts); default: dense (N <= 32).")
@click.option("--coupling", type=click.Choice(["mdac", "digipot"]), default="mdac",
              show_default=True, help="Programmable part of every coupling.")
@click.option("--bits", type=int, default=None,
              help="Coupling bits (mdac default 12, digipot 10 = 1,024 positions).")
@click.option("--bias-bits", type=int, default=16, show_default=True,
              help="Bits of the bias DACs (signed).")
@click.option("--range", "range_", type=float, default=1.0, show_default=True,
              help="Largest |A_ij| and |b_i| (factored: |S_kj|; lambda, |b_i| <= range^2).")
@click.option("--v0", type=float, default=1.0, show_default=True, help="Volts per unit of x.")
@click.option("--cap", "C_F", type=float, default=None,
              help="Integrating capacitor C (F) [default: 1 nF mdac, 100 nF digipot, so that "
                   "tau stays far above the part's bandwidth].")
@click.option("--gain", type=float, default=1e6, show_default=True,
              help="Op-amp open-loop gain (VCVS model).")
@click.option("--opamp", default=None,
              help="Catalogue op-amp (e.g. OPA192, TL072): its DC gain and part number.")
@click.option("--rab", "R_ab", type=float, default=20e3, show_default=True,
              help="digipot end-to-end resistance (20k, 50k or 100k ohm).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the parts' fixed errors (INL, tolerance).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True)
@click.option("--name", default="board", show_default=True)
@friendly
def board_cmd(n, r, coupling, bits, bias_bits, range_, v0, C_F, gain, opamp, R_ab, seed,
              out_dir, name):
    """Write a programmable board OUT/NAME.cir + sidecar (depends on N, r and the parts
    only, never on a system)."""
    from .board import BoardSpec, board_circuit, build_board

    if bits is None:
        bits = 12 if coupling == "mdac" else 10
    if C_F is None:
        C_F = 1e-9 if coupling == "mdac" else 100e-9
    sp = BoardSpec(n=n, r=r, coupling=coupling, bits=bits, bias_bits=bias_bits, range=range_,
                   v0=v0, C_F=C_F, opamp_gain=gain, seed=seed, R_ab_ohm=R_ab, opamp=opamp)
    cc = board_circuit(build_board(sp), name)
    deck = cc.write(out_dir, name)
    side = cc.sidecar
    b = side.board
    click.echo(f"wrote {deck} and {deck.with_suffix('.json').name}: {side.topology}, "
               f"N = {n}, {b.n_programmable_parts} programmable {coupling} parts "
               f"({b.part.mpn}), {bits} bits")
    click.echo(f"  range {b.range_A:g}, full-scale conductance {b.g_fs_S:.4g} S, "
               f"R0 = {1 / b.G_unit_S:.4g} ohm, tau = {side.tau_s:.4g} s")


@click.command("program")
@click.argument("deck_path", metavar="BOARD.cir", type=click.Path(dir_okay=False))
@click.option("--matrix", type=click.Path(dir_okay=False), help="A as .npy (dense board).")
@click.option("--factor", type=click.Path(dir_okay=False), help="S as .npy (factored board).")
@click.option("--damping", type=float, default=None, help="lambda with --factor.")
@click.option("--rhs", type=click.Path(dir_okay=False), help="b as .npy (default ones).")
@click.option("--method", type=click.Choice(["round", "optimal"]), default="optimal",
              show_default=True, help="Code choice: nearest code per entry, or minimise "
              "the solution error ||A_q^-1 b_q - A^-1 b||.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False), required=True,
              help="codes.json (a .inc with the .param lines is written beside it).")
@friendly
def program_cmd(deck_path, matrix, factor, damping, rhs, method, out_path):
    """Choose the codes that program BOARD.cir for a system; write codes.json + codes.inc."""
    from .board import BoardLayout, program
    from .netlist import atomic_write
    from .simulate import Deck

    deck = Deck.load(deck_path, require_sidecar=True)
    layout = BoardLayout.from_sidecar(deck.sidecar)
    system = _load_input(matrix, factor, damping, rhs, None)
    t0 = time.perf_counter()
    prog = program(system, layout, method)
    t_prog = time.perf_counter() - t0
    out = Path(out_path)
    if out.suffix != ".json":
        raise InputError(f"--out must name a .json file, got {out.name}")
    atomic_write({out: prog.dumps(), out.with_suffix(".inc"): prog.include_text()})
    click.echo(f"wrote {out} and {out.with_suffix('.inc').name}: {len(prog.params)} "
               f"parameters ({method} codes, chosen in {t_prog:.3f} s) for {prog.n_used} "
               "variables")
    click.echo(f"  predicted solution error ||A_q^-1 b_q - A^-1 b||/||A^-1 b|| = "
               f"{prog.rel_error:.3e} (first-order estimate {prog.first_order:.3e}); "
               f"|A_q - A|/|A| = {prog.entry_rel_error:.3e}")


def load_programmed(deck, codes_path):
    """The Deck with the program of codes_path applied (see board.run.load_programmed)."""
    from .board.run import load_programmed as load

    return load(deck, codes_path)


def board_validate(deck_path, codes_path, backend, timeout_s, report_dir=None) -> int:
    """Validate a programmed board; prints one line per check; returns the exit status."""
    from .board import Program
    from .board.validate import validate_board
    from .netlist import atomic_write
    from .simulate import Deck

    deck = Deck.load(deck_path, require_sidecar=True)
    prog = Program.load(codes_path)
    checks, info = validate_board(deck, prog, backend, timeout_s)
    for c in checks:
        click.echo(f"  {'PASS' if c.passed else 'FAIL'} {c.name:18s} {c.value:.3e} "
                   f"(threshold {c.threshold:.3e}): {c.what}")
    ok = all(c.passed for c in checks)
    if report_dir:
        rep = {"deck": str(deck_path), "codes": str(codes_path), "passed": ok,
               "checks": [vars(c) for c in checks], **info}
        atomic_write({Path(report_dir) / "board_report.json":
                      json.dumps(rep, indent=1, allow_nan=False) + "\n"})
    click.echo(f"board validation {'passed' if ok else 'FAILED'} ({len(checks)} checks)")
    return 0 if ok else 1


@click.command("kicad")
@click.argument("deck_path", metavar="DECK.cir", type=click.Path(dir_okay=False))
@click.option("--out", "out_path", type=click.Path(dir_okay=False), required=True,
              help="NAME.net (KiCad s-expression netlist).")
@click.option("--bom", "bom_path", type=click.Path(dir_okay=False), default=None,
              help="Also write the parts list (values, manufacturer part numbers, footprints) "
                   "as CSV.")
@friendly
def kicad_cmd(deck_path, out_path, bom_path):
    """Write a KiCad netlist of DECK.cir for Pcbnew (File > Import > Netlist)."""
    from .kicad import deck_to_kicad, parts_bom_csv
    from .netlist import atomic_write
    from .simulate import Deck

    text, summary = deck_to_kicad(Path(deck_path))
    files = {Path(out_path): text}
    if bom_path:
        deck = Deck.load(deck_path)
        files[Path(bom_path)] = parts_bom_csv(deck.text, deck.sidecar)
    atomic_write(files)
    click.echo(f"wrote {out_path}: {summary}" + (f"; parts list {bom_path}" if bom_path
                                                  else ""))
