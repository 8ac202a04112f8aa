"""Programmable boards (#12): fixed decks, programs, ngspice vs extractor vs A⁻¹b, validation."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from spu_circuits.board import (
    BoardLayout,
    BoardSpec,
    board_circuit,
    board_effective,
    build_board,
    program,
    programmed_deck,
)
from spu_circuits.demo import example_system
from spu_circuits.errors import InputError
from spu_circuits.parser import parse_deck
from spu_circuits.simulate import Deck, solve_op
from spu_circuits.spice.params import elaborate, evaluate
from spu_circuits.system import FactoredSystem, LinearSystem, random_spd
from spu_tngd.cli import main


def _write(tmp_path, name="brd", **kw):
    cc = board_circuit(build_board(BoardSpec(**kw)), name)
    return cc.write(tmp_path / name, name)


def _rel(a, b):
    return float(np.linalg.norm(np.asarray(a) - b) / np.linalg.norm(b))


def _systems():
    s1 = example_system()
    rng = np.random.default_rng(3)
    A2 = random_spd(8, cond=30.0, seed=5)
    A2 = A2 / np.abs(A2).max() * 10.0
    s2 = LinearSystem.from_arrays(A2, rng.uniform(-2, 2, 8), name="second")
    return s1, s2


def test_evaluate_and_elaborate():
    assert evaluate("2*(a+1)^2/4", {"a": 1.0}) == 2.0
    with pytest.raises(InputError, match="not defined"):
        evaluate("b+1", {})
    text = ("t\n.subckt s a b params: k=1\nr1 a b {100*k}\n.ends s\n.param q=3\n"
            "x1 n 0 s k={q*2}\nv1 n 0 1\n.end\n")
    deck = parse_deck(elaborate(text))
    assert deck.element("r.x1.r1").value == 600.0


@pytest.mark.parametrize("backend", ["cli", "shared"])
def test_two_systems_one_board(tmp_path, backend):
    """The board deck does not depend on the system; ngspice .op = extractor (1e-6) and
    A⁻¹b within the predicted quantisation error, for both systems."""
    p1 = _write(tmp_path, "a", n=8, range=12.0)
    p2 = _write(tmp_path, "b", n=8, range=12.0)
    assert p1.read_bytes() == p2.read_bytes()
    deck = Deck.load(p1)
    lay = BoardLayout.from_meta(deck.meta)
    before = p1.read_bytes()
    progs = []
    for sysm in _systems():
        prog = program(sysm, lay, "optimal")
        progs.append(prog)
        x = solve_op(programmed_deck(deck, prog), backend)
        eff = board_effective(deck, prog)
        assert _rel(x, eff.x_dc) < 1e-6
        err = _rel(x, sysm.solution())
        # predicted quantisation error plus what the extractor says finite gain adds
        assert err <= prog.rel_error + _rel(eff.x_dc, prog.x_q) + 1e-9, (err, prog.rel_error)
        assert err > 0
    assert p1.read_bytes() == before
    assert progs[0].params != progs[1].params
    assert set(progs[0].params) == set(progs[1].params)


def test_optimal_beats_round():
    s1, s2 = _systems()
    cc = board_circuit(build_board(BoardSpec(n=8, range=12.0, bits=8)), "b")
    lay = BoardLayout.from_meta(dict(cc.meta))
    for sysm in (s1, s2):
        r = program(sysm, lay, "round")
        o = program(sysm, lay, "optimal")
        assert o.rel_error < r.rel_error
        # A_q reproduces the codes' own solution
        assert _rel(np.linalg.solve(o.A_q, o.b_q), o.x_q) < 1e-12


@pytest.mark.parametrize("backend", ["cli", "shared"])
def test_factored_board(tmp_path, backend):
    rng = np.random.default_rng(0)
    S = rng.uniform(-0.9, 0.9, (2, 6))
    sysm = FactoredSystem.from_arrays(S, 0.2, rng.uniform(-0.5, 0.5, 6))
    path = _write(tmp_path, "f", n=6, r=3, range=1.0)
    deck = Deck.load(path)
    prog = program(sysm, BoardLayout.from_meta(deck.meta), "optimal")
    x = solve_op(programmed_deck(deck, prog), backend)
    eff = board_effective(deck, prog)
    assert _rel(x, eff.x_dc) < 1e-6
    assert _rel(x, sysm.solution()) <= prog.rel_error + _rel(eff.x_dc, prog.x_q) + 1e-9


def test_digipot_board(tmp_path):
    s1, _ = _systems()
    path = _write(tmp_path, "d", n=8, range=12.0, coupling="digipot", bits=10, C_F=100e-9)
    deck = Deck.load(path)
    prog = program(s1, BoardLayout.from_meta(deck.meta), "round")
    x = solve_op(programmed_deck(deck, prog), "cli")
    eff = board_effective(deck, prog)
    assert _rel(x, eff.x_dc) < 1e-6
    assert _rel(x, s1.solution()) <= prog.rel_error + _rel(eff.x_dc, prog.x_q) + 1e-9


def test_cli_program_simulate_validate(tmp_path):
    s1, _ = _systems()
    np.save(tmp_path / "A.npy", s1.A)
    np.save(tmp_path / "b.npy", s1.b)
    run = CliRunner().invoke
    r = run(main, ["board", "--cells", "8", "--range", "12", "--out", str(tmp_path / "bd"),
                   "--name", "b8"])
    assert r.exit_code == 0, r.output
    deck = tmp_path / "bd" / "b8.cir"
    codes = tmp_path / "codes.json"
    r = run(main, ["program", str(deck), "--matrix", str(tmp_path / "A.npy"), "--rhs",
                   str(tmp_path / "b.npy"), "--out", str(codes)])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "codes.inc").read_text().count(".param") >= 1
    r = run(main, ["simulate", str(deck), "--codes", str(codes), "--save",
                   str(tmp_path / "x.npz")])
    assert r.exit_code == 0, r.output
    x = np.load(tmp_path / "x.npz")["x"]
    assert _rel(x, s1.solution()) < 1e-3
    r = run(main, ["validate", str(deck), "--codes", str(codes)])
    assert r.exit_code == 0, r.output
    # one coupling code off by 10 % of full scale: validation fails
    d = json.loads(codes.read_text())
    d["params"]["code_a2_5"] = min(d["params"]["code_a2_5"] + 410, 4095)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(d))
    r = run(main, ["validate", str(deck), "--codes", str(bad)])
    assert r.exit_code == 1, r.output
    assert "FAIL" in r.output


def test_example_boards_are_current(tmp_path):
    """netlists/boards/ holds what `python -m spu_circuits.board.examples` writes today."""
    from pathlib import Path

    from spu_circuits.board.examples import examples, write_example

    root = Path(__file__).resolve().parents[1] / "netlists" / "boards"
    name, spec, system = examples()[0]
    write_example(tmp_path, name, spec, system)
    for suffix in (".cir", ".json", "_codes.json", "_codes.inc", "_bom.csv", ".net"):
        assert (tmp_path / f"{name}{suffix}").read_bytes() == \
            (root / f"{name}{suffix}").read_bytes(), suffix


def test_committed_board_programs_run(tmp_path):
    """Both committed example programs: ngspice .op = extractor and within the prediction."""
    from pathlib import Path

    from spu_circuits.board import Program

    root = Path(__file__).resolve().parents[1] / "netlists" / "boards"
    for name in ("spu8_mdac", "digits40_f4"):
        deck = Deck.load(root / f"{name}.cir")
        prog = Program.load(root / f"{name}_codes.json")
        x = solve_op(programmed_deck(deck, prog), "shared")
        eff = board_effective(deck, prog)
        assert _rel(x, eff.x_dc) < 1e-6
        ref = prog.target().solution()
        assert _rel(x, ref) <= prog.rel_error + _rel(eff.x_dc, prog.x_q) + 1e-9


def test_catalogue_opamp_board(tmp_path):
    """--opamp takes the catalogue part's DC gain (TL072: A0 = 2e5); the extractor and ngspice
    see the larger finite-gain error alike; KiCad lists the part."""
    from spu_circuits.kicad import to_kicad

    s1, _ = _systems()
    path = _write(tmp_path, "t", n=8, range=12.0, opamp="tl072")
    deck = Deck.load(path)
    assert deck.meta["opamp_gain"] == 2e5 and deck.meta["board"]["opamp"] == "TL072"
    prog = program(s1, BoardLayout.from_meta(deck.meta), "optimal")
    x = solve_op(programmed_deck(deck, prog), "shared")
    eff = board_effective(deck, prog)
    assert _rel(x, eff.x_dc) < 1e-6
    assert _rel(eff.x_dc, prog.x_q) > 1e-5  # finite gain 2e5 shows
    assert '(value "TL072")' in to_kicad(deck.text, deck.meta)
