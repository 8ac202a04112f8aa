"""Tiles: partitioning onto boards of K cells, hierarchical decks, block Jacobi."""

from __future__ import annotations

import numpy as np
import pytest

from spu_circuits.compiler import compile_system
from spu_circuits.compiler.tiles import (
    cut_weight,
    flatten,
    naive_partition,
    partition,
    partition_report,
    tile_circuit,
)
from spu_circuits.errors import CompileError, InputError
from spu_circuits.graphcheck import check_netlist
from spu_circuits.netlist import dumps_sidecar
from spu_circuits.simulate import Deck, solve_op, transient
from spu_circuits.spec import HardwareSpec
from spu_circuits.system import FactoredSystem, LinearSystem, random_spd

from .conftest import make_system, needs_ngspice

#: wide resistor range: nothing pruned, the circuit realises A exactly
WIDE = HardwareSpec(r_max_ohm=1e13)


def planted_blocks(n_blocks: int, size: int, eps: float, seed: int):
    """Dense SPD blocks weakly coupled (|coupling| ≤ eps), variables randomly permuted.

    Returns (A, the blocks as sorted index lists, the planted inter-block weight)."""
    rng = np.random.default_rng(seed)
    n = n_blocks * size
    C = eps * rng.uniform(-1.0, 1.0, (n, n))
    A = 0.5 * (C + C.T)
    for k in range(n_blocks):
        sl = slice(k * size, (k + 1) * size)
        A[sl, sl] = random_spd(size, 10.0, seed + k) + n * eps * np.eye(size)
    perm = rng.permutation(n)
    Ap = A[np.ix_(perm, perm)]
    blocks = [sorted(np.flatnonzero(perm // size == k).tolist()) for k in range(n_blocks)]
    return Ap, blocks, cut_weight(Ap, blocks)


def labels(tiles, n):
    lab = np.full(n, -1)
    for t, cells in enumerate(tiles):
        lab[cells] = t
    return lab


# ---- partition ---------------------------------------------------------------------------
@pytest.mark.parametrize("n,K", [(1, 8), (8, 8), (8, 4), (20, 8), (24, 8), (33, 8), (17, 3)])
def test_partition_capacity_and_cover(n, K):
    A = random_spd(n, 50.0, n)
    tiles = partition(A, K, seed=0)
    assert len(tiles) == -(-n // K)
    assert all(1 <= len(c) <= K for c in tiles)
    flat = sorted(i for c in tiles for i in c)
    assert flat == list(range(n))
    assert partition(A, K, seed=0) == tiles          # deterministic


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_partition_recovers_planted_blocks(seed):
    A, blocks, planted = planted_blocks(3, 8, 0.01, seed)
    tiles = partition(A, 8, seed=0)
    assert sorted(tiles) == sorted(blocks)
    rep = partition_report(A, tiles, 8)
    assert rep["cut_weight"] <= planted * (1 + 1e-12)
    assert rep["cut_fraction"] < 0.05 < rep["naive_cut_fraction"]


def test_partition_beats_contiguous_on_a_permuted_chain():
    n = 64
    A = 4.0 * np.eye(n)
    for i in range(n - 1):
        A[i, i + 1] = A[i + 1, i] = -1.0
    p = np.random.default_rng(0).permutation(n)
    Ap = A[np.ix_(p, p)]
    tiles = partition(Ap, 8)
    assert cut_weight(Ap, tiles) == 7.0                # optimal: 8 tiles of 8 on a chain
    assert cut_weight(Ap, naive_partition(n, 8)) > 40.0


def test_partition_rejects_bad_input():
    with pytest.raises(InputError):
        partition(np.eye(4), 0)
    with pytest.raises(InputError):
        partition(np.ones((2, 3)), 2)


# ---- tiled decks -------------------------------------------------------------------------
@needs_ngspice
@pytest.mark.parametrize("n,K,topology", [(8, 4, "dense"), (20, 8, "dense"),
                                          (8, 4, "ideal"), (20, 8, "ideal")])
def test_tiled_op_equals_untiled(n, K, topology, cli_backend):
    system = make_system(n, 100.0, seed=n)
    c = compile_system(system, topology, WIDE)
    t = tile_circuit(c, K)
    rep = t.meta["tiles"]
    assert rep["n_tiles"] == -(-n // K) and max(rep["cells_per_tile"]) <= K
    assert t.deck_text().count(".subckt tile") == rep["n_tiles"]
    assert t.outputs == c.outputs and t.meta["system"] == c.meta["system"]
    # the flattened circuit is the original one (checked inside too) and passes graphcheck
    flat = flatten(t.netlist)
    check_netlist(flat, WIDE)
    assert flat.counts() == c.netlist.counts() == t.meta["element_counts"]
    lab = labels(rep["tiles"], n)
    A = system.A
    crossing = sum(1 for i in range(n) for j in range(n) if A[i, j] != 0 and lab[i] != lab[j])
    assert rep["inter_tile_wires"] == crossing
    x0 = solve_op(Deck.from_compiled(c), cli_backend)
    x1 = solve_op(Deck.from_compiled(t), cli_backend)
    assert np.linalg.norm(x1 - x0) / np.linalg.norm(x0) < 1e-12
    np.testing.assert_allclose(x1, t.meta["predicted"]["x_dc"], rtol=1e-7, atol=1e-9)


@needs_ngspice
def test_tiled_factored_op_equals_untiled(cli_backend):
    rng = np.random.default_rng(5)
    fs = FactoredSystem.from_arrays(rng.standard_normal((4, 10)), 0.5, rng.standard_normal(10))
    c = compile_system(fs, "factored", WIDE)
    t = tile_circuit(c, 4)
    assert t.meta["tiles"]["backplane_wires"] > 0
    x0 = solve_op(Deck.from_compiled(c), cli_backend)
    x1 = solve_op(Deck.from_compiled(t), cli_backend)
    assert np.linalg.norm(x1 - x0) / np.linalg.norm(x0) < 1e-12
    with pytest.raises(CompileError, match="factored"):
        tile_circuit(c, 4, drop_inter_tile=True)


@needs_ngspice
def test_tiled_transient_uses_hierarchical_initial_conditions(cli_backend):
    c = compile_system(make_system(8, 10.0, seed=3), "dense", WIDE)
    t = tile_circuit(c, 4)
    internal = [nd for nd, _, _ in t.meta["ic_map"]["linear"] if "." in nd]
    assert internal and all(nd.startswith("xtile") for nd in internal)
    x0 = np.linspace(-1.0, 1.0, 8)
    u0, xa = transient(Deck.from_compiled(c), x0, 2.0, 0.1, backend=cli_backend)
    u1, xb = transient(Deck.from_compiled(t), x0, 2.0, 0.1, backend=cli_backend)
    np.testing.assert_allclose(xb[0], x0, atol=2e-3)     # first sample: one small step in
    xa_at = np.stack([np.interp(u1, u0, xa[:, k]) for k in range(8)], axis=1)
    np.testing.assert_allclose(xb, xa_at, atol=1e-6)


def test_tiled_deck_parses_back_to_the_same_dc():
    from spu_circuits.parser import dc_solution, parse_deck

    c = compile_system(make_system(20, 30.0, seed=2), "dense", WIDE)
    t = tile_circuit(c, 8)
    v0 = dc_solution(parse_deck(c.deck_text()))
    v1 = dc_solution(parse_deck(t.deck_text()))
    x0 = np.array([v0[o] for o in c.outputs])
    x1 = np.array([v1[o] for o in t.outputs])
    assert np.linalg.norm(x1 - x0) / np.linalg.norm(x0) < 1e-12


# ---- block Jacobi --------------------------------------------------------------------------
@needs_ngspice
@pytest.mark.parametrize("topology", ["dense", "ideal"])
def test_block_jacobi(topology, cli_backend):
    A, _, _ = planted_blocks(3, 8, 0.02, seed=4)
    n = A.shape[0]
    b = np.random.default_rng(9).standard_normal(n)
    system = LinearSystem.from_arrays(A, b)
    c = compile_system(system, topology, WIDE)
    t = tile_circuit(c, 8, drop_inter_tile=True)
    rep = t.meta["tiles"]
    bj = rep["block_jacobi"]
    lab = labels(rep["tiles"], n)
    # exactly the inter-tile couplings are gone, everything else is there
    pref = "ra" if topology == "dense" else "g"
    cross = {f"{pref}{i}_{j}" for i in range(n) for j in range(n)
             if A[i, j] != 0 and lab[i] != lab[j]}
    assert set(bj["dropped_elements"]) == cross and bj["dropped_couplings"] == len(cross)
    names = {el.name.split(".")[-1] for el in flatten(t.netlist).elements}
    orig = {el.name for el in c.netlist.elements}
    assert names == orig - cross
    # the reported error is the numpy one
    A_bj = np.where(lab[:, None] == lab[None, :], A, 0.0)
    x, x_bj = np.linalg.solve(A, b), np.linalg.solve(A_bj, b)
    err = np.linalg.norm(x_bj - x) / np.linalg.norm(x)
    assert bj["rel_error"] == pytest.approx(err, rel=1e-9)
    assert 1e-4 < err < 0.5
    # the sidecar stays honest: system = original A, predicted = the block-Jacobi circuit
    assert np.array_equal(np.array(t.meta["system"]["A"]), A)
    pred = np.array(t.meta["predicted"]["x_dc"])
    assert t.meta["predicted"]["rel_deviation_from_exact"] == pytest.approx(err, rel=1e-3)
    xs = solve_op(Deck.from_compiled(t), cli_backend)
    np.testing.assert_allclose(xs, pred, rtol=1e-8, atol=1e-10)
    assert np.linalg.norm(xs - x_bj) / np.linalg.norm(x_bj) < 1e-4
    check_netlist(flatten(t.netlist), WIDE)


# ---- determinism ---------------------------------------------------------------------------
def test_deterministic_bytes(tmp_path):
    def build():
        c = compile_system(make_system(20, 50.0, seed=7), "dense", WIDE)
        return tile_circuit(c, 8, seed=3), tile_circuit(c, 8, seed=3, drop_inter_tile=True)

    (a, abj), (b, bbj) = build(), build()
    for x, y, name in [(a, b, "t"), (abj, bbj, "bj")]:
        assert x.deck_text() == y.deck_text()
        assert dumps_sidecar(x.meta) == dumps_sidecar(y.meta)
        p1 = x.write(tmp_path / "one", name)
        p2 = y.write(tmp_path / "two", name)
        assert p1.read_bytes() == p2.read_bytes()
        assert p1.with_suffix(".json").read_bytes() == p2.with_suffix(".json").read_bytes()
        Deck.load(p1, require_sidecar=True)          # sidecar matches its deck


def test_refuses_retiling_and_bad_k():
    c = compile_system(make_system(8, 10.0), "dense", WIDE)
    t = tile_circuit(c, 4)
    with pytest.raises(CompileError, match="already tiled"):
        tile_circuit(t, 4)
    with pytest.raises(InputError):
        tile_circuit(c, 0)


def test_pairwise_kernighan_lin_exchange_repairs_a_swapped_pair():
    """The refinement's exchange step (networkx Kernighan–Lin on two tiles) undoes a swap."""
    from spu_circuits.compiler.tiles import _refine, _swap_pairs, _weights

    A, blocks, planted = planted_blocks(2, 4, 0.01, seed=1)
    W = _weights(A)
    lab = labels(blocks, 8)
    i, j = blocks[0][0], blocks[1][0]
    lab[i], lab[j] = lab[j], lab[i]
    onehot = np.eye(2)[lab]
    assert _swap_pairs(W, lab, onehot, 1e-12)
    assert sorted(sorted(np.flatnonzero(lab == t).tolist()) for t in (0, 1)) == sorted(blocks)
    lab2 = labels(blocks, 8)
    lab2[i], lab2[j] = lab2[j], lab2[i]
    tiles = [np.flatnonzero(_refine(W, lab2, 2, 4) == t).tolist() for t in (0, 1)]
    assert cut_weight(A, tiles) == pytest.approx(planted, rel=1e-12)
