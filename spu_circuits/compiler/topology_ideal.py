"""Topology `ideal` (gm-C reference): a capacitor per node, VCCS couplings, DC bias currents.

Node x{i} carries V = v₀·x_i. KCL: C dV_i/dt = −Σ_j (α A_ij/R₀) V_j + α v₀ b_i / R₀ (+ noise),
i.e. (τ/α) dx/dt = −(A x − b). The fewest elements: the reference for the other topologies.
"""

from __future__ import annotations

import numpy as np

from ..netlist import GROUND, Netlist
from ..spec import HardwareSpec
from .cellmap import Cell, CellMap, Coupling, Role
from .scaling import Scaled, scale
from .topology import Builder, ModuleTopology, Prediction

#: a current into the injection node moves x by this sign
NOISE_SIGN = 1.0


def output_node(i: int) -> str:
    return f"x{i}"


def injection_node(i: int) -> str:
    """Node where the noise current for variable i is injected."""
    return output_node(i)


def build(sc: Scaled, spec: HardwareSpec, topology: str = "ideal"
          ) -> tuple[Netlist, CellMap]:
    """The ideal gm-C circuit for `sc` and its cell map (outputs in variable order)."""
    n = sc.A.shape[0]
    v0, r0 = spec.volts_per_unit, spec.R0_ohm
    outs = [output_node(i) for i in range(n)]
    bld = Builder()
    cells, couplings = [], []
    for i in range(n):
        bld.add(Role.INTEGRATOR_CAP, f"c{i}", (outs[i], GROUND), spec.C_F)
        bld.add(Role.BIAS_SOURCE, f"ib{i}", (GROUND, outs[i]), sc.alpha * v0 * sc.b[i] / r0)
        cells.append(Cell(index=i, output=outs[i], summing=outs[i], capacitor=f"c{i}",
                          bias=f"ib{i}"))
        for j in range(n):
            a = sc.A[i, j]
            if a != 0.0:
                name = bld.add(Role.VCCS, f"g{i}_{j}", (outs[i], GROUND, outs[j], GROUND),
                               sc.alpha * a / r0)
                couplings.append(Coupling("A", i, j, 1 if a > 0 else -1, (name,)))
    return bld.finish(topology, cells, couplings)


def ic_map(sc: Scaled, spec: HardwareSpec) -> dict:
    """Node voltages for a transient from x₀ (used with `uic`): V(x{i}) = v₀·x₀[i]."""
    return {"linear": [[output_node(i), i, spec.volts_per_unit] for i in range(sc.A.shape[0])],
            "const": []}


class IdealTopology(ModuleTopology):
    """The ideal gm-C topology as a `Topology` object (see the module docstring)."""

    name = "ideal"
    noise_sign = NOISE_SIGN
    needs_factor = False
    uses_opamps = False

    scale_fn = staticmethod(scale)
    build_fn = staticmethod(build)
    ic_map_fn = staticmethod(ic_map)

    def predict_dc(self, scaled, spec: HardwareSpec, net: Netlist, cell_map: CellMap
                   ) -> Prediction:
        return Prediction(np.linalg.solve(scaled.A, scaled.b))


TOPOLOGY = IdealTopology()
