"""`spu validate BOARD.cir --codes codes.json`: does the programmed board solve its system?

Checks (all from ngspice runs of the board deck with its program, against references that do
not come from ngspice):

- `dc_extractor`: ngspice `.op` = A_eff⁻¹b_eff of the extractor within `EXTRACTOR_RTOL`
  (the extractor reads the same programmed deck: codes, fixed part errors, finite gain);
- `codes_realise_A_q`: the extractor's A_eff, b_eff equal the codes file's A_q, b_q within
  `AQ_RTOL` (finite gain and switch leakage only): the codes are the ones the file describes;
- `dc_target`: ngspice's x within the predicted quantisation error of A⁻¹b of the target:
  ‖x − A⁻¹b‖/‖A⁻¹b‖ ≤ 2·(predicted error) + (circuit deviation ‖x_eff − x_q‖/‖x_q‖) + 1e-9.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..simulate import Deck, solve_op
from .program import Program
from .run import board_effective, programmed_deck

EXTRACTOR_RTOL = 1e-6
AQ_RTOL = 1e-3


@dataclass(frozen=True)
class BoardCheck:
    name: str
    passed: bool
    value: float
    threshold: float
    what: str


def _rel(a, b) -> float:
    return float(np.linalg.norm(np.asarray(a) - b) / max(np.linalg.norm(b), 1e-300))


def validate_board(deck: Deck, prog: Program, backend="shared", timeout_s: float = 120.0
                   ) -> tuple[list[BoardCheck], dict]:
    """Run the checks; returns them and the numbers (x from ngspice, references)."""
    pd = programmed_deck(deck, prog)
    x = solve_op(pd, backend, timeout_s)
    eff = board_effective(deck, prog)
    n = prog.n_used
    target = prog.target()
    x_ref = target.solution()
    circuit_dev = _rel(eff.x_dc, prog.x_q)
    checks = [
        BoardCheck("dc_extractor", _rel(x, eff.x_dc) <= EXTRACTOR_RTOL, _rel(x, eff.x_dc),
                   EXTRACTOR_RTOL, "ngspice .op vs the extractor's A_eff^-1 b_eff"),
        BoardCheck("codes_realise_A_q",
                   max(_rel(eff.A, prog.A_q), _rel(eff.b, prog.b_q)) <= AQ_RTOL,
                   max(_rel(eff.A, prog.A_q), _rel(eff.b, prog.b_q)), AQ_RTOL,
                   "extractor's A_eff, b_eff vs the codes file's A_q, b_q"),
    ]
    thr = 2 * prog.rel_error + circuit_dev + 1e-9
    checks.append(BoardCheck("dc_target", _rel(x[:n], x_ref) <= thr, _rel(x[:n], x_ref), thr,
                             "ngspice .op vs A^-1 b (2x predicted quantisation error + "
                             "circuit deviation)"))
    info = {"x_spice": x.tolist(), "x_extractor": eff.x_dc.tolist(),
            "x_q": prog.x_q.tolist(), "x_exact": x_ref.tolist(),
            "predicted_rel_error": prog.rel_error, "circuit_deviation": circuit_dev}
    return checks, info
