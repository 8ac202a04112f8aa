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
from ..graphcheck import check_netlist
from ..netlist import Netlist, atomic_write, deck_digest, dumps_sidecar
from ..spec import HardwareSpec
from ..system import FactoredSystem, LinearSystem
from . import topology_dense, topology_factored, topology_ideal, topology_oscillator
from .noise import NoiseSpec, add_noise
from .scaling import scale, scale_factored

TOPOLOGIES = {"dense": topology_dense, "ideal": topology_ideal,
              "factored": topology_factored, "oscillator": topology_oscillator}

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

    def deck_text(self) -> str:
        return self.netlist.to_text()

    def write(self, out_dir: str | Path, name: str = "spu") -> Path:
        """Write `out_dir/name.cir` and `out_dir/name.json` (+ extra files) atomically."""
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
        atomic_write(files)
        return deck


def compile_system(system: LinearSystem | FactoredSystem, topology: str = "dense",
                   spec: HardwareSpec | None = None, *, name: str | None = None,
                   noise: NoiseSpec | None = None, predict: bool = True,
                   gamma: float | None = None) -> CompiledCircuit:
    """Compile `system` into a netlist of the given topology ('dense', 'ideal', 'factored').

    A FactoredSystem (S, λ, b) compiles to any topology (dense/ideal use F̃ = SᵀS + λI);
    `factored` needs one. noise: optional noise sources (NoiseSpec: 'trnoise' or
    reproducible 'file' noise). gamma: the oscillator's damping γ (None: 2√λ_min(A)); an
    oscillator compiles a FactoredSystem with the factored stages. predict=False skips the nodal-analysis prediction of the
    DC solution (recorded as null; for callers in a loop that do not need it).
    """
    spec = spec or HardwareSpec()
    noise = noise or NoiseSpec()
    if topology not in TOPOLOGIES:
        raise InputError(f"unknown topology {topology!r}; choose from {sorted(TOPOLOGIES)}")
    mod = TOPOLOGIES[topology]
    factored = isinstance(system, FactoredSystem)
    if topology == "oscillator" and factored:
        sc = scale_factored(system, spec)
    elif topology == "factored":
        if not factored:
            raise InputError("the factored topology needs F̃ = SᵀS + λI: give the factor S and "
                             "the damping λ (--factor S.npy --damping λ)")
        sc = scale_factored(system, spec)
    else:
        if factored:
            system = system.as_linear_system()
        sc = scale(system, spec)
    name = name or system.name
    net = Netlist(title=f"spu-tngd {name}: {topology} SPU realising A x = b, N = {system.n}")
    osc = None
    if topology == "oscillator":
        g, g_rule = topology_oscillator.resolve_gamma(sc, gamma)
        cell_map = topology_oscillator.build(sc, spec, net, g)
        outputs = cell_map.outputs
        osc = topology_oscillator.sidecar_record(sc, g, g_rule, cell_map)
    else:
        if gamma is not None:
            raise InputError("--damping-gamma applies to the oscillator topology only")
        outputs = mod.build(sc, spec, net)
    net.options = dict(DECK_OPTIONS)
    predicted = (_predicted(system, sc, spec, topology, net, outputs, osc) if predict else
                 {"x_dc": None, "rel_deviation_from_exact": None, "cause": "not computed"})
    net.header = _header(system, sc, spec, topology, outputs, predicted, osc)
    check_netlist(net, spec)
    meta = {
        "format": "spu-tngd-deck/1",
        "generator": f"spu-tngd {__version__}",
        "name": name,
        "topology": topology,
        "n": system.n,
        "outputs": outputs,
        "noise_nodes": [mod.injection_node(i) for i in range(system.n)],
        "ic_map": mod.ic_map(sc, spec),
        "volts_per_unit": spec.volts_per_unit,
        "tau_s": sc.tau_s,
        "tau_device_s": spec.tau_s,
        "R0_ohm": spec.R0_ohm,
        "C_F": spec.C_F,
        "matrix_scale": sc.alpha,
        "opamp_gain": spec.opamp_gain if topology != "ideal" else None,
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
                    "b": system.b.tolist()} if factored and topology != "dense"
                   and topology != "ideal"
                   else {"A": system.A.tolist(), "b": system.b.tolist()}),
    }
    if osc is not None:
        meta["oscillator"] = osc
        extra = topology_oscillator.add_noise(net, meta, noise, sc.A, name, osc["damping_gamma"])
    else:
        extra = add_noise(net, meta, noise, sc.A, name, mod.NOISE_SIGN)
    meta["element_counts"] = net.counts()
    return CompiledCircuit(net, meta, extra)


def _netlist_dc(net: Netlist, outputs: list[str], v0: float) -> np.ndarray:
    """DC solution read off the netlist by the independent parser's nodal analysis."""
    from ..parser import dc_solution, parse_deck

    volts = dc_solution(parse_deck(net.to_text()))
    return np.array([volts[o] for o in outputs]) / v0


def _predicted(system, sc, spec: HardwareSpec, topology: str, net: Netlist,
               outputs: list[str], osc: dict | None = None) -> dict:
    """What the circuit should return, and how far from A⁻¹b (finite gain, pruning)."""
    x_exact = system.solution()
    cause = []
    if sc.pruned:
        cause.append(f"pruning of {sc.pruned} couplings")
    if topology == "dense":
        cause.append("finite op-amp gain")
        x_circ = topology_dense.finite_gain_dc(sc.A, sc.b, sc.alpha, spec)
    elif topology == "oscillator" and not hasattr(sc, "S"):
        cause.append("finite op-amp gain")
        x_circ = topology_oscillator.finite_gain_dc(sc.A, sc.b, sc.alpha, osc["damping_gamma"],
                                                    spec)
    elif topology in ("factored", "oscillator"):
        cause.append("finite op-amp gain")
        x_circ = _netlist_dc(net, outputs, spec.volts_per_unit)
    else:
        x_circ = np.linalg.solve(sc.A, sc.b)
    dev = float(np.linalg.norm(x_circ - x_exact) / max(np.linalg.norm(x_exact), 1e-300))
    if topology != "ideal" and dev > MAX_PREDICTED_GAIN_ERROR:
        raise CompileError(
            f"A's condition number {system.condition_number():.3g} is too large for op-amp "
            f"gain {spec.opamp_gain:g}: the circuit's DC solution would deviate from A⁻¹b by "
            f"{dev:.3g} (relative); raise --gain or precondition the system")
    return {"x_dc": x_circ.tolist(), "rel_deviation_from_exact": dev,
            "cause": " and ".join(cause) or "none (ideal elements)"}


def _header(system, sc, spec, topology, outputs, predicted, osc=None) -> list[str]:
    n = system.n
    dyn = (f"dynamics: tau dx/dt = -(A x - b), tau = R0*C/alpha = {sc.tau_s:.6g} s "
           f"(R0 = {spec.R0_ohm:g} ohm, C = {spec.C_F:g} F, alpha = {sc.alpha:.6g})")
    if osc is not None:
        dyn = (f"dynamics: tau dx/dt = v, tau dv/dt = -(A x - b) - gamma v, gamma = "
               f"{osc['damping_gamma']:.6g}, tau = R0*C/alpha = {sc.tau_s:.6g} s (R0 = "
               f"{spec.R0_ohm:g} ohm, C = {spec.C_F:g} F, alpha = {sc.alpha:.6g}); v_i = "
               f"V(w{{i}})/v0")
    return [
        f"generator: spu-tngd {__version__}; topology: {topology}; N = {n}",
        f"system sha256: {system.digest()}",
        f"mapping: x_i = V({outputs[0]})/{spec.volts_per_unit:g} ... "
        f"V({outputs[-1]})/{spec.volts_per_unit:g} (volts per unit v0 = "
        f"{spec.volts_per_unit:g})",
        dyn,
        f"couplings: resistor R0/(alpha*|A_ij|); pruned pairs: {sc.pruned} "
        f"(relative mass {sc.pruned_rel_mass:.3g})",
        "predicted DC deviation from A^-1 b: "
        + (f"{predicted['rel_deviation_from_exact']:.3g} ({predicted['cause']})"
           if predicted["x_dc"] is not None else "not computed"),
        "sidecar: the .json file beside this deck",
    ]
