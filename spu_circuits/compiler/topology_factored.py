"""Topology `factored`: F̃ = SᵀS + λI with transimpedance stages and two resistor arrays.

Per variable i, as in `dense`: integrator (s{i}, o{i}, C), inverter p{i} = −o{i}, bias u{i}
through R₀ into s{i}, plus damping R₀/(αλ) from o{i} into s{i}. Per row k of S (r rows): a
transimpedance stage with virtual ground t{k}, output y{k}, feedback R₀, fed by R₀/(β|S_kj|)
from o{j} (S_kj > 0) or p{j} (S_kj < 0): y_k = −β (S o)_k; an inverter q{k} = −y{k} (input
node m{k}); and R₀/(β|S_ki|) into s{i} from q{k} (S_ki > 0) or y{k} (S_ki < 0). With β² = α
the integrators see α(λ + SᵀS): (τ/α) dx/dt = −(F̃ x − b). 2·nnz(S) array resistors instead
of the N² of `dense` (the paper's App. C uses three arrays, r(r + 2N) resistors).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ..errors import InputError
from ..netlist import GROUND, Netlist
from ..spec import HardwareSpec
from ..system import FactoredSystem
from . import topology_dense
from .cellmap import CellMap, Coupling, Role, Stage
from .scaling import ScaledFactored, scale_factored
from .topology import Builder, ModuleTopology, Prediction

NOISE_SIGN = -1.0
output_node = topology_dense.output_node
injection_node = topology_dense.injection_node
ic_map = topology_dense.ic_map
add_integrator_cells = topology_dense.add_integrator_cells


def build(sc: ScaledFactored, spec: HardwareSpec, topology: str = "factored"
          ) -> tuple[Netlist, CellMap]:
    """The factored circuit for `sc` and its cell map (outputs in variable order)."""
    S, lam, alpha = sc.S, sc.damping, sc.alpha
    r, n = S.shape
    r0, gain = spec.R0_ohm, spec.opamp_gain
    bld = Builder()
    cells = add_integrator_cells(bld, sc.b, alpha, spec)
    couplings, stages = add_factor_couplings(bld, S, lam, alpha, r0, gain,
                                             lambda i: f"s{i}")
    return bld.finish(topology, cells, couplings, stages)


def add_factor_couplings(bld: Builder, S: np.ndarray, lam: float, alpha: float, r0: float,
                         gain: float, summing: Callable[[int], str]
                         ) -> tuple[list[Coupling], list[Stage]]:
    """Add α(λ + SᵀS) into the summing nodes `summing(i)` of the cells (outputs o{i},
    inverted p{i}): the damping R₀/(αλ) per cell, the r transimpedance stages with their
    inverters and the two arrays R₀/(β|S|), β = √α. Returns the couplings and stages."""
    r, n = S.shape
    beta = math.sqrt(alpha)
    couplings, stages = [], []
    for i in range(n):
        name = bld.add(Role.DAMPING, f"rd{i}", (f"o{i}", summing(i)), r0 / (alpha * lam))
        couplings.append(Coupling("damping", i, i, 1, (name,)))
    for k in range(r):
        t, y, q, mk = f"t{k}", f"y{k}", f"q{k}", f"m{k}"
        bld.add(Role.STAGE_OPAMP, f"etia{k}", (y, GROUND, GROUND, t), gain)
        bld.add(Role.STAGE_R_FB, f"rtf{k}", (t, y), r0)
        bld.add(Role.INVERTER_R_IN, f"rqin{k}", (y, mk), r0)
        bld.add(Role.INVERTER_R_FB, f"rqfb{k}", (mk, q), r0)
        bld.add(Role.INVERTER_OPAMP, f"eq{k}", (q, GROUND, GROUND, mk), gain)
        stages.append(Stage(index=k, summing=t, output=y, inverted=q, opamp=f"etia{k}",
                            inverter=f"eq{k}", feedback=f"rtf{k}", inverter_r_in=f"rqin{k}",
                            inverter_r_fb=f"rqfb{k}", internal_nodes=(mk,)))
        for j in range(n):
            if S[k, j] != 0.0:
                src = f"o{j}" if S[k, j] > 0 else f"p{j}"
                name = bld.add(Role.COUPLING, f"rs{k}_{j}", (src, t),
                               r0 / (beta * abs(S[k, j])))
                couplings.append(Coupling("S_in", k, j, 1 if S[k, j] > 0 else -1, (name,)))
    for k in range(r):
        for i in range(n):
            if S[k, i] != 0.0:
                src = f"q{k}" if S[k, i] > 0 else f"y{k}"
                name = bld.add(Role.COUPLING, f"rst{i}_{k}", (src, summing(i)),
                               r0 / (beta * abs(S[k, i])))
                couplings.append(Coupling("S_out", k, i, 1 if S[k, i] > 0 else -1, (name,)))
    return couplings, stages


class FactoredTopology(ModuleTopology):
    """The factored topology as a `Topology` object (see the module docstring)."""

    name = "factored"
    noise_sign = NOISE_SIGN
    needs_factor = True
    uses_opamps = True

    def scale(self, system, spec: HardwareSpec) -> ScaledFactored:
        if not isinstance(system, FactoredSystem):
            raise InputError("the factored topology needs F̃ = SᵀS + λI: give the factor S "
                             "and the damping λ (--factor S.npy --damping λ)")
        return scale_factored(system, spec)

    build_fn = staticmethod(build)
    ic_map_fn = staticmethod(ic_map)

    def predict_dc(self, scaled, spec: HardwareSpec, net: Netlist, cell_map: CellMap
                   ) -> Prediction:
        """Nodal analysis of the netlist itself (the independent parser's MNA)."""
        from ..parser import dc_solution, parse_deck

        volts = dc_solution(parse_deck(net.to_text()))
        x = np.array([volts[o] for o in cell_map.outputs]) / spec.volts_per_unit
        return Prediction(x, ("finite op-amp gain",))


TOPOLOGY = FactoredTopology()
