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

from ..netlist import GROUND, Netlist
from ..spec import HardwareSpec
from . import topology_dense

NOISE_SIGN = -1.0
output_node = topology_dense.output_node
injection_node = topology_dense.injection_node
ic_map = topology_dense.ic_map
add_integrator_cells = topology_dense.add_integrator_cells


def build(sc, spec: HardwareSpec, net: Netlist) -> list[str]:
    """Add the factored circuit for `sc` (a ScaledFactored) to `net`; returns output nodes."""
    S, lam, alpha = sc.S, sc.damping, sc.alpha
    r, n = S.shape
    r0, gain = spec.R0_ohm, spec.opamp_gain
    beta = math.sqrt(alpha)
    add_integrator_cells(net, sc.b, alpha, spec)
    for i in range(n):
        net.add(f"rd{i}", (f"o{i}", f"s{i}"), r0 / (alpha * lam))
    for k in range(r):
        t, y, q, mk = f"t{k}", f"y{k}", f"q{k}", f"m{k}"
        net.add(f"etia{k}", (y, GROUND, GROUND, t), gain)
        net.add(f"rtf{k}", (t, y), r0)
        net.add(f"rqin{k}", (y, mk), r0)
        net.add(f"rqfb{k}", (mk, q), r0)
        net.add(f"eq{k}", (q, GROUND, GROUND, mk), gain)
        for j in range(n):
            if S[k, j] != 0.0:
                src = f"o{j}" if S[k, j] > 0 else f"p{j}"
                net.add(f"rs{k}_{j}", (src, t), r0 / (beta * abs(S[k, j])))
    for k in range(r):
        for i in range(n):
            if S[k, i] != 0.0:
                src = f"q{k}" if S[k, i] > 0 else f"y{k}"
                net.add(f"rst{i}_{k}", (src, f"s{i}"), r0 / (beta * abs(S[k, i])))
    return [output_node(i) for i in range(n)]
