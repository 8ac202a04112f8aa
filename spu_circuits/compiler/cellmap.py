"""The cell map: what each element of a compiled deck *is*, as data.

A topology's `build` returns the netlist IR and a `CellMap`. Every later pass (noise,
realisation, tiles, graph checks, BOM, validation, KiCad export) finds elements and nodes
through the cell map, never by matching their names.

Roles (`Role`) name what an element does in the circuit; `elements_with(role)` lists them.
Units: node voltages in V, x = V(cell.output)/v₀.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, fields, replace
from enum import StrEnum


class Role(StrEnum):
    """What an element does (its place in the circuit, for BOM, trims and reports)."""

    INTEGRATOR_CAP = "integrator_cap"  # the cell's integrating capacitor C
    INTEGRATOR_OPAMP = "integrator_opamp"  # op-amp of the integrator
    INVERTER_OPAMP = "inverter_opamp"  # op-amp of the cell's (or stage's) inverter
    INVERTER_R_IN = "inverter_r_in"  # inverter input resistor R0
    INVERTER_R_FB = "inverter_r_fb"  # inverter feedback resistor R0
    BIAS_SOURCE = "bias_source"  # the DAC voltage (or current) setting b_i
    BIAS_RESISTOR = "bias_resistor"  # R0 from the bias source into the summing node
    COUPLING = "coupling"  # realises one matrix entry A_ij (dense) or a factor entry
    DAMPING = "damping"  # λ (factored) or γ (oscillator) resistor
    STAGE_OPAMP = "stage_opamp"  # transimpedance op-amp of a factored stage
    STAGE_R_FB = "stage_r_fb"  # a stage's feedback resistor
    VCCS = "vccs"  # ideal gm coupling (ideal topology)
    NOISE = "noise"  # a noise source (added by the noise pass)
    TRIM = "trim"  # a trim part added by the realisation pass
    PROGRAMMABLE = "programmable"  # an MDAC / digipot coupling of a board
    TILE = "tile"  # a tile subcircuit instance (tiles pass)
    OPAMP_ERROR = "opamp_error"  # an op-amp's V_os / I_b source (a model, not a part)
    INTEGRATOR_R_IN = "integrator_r_in"  # oscillator: R0/α from v into x's integrator
    OTHER = "other"

#: roles of the op-amps (the elements the realisation pass may replace by a macromodel)
OPAMP_ROLES = frozenset({Role.INTEGRATOR_OPAMP.value, Role.INVERTER_OPAMP.value,
                         Role.STAGE_OPAMP.value})


@dataclass(frozen=True)
class Cell:
    """One variable x_i of the system.

    output: node with V = v₀·x_i; inverted: node with −v₀·x_i (None when the topology has
    none); summing: the integrator's virtual-ground (injection) node, where noise enters;
    capacitor: the integrating capacitor's element name; integrator / inverter: op-amp
    element names (None for ideal gm-C cells); bias: the source setting b_i;
    velocity: second-order cells only, the node of v_i (V = v₀·v_i), else None;
    inverter_r_in / inverter_r_fb: the inverter's input and feedback resistors;
    internal_nodes: the cell's other nodes (inverter input, bias node), which belong to the
    cell but are not its ports.
    """

    index: int
    output: str
    summing: str
    capacitor: str
    bias: str
    inverted: str | None = None
    integrator: str | None = None
    inverter: str | None = None
    bias_resistor: str | None = None
    velocity: str | None = None
    velocity_summing: str | None = None
    velocity_capacitor: str | None = None
    inverter_r_in: str | None = None
    inverter_r_fb: str | None = None
    internal_nodes: tuple[str, ...] = ()

    @property
    def ports(self) -> tuple[str, ...]:
        """The cell's nodes other cells or stages connect to (output, inverted, summing,
        velocity nodes), without repeats."""
        nodes = (self.output, self.inverted, self.summing, self.velocity,
                 self.velocity_summing)
        return tuple(dict.fromkeys(n for n in nodes if n is not None))

    @property
    def nodes(self) -> tuple[str, ...]:
        """Every node of the cell: its ports, then its internal nodes."""
        return tuple(dict.fromkeys((*self.ports, *self.internal_nodes)))


@dataclass(frozen=True)
class Coupling:
    """The elements that realise one entry of the matrix (or of the factor).

    kind: 'A' (A[row, col], dense/ideal/oscillator), 'S_in' (S[row=k, col=j] into stage k),
    'S_out' (S[k, i] from stage k into cell i: row=k, col=i), 'damping' (row=col=i);
    sign: the sign of the entry realised (+1 when fed from the non-inverted node, −1 from
    the inverted one; for a VCCS the sign of its gm);
    elements: element names (first = the main part; more = its trims, in series order).
    """

    kind: str
    row: int
    col: int
    sign: int
    elements: tuple[str, ...]


@dataclass(frozen=True)
class Stage:
    """A transimpedance stage of the factored topology (one row k of S).

    summing: virtual ground; output: y_k; inverted: −y_k; opamp / inverter: op-amp element
    names; feedback: the stage's feedback resistor; inverter_r_in / inverter_r_fb: the
    inverter's resistors; internal_nodes: other nodes (the inverter's input).
    """

    index: int
    summing: str
    output: str
    inverted: str
    opamp: str
    inverter: str
    feedback: str
    inverter_r_in: str | None = None
    inverter_r_fb: str | None = None
    internal_nodes: tuple[str, ...] = ()


@dataclass(frozen=True)
class CellMap:
    """Cells, stages and couplings of one deck, plus every element's role.

    roles: element name → Role value (every element of the deck appears once);
    trimmable: element names the realisation pass may replace by a part plus a trim.
    """

    topology: str
    cells: tuple[Cell, ...]
    couplings: tuple[Coupling, ...] = ()
    stages: tuple[Stage, ...] = ()
    roles: dict[str, str] = field(default_factory=dict)
    trimmable: tuple[str, ...] = ()

    @property
    def n(self) -> int:
        return len(self.cells)

    @property
    def outputs(self) -> list[str]:
        return [c.output for c in self.cells]

    @property
    def summing_nodes(self) -> list[str]:
        return [c.summing for c in self.cells]

    def elements_with(self, role: Role | str) -> list[str]:
        role = str(role)
        return [name for name, r in self.roles.items() if r == role]

    def role_of(self, element: str) -> str:
        return self.roles.get(element, Role.OTHER.value)

    def node_cells(self) -> dict[str, int]:
        """Node → index of the cell it belongs to (every node of every cell)."""
        return {nd: c.index for c in self.cells for nd in c.nodes}

    def couplings_of(self, kind: str) -> list[Coupling]:
        return [c for c in self.couplings if c.kind == kind]

    def renamed(self, elements: dict[str, str] | None = None,
                nodes: dict[str, str] | None = None) -> CellMap:
        """A copy with elements and nodes renamed (names not in the maps are kept)."""
        em, nm = elements or {}, nodes or {}

        def e(x):
            return em.get(x, x) if x is not None else None

        def n(x):
            return nm.get(x, x) if x is not None else None

        cell_el = ("capacitor", "bias", "integrator", "inverter", "bias_resistor",
                   "velocity_capacitor", "inverter_r_in", "inverter_r_fb")
        cell_nd = ("output", "summing", "inverted", "velocity", "velocity_summing")
        cells = tuple(replace(c, **{k: e(getattr(c, k)) for k in cell_el},
                              **{k: n(getattr(c, k)) for k in cell_nd},
                              internal_nodes=tuple(n(x) for x in c.internal_nodes))
                      for c in self.cells)
        stages = tuple(replace(s, **{k: e(getattr(s, k)) for k in
                                     ("opamp", "inverter", "feedback", "inverter_r_in",
                                      "inverter_r_fb")},
                               **{k: n(getattr(s, k)) for k in
                                  ("summing", "output", "inverted")},
                               internal_nodes=tuple(n(x) for x in s.internal_nodes))
                       for s in self.stages)
        couplings = tuple(replace(c, elements=tuple(e(x) for x in c.elements))
                          if any(x in em for x in c.elements) else c for c in self.couplings)
        return replace(self, cells=cells, stages=stages, couplings=couplings,
                       roles={e(k): v for k, v in self.roles.items()},
                       trimmable=tuple(e(x) for x in self.trimmable))

    def with_roles(self, roles: dict[str, str], drop: tuple[str, ...] = ()) -> CellMap:
        """A copy with elements added (name → role) and the elements `drop` removed."""
        gone = set(drop)
        new = {k: v for k, v in self.roles.items() if k not in gone}
        new.update({k: str(v) for k, v in roles.items()})
        return replace(self, roles=new,
                       trimmable=tuple(x for x in self.trimmable if x not in gone))

    def to_json(self) -> dict:
        """Plain JSON-able dict (shallow per dataclass: the fields are str, int or tuples)."""
        return {
            "topology": self.topology,
            "cells": [_plain(c) for c in self.cells],
            "couplings": [{"kind": c.kind, "row": c.row, "col": c.col, "sign": c.sign,
                           "elements": list(c.elements)} for c in self.couplings],
            "stages": [_plain(s) for s in self.stages],
            "roles": dict(self.roles),
            "trimmable": list(self.trimmable),
        }

    @classmethod
    def from_json(cls, d: dict) -> CellMap:
        return cls(
            topology=d["topology"],
            cells=tuple(Cell(**dict(c, internal_nodes=tuple(c.get("internal_nodes", ()))))
                        for c in d["cells"]),
            couplings=tuple(Coupling(**dict(c, elements=tuple(c["elements"])))
                            for c in d.get("couplings", ())),
            stages=tuple(Stage(**dict(s, internal_nodes=tuple(s.get("internal_nodes", ()))))
                         for s in d.get("stages", ())),
            roles=dict(d.get("roles", {})),
            trimmable=tuple(d.get("trimmable", ())),
        )


@functools.cache
def _field_names(cls) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


def _plain(obj) -> dict:
    """A flat dataclass as a dict, tuples as lists (what json writes anyway)."""
    out = {}
    for name in _field_names(type(obj)):
        v = getattr(obj, name)
        out[name] = list(v) if isinstance(v, tuple) else v
    return out
