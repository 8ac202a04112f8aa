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
from ..netlist import Netlist, atomic_write, deck_digest
from ..sidecar import FORMAT, IcMap, Pruning, Sidecar, SystemRecord
from ..sidecar import Prediction as PredictionRecord
from ..spec import HardwareSpec
from ..system import FactoredSystem, LinearSystem
from . import topology_dense, topology_factored, topology_ideal, topology_oscillator
from .cellmap import CellMap
from .noise import NoiseSpec, add_noise
from .scaling import ScaledFactored
from .topology import TOPOLOGIES, Topology, register
from .topology import get as get_topology

#: the built-in topologies, one module each (each defines TOPOLOGY, a `Topology` object)
TOPOLOGY_MODULES = (topology_dense, topology_ideal, topology_factored, topology_oscillator)
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
    """A compiled netlist, its sidecar (:class:`~spu_circuits.sidecar.Sidecar`) and the extra
    files (noise samples) written beside it."""

    netlist: Netlist
    sidecar: Sidecar
    extra_files: dict[str, bytes] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.sidecar, dict):  # the sidecar's JSON object (older callers)
            self.sidecar = Sidecar.from_json(self.sidecar)

    @property
    def meta(self) -> dict:
        """The sidecar as the JSON object the file holds (a fresh copy: read-only view)."""
        return self.sidecar.to_json()

    @property
    def outputs(self) -> list[str]:
        return list(self.sidecar.outputs)

    @property
    def volts_per_unit(self) -> float:
        return float(self.sidecar.volts_per_unit)

    @property
    def cell_map(self) -> CellMap | None:
        """The deck's cell map (None for a sidecar written before cell maps existed)."""
        return self.sidecar.cell_map

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
        side = self.sidecar.with_(deck_sha256=deck_digest(text))
        files: dict[Path, str | bytes] = {deck: text, deck.with_suffix(".json"): side.dumps()}
        for fname, content in self.extra_files.items():
            files[out / fname] = content
        atomic_write(files, durable=durable)
        return deck


def compile_system(system: LinearSystem | FactoredSystem, topology: str = "dense",
                   spec: HardwareSpec | None = None, *, name: str | None = None,
                   noise: NoiseSpec | None = None, predict: bool = True,
                   gamma: float | None = None) -> CompiledCircuit:
    """Compile `system` into a netlist of the given topology ('dense', 'ideal', 'factored',
    'oscillator'; gamma: the oscillator's damping γ, default 2√λ_min(A)).

    A FactoredSystem (S, λ, b) compiles to any topology (dense/ideal use F̃ = SᵀS + λI);
    `factored` needs one. noise: optional noise sources (NoiseSpec: 'trnoise' or
    reproducible 'file' noise). predict=False skips the nodal-analysis prediction of the
    DC solution (recorded as null; for callers in a loop that do not need it).
    """
    spec = spec or HardwareSpec()
    noise = noise or NoiseSpec()
    topo = get_topology(topology)
    if gamma is not None:
        if not hasattr(topo, "with_gamma"):
            raise InputError("--damping-gamma applies to the oscillator topology only")
        topo = topo.with_gamma(gamma)
    sc = topo.scale(system, spec)
    if not topo.needs_factor and isinstance(system, FactoredSystem):
        system = system.as_linear_system()
    name = name or system.name
    net, cell_map = topo.build(sc, spec)
    net.title = f"spu-tngd {name}: {topology} SPU realising A x = b, N = {system.n}"
    outputs = cell_map.outputs
    net.options = dict(DECK_OPTIONS)
    predicted = (_predicted(system, sc, spec, topo, net, cell_map) if predict else
                 PredictionRecord(x_dc=None, rel_deviation_from_exact=None,
                                  cause="not computed"))
    net.header = _header(system, sc, spec, topology, outputs, predicted,
                         topo.dynamics_line(sc, spec) if hasattr(topo, "dynamics_line")
                         else None)
    check_netlist(net, spec)
    side = Sidecar(
        format=FORMAT,
        generator=f"spu-tngd {__version__}",
        name=name,
        topology=topology,
        n=system.n,
        outputs=tuple(outputs),
        noise_nodes=tuple(cell_map.summing_nodes),
        ic_map=IcMap.from_json(topo.ic_map(sc, spec)),
        volts_per_unit=spec.volts_per_unit,
        tau_s=sc.tau_s,
        tau_device_s=spec.tau_s,
        R0_ohm=spec.R0_ohm,
        C_F=spec.C_F,
        matrix_scale=sc.alpha,
        opamp_gain=spec.opamp_gain if topo.uses_opamps else None,
        system_sha256=system.digest(),
        condition_number=system.condition_number(),
        pruning=Pruning(threshold_rel=spec.prune_rel, auto=spec.auto_prune,
                        pairs_dropped=sc.pruned, dropped_rel_mass=sc.pruned_rel_mass),
        predicted=predicted,
        options=dict(DECK_OPTIONS),
        spec=spec,
        system=SystemRecord.of(system, factored=topo.needs_factor),
    )
    if hasattr(topo, "sidecar_extra"):  # e.g. the oscillator's damping and velocity nodes
        side = side.with_(extra={**side.extra, **topo.sidecar_extra(sc, spec, cell_map)})
    noise_roles: dict[str, str] = {}
    if hasattr(topo, "add_noise"):  # a topology with its own noise scaling (oscillator)
        noise_rec, extra = topo.add_noise(net, side, noise, sc.A, name, roles=noise_roles)
    else:
        # the dense A (N×N) only when the noise step must come from its fastest mode and
        # no λ_max is known already (an unpruned A's cached spectrum, or λ + σ_max(S)²)
        lam = _lambda_max(system, sc) if noise.kind != "none" and noise.step_tau is None \
            else None
        A_noise = sc.A if noise.kind != "none" and noise.step_tau is None and lam is None \
            else None
        noise_rec, extra = add_noise(net, side, noise, A_noise, name, topo.noise_sign,
                                     roles=noise_roles, lambda_max=lam)
    cell_map = cell_map.with_roles(noise_roles)
    check_cell_map(net, cell_map)
    side = side.with_(noise=noise_rec, element_counts=net.counts(), cell_map=cell_map)
    return CompiledCircuit(net, side, extra)


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
               cell_map: CellMap) -> PredictionRecord:
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
    return PredictionRecord(x_dc=tuple(x_circ.tolist()), rel_deviation_from_exact=dev,
                            cause=" and ".join(cause) or "none (ideal elements)")


def _header(system, sc, spec, topology, outputs, predicted, dynamics=None) -> list[str]:
    n = system.n
    dynamics = dynamics or (
        f"dynamics: tau dx/dt = -(A x - b), tau = R0*C/alpha = {sc.tau_s:.6g} s "
        f"(R0 = {spec.R0_ohm:g} ohm, C = {spec.C_F:g} F, alpha = {sc.alpha:.6g})")
    return [
        f"generator: spu-tngd {__version__}; topology: {topology}; N = {n}",
        f"system sha256: {system.digest()}",
        f"mapping: x_i = V({outputs[0]})/{spec.volts_per_unit:g} ... "
        f"V({outputs[-1]})/{spec.volts_per_unit:g} (volts per unit v0 = "
        f"{spec.volts_per_unit:g})",
        dynamics,
        f"couplings: resistor R0/(alpha*|A_ij|); pruned pairs: {sc.pruned} "
        f"(relative mass {sc.pruned_rel_mass:.3g})",
        "predicted DC deviation from A^-1 b: "
        + (f"{predicted.rel_deviation_from_exact:.3g} ({predicted.cause})"
           if predicted.x_dc is not None else "not computed"),
        "sidecar: the .json file beside this deck",
    ]
