"""spu_circuits.spice.mna: the DC operating point against ngspice's `.op`."""

from __future__ import annotations

import os
import subprocess

import numpy as np
import pytest

from spu_circuits.compiler import compile_system
from spu_circuits.errors import InputError
from spu_circuits.parser import (
    dc_solution,
    parse_deck,
)
from spu_circuits.spec import HardwareSpec

from ..conftest import make_system, needs_ngspice
from ..test_spice_extract import HAND_DENSE

T = "title\n"


#: no coupling of the random test matrices is pruned with this resistor range
WIDE = HardwareSpec(r_max_ohm=1e13)


def _ngspice_op(text: str, tmp_path) -> dict[str, float]:
    """`ngspice -b -r out.raw deck.cir` on the deck as written (it already holds `.op`)."""
    from spu_circuits.backends.cli import find_ngspice
    from spu_circuits.backends.rawfile import read_raw

    deck, raw = tmp_path / "deck.cir", tmp_path / "out.raw"
    deck.write_text(text)
    subprocess.run([find_ngspice(), "-b", "-r", str(raw), str(deck)], cwd=tmp_path,
                   env=dict(os.environ, SPICE_ASCIIRAWFILE="0"), capture_output=True,
                   timeout=60, check=True)
    vectors = read_raw(raw.read_bytes())[-1][1]
    return {k: float(np.asarray(v).ravel()[0]) for k, v in vectors.items()}


@needs_ngspice
@pytest.mark.parametrize("topology", ["ideal", "dense"])
def test_dc_solution_matches_ngspice_op(topology, tmp_path):
    cc = compile_system(make_system(8, 100.0, seed=11), topology, WIDE)
    text = cc.deck_text()
    ours = dc_solution(parse_deck(text))
    theirs = _ngspice_op(text, tmp_path)
    scale_v = max(abs(v) for v in ours.values())
    for node, v in ours.items():
        assert abs(theirs[node] - v) <= 1e-9 * scale_v, node


@needs_ngspice
def test_dc_solution_matches_ngspice_hierarchical(tmp_path):
    text = HAND_DENSE.replace("1e12", "1e5")
    ours = dc_solution(parse_deck(text))
    theirs = _ngspice_op(text, tmp_path)
    assert "xn0.m" in ours
    for node, v in ours.items():
        assert theirs[node] == pytest.approx(v, rel=1e-9, abs=1e-12), node


def test_dc_solution_floating_node():
    with pytest.raises(InputError, match="singular"):
        dc_solution(parse_deck(T + "r1 a b 1k\nv1 c 0 1\n"))
