"""The `board` record of a programmable board's sidecar (`spu board`), typed.

`BoardRecord.of(board)` builds it from a built `Board`; `to_json` / `from_json` are its JSON
object in the file (key order fixed, so a board sidecar reads and writes back byte-identical);
`Sidecar.board` holds it. `program`, `kicad`, the board solver and the CLI read its fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import InputError
from .topology import Board, BoardSpec, PartSlot


@dataclass(frozen=True)
class PartRecord:
    """The programmable part as built: kind ('mdac' | 'digipot'), bits, part number, −3 dB
    bandwidth (Hz), MDAC ladder resistance, digipot end-to-end and wiper resistance (Ω),
    tolerance (3σ, relative) and INL bound (LSB)."""

    kind: str
    bits: int
    mpn: str
    bandwidth_hz: float
    R_ladder_ohm: float
    R_ab_ohm: float
    R_w_ohm: float
    tolerance: float
    inl_lsb: float

    def to_json(self) -> dict:
        return {"kind": self.kind, "bits": self.bits, "mpn": self.mpn,
                "bandwidth_hz": self.bandwidth_hz, "R_ladder_ohm": self.R_ladder_ohm,
                "R_ab_ohm": self.R_ab_ohm, "R_w_ohm": self.R_w_ohm,
                "tolerance": self.tolerance, "inl_lsb": self.inl_lsb}

    @classmethod
    def from_json(cls, d: dict) -> PartRecord:
        return cls(str(d["kind"]), int(d["bits"]), str(d["mpn"]), d["bandwidth_hz"],
                   d["R_ladder_ohm"], d["R_ab_ohm"], d["R_w_ohm"], d["tolerance"],
                   d["inl_lsb"])


@dataclass(frozen=True)
class SwitchRecord:
    """The SPDT sign switch: part number, on and off resistance (Ω)."""

    mpn: str
    R_on_ohm: float
    R_off_ohm: float

    def to_json(self) -> dict:
        return {"mpn": self.mpn, "R_on_ohm": self.R_on_ohm, "R_off_ohm": self.R_off_ohm}

    @classmethod
    def from_json(cls, d: dict) -> SwitchRecord:
        return cls(str(d["mpn"]), d["R_on_ohm"], d["R_off_ohm"])


@dataclass(frozen=True)
class BoardRecord:
    """What `spu program` and the tools after it need to know of a board.

    spec: what it was built from; part, switch: the parts as built; g_fs_S: full-scale entry
    conductance (S); G_unit_S: conductance per unit of A (S); range_A: largest |A_ij|, λ, |b_i|
    in cell units; range_S: largest |S_kj| (factored; None dense); bias_fs_V, bias_max_code:
    the bias DAC's full scale (V) and largest code; opamp: the catalogue op-amp (None: the
    VCVS gain only) and opamp_model, the model the deck uses, in words; slots: every
    programmable coupling in deck order.
    """

    spec: BoardSpec
    part: PartRecord
    switch: SwitchRecord
    g_fs_S: float
    G_unit_S: float
    range_A: float
    range_S: float | None
    bias_fs_V: float
    bias_max_code: int
    opamp: str | None
    opamp_model: str
    slots: tuple[PartSlot, ...]

    @property
    def n_programmable_parts(self) -> int:
        return len(self.slots)

    @classmethod
    def of(cls, board: Board) -> BoardRecord:
        sp = board.spec
        p, sw = sp.part, sp.switch
        model = (f"VCVS of the DC gain A0 = {sp.opamp_gain:g}"
                 + (f" of the catalogue's {sp.opamp} (GBW, offsets, rails not modelled)"
                    if sp.opamp else " (ideal op-amp model)"))
        return cls(sp, PartRecord(p.kind, p.bits, p.mpn, p.bandwidth_hz, p.R_ladder_ohm,
                                  p.R_ab_ohm, p.R_w_ohm, p.tolerance, p.inl_lsb),
                   SwitchRecord(sw.mpn, sw.R_on_ohm, sw.R_off_ohm),
                   sp.g_fs_S, sp.G_unit_S, sp.A_range, sp.range if sp.factored else None,
                   sp.bias_fs_V, sp.bias_max_code, sp.opamp, model, tuple(board.slots))

    def to_json(self) -> dict[str, Any]:
        return {"spec": self.spec.to_dict(), "part": self.part.to_json(),
                "switch": self.switch.to_json(), "g_fs_S": self.g_fs_S,
                "G_unit_S": self.G_unit_S, "range_A": self.range_A, "range_S": self.range_S,
                "bias_fs_V": self.bias_fs_V, "bias_max_code": self.bias_max_code,
                "opamp": self.opamp, "opamp_model": self.opamp_model,
                "n_programmable_parts": self.n_programmable_parts,
                "slots": [[s.kind, s.row, s.col, s.code, s.sel, s.part, s.switch, s.err]
                          for s in self.slots]}

    @classmethod
    def from_json(cls, d: Any) -> BoardRecord:
        """The record from its JSON object; InputError (one line) when it is malformed or
        its slot count disagrees with n_programmable_parts."""
        try:
            slots = tuple(PartSlot(*s) for s in d["slots"] if len(s) == 8)
            if len(slots) != len(d["slots"]):
                raise ValueError("a slot is not [kind, row, col, code, sel, part, switch, "
                                 "err]")
            rec = cls(BoardSpec.from_dict(d["spec"]), PartRecord.from_json(d["part"]),
                      SwitchRecord.from_json(d["switch"]), d["g_fs_S"], d["G_unit_S"],
                      d["range_A"], d.get("range_S"), d["bias_fs_V"], int(d["bias_max_code"]),
                      d.get("opamp"), str(d.get("opamp_model", "")), slots)
        except InputError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"the sidecar's 'board' record is malformed "
                             f"({type(exc).__name__}: {exc})") from None
        n = d.get("n_programmable_parts", len(slots))
        if n != len(slots):
            raise InputError(f"the sidecar's 'board' record lists {len(slots)} slots but "
                             f"n_programmable_parts = {n}")
        return rec
