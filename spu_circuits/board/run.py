"""A board as programmed: the deck text plus its `.param` program, run in ngspice or read back
by the extractor.

The board deck on disk is never rewritten. A program enters as `.param` lines placed right
after the deck's title (`programmed_text`); `spu program` also writes them to `CODES.inc`
beside the codes file for runs by hand (`ngspice -b` on a copy of the deck that includes it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..netlist import deck_digest
from ..sidecar import IcMap, Prediction, SystemRecord
from ..simulate import Deck
from ..spice.params import elaborate
from .program import BoardLayout, Program


def programmed_text(board_text: str, prog: Program) -> str:
    """The deck text with the program's `.param` lines after the title line."""
    first, _, rest = board_text.partition("\n")
    return "\n".join([first, *prog.param_lines(), rest])


def check_program(deck: Deck, prog: Program) -> BoardLayout:
    """InputError unless `prog` was written for this board deck (same digest, all params)."""
    layout = BoardLayout.from_sidecar(deck.sidecar)
    if prog.board_sha256 and prog.board_sha256 != deck_digest(deck.text):
        raise InputError(f"the codes were written for another board (board "
                         f"{prog.board!r}, sha256 differs from {deck.path or 'this deck'})")
    from .topology import param_names

    want = set(param_names(layout.spec, layout.slots))
    missing = sorted(want - set(prog.params))
    if missing:
        raise InputError(f"the codes file lacks parameter {missing[0]!r} of this board")
    return layout


#: the records a programmed deck's sidecar adds to its board's, in this order after its keys
_PROGRAMMED_KEYS = ("system", "quantised_system", "predicted")


def programmed_deck(deck: Deck, prog: Program) -> Deck:
    """A Deck (same path and folder) whose text carries the program and whose sidecar
    records the programmed system, so every sidecar-driven analysis runs it as it is."""
    layout = check_program(deck, prog)
    side = deck.need_sidecar()
    n, v0 = layout.spec.n, layout.spec.v0
    from .program import _padded

    tgt, A_pad, _ = _padded(prog.target(), layout.spec)
    # the target, padded to the board (unused cells: x = 0), in system units
    system = (SystemRecord(b=tgt["b"], S=tgt["S"], damping=float(tgt["damping"][0]))
              if "S" in tgt else SystemRecord(b=tgt["b"], A=A_pad))
    ic = IcMap(side.ic_map.linear if side.ic_map else (),
               tuple((f"u{i}", -v0 * float(prog.b_q[i])) for i in range(n)))
    predicted = Prediction(tuple(prog.x_q.tolist()), prog.rel_error,
                           f"quantisation ({prog.method} codes); see the codes file")
    order = side.key_order + tuple(k for k in _PROGRAMMED_KEYS if k not in side.key_order)
    programmed = side.with_(
        system=system, ic_map=ic, predicted=predicted, deck_sha256=None, key_order=order,
        extra={**side.extra,
               "quantised_system": {"A": prog.A_q.tolist(), "b": prog.b_q.tolist()}})
    return Deck(programmed_text(deck.text, prog), programmed, deck.path)


@dataclass(frozen=True)
class BoardEffective:
    """The programmed board read back by the extractor: A_eff, b_eff (board units, τ of the
    sidecar) and x_dc = A_eff⁻¹b_eff (N,)."""

    A: np.ndarray
    b: np.ndarray
    x_dc: np.ndarray
    tau_s: float


def board_effective(deck: Deck, prog: Program) -> BoardEffective:
    """Extract A_eff, b_eff of the programmed board (codes, fixed part errors, finite gain,
    switch leakage; part poles dropped) with the independent parser."""
    from ..parser import extract_system, parse_deck

    check_program(deck, prog)
    text = elaborate(deck.text, {k: float(v) for k, v in prog.params.items()},
                     drop_poles=True)
    ex = extract_system(parse_deck(text), deck.outputs, deck.volts_per_unit)
    es = ex.as_system(deck.tau_s)
    return BoardEffective(es.A, es.b, es.x_dc, deck.tau_s)


def load_programmed(deck: Deck, codes_path) -> Deck:
    """The Deck with the program of `codes_path` applied (spu simulate); InputError for a
    board without codes or codes for a deck that is no board."""
    if codes_path is None:
        raise InputError(f"{deck.path.name if deck.path else 'this deck'} is a programmable "
                         "board: give its codes (--codes codes.json, from spu program)")
    return programmed_deck(deck, Program.load(codes_path))
