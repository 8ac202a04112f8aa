"""The committed example decks are exactly what the compiler writes today."""

from __future__ import annotations

from pathlib import Path

import pytest

from spu_circuits import demo
from spu_circuits.compiler import compile_system
from spu_circuits.spec import HardwareSpec

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("topology", ["dense", "ideal"])
def test_committed_example_decks_are_current(tmp_path, topology):
    name = f"spu8_{topology}"
    compiled = compile_system(demo.example_system(), topology, HardwareSpec(), name=name)
    deck = compiled.write(tmp_path, name)
    committed = ROOT / "netlists" / f"{name}.cir"
    assert committed.read_bytes() == deck.read_bytes()
    assert committed.with_suffix(".json").read_bytes() == deck.with_suffix(".json").read_bytes()
