"""`parse_netlist` (the IR read without text) equals `parse_deck` of the written deck."""

from __future__ import annotations

import numpy as np
import pytest

from spu_circuits.compiler import compile_system
from spu_circuits.compiler.noise import NoiseSpec
from spu_circuits.compiler.realize import RealizeOptions, realize
from spu_circuits.compiler.tiles import tile_circuit
from spu_circuits.netlist import Netlist
from spu_circuits.spec import HardwareSpec
from spu_circuits.spice import extract_system, parse_deck, state_space
from spu_circuits.spice.from_netlist import parse_netlist
from spu_circuits.system import FactoredSystem

from .conftest import make_system


def same(net: Netlist) -> None:
    a, b = parse_netlist(net), parse_deck(net.to_text())
    assert a.elements == b.elements
    assert a.nodes() == b.nodes()
    assert a.models == b.models and a.options == b.options and a.ic == b.ic
    assert a.analyses == b.analyses and a.control == b.control and a.title == b.title
    assert sorted(a.subckts) == sorted(b.subckts)


def decks():
    s = make_system(5, 20.0, seed=1)
    rng = np.random.default_rng(2)
    fs = FactoredSystem.from_arrays(rng.standard_normal((2, 5)), 0.4, rng.standard_normal(5))
    wide = HardwareSpec(r_max_ohm=1e13)
    out = {}
    for topo in ("dense", "ideal"):
        out[topo] = compile_system(s, topo, wide).netlist
        out[f"{topo}_trnoise"] = compile_system(s, topo, wide, noise=NoiseSpec(
            "trnoise", 0.01)).netlist
        out[f"{topo}_file"] = compile_system(s, topo, wide, noise=NoiseSpec(
            "file", 0.01, duration_tau=1.0)).netlist
        out[f"{topo}_tiled"] = tile_circuit(compile_system(s, topo, wide), 2).netlist
    out["factored"] = compile_system(fs, "factored", wide).netlist
    c = compile_system(s, "dense", HardwareSpec(), noise=NoiseSpec("file", 0.01,
                                                                    duration_tau=1.0))
    out["realised"] = realize(c, RealizeOptions(series="e24", compensate=True, gbw_hz=1e7,
                                                tolerance=0.01, mc_seed=3)).netlist
    net = compile_system(s, "dense", wide).netlist
    net.ic = {"o0": 0.25, "s1": -1e-6}
    net.analyses = [".tran 1e-06 0.001 uic"]
    net.control = ["run", "write out.raw all"]
    out["cards"] = net
    return out


@pytest.mark.parametrize("name", sorted(decks()))
def test_parse_netlist_equals_parse_deck(name):
    same(decks()[name])


def test_extraction_is_bit_identical():
    c = compile_system(make_system(5, 20.0, seed=1), "dense", HardwareSpec(),
                       noise=NoiseSpec("trnoise", 0.01))
    net = realize(c, RealizeOptions(series="e24", compensate=True, tolerance=0.01,
                                    mc_seed=3)).netlist
    a = extract_system(parse_netlist(net), outputs=c.outputs)
    b = extract_system(parse_deck(net.to_text()), outputs=c.outputs)
    assert np.array_equal(a.M, b.M) and np.array_equal(a.c, b.c)
    assert np.array_equal(a.diffusion, b.diffusion)
    sa, sb = state_space(parse_netlist(decks()["realised"])), state_space(
        parse_deck(decks()["realised"].to_text()))
    assert np.array_equal(sa[0].F, sb[0].F)
