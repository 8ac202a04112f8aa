"""Topology `dense` (the paper's Fig. 6): op-amp RC integrators, inverters, a resistor array.

Per variable i: integrator op-amp (VCVS of gain G) with inverting input s{i}, output o{i},
capacitor C from s{i} to o{i}; inverter p{i} = −o{i} (R₀ in, R₀ feedback, input node n{i});
bias source u{i} = −α v₀ b_i through R₀ into s{i}; for each A_ij ≠ 0 a resistor
R₀/(α|A_ij|) into s{i} from o{j} (A_ij > 0) or p{j} (A_ij < 0). KCL at the virtual ground:
(τ/α) dx/dt = −(A x − b) with x = V(o)/v₀, exact as G → ∞.
"""

from __future__ import annotations

import numpy as np

from ..netlist import GROUND, Netlist
from ..spec import HardwareSpec
from .cellmap import Cell, CellMap, Coupling, Role
from .scaling import Scaled, scale
from .topology import Builder, ModuleTopology, Prediction

#: a current into the injection node moves x by this sign
NOISE_SIGN = -1.0


def output_node(i: int) -> str:
    return f"o{i}"


def injection_node(i: int) -> str:
    """The integrator's summing node, where the noise current for variable i enters."""
    return f"s{i}"


def add_integrator_cells(bld: Builder, b: np.ndarray, alpha: float, spec: HardwareSpec
                         ) -> list[Cell]:
    """Per variable i: integrator (s{i}, o{i}, C), inverter p{i} = −o{i} (input n{i}) and
    bias u{i} = −α v₀ b_i through R₀ into s{i}; returns the cells. Shared with the factored
    topology."""
    v0, r0, gain = spec.volts_per_unit, spec.R0_ohm, spec.opamp_gain
    cells = []
    for i in range(len(b)):
        s, o, p, m, u = f"s{i}", f"o{i}", f"p{i}", f"n{i}", f"u{i}"
        bld.add(Role.INTEGRATOR_OPAMP, f"eint{i}", (o, GROUND, GROUND, s), gain)
        bld.add(Role.INTEGRATOR_CAP, f"c{i}", (s, o), spec.C_F)
        bld.add(Role.INVERTER_R_IN, f"rinv{i}", (o, m), r0)
        bld.add(Role.INVERTER_R_FB, f"rfb{i}", (m, p), r0)
        bld.add(Role.INVERTER_OPAMP, f"einv{i}", (p, GROUND, GROUND, m), gain)
        bld.add(Role.BIAS_SOURCE, f"vb{i}", (u, GROUND), -alpha * v0 * b[i])
        bld.add(Role.BIAS_RESISTOR, f"rb{i}", (u, s), r0)
        cells.append(Cell(index=i, output=o, summing=s, capacitor=f"c{i}", bias=f"vb{i}",
                          inverted=p, integrator=f"eint{i}", inverter=f"einv{i}",
                          bias_resistor=f"rb{i}", inverter_r_in=f"rinv{i}",
                          inverter_r_fb=f"rfb{i}", internal_nodes=(m, u)))
    return cells


def build(sc: Scaled, spec: HardwareSpec, topology: str = "dense"
          ) -> tuple[Netlist, CellMap]:
    """The dense op-amp circuit for `sc` and its cell map (outputs in variable order)."""
    n = sc.A.shape[0]
    bld = Builder()
    cells = add_integrator_cells(bld, sc.b, sc.alpha, spec)
    couplings = []
    for i in range(n):
        for j in range(n):
            a = sc.A[i, j]
            if a != 0.0:
                src = f"o{j}" if a > 0 else f"p{j}"
                name = bld.add(Role.COUPLING, f"ra{i}_{j}", (src, f"s{i}"),
                               sc.resistance(a, spec))
                couplings.append(Coupling("A", i, j, 1 if a > 0 else -1, (name,)))
    return bld.finish(topology, cells, couplings)


def ic_map(sc, spec: HardwareSpec) -> dict:
    """Node voltages for a transient from x₀ (used with `uic`): V = coef·x₀[var] or const.

    The integrator cells' nodes (also those of the factored topology); other nodes are
    algebraic and follow at the first step."""
    n, v0, gain = len(sc.b), spec.volts_per_unit, spec.opamp_gain
    c = 1.0 / (1.0 + 2.0 / gain)
    linear = []
    for i in range(n):
        linear += [[f"o{i}", i, v0], [f"p{i}", i, -c * v0], [f"s{i}", i, -v0 / gain],
                   [f"n{i}", i, c * v0 / gain]]
    const = [[f"u{i}", -sc.alpha * v0 * float(sc.b[i])] for i in range(n)]
    return {"linear": linear, "const": const}


def finite_gain_dc(A: np.ndarray, b: np.ndarray, alpha: float, spec: HardwareSpec
                   ) -> np.ndarray:
    """DC solution x (N,) of the dense circuit with op-amp gain G, by nodal analysis in numpy.

    Virtual grounds sit at s_i = −o_i/G; inverters give p_j = −o_j/(1 + 2/G). KCL at s_i:
    Σ_j g_ij (v_src,j − s_i) + (u_i − s_i)/R₀ = 0 with g_ij = α|A_ij|/R₀.
    """
    gain, r0, v0 = spec.opamp_gain, spec.R0_ohm, spec.volts_per_unit
    c = 1.0 / (1.0 + 2.0 / gain)
    g = alpha * np.abs(A) / r0
    # coefficient of o_j in row i
    M = np.where(A > 0, g, -c * g)
    M = M + np.diag((g.sum(axis=1) + 1.0 / r0) / gain)
    u = -alpha * v0 * b
    o = np.linalg.solve(M, -u / r0)
    return o / v0


class DenseTopology(ModuleTopology):
    """The dense op-amp topology as a `Topology` object (see the module docstring)."""

    name = "dense"
    noise_sign = NOISE_SIGN
    needs_factor = False
    uses_opamps = True

    scale_fn = staticmethod(scale)
    build_fn = staticmethod(build)
    ic_map_fn = staticmethod(ic_map)

    def predict_dc(self, scaled, spec: HardwareSpec, net: Netlist, cell_map: CellMap
                   ) -> Prediction:
        return Prediction(finite_gain_dc(scaled.A, scaled.b, scaled.alpha, spec),
                          ("finite op-amp gain",))


TOPOLOGY = DenseTopology()
