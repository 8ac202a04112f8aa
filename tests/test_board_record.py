"""The typed `board` record of a board sidecar (spu_circuits/board/record.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spu_circuits.board import BoardRecord, BoardSpec, board_circuit, build_board
from spu_circuits.errors import InputError
from spu_circuits.sidecar import Sidecar

ROOT = Path(__file__).resolve().parents[1]


def test_record_is_typed_and_matches_the_built_board():
    board = build_board(BoardSpec(n=3, r=2, range=2.0))
    side = board_circuit(board, "b").sidecar
    rec = side.board
    assert isinstance(rec, BoardRecord)
    assert rec.spec == board.spec and rec.slots == tuple(board.slots)
    assert rec.n_programmable_parts == 2 * 2 * 3 + 3  # 2rN + N
    assert rec.range_A == pytest.approx(4.0) and rec.range_S == 2.0
    assert rec.part.mpn == board.spec.part.mpn and rec.switch.R_on_ohm == 2.1
    assert BoardRecord.from_json(rec.to_json()) == rec


@pytest.mark.parametrize("name", ["spu8_mdac", "digits40_f4"])
def test_committed_board_sidecars_read_and_write_back_byte_identical(name):
    text = (ROOT / "netlists" / "boards" / f"{name}.json").read_text()
    side = Sidecar.loads(text)
    assert isinstance(side.board, BoardRecord) and "board" not in side.extra
    assert side.dumps() == text


@pytest.mark.parametrize("edit, match", [
    (lambda b: b.pop("slots"), r"'board' record is malformed \(KeyError"),
    (lambda b: b["slots"][0].pop(), r"malformed .*a slot is not"),
    (lambda b: b.update(n_programmable_parts=1), r"lists 6 slots but n_programmable_parts = 1"),
    (lambda b: b["spec"].update(bias_bits=40), r"--bias-bits must lie in 2…24"),
])
def test_malformed_record_is_a_one_line_error(edit, match):
    d = board_circuit(build_board(BoardSpec(n=2, r=1)), "b").meta
    edit(d["board"])
    with pytest.raises(InputError, match=match) as err:
        Sidecar.loads(json.dumps(d))
    assert "\n" not in str(err.value)
