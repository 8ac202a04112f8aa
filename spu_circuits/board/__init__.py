"""Programmable SPU boards: one fixed deck per (N, r, part, bits, range), programmed by codes.

`build_board(BoardSpec)` → `Board`; `board_circuit(board, name)` → a CompiledCircuit whose
`.write(dir, name)` writes the deck and its sidecar; `program(system, layout)` → `Program`
(codes, A_q, b_q, predicted error); `programmed_deck`, `board_effective` run or extract it.
"""

from __future__ import annotations

from .. import __version__
from ..compiler import CompiledCircuit
from .program import BoardLayout, Program, program
from .record import BoardRecord
from .run import board_effective, programmed_deck, programmed_text
from .topology import Board, BoardSpec, build_board

__all__ = ["Board", "BoardLayout", "BoardRecord", "BoardSpec", "Program", "board_circuit",
           "board_effective", "build_board", "program", "programmed_deck", "programmed_text"]


def board_circuit(board: Board, name: str) -> CompiledCircuit:
    """The board as a CompiledCircuit (netlist + sidecar meta) ready to `.write`."""
    sp = board.spec
    net = board.netlist
    part = sp.part
    n = sp.n
    net.header = [
        f"generator: spu-tngd {__version__}; programmable board ({board.cellmap.topology}); "
        f"N = {n}" + (f", r = {sp.r}" if sp.factored else ""),
        f"couplings: {part.kind} ({part.mpn}), {part.bits} bits, behind SPDT sign switches "
        f"({sp.switch.mpn}); parameters code_*, sel_* set by a program (spu program)",
        f"range: |A_ij|, |b_i| <= {sp.A_range:g}" + (f" (|S_kj| <= {sp.range:g})"
                                                      if sp.factored else "")
        + f"; full-scale entry conductance {sp.g_fs_S:.6g} S; R0 = 1/G_unit = "
          f"{sp.R0_ohm:.6g} ohm",
        f"mapping: x_i = V(o_i)/{sp.v0:g}; tau = C/G_unit = {sp.tau_s:.6g} s "
        f"(C = {sp.C_F:g} F)",
        "this deck needs its program: .param lines from CODES.inc (spu simulate --codes)",
        "sidecar: the .json file beside this deck",
    ]
    _check_structure(board)
    linear = []
    c = 1.0 / (1.0 + 2.0 / sp.opamp_gain)
    for i in range(n):
        linear += [[f"o{i}", i, sp.v0], [f"p{i}", i, -c * sp.v0],
                   [f"s{i}", i, -sp.v0 / sp.opamp_gain],
                   [f"n{i}", i, c * sp.v0 / sp.opamp_gain]]
    meta = {
        "format": "spu-tngd-deck/1",
        "generator": f"spu-tngd {__version__}",
        "name": name,
        "topology": board.cellmap.topology,
        "n": n,
        "outputs": [f"o{i}" for i in range(n)],
        "noise_nodes": [f"s{i}" for i in range(n)],
        "ic_map": {"linear": linear, "const": []},
        "volts_per_unit": sp.v0,
        "tau_s": sp.tau_s,
        "tau_device_s": sp.tau_s,
        "R0_ohm": sp.R0_ohm,
        "C_F": sp.C_F,
        "matrix_scale": 1.0,
        "opamp_gain": sp.opamp_gain,
        "element_counts": net.counts(),
        "options": dict(net.options),
        "noise": {"kind": "none"},
        "board": BoardRecord.of(board).to_json(),
        "cell_map": board.cellmap.to_json(),
    }
    return CompiledCircuit(net, meta)


def _check_structure(board: Board) -> None:
    """The board with a mid-scale test program must parse and have a DC solution (every node
    has a DC path; no source loops): GraphCheckError otherwise."""
    from ..errors import GraphCheckError, InputError
    from ..parser import dc_solution, parse_deck
    from ..spice.params import elaborate
    from .topology import test_params

    params = test_params(board.spec, board.slots)
    try:
        dc_solution(parse_deck(elaborate(board.netlist.to_text(), params, drop_poles=True)))
    except InputError as exc:
        raise GraphCheckError(f"board structure check failed: {exc}") from None
