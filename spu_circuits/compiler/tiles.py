"""Tiles: split a compiled SPU across boards of K cells (Normal Computing's SPU holds 8).

`partition(A, K, seed)` assigns the N variables to ⌈N/K⌉ tiles of at most K cells, keeping
the coupling weight Σ|A_ij| between tiles small: recursive Kernighan–Lin bisection
(networkx, several deterministic starts: contiguous, spectral, seeded random), then a
refinement under the capacity K: greedy single moves into tiles with room, and
Kernighan–Lin exchanges between pairs of tiles (networkx again). `partition_report` measures the cut
against the naive contiguous partition.

`tile_circuit(compiled, K, seed, drop_inter_tile)` rewrites a compiled deck hierarchically:
one `.subckt tile{t}` per tile holding its cells (integrators, inverters, bias, intra-tile
couplings), with ports o{i} p{i} s{i} per cell (`ideal`: x{i}), so the top-level output
nodes keep their names; the top level instantiates the tiles (`xtile{t}`) and carries the
backplane: inter-tile coupling resistors (or VCCS), the factored topology's stages, noise
sources. Nodes inside a tile are named `xtile{t}.<node>` by ngspice (used in `ic_map`).
With `drop_inter_tile` (block Jacobi) the inter-tile couplings are left out: each tile
solves its own diagonal block; the sidecar's `predicted` then predicts A_bj⁻¹b while its
`system` keeps the original A, and `tiles.block_jacobi` reports the cost.

A realised deck (`realize` first, then `tile_circuit`: what `spu compile --realize …
--tiles K` does) tiles the same way: the parts a realisation adds to a cell (op-amp
macromodel instances, which become nested instances inside the tile, V_os/I_b sources,
trims and their junction nodes) go with that cell's tile (`_attach_part_nodes`); trims of
couplings between tiles stay on the backplane.

graphcheck does not understand X instances: the structural checks run on the flattened
netlist (`flatten`), which for an undropped tiling is checked to equal the original circuit
element for element.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter

import networkx as nx
import numpy as np
from networkx.algorithms.community import kernighan_lin_bisection

from ..errors import CompileError, InputError
from ..graphcheck import check_netlist
from ..netlist import GROUND, Element, Netlist, Subcircuit
from ..sidecar import IcMap, Prediction, Sidecar, Tiling
from . import CompiledCircuit
from .cellmap import OPAMP_ROLES, CellMap, Role
from .topology import coupling_matrix

#: default cells per board (Normal Computing's SPU)
DEFAULT_K = 8
#: seeded random starts per bisection (besides contiguous and spectral ones), for parts of
#: up to RANDOM_STARTS_MAX_N variables (Kernighan-Lin costs ~n² log n per sweep)
RANDOM_STARTS = 4
RANDOM_STARTS_MAX_N = 64


# ---------------------------------------------------------------------------------------
# partitioning
# ---------------------------------------------------------------------------------------
def _weights(A: np.ndarray) -> np.ndarray:
    """Symmetric coupling weights W_ij = (|A_ij| + |A_ji|)/2, zero diagonal."""
    A = np.asarray(A, dtype=float)
    if A.ndim != 2 or A.shape[0] != A.shape[1] or A.shape[0] == 0:
        raise InputError(f"partition needs a square matrix, got shape {A.shape}")
    if not np.all(np.isfinite(A)):
        raise InputError("partition needs a finite matrix")
    W = 0.5 * (np.abs(A) + np.abs(A.T))
    np.fill_diagonal(W, 0.0)
    return W


def _check_k(K) -> int:
    if isinstance(K, bool) or not isinstance(K, int | np.integer) or K < 1:
        raise InputError(f"tile capacity K must be a positive integer, got {K!r}")
    return int(K)


def cut_weight(A: np.ndarray, tiles: list[list[int]]) -> float:
    """Σ |A_ij| over pairs i < j in different tiles (symmetrised weights)."""
    W = _weights(A)
    lab = _labels(tiles, W.shape[0])
    cross = lab[:, None] != lab[None, :]
    return float(np.triu(W * cross, 1).sum())


def naive_partition(n: int, K: int) -> list[list[int]]:
    """Contiguous tiles [0..K-1], [K..2K-1], …"""
    K = _check_k(K)
    return [list(range(s, min(n, s + K))) for s in range(0, n, K)]


def _labels(tiles: list[list[int]], n: int) -> np.ndarray:
    lab = np.full(n, -1, dtype=int)
    for t, cells in enumerate(tiles):
        for i in cells:
            if lab[i] != -1:
                raise InputError(f"variable {i} is in more than one tile")
            lab[i] = t
    if (lab < 0).any():
        raise InputError(f"variable {int(np.argmax(lab < 0))} is in no tile")
    return lab


def _cut_of(W: np.ndarray, part: set[int], nodes: list[int]) -> float:
    a = np.array([i for i in nodes if i in part], dtype=int)
    b = np.array([i for i in nodes if i not in part], dtype=int)
    if a.size == 0 or b.size == 0:
        return 0.0
    return float(W[np.ix_(a, b)].sum())


def _bisect(W: np.ndarray, nodes: list[int], n1: int, rng: np.random.Generator
            ) -> tuple[list[int], list[int]]:
    """Split `nodes` (sorted) into parts of n1 and len − n1 cells with a small cut."""
    g = nx.Graph()
    g.add_nodes_from(nodes)
    for ai, i in enumerate(nodes):
        for j in nodes[ai + 1:]:
            if W[i, j] > 0:
                g.add_edge(i, j, weight=float(W[i, j]))
    starts: list[list[int]] = [list(nodes)]
    sub = W[np.ix_(nodes, nodes)]
    lap = np.diag(sub.sum(axis=1)) - sub
    if len(nodes) > 2 and sub.any():
        _, vec = np.linalg.eigh(lap)
        f = vec[:, 1]
        f = f * (1.0 if f[np.argmax(np.abs(f))] > 0 else -1.0)
        order = sorted(range(len(nodes)), key=lambda k: (f[k], k))
        starts.append([nodes[k] for k in order])
        if 2 * n1 != len(nodes):        # an even split's reverse is the same bisection
            starts.append([nodes[k] for k in reversed(order)])
    for _ in range(RANDOM_STARTS):
        perm = rng.permutation(len(nodes))  # drawn always: keeps the stream deterministic
        if len(nodes) <= RANDOM_STARTS_MAX_N:
            starts.append([nodes[k] for k in perm])
    best: tuple[float, list[int]] | None = None
    for order in starts:
        first = set(order[:n1])
        rest = set(order[n1:])
        if first and rest and g.number_of_edges():
            p1, p2 = kernighan_lin_bisection(g, (first, rest), max_iter=10, weight="weight")
            first = p1 if len(p1) == n1 and (len(p2) != n1 or p1 & first) else p2
        c = _cut_of(W, first, nodes)
        if best is None or c < best[0] - 1e-12 * max(1.0, abs(c)):
            best = (c, sorted(first))
    part1 = best[1]
    s1 = set(part1)
    return part1, [i for i in nodes if i not in s1]


def _recursive(W, nodes: list[int], n_tiles: int, K: int, rng) -> list[list[int]]:
    if n_tiles == 1:
        return [nodes]
    t1 = n_tiles // 2
    t2 = n_tiles - t1
    n = len(nodes)
    n1 = min(t1 * K, max(n - t2 * K, math.ceil(n * t1 / n_tiles)))
    a, b = _bisect(W, nodes, n1, rng)
    return _recursive(W, a, t1, K, rng) + _recursive(W, b, t2, K, rng)


def _refine(W: np.ndarray, lab: np.ndarray, n_tiles: int, K: int) -> np.ndarray:
    """Greedy single moves (into tiles with room) and, when none helps, Kernighan–Lin swaps
    between two tiles (networkx, `_swap_pairs`), while the cut drops."""
    n = W.shape[0]
    lab = lab.copy()
    tol = 1e-12 * max(float(W.sum()), 1e-300)
    idx = np.arange(n)
    for _ in range(20 * n + 20):
        onehot = np.zeros((n, n_tiles))
        onehot[idx, lab] = 1.0
        conn = W @ onehot                       # conn[i, t]: weight from i into tile t
        own = conn[idx, lab]
        sizes = onehot.sum(axis=0)
        move = conn - own[:, None]
        move[:, sizes >= K] = -np.inf
        move[sizes[lab] <= 1, :] = -np.inf
        move[idx, lab] = -np.inf
        i, t = np.unravel_index(int(np.argmax(move)), move.shape)
        if move[i, t] > tol:
            lab[i] = t
            continue
        if _swap_pairs(W, lab, onehot, tol):
            continue
        break
    return lab


def _swap_pairs(W: np.ndarray, lab: np.ndarray, onehot: np.ndarray, tol: float) -> bool:
    """One improving exchange between two tiles, in place: networkx's Kernighan–Lin bisection
    of the two tiles' cells, started from the current split (sizes kept). Swapping cells of
    tiles t and u changes only the t–u cut, so a lower pair cut is a lower total cut. Pairs
    are tried by decreasing cut weight; True when one improved."""
    between = onehot.T @ W @ onehot             # between[t, u]: cut weight of tiles t, u
    np.fill_diagonal(between, 0.0)
    pairs = np.argwhere(np.triu(between) > tol)
    order = np.lexsort((pairs[:, 1], pairs[:, 0], -between[pairs[:, 0], pairs[:, 1]]))
    for t, u in pairs[order]:
        a = np.flatnonzero(lab == t)
        b = np.flatnonzero(lab == u)
        cells = np.concatenate([a, b])
        sub = W[np.ix_(cells, cells)]
        g = nx.Graph()
        g.add_nodes_from(int(i) for i in cells)
        ii, jj = np.nonzero(np.triu(sub, 1))
        g.add_weighted_edges_from((int(cells[p]), int(cells[q]), float(sub[p, q]))
                                  for p, q in zip(ii, jj, strict=True))
        p1, _ = kernighan_lin_bisection(g, ({int(i) for i in a}, {int(i) for i in b}),
                                        max_iter=10, weight="weight")
        new_a = np.array(sorted(p1), dtype=int)
        new_b = np.array(sorted(set(cells.tolist()) - p1), dtype=int)
        if len(new_a) != len(a):                # KL keeps sizes; guard against a swap of sides
            new_a, new_b = new_b, new_a
        cut_new = float(W[np.ix_(new_a, new_b)].sum())
        if cut_new < between[t, u] - tol:
            lab[new_a] = t
            lab[new_b] = u
            return True
    return False


def partition(A: np.ndarray, K: int = DEFAULT_K, seed: int = 0) -> list[list[int]]:
    """Assign the N variables of A to ⌈N/K⌉ tiles of ≤ K cells, minimising Σ|A_ij| cut.

    Deterministic for a given (A, K, seed). Each tile is sorted; tiles are ordered by their
    smallest variable.
    """
    W = _weights(A)
    K = _check_k(K)
    n = W.shape[0]
    n_tiles = math.ceil(n / K)
    if n_tiles == 1:
        return [list(range(n))]
    rng = np.random.default_rng(seed)
    tiles = _recursive(W, list(range(n)), n_tiles, K, rng)
    lab = _refine(W, _labels(tiles, n), n_tiles, K)
    tiles = [sorted(int(i) for i in np.flatnonzero(lab == t)) for t in range(n_tiles)]
    tiles = sorted((c for c in tiles if c), key=lambda c: c[0])
    return tiles


def partition_report(A: np.ndarray, tiles: list[list[int]], K: int) -> dict:
    """Cut weight of `tiles` and of the naive contiguous partition (plain JSON)."""
    W = _weights(A)
    total = float(np.triu(W, 1).sum())
    cut = cut_weight(A, tiles)
    naive = cut_weight(A, naive_partition(W.shape[0], K))
    def frac(c: float) -> float:
        return c / total if total > 0 else 0.0

    return {"cut_weight": cut, "total_offdiag_weight": total, "cut_fraction": frac(cut),
            "naive_cut_weight": naive, "naive_cut_fraction": frac(naive)}


# ---------------------------------------------------------------------------------------
# hierarchical netlists
# ---------------------------------------------------------------------------------------
def flatten(net: Netlist) -> Netlist:
    """The netlist with its X instances expanded, named as ngspice names them.

    Node `n3` inside instance `xtile0` becomes `xtile0.n3`, element `eint3` becomes
    `e.xtile0.eint3`; ports take the instance's nodes. Only one level (what tiles write).
    """
    flat = net.copy(elements=False)
    flat.subcircuits = [s for s in net.subcircuits if not _is_tile(s.name)]
    for el in net.elements:
        name = (el.spec or "").split()[0] if el.spec else ""
        if el.kind != "x" or not _is_tile(name):
            flat.add(el.name, el.nodes, el.value, el.spec)
            continue
        sub = net.subcircuit(name)
        if sub is None:
            raise CompileError(f"tiles: instance {el.name} of unknown subcircuit {name!r}")
        if len(sub.ports) != len(el.nodes):
            raise CompileError(f"tiles: instance {el.name} has {len(el.nodes)} nodes, "
                               f"subcircuit {name} has {len(sub.ports)} ports")
        pmap = dict(zip(sub.ports, el.nodes, strict=True))
        for e in sub.elements:
            nodes = [n if n == GROUND else pmap.get(n, f"{el.name}.{n}") for n in e.nodes]
            flat.add(f"{e.kind}.{el.name}.{e.name}", nodes, e.value, e.spec)
    return flat


def _is_tile(subckt: str) -> bool:
    """A tile subcircuit (`tile<t>`), as opposed to a part's model (the op-amp macromodel of
    a realised deck, which stays a nested instance inside its tile)."""
    return subckt.startswith("tile") and subckt[4:].isdigit()


def _unflatten_name(name: str) -> str:
    parts = name.split(".")
    return parts[-1]


def _unflatten_node(node: str) -> str:
    return node.split(".")[-1]


def _system_matrix(side: Sidecar) -> tuple[np.ndarray, np.ndarray]:
    if side.system is None:
        raise CompileError("tiles: the compiled circuit's sidecar records no system")
    return side.system.matrix()


def tile_circuit(compiled: CompiledCircuit, K: int = DEFAULT_K, seed: int = 0,
                 drop_inter_tile: bool = False) -> CompiledCircuit:
    """Rewrite `compiled` as ⌈N/K⌉ tile subcircuits plus a backplane (see the module doc).

    Returns a new CompiledCircuit (deck + sidecar with its `tiles` record); the input is left
    untouched. drop_inter_tile: block Jacobi, leaving out every inter-tile coupling
    (dense and ideal topologies only).
    """
    side0 = compiled.sidecar
    K = _check_k(K)
    cm = compiled.cell_map
    if cm is None:
        raise CompileError("tiles: the sidecar has no cell map (recompile the deck with this "
                           "version)")
    if side0.tiles is not None:
        raise CompileError("tiles: this circuit is already tiled")
    if drop_inter_tile and cm.stages:
        raise CompileError(f"tiles: block Jacobi (--block-jacobi) is not supported for the "
                           f"{cm.topology} topology: its couplings run through shared stages, "
                           "not per-pair resistors; compile with --topology dense or ideal")
    net0 = compiled.netlist
    if any(el.kind == "x" and _is_tile((el.spec or "").split()[0])
           for el in net0.elements if el.spec):
        raise CompileError("tiles: the netlist already holds tile instances")
    n = cm.n
    noise = set(cm.elements_with(Role.NOISE))
    node_cell = cm.node_cells()
    A_sys, b_sys = _system_matrix(side0)
    if cm.couplings_of("A"):
        A_part = coupling_matrix(net0, cm, float(side0.matrix_scale), float(side0.R0_ohm))
    else:
        A_part = A_sys
    tiles = partition(A_part, K, seed)
    lab = _labels(tiles, n)
    n_tiles = len(tiles)
    node_cell = _attach_part_nodes(net0, node_cell, noise, lab)

    # ---- assign elements -----------------------------------------------------------
    inside: list[list[Element]] = [[] for _ in range(n_tiles)]
    top: list[Element] = []
    dropped: list[Element] = []
    inter: list[Element] = []
    for el in net0.elements:
        cells = [node_cell.get(nd) for nd in el.nodes if nd != GROUND]
        if el.name not in noise and cells and all(c is not None for c in cells):
            ts = sorted({int(lab[c]) for c in cells})
            if len(ts) == 1:
                inside[ts[0]].append(el)
                continue
            inter.append(el)
            if drop_inter_tile:
                dropped.append(el)
                continue
        top.append(el)

    # ---- ports and subcircuit definitions --------------------------------------------
    ports = [[p for i in cells for p in cm.cells[i].ports] for cells in tiles]
    port_set = {p for ps in ports for p in ps}
    for el in top:
        for nd in el.nodes:
            if nd in node_cell and nd not in port_set:
                raise CompileError(f"tiles: top-level element {el.name} reaches node {nd} "
                                   "inside a tile")
    net = net0.copy(elements=False)
    net.title = (f"{net0.title} [tiled: {n_tiles} tiles of <= {K} cells"
                 f"{', block Jacobi' if drop_inter_tile else ''}]")
    net.header = []
    net.subcircuits += [Subcircuit(f"tile{t}", tuple(ports[t]), tuple(body))
                        for t, body in enumerate(inside)]
    for t in range(n_tiles):
        net.add(f"xtile{t}", ports[t], None, f"tile{t}")
    for el in top:
        net.add(el.name, el.nodes, el.value, el.spec)

    # ---- structural checks on the flattened circuit ---------------------------------
    flat = flatten(net)
    check_netlist(flat, side0.spec)
    want = Counter((el.name, el.nodes, el.value, el.spec) for el in net0.elements
                   if el not in dropped)
    got = Counter((_unflatten_name(el.name), tuple(_unflatten_node(x) for x in el.nodes),
                   el.value, el.spec) for el in flat.elements)
    if want != got:  # pragma: no cover - an internal bug, never a user error
        raise CompileError("tiles: the flattened tiled circuit differs from the original")

    # ---- report ----------------------------------------------------------------------
    touching = [el for el in top if el.name not in noise
                and any(nd in port_set for nd in el.nodes)]
    report = {
        "K": K, "seed": int(seed), "n_tiles": n_tiles,
        "method": "recursive Kernighan-Lin bisection (networkx; contiguous, spectral and "
                  "seeded random starts) + refinement under capacity K: greedy moves and "
                  "pairwise Kernighan-Lin exchanges (networkx)",
        "tiles": tiles,
        "cells_per_tile": [len(c) for c in tiles],
        "subcircuits": [f"tile{t}" for t in range(n_tiles)],
        "instances": [f"xtile{t}" for t in range(n_tiles)],
        "ports_per_tile": [len(p) for p in ports],
        "intra_tile_elements": [len(b) for b in inside],
        "inter_tile_wires": len(inter),
        "backplane_wires": len(touching),
        "backplane_element_counts": _counts(el for el in top if el.name not in noise),
        **partition_report(A_part, tiles, K),
        "partition_matrix": "realised (pruned) A" if cm.couplings_of("A")
                            else "the sidecar's system matrix (F = S^T S + lambda I)",
        "internal_node_names": "xtile<t>.<node> (ngspice hierarchical names)",
        "graphcheck": "run on the flattened netlist (X instances expanded)",
        "block_jacobi": None,
    }
    predicted = side0.predicted
    header = list(net0.header)
    if drop_inter_tile:
        bj, predicted = _block_jacobi(net, cm, float(side0.volts_per_unit), A_sys, b_sys,
                                      lab, dropped, predicted)
        report["block_jacobi"] = bj
        header = [h for h in header if not h.startswith("predicted DC deviation")]
        header.append(f"predicted DC deviation from A^-1 b: "
                      f"{predicted.rel_deviation_from_exact:.3g} ({predicted.cause})")
    header.append(
        f"tiles: {n_tiles} subcircuits of <= {K} cells {report['cells_per_tile']}; "
        f"inter-tile couplings: {len(inter)}{' (dropped: block Jacobi)' if drop_inter_tile else ''}"
        f"; cut weight {report['cut_weight']:.6g} = {report['cut_fraction']:.3g} of "
        f"off-diagonal weight (contiguous: {report['naive_cut_fraction']:.3g})")
    header.append("tile-internal nodes: xtile<t>.<node>; ports: each cell's output, "
                  "inverted and summing nodes")
    net.header = header
    inner = {nd: f"xtile{int(lab[c])}.{nd}" for nd, c in node_cell.items()
             if nd not in port_set}
    cell_map = cm.renamed(nodes=inner).with_roles(
        {f"xtile{t}": Role.TILE for t in range(n_tiles)}, drop=tuple(e.name for e in dropped))
    side = side0.with_(ic_map=_rename_ic(side0.ic_map, inner), cell_map=cell_map,
                       predicted=predicted, element_counts=flat.counts(),
                       tiles=Tiling.from_json(report))
    return dataclasses.replace(compiled, netlist=net, sidecar=side,
                               extra_files=dict(compiled.extra_files))


def _attach_part_nodes(net: Netlist, node_cell: dict[str, int], noise: set[str],
                       lab: np.ndarray) -> dict[str, int]:
    """`node_cell` extended by the nodes a realised deck adds (an op-amp's offset source node
    `nos_<opamp>`, a trim's junction): a node outside every cell whose elements reach cells
    of one tile only (labels `lab`) is put with the first of them, so its parts go onto that
    tile; a junction between tiles stays on the backplane."""
    touching: dict[str, list[Element]] = {}
    for el in net.elements:
        if el.name in noise:
            continue
        for nd in el.nodes:
            if nd != GROUND and nd not in node_cell:
                touching.setdefault(nd, []).append(el)
    out = dict(node_cell)
    for nd, els in touching.items():
        cells = {node_cell[x] for el in els for x in el.nodes if x in node_cell}
        if cells and len({int(lab[c]) for c in cells}) == 1:
            out[nd] = min(cells)
    return out


def _counts(els) -> dict[str, int]:
    from ..netlist import KINDS

    c = Counter(KINDS.get(el.kind, el.kind) for el in els)
    return dict(sorted(c.items()))


def _rename_ic(ic_map: IcMap | None, inner: dict[str, str]) -> IcMap | None:
    if not ic_map:
        return ic_map
    return IcMap(tuple((inner.get(nd, nd), var, coef) for nd, var, coef in ic_map.linear),
                 tuple((inner.get(nd, nd), val) for nd, val in ic_map.const))


def _block_jacobi(net: Netlist, cm: CellMap, v0: float, A_sys: np.ndarray, b_sys: np.ndarray,
                  lab: np.ndarray, dropped: list[Element], predicted0: Prediction | None
                  ) -> tuple[dict, Prediction]:
    """The block-Jacobi report and the sidecar's honest `predicted` record (the DC solution
    of the tiled deck itself, inter-tile couplings gone, by the parser's nodal analysis)."""
    from ..parser import dc_solution, parse_deck

    same = lab[:, None] == lab[None, :]
    A_bj = np.where(same, A_sys, 0.0)
    x = np.linalg.solve(A_sys, b_sys)
    x_bj = np.linalg.solve(A_bj, b_sys)
    xn = max(float(np.linalg.norm(x)), 1e-300)
    err = float(np.linalg.norm(x_bj - x) / xn)
    volts = dc_solution(parse_deck(net.to_text()))
    x_dc = np.array([volts[o] for o in cm.outputs]) / v0
    cause = "finite op-amp gain" if any(r in OPAMP_ROLES for r in cm.roles.values()) \
        else "ideal elements"
    pruned = "pruning of" in (predicted0.cause if predicted0 is not None else "")
    cause = (f"block Jacobi: {len(dropped)} inter-tile couplings dropped"
             + (", pruning" if pruned else "") + f" and {cause}")
    bj = {"dropped_couplings": len(dropped),
          "dropped_elements": [el.name for el in dropped],
          "dropped_rel_mass": float(np.linalg.norm(A_sys - A_bj) / np.linalg.norm(A_sys)),
          "rel_error": err,
          "rel_error_definition": "||A_bj^-1 b - A^-1 b|| / ||A^-1 b||, A_bj = block "
                                  "diagonal of the sidecar's A over the tiles",
          "x_block_jacobi": x_bj.tolist()}
    pred = Prediction(
        x_dc=tuple(x_dc.tolist()),
        rel_deviation_from_exact=float(np.linalg.norm(x_dc - x) / xn),
        rel_deviation_from_block_jacobi=float(np.linalg.norm(x_dc - x_bj)
                                              / max(float(np.linalg.norm(x_bj)), 1e-300)),
        cause=cause)
    return bj, pred
