"""Tiles and realisation together (issue 11 item 6): `--realize` with `--tiles`, the tiled
deck's BOM by tile (connectors, cables, per-tile and backplane BOMs) and the designator map."""

from __future__ import annotations

import csv
from collections import Counter

import numpy as np
from click.testing import CliRunner

from spu_circuits.bom import bom_rows, component_totals, designator_rows
from spu_circuits.cli import main
from spu_circuits.compiler import compile_system
from spu_circuits.compiler.realize import RealizeOptions, realize
from spu_circuits.compiler.tiles import tile_circuit
from spu_circuits.simulate import Deck, solve_op

from .conftest import make_system, needs_ngspice


def _x_eff(rc) -> np.ndarray:
    rec = rc.meta["realization"]
    return np.linalg.solve(np.array(rec["A_eff"]), np.array(rec["b_eff"]))


@needs_ngspice
def test_realised_tiled_op_matches_extractor(cli_backend):
    """N = 8 on 2 tiles of 4, E96 1 % drawn parts, op-amp macromodels (GBW) inside the tiles:
    ngspice's .op of the tiled deck equals the extractor's A_eff⁻¹ b_eff."""
    system = make_system(8, 20.0, seed=3)
    rc = realize(compile_system(system, "dense"),
                 RealizeOptions(series="e96", tolerance=0.01, mc_seed=5, opamp_gain=1e5,
                                gbw_hz=10e6))
    tc = tile_circuit(rc, K=4)
    assert tc.sidecar.tiles.n_tiles == 2
    assert hasattr(tc, "report") and tc.report["rel_error_x"] == rc.report["rel_error_x"]
    tile0 = tc.netlist.subcircuit("tile0")
    assert any(e.kind == "x" for e in tile0.elements)  # the op-amps sit inside the tile
    assert all(e.kind != "x" or e.spec.startswith("tile") for e in tc.netlist.elements)
    x_eff = _x_eff(tc)
    x_op = solve_op(Deck.from_compiled(tc), cli_backend)
    err = np.linalg.norm(x_op - x_eff) / np.linalg.norm(x_eff)
    print(f"tiled realised 8x8: |x_op - A_eff^-1 b_eff| / |.| = {err:.3g}")
    assert err < 1e-6
    # and the realisation is not trivially ideal: the drawn parts move x off A^-1 b
    x_star = system.solution()
    assert np.linalg.norm(x_eff - x_star) / np.linalg.norm(x_star) > 1e-4


def test_tiled_bom_lists_every_part_by_tile(tmp_path):
    system = make_system(8, 20.0, seed=3)
    rc = realize(compile_system(system, "dense"),
                 RealizeOptions(series="e96", opamp="TL072", erc="warn"))
    tc = tile_circuit(rc, K=4)
    tiles = tc.sidecar.tiles.tiles
    # the whole-board BOM holds every part of the untiled board, plus one connector and
    # one cable per tile
    untiled, tiled = component_totals(rc), component_totals(tc)
    assert tiled == untiled
    total = Counter()
    for r in bom_rows(tc):
        total[r["part"]] += r["count"]
    assert total["connector"] == total["cable"] == len(tiles)
    assert total["op-amp"] == 16 and total["capacitor"] == 8
    # the tiles' own BOMs and the backplane's add up to the whole (connectors on both sides)
    by = Counter()
    for t in (*range(len(tiles)), -1):
        for r in bom_rows(tc, tile=t):
            by[r["part"]] += r["count"]
    for kind in ("resistor", "capacitor", "op-amp", "voltage source", "cable"):
        assert by[kind] == total[kind], kind
    assert by["connector"] == 2 * total["connector"]
    # designator map: every reference once, with its element, role, tile and cell
    drows = designator_rows(tc)
    refs = [d["ref"] for d in drows]
    assert len(refs) == len(set(refs)) == sum(total.values())
    for d in drows:
        if d["tile"] not in ("", "backplane") and d["cell"] and "," not in d["cell"]:
            assert int(d["cell"]) in tiles[int(d["tile"])], d
    cpl = [d for d in drows if d["role"] == "coupling"]
    assert cpl and all(d["part"] == "resistor" for d in cpl)
    for d in cpl:  # a coupling is on a tile iff both of its cells are
        i, j = map(int, d["cell"].split(","))
        same = [t for t, cells in enumerate(tiles) if i in cells and j in cells]
        assert d["tile"] == (str(same[0]) if same else "backplane"), d
    # the same from the deck on disk (the independent parser)
    tc.write(tmp_path, "t")
    assert bom_rows(tmp_path / "t.cir") == bom_rows(tc)
    key = lambda d: d["ref"]  # noqa: E731
    assert sorted(designator_rows(tmp_path / "t.cir"), key=key) == sorted(drows, key=key)


def test_cli_realize_tiles_writes_bom_files(tmp_path):
    system = make_system(8, 20.0, seed=3)
    np.save(tmp_path / "A.npy", system.A)
    np.save(tmp_path / "b.npy", system.b)
    base = ["compile", "--matrix", tmp_path / "A.npy", "--rhs", tmp_path / "b.npy",
            "--realize", "e96", "--name", "t"]
    r = CliRunner().invoke(main, [str(a) for a in (*base, "--tiles", "4",
                                                   "--out", tmp_path / "tiled")])
    assert r.exit_code == 0, r.output
    out = tmp_path / "tiled"
    for f in ("t_bom.csv", "t_designators.csv", "t_tile0_bom.csv", "t_tile1_bom.csv",
              "t_backplane_bom.csv"):
        assert (out / f).is_file(), f
    rows = list(csv.DictReader((out / "t_designators.csv").open()))
    assert {r["tile"] for r in rows} == {"0", "1", "backplane"}
    # an untiled deck gets its designator map too (no tile column values)
    r = CliRunner().invoke(main, [str(a) for a in (*base, "--out", tmp_path / "flat")])
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader((tmp_path / "flat" / "t_designators.csv").open()))
    assert rows and {r["tile"] for r in rows} == {""}
    assert {r["role"] for r in rows} >= {"coupling", "integrator_cap", "bias_source"}
    assert not (tmp_path / "flat" / "t_tile0_bom.csv").exists()


@needs_ngspice
def test_compensated_tiled_deck_keeps_trims_on_their_tile(cli_backend):
    """With --compensate each coupling has a trim in series (a junction node outside every
    cell): a trimmed coupling inside a tile stays on the tile, .op still = A_eff⁻¹ b_eff."""
    system = make_system(8, 20.0, seed=3)
    rc = realize(compile_system(system, "dense"),
                 RealizeOptions(series="e24", opamp_gain=1e4, compensate=True))
    tc = tile_circuit(rc, K=4)
    trims = set(tc.cell_map.elements_with("trim"))
    assert trims
    lab = {i: t for t, cells in enumerate(tc.sidecar.tiles.tiles) for i in cells}
    inside = {e.name for t in range(2) for e in tc.netlist.subcircuit(f"tile{t}").elements}
    for cp in tc.cell_map.couplings:
        same = lab[cp.row] == lab[cp.col]
        for e in cp.elements:
            assert (e in inside) == same, (e, cp)
    x_op = solve_op(Deck.from_compiled(tc), cli_backend)
    x_eff = _x_eff(tc)
    assert np.linalg.norm(x_op - x_eff) / np.linalg.norm(x_eff) < 1e-6
