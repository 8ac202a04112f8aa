"""The cell map: what each element of a compiled deck *is*, as data.

A topology's `build` returns the netlist IR and a `CellMap`. Every later pass (noise,
realisation, tiles, graph checks, BOM, validation, KiCad export) finds elements and nodes
through the cell map, never by matching their names.

Roles (`Role`) name what an element does in the circuit; `elements_with(role)` lists them.
Units: node voltages in V, x = V(cell.output)/v₀.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
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
    INTEGRATOR_R_IN = "integrator_r_in"  # oscillator: R0/α from v into x's integrator
    OTHER = "other"


@dataclass(frozen=True)
class Cell:
    """One variable x_i of the system.

    output: node with V = v₀·x_i; inverted: node with −v₀·x_i (None when the topology has
    none); summing: the integrator's virtual-ground (injection) node, where noise enters;
    capacitor: the integrating capacitor's element name; integrator / inverter: op-amp
    element names (None for ideal gm-C cells); bias: the source setting b_i;
    velocity: second-order cells only, the node of v_i (V = v₀·v_i), else None.
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


@dataclass(frozen=True)
class Coupling:
    """The elements that realise one entry of the matrix (or of the factor).

    kind: 'A' (A[row, col], dense/ideal/oscillator), 'S_in' (S[row=k, col=j] into stage k),
    'S_out' (S[k, i] from stage k into cell i: row=k, col=i), 'damping' (row=col=i);
    sign: +1 when fed from the non-inverted node, −1 from the inverted one;
    elements: element names (first = the main part; more = its trims, in series order).
    """

    kind: str
    row: int
    col: int
    sign: int
    elements: tuple[str, ...]


@dataclass(frozen=True)
class Stage:
    """A transimpedance stage of the factored topology (one row k of S)."""

    index: int
    summing: str
    output: str
    inverted: str
    opamp: str
    inverter: str
    feedback: str


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

    def to_json(self) -> dict:
        d = asdict(self)
        d["cells"] = [asdict(c) for c in self.cells]
        d["couplings"] = [dict(asdict(c), elements=list(c.elements)) for c in self.couplings]
        d["stages"] = [asdict(s) for s in self.stages]
        d["trimmable"] = list(self.trimmable)
        return d

    @classmethod
    def from_json(cls, d: dict) -> CellMap:
        return cls(
            topology=d["topology"],
            cells=tuple(Cell(**c) for c in d["cells"]),
            couplings=tuple(Coupling(**dict(c, elements=tuple(c["elements"])))
                            for c in d.get("couplings", ())),
            stages=tuple(Stage(**s) for s in d.get("stages", ())),
            roles=dict(d.get("roles", {})),
            trimmable=tuple(d.get("trimmable", ())),
        )
