"""The compiler: LinearSystem → scaling pass → topology pass → graph checks → deck + sidecar.

`compile_system(system, topology="dense")` returns a `CompiledCircuit`; `.write(dir, name)`
writes `dir/name.cir` and `dir/name.json` atomically.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import CompileError, InputError
from ..graphcheck import check_cell_map, check_netlist
from ..netlist import Netlist, atomic_write, deck_digest, dumps_sidecar
from ..spec import HardwareSpec
from ..system import FactoredSystem, LinearSystem
from . import topology_dense, topology_factored, topology_ideal
from .cellmap import CellMap
from .noise import NoiseSpec, add_noise
from .scaling import ScaledFactored
from .topology import TOPOLOGIES, Topology, register
from .topology import get as get_topology

#: the built-in topologies, one module each (each defines TOPOLOGY, a `Topology` object)
TOPOLOGY_MODULES = (topology_dense, topology_ideal, topology_factored)
for _mod in TOPOLOGY_MODULES:
    register(_mod.TOPOLOGY)

__all__ = ["TOPOLOGIES", "CompiledCircuit", "Topology", "compile_system", "get_topology",
           "register"]

#: simulator options every deck carries (tight tolerances: these circuits are linear)
DECK_OPTIONS = {"reltol": "1e-6", "abstol": "1e-15", "vntol": "1e-12", "chgtol": "1e-20",
                "method": "trap"}

#: refuse to compile a dense circuit whose finite op-amp gain alone costs more than this
MAX_PREDICTED_GAIN_ERROR = 0.1


@dataclass
class CompiledCircuit:
    """A compiled netlist and its sidecar metadata (plain JSON-able dict)."""

    netlist: Netlist
    meta: dict
    extra_files: dict[str, bytes] = field(default_factory=dict)

    @property
    def outputs(self) -> list[str]:
        return list(self.meta["outputs"])

    @property
    def volts_per_unit(self) -> float:
        return float(self.meta["volts_per_unit"])

    @property
    def cell_map(self) -> CellMap | None:
        """The deck's cell map (None for a sidecar written before cell maps existed)."""
        rec = self.meta.get("cell_map")
        return CellMap.from_json(rec) if rec else None

    def deck_text(self) -> str:
        return self.netlist.to_text()

    def write(self, out_dir: str | Path, name: str = "spu", *, durable: bool = True) -> Path:
        """Write `out_dir/name.cir` and `out_dir/name.json` (+ extra files) atomically
        (durable=False: without fsync, see `atomic_write`)."""
        if not name or "/" in name or name.startswith("."):
            raise InputError(f"invalid deck name {name!r}")
        out = Path(out_dir)
        if out.exists() and not out.is_dir():
            raise InputError(f"output path {out} exists and is not a folder")
        deck = out / f"{name}.cir"
        text = self.deck_text()
        meta = dict(self.meta, deck_sha256=deck_digest(text))
        files: dict[Path, str | bytes] = {deck: text,
                                          deck.with_suffix(".json"): dumps_sidecar(meta)}
        for fname, content in self.extra_files.items():
            files[out / fname] = content
        atomic_write(files, durable=durable)
        return deck


def compile_system(system: LinearSystem | FactoredSystem, topology: str = "dense",
                   spec: HardwareSpec | None = None, *, name: str | None = None,
                   noise: NoiseSpec | None = None, predict: bool = True) -> CompiledCircuit:
    """Compile `system` into a netlist of the given topology ('dense', 'ideal', 'factored').

    A FactoredSystem (S, λ, b) compiles to any topology (dense/ideal use F̃ = SᵀS + λI);
    `factored` needs one. noise: optional noise sources (NoiseSpec: 'trnoise' or
    reproducible 'file' noise). predict=False skips the nodal-analysis prediction of the
    DC solution (recorded as null; for callers in a loop that do not need it).
    """
    spec = spec or HardwareSpec()
    noise = noise or NoiseSpec()
    topo = get_topology(topology)
    sc = topo.scale(system, spec)
    if not topo.needs_factor and isinstance(system, FactoredSystem):
        system = system.as_linear_system()
    name = name or system.name
    net, cell_map = topo.build(sc, spec)
    net.title = f"spu-tngd {name}: {topology} SPU realising A x = b, N = {system.n}"
    outputs = cell_map.outputs
    net.options = dict(DECK_OPTIONS)
    predicted = (_predicted(system, sc, spec, topo, net, cell_map) if predict else
                 {"x_dc": None, "rel_deviation_from_exact": None, "cause": "not computed"})
    net.header = _header(system, sc, spec, topology, outputs, predicted)
    check_netlist(net, spec)
    meta = {
        "format": "spu-tngd-deck/1",
        "generator": f"spu-tngd {__version__}",
        "name": name,
        "topology": topology,
        "n": system.n,
        "outputs": outputs,
        "noise_nodes": cell_map.summing_nodes,
        "ic_map": topo.ic_map(sc, spec),
        "volts_per_unit": spec.volts_per_unit,
        "tau_s": sc.tau_s,
        "tau_device_s": spec.tau_s,
        "R0_ohm": spec.R0_ohm,
        "C_F": spec.C_F,
        "matrix_scale": sc.alpha,
        "opamp_gain": spec.opamp_gain if topo.uses_opamps else None,
        "element_counts": net.counts(),
        "system_sha256": system.digest(),
        "condition_number": system.condition_number(),
        "pruning": {"threshold_rel": spec.prune_rel, "auto": spec.auto_prune,
                    "pairs_dropped": sc.pruned,
                    "dropped_rel_mass": sc.pruned_rel_mass},
        "predicted": predicted,
        "options": dict(DECK_OPTIONS),
        "spec": spec.to_dict(),
        "noise": {"kind": "none"},
        "system": ({"S": system.S.tolist(), "damping": system.damping,
                    "b": system.b.tolist()} if topo.needs_factor
                   else {"A": system.A.tolist(), "b": system.b.tolist()}),
    }
    noise_roles: dict[str, str] = {}
    # the dense A (N×N) only when the noise step must come from its fastest mode and no
    # λ_max is known already
    lam = _lambda_max(system, sc) if noise.kind != "none" and noise.step_tau is None else None
    A_noise = sc.A if noise.kind != "none" and noise.step_tau is None and lam is None else None
    extra = add_noise(net, meta, noise, A_noise, name, topo.noise_sign, roles=noise_roles,
                      lambda_max=lam)
    meta["element_counts"] = net.counts()
    cell_map = cell_map.with_roles(noise_roles)
    check_cell_map(net, cell_map)
    meta["cell_map"] = cell_map.to_json()
    return CompiledCircuit(net, meta, extra)


def _lambda_max(system, sc) -> float | None:
    """λ_max of the matrix the circuit realises, without a new eigen-decomposition when the
    system already has it (unpruned A) or a factor gives it (λ + σ_max(S)²); else None."""
    if isinstance(sc, ScaledFactored):
        sv = np.linalg.svd(sc.S, compute_uv=False) if sc.S.size else np.zeros(1)
        return sc.damping + float(sv[0] ** 2)
    if isinstance(system, LinearSystem) and np.array_equal(sc.A, system.A):
        return system.lambda_max
    return None


def _predicted(system, sc, spec: HardwareSpec, topo: Topology, net: Netlist,
               cell_map: CellMap) -> dict:
    """What the circuit should return, and how far from A⁻¹b (finite gain, pruning)."""
    x_exact = system.solution()
    cause = []
    if sc.pruned:
        cause.append(f"pruning of {sc.pruned} couplings")
    pred = topo.predict_dc(sc, spec, net, cell_map)
    cause += pred.causes
    x_circ = np.asarray(pred.x_dc, dtype=float)
    dev = float(np.linalg.norm(x_circ - x_exact) / max(np.linalg.norm(x_exact), 1e-300))
    if topo.uses_opamps and dev > MAX_PREDICTED_GAIN_ERROR:
        raise CompileError(
            f"A's condition number {system.condition_number():.3g} is too large for op-amp "
            f"gain {spec.opamp_gain:g}: the circuit's DC solution would deviate from A⁻¹b by "
            f"{dev:.3g} (relative); raise --gain or precondition the system")
    return {"x_dc": x_circ.tolist(), "rel_deviation_from_exact": dev,
            "cause": " and ".join(cause) or "none (ideal elements)"}


def _header(system, sc, spec, topology, outputs, predicted) -> list[str]:
    n = system.n
    return [
        f"generator: spu-tngd {__version__}; topology: {topology}; N = {n}",
        f"system sha256: {system.digest()}",
        f"mapping: x_i = V({outputs[0]})/{spec.volts_per_unit:g} ... "
        f"V({outputs[-1]})/{spec.volts_per_unit:g} (volts per unit v0 = "
        f"{spec.volts_per_unit:g})",
        f"dynamics: tau dx/dt = -(A x - b), tau = R0*C/alpha = {sc.tau_s:.6g} s "
        f"(R0 = {spec.R0_ohm:g} ohm, C = {spec.C_F:g} F, alpha = {sc.alpha:.6g})",
        f"couplings: resistor R0/(alpha*|A_ij|); pruned pairs: {sc.pruned} "
        f"(relative mass {sc.pruned_rel_mass:.3g})",
        "predicted DC deviation from A^-1 b: "
        + (f"{predicted['rel_deviation_from_exact']:.3g} ({predicted['cause']})"
           if predicted["x_dc"] is not None else "not computed"),
        "sidecar: the .json file beside this deck",
    ]
