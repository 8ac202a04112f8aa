"""Structural checks run on every netlist before it is written (networkx).

Each failure raises GraphCheckError naming the node or element: a node without a DC path to
ground, a dangling node (one terminal only), a loop of voltage sources (V and VCVS outputs),
a non-finite or out-of-range element value. `check_cell_map` checks a netlist against its
cell map: every element has exactly one role and every name the map uses exists.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import TYPE_CHECKING

import networkx as nx

from .errors import GraphCheckError
from .netlist import GROUND, Netlist
from .spec import HardwareSpec

if TYPE_CHECKING:
    from .compiler.cellmap import CellMap


def check_netlist(net: Netlist, spec: HardwareSpec | None = None) -> None:
    """Raise GraphCheckError on the first structural defect found."""
    _check_values(net, spec)
    terminals = Counter(n for el in net.elements for n in el.nodes if n != GROUND)
    for node, count in terminals.items():
        if count < 2:
            el = next(e.name for e in net.elements if node in e.nodes)
            raise GraphCheckError(f"node '{node}' is dangling: only element '{el}' connects to it")
    g = nx.Graph()
    g.add_node(GROUND)
    g.add_nodes_from(terminals)
    for el in net.elements:
        if el.dc_terminals:
            g.add_edge(*el.dc_terminals)
    for comp in nx.connected_components(g):
        if GROUND not in comp:
            node = sorted(comp)[0]
            raise GraphCheckError(
                f"node '{node}' has no DC path to ground (floating group: "
                f"{', '.join(sorted(comp)[:5])}{'…' if len(comp) > 5 else ''})")
    _check_source_loops(net)


def _check_values(net: Netlist, spec: HardwareSpec | None) -> None:
    for el in net.elements:
        if el.value is None:
            continue
        v = el.value
        if not math.isfinite(v):
            raise GraphCheckError(f"element '{el.name}' has a non-finite value {v}")
        if el.kind in "rc" and v <= 0:
            raise GraphCheckError(f"element '{el.name}' has a non-positive value {v:g}")
        if spec is not None and el.kind == "r" and not (
                spec.r_min_ohm * (1 - 1e-12) <= v <= spec.r_max_ohm * (1 + 1e-12)):
            raise GraphCheckError(
                f"resistor '{el.name}' = {v:.4g} Ω lies outside the spec range "
                f"[{spec.r_min_ohm:g}, {spec.r_max_ohm:g}] Ω")
        if spec is not None and el.kind == "g" and v != 0:
            r_eq = 1.0 / abs(v)
            if not (spec.r_min_ohm * (1 - 1e-12) <= r_eq <= spec.r_max_ohm * (1 + 1e-12)):
                raise GraphCheckError(
                    f"transconductance '{el.name}' = {v:.4g} S (1/|g| = {r_eq:.4g} Ω) lies "
                    f"outside the spec range [{spec.r_min_ohm:g}, {spec.r_max_ohm:g}] Ω")


def _check_source_loops(net: Netlist) -> None:
    """Voltage-defining branches (V, VCVS outputs) must form a forest."""
    uf = nx.utils.UnionFind()
    g = nx.Graph()
    for el in net.elements:
        if el.kind not in "ve":
            continue
        a, b = el.nodes[:2]
        if uf[a] == uf[b]:  # a and b already joined by sources: this one closes a loop
            loop = nx.shortest_path(g, a, b)
            names = [g.edges[u, v]["name"] for u, v in zip(loop, loop[1:], strict=False)]
            raise GraphCheckError(
                "loop of voltage sources: " + ", ".join([*names, el.name]))
        uf.union(a, b)
        g.add_edge(a, b, name=el.name)


def check_cell_map(net: Netlist, cell_map: CellMap) -> None:
    """Raise GraphCheckError unless `cell_map` describes `net`: every element has a role,
    every role, cell, stage and coupling names elements and nodes of `net`."""
    names = {el.name for el in net.elements}
    nodes = {n for el in net.elements for n in el.nodes}
    roles = cell_map.roles
    missing = [el.name for el in net.elements if el.name not in roles]
    if missing:
        raise GraphCheckError(f"element '{missing[0]}' has no role in the cell map"
                              + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    extra = sorted(roles.keys() - names)
    if extra:
        raise GraphCheckError(f"the cell map names element '{extra[0]}', which the netlist "
                              "does not hold")
    used = [e for cp in cell_map.couplings for e in cp.elements]
    for c in cell_map.cells:
        used += [e for e in (c.capacitor, c.bias, c.integrator, c.inverter, c.bias_resistor,
                             c.inverter_r_in, c.inverter_r_fb, c.velocity_capacitor) if e]
        for nd in c.nodes:
            if nd not in nodes:
                raise GraphCheckError(f"cell {c.index}: node '{nd}' is not in the netlist")
    for st in cell_map.stages:
        used += [e for e in (st.opamp, st.inverter, st.feedback, st.inverter_r_in,
                             st.inverter_r_fb) if e]
        for nd in (st.summing, st.output, st.inverted, *st.internal_nodes):
            if nd not in nodes:
                raise GraphCheckError(f"stage {st.index}: node '{nd}' is not in the netlist")
    bad = [e for e in used if e not in names]
    if bad:
        raise GraphCheckError(f"the cell map names element '{bad[0]}', which the netlist "
                              "does not hold")
