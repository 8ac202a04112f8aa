"""KiCad netlist export (#12 item 5): the .net read back has the deck's connectivity,
component for component (networkx isomorphism with element and net labels)."""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import pytest
from click.testing import CliRunner

from spu_circuits.board import BoardSpec, board_circuit, build_board
from spu_circuits.cli import main
from spu_circuits.errors import InputError
from spu_circuits.kicad import deck_graph, kicad_graph, read_sexpr
from spu_circuits.simulate import Deck

ROOT = Path(__file__).resolve().parents[1]


def _board(tmp_path, **kw) -> Path:
    return board_circuit(build_board(BoardSpec(**kw)), "bd").write(tmp_path, "bd")


def _noisy(tmp_path, kind) -> Path:
    from spu_circuits.compiler import compile_system
    from spu_circuits.compiler.noise import NoiseSpec
    from spu_circuits.demo import example_system

    cc = compile_system(example_system(), "dense", noise=NoiseSpec(kind, 0.01, seed=1,
                                                                   duration_tau=1.0))
    return cc.write(tmp_path, "nz")


def _catalogue(tmp_path) -> Path:
    from spu_circuits.compiler import compile_system
    from spu_circuits.compiler.realize import RealizeOptions, realize
    from spu_circuits.demo import example_system

    cc = realize(compile_system(example_system(), "dense"),
                 RealizeOptions(series="e96", opamp="OPA192"))
    return cc.write(tmp_path, "cat")


CASES = {
    "dense": lambda tmp: ROOT / "netlists" / "spu8_dense.cir",
    "ideal": lambda tmp: ROOT / "netlists" / "spu8_ideal.cir",
    "factored": lambda tmp: ROOT / "netlists" / "factored_digits.cir",
    "dense_e96": lambda tmp: ROOT / "netlists" / "spu8_dense_e96.cir",
    "board_dense": lambda tmp: _board(tmp, n=4, range=2.0),
    "board_factored": lambda tmp: _board(tmp, n=5, r=2),
    "board_digipot": lambda tmp: _board(tmp, n=3, coupling="digipot", bits=10),
    "noise_trnoise": lambda tmp: _noisy(tmp, "trnoise"),
    "noise_file": lambda tmp: _noisy(tmp, "file"),
    "opamp_catalogue": _catalogue,
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_round_trip(case, tmp_path):
    deck_path = CASES[case](tmp_path)
    out = tmp_path / "x.net"
    r = CliRunner().invoke(main, ["kicad", str(deck_path), "--out", str(out)])
    assert r.exit_code == 0, r.output
    text = out.read_text()
    assert text.startswith('(export (version "E")')
    deck = Deck.load(deck_path)
    gk = kicad_graph(text)
    gd = deck_graph(deck.text, deck.meta)
    assert gk.number_of_nodes() == gd.number_of_nodes()
    assert nx.vf2pp_is_isomorphic(gk, gd, node_label="label")
    # component for component: the same element ↔ net incidences
    assert set(map(frozenset, gk.edges)) == set(map(frozenset, gd.edges))
    # outputs are named /x1 … and op-amps have supply pins on power nets
    tree = read_sexpr(text)
    (nets_node,) = [x for x in tree if isinstance(x, list) and x[0] == "nets"]
    nets = {n[2][1] for n in nets_node[1:]}
    assert "/x1" in nets and "GND" in nets
    if case != "ideal":
        assert "+15V" in nets and "-15V" in nets
    # byte-identical on a second export
    out2 = tmp_path / "y.net"
    CliRunner().invoke(main, ["kicad", str(deck_path), "--out", str(out2)])
    assert out2.read_bytes() == out.read_bytes()


def test_broken_netlist_is_detected(tmp_path):
    """The comparison can fail: a net moved to another node breaks the isomorphism."""
    deck_path = CASES["dense"](tmp_path)
    out = tmp_path / "x.net"
    CliRunner().invoke(main, ["kicad", str(deck_path), "--out", str(out)])
    text = out.read_text().replace('(name "/s1")', '(name "/s2")', 1)
    deck = Deck.load(deck_path)
    assert not nx.vf2pp_is_isomorphic(kicad_graph(text), deck_graph(deck.text, deck.meta),
                                      node_label="label")


def test_sexpr_reader():
    assert read_sexpr('(a "b c" (d "e\\"f"))') == ["a", "b c", ["d", 'e"f']]
    with pytest.raises(InputError, match="unbalanced"):
        read_sexpr("(a (b)")
