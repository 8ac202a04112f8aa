"""Topology `ideal` (gm-C reference): a capacitor per node, VCCS couplings, DC bias currents.

Node x{i} carries V = v₀·x_i. KCL: C dV_i/dt = −Σ_j (α A_ij/R₀) V_j + α v₀ b_i / R₀ (+ noise),
i.e. (τ/α) dx/dt = −(A x − b). The fewest elements: the reference for the other topologies.
"""

from __future__ import annotations

from ..netlist import GROUND, Netlist
from ..spec import HardwareSpec
from .scaling import Scaled

#: a current into the injection node moves x by this sign
NOISE_SIGN = 1.0


def output_node(i: int) -> str:
    return f"x{i}"


def injection_node(i: int) -> str:
    """Node where the noise current for variable i is injected."""
    return output_node(i)


def build(sc: Scaled, spec: HardwareSpec, net: Netlist) -> list[str]:
    """Add the ideal gm-C elements to `net`; returns the output nodes in variable order."""
    n = sc.A.shape[0]
    v0, r0 = spec.volts_per_unit, spec.R0_ohm
    outs = [output_node(i) for i in range(n)]
    for i in range(n):
        net.add(f"c{i}", (outs[i], GROUND), spec.C_F)
        net.add(f"ib{i}", (GROUND, outs[i]), sc.alpha * v0 * sc.b[i] / r0)
        for j in range(n):
            a = sc.A[i, j]
            if a != 0.0:
                net.add(f"g{i}_{j}", (outs[i], GROUND, outs[j], GROUND), sc.alpha * a / r0)
    return outs


def ic_map(sc: Scaled, spec: HardwareSpec) -> dict:
    """Node voltages for a transient from x₀ (used with `uic`): V(x{i}) = v₀·x₀[i]."""
    return {"linear": [[output_node(i), i, spec.volts_per_unit] for i in range(sc.A.shape[0])],
            "const": []}
