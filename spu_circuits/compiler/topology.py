"""The topology protocol: what a circuit family must provide to the compiler.

A topology is an object with

- `name` (the `--topology` value), `noise_sign` (+1 when a current into a cell's summing
  node pushes x up, −1 when it pushes x down), `needs_factor` (compiles a FactoredSystem's
  S and λ rather than A) and `uses_opamps`;
- `scale(system, spec)`: the scaling pass it uses (prune, choose α) → a scaled system;
- `build(scaled, spec) -> (Netlist, CellMap)`: the netlist IR and the cell map that names
  every element's role, each variable's nodes, each matrix (or factor) entry's elements;
- `ic_map(scaled, spec)`: node voltages for a transient from x₀ (`uic`);
- `predict_dc(scaled, spec, net, cell_map) -> Prediction`: the DC solution x (N,) the
  circuit should reach and the causes of its deviation from A⁻¹b.

`TOPOLOGIES` (re-exported by `spu_circuits.compiler`) maps names to topology objects;
`register` adds one. Adding a topology = one module defining such an object (registered in
`spu_circuits.compiler.TOPOLOGY_MODULES`) + its tests. `Builder` helps a topology record
each element's role as it adds it. Only topology modules know element and node names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..errors import InputError
from ..netlist import Netlist
from ..spec import HardwareSpec
from ..system import FactoredSystem
from .cellmap import Cell, CellMap, Coupling, Role, Stage


@dataclass(frozen=True)
class Prediction:
    """The circuit's predicted DC solution x_dc (N,) in x units, and what makes it deviate
    from A⁻¹b (e.g. 'finite op-amp gain'; empty for ideal elements)."""

    x_dc: np.ndarray
    causes: tuple[str, ...] = ()


@runtime_checkable
class Topology(Protocol):
    """What the compiler needs of a topology (see the module docstring)."""

    name: str
    noise_sign: float
    needs_factor: bool
    uses_opamps: bool

    def scale(self, system: Any, spec: HardwareSpec) -> Any: ...

    def build(self, scaled: Any, spec: HardwareSpec) -> tuple[Netlist, CellMap]: ...

    def ic_map(self, scaled: Any, spec: HardwareSpec) -> dict: ...

    def predict_dc(self, scaled: Any, spec: HardwareSpec, net: Netlist,
                   cell_map: CellMap) -> Prediction: ...


class BaseTopology:
    """Defaults shared by the topologies; `NOISE_SIGN` is kept as an alias of noise_sign."""

    name: str = ""
    noise_sign: float = -1.0
    needs_factor: bool = False
    uses_opamps: bool = True

    @property
    def NOISE_SIGN(self) -> float:  # noqa: N802 - the former module constant's name
        return self.noise_sign

    def __repr__(self) -> str:
        return f"<topology {self.name}>"


class ModuleTopology(BaseTopology):
    """A topology made of its module's functions (set as staticmethods): ``scale_fn(system,
    spec)``, ``build_fn(scaled, spec, name)`` and ``ic_map_fn(scaled, spec)``. One that does
    not need the factor compiles a FactoredSystem as its dense F̃ = SᵀS + λI."""

    scale_fn: Callable[..., Any]
    build_fn: Callable[..., tuple[Netlist, CellMap]]
    ic_map_fn: Callable[..., dict]

    def scale(self, system, spec: HardwareSpec):
        if not self.needs_factor and isinstance(system, FactoredSystem):
            system = system.as_linear_system()
        return self.scale_fn(system, spec)

    def build(self, scaled, spec: HardwareSpec) -> tuple[Netlist, CellMap]:
        return self.build_fn(scaled, spec, self.name)

    def ic_map(self, scaled, spec: HardwareSpec) -> dict:
        return self.ic_map_fn(scaled, spec)


#: name → topology object (filled by `register`; spu_circuits.compiler registers the built-in
#: ones on import)
TOPOLOGIES: dict[str, Topology] = {}


def register(topology: Topology) -> Topology:
    """Add `topology` to TOPOLOGIES under its name (a second one of that name replaces it)."""
    if not isinstance(topology, Topology):
        raise TypeError(f"{topology!r} does not satisfy the Topology protocol")
    TOPOLOGIES[topology.name] = topology
    return topology


def get(name: str) -> Topology:
    """The topology called `name`; InputError naming the choices otherwise."""
    try:
        return TOPOLOGIES[name]
    except KeyError:
        raise InputError(f"unknown topology {name!r}; choose from {sorted(TOPOLOGIES)}"
                         ) from None


class Builder:
    """A netlist under construction plus the role of every element added to it."""

    def __init__(self, title: str = ""):
        self.net = Netlist(title=title)
        self.roles: dict[str, str] = {}

    def add(self, role: Role, name: str, nodes, value: float | None = None,
            spec: str | None = None) -> str:
        """Add one element with its role; returns its (lower-case) name."""
        el = self.net.add(name, nodes, value, spec)
        self.roles[el.name] = str(role)
        return el.name

    def finish(self, topology: str, cells: list[Cell], couplings: list[Coupling] = (),
               stages: list[Stage] = ()) -> tuple[Netlist, CellMap]:
        """The netlist and its cell map (every resistor is trimmable)."""
        trimmable = tuple(el.name for el in self.net.elements if el.kind == "r")
        cm = CellMap(topology=topology, cells=tuple(cells), couplings=tuple(couplings),
                     stages=tuple(stages), roles=dict(self.roles), trimmable=trimmable)
        return self.net, cm


def coupling_matrix(net: Netlist, cell_map: CellMap, alpha: float, R0_ohm: float
                    ) -> np.ndarray:
    """The matrix A (N, N) realised by the 'A' couplings of `cell_map`, read off `net`'s
    element values: A_ij = sign·R₀·G/α, G = 1/R for a resistor and |gm| for a VCCS (S)."""
    n = cell_map.n
    values = {el.name: el for el in net.elements}
    A = np.zeros((n, n))
    for cp in cell_map.couplings:
        if cp.kind != "A":
            continue
        el = values[cp.elements[0]]
        g = 1.0 / el.value if el.kind == "r" else abs(el.value)
        A[cp.row, cp.col] += cp.sign * R0_ohm * g / alpha
    return A
