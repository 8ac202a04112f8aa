"""The deck contract: the typed, versioned sidecar beside every compiled deck (``NAME.json``).

A :class:`Sidecar` is what the compiler knows about the deck it wrote: which nodes hold x
(``outputs``, x_i = V(outputs[i]) / ``volts_per_unit``), the time unit ``tau_s`` (s), the
system it realises, the noise it carries (the :class:`NoiseRecord` keeps the
:class:`~spu_circuits.compiler.noise.NoiseSpec` itself), what it should return
(:class:`Prediction`) and, when those passes ran, the realisation, the tiling and the cell map.

This module is the only place that reads or writes sidecar keys: every other module works with
the dataclasses. ``Sidecar.to_json()`` gives the JSON object (keys in a fixed order, so the
same deck gives a byte-identical file), ``Sidecar.from_json()`` reads one back and checks the
``format`` version (an unknown one is an :class:`~spu_circuits.errors.InputError`).

The keys users and scripts read (``outputs``, ``volts_per_unit``, ``tau_s``, ``R0_ohm``,
``C_F``, ``topology``, ``element_counts``, ``system_sha256``, ``deck_sha256``, ``ic_map``,
``predicted``) keep their names and meaning. Optional records are fields defaulting to None and
are written only when present; to add one, add a field here, its JSON key to
:data:`_OPTIONAL_RECORDS` and its (de)serialisation in :meth:`Sidecar.to_json` /
:meth:`Sidecar.from_json`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import InputError
from .spec import HardwareSpec
from .system import FactoredSystem, LinearSystem

if TYPE_CHECKING:
    from .board.record import BoardRecord
    from .compiler.cellmap import CellMap
    from .compiler.noise import NoiseSpec

#: the sidecar format this code writes
FORMAT = "spu-tngd-deck/1"
#: the formats this code reads
KNOWN_FORMATS = (FORMAT,)
#: keys a hand-written sidecar must hold for the deck to be read in x units
REQUIRED_KEYS = ("outputs", "volts_per_unit", "tau_s", "topology", "n")


def _tuple(x) -> tuple | None:
    return None if x is None else tuple(x)


# ------------------------------------------------------------------------------ records


@dataclass(frozen=True)
class IcMap:
    """Initial node voltages for a state x0: V(node) = coef·x0[var] (``linear``) or a fixed
    value in V (``const``, e.g. the bias DAC nodes)."""

    linear: tuple[tuple[str, int, float], ...] = ()
    const: tuple[tuple[str, float], ...] = ()

    def voltages(self, x0: np.ndarray) -> dict[str, float]:
        """Node → V (V) that start the circuit at state x0 (N,)."""
        ic = {node: coef * x0[var] for node, var, coef in self.linear}
        ic.update({node: val for node, val in self.const})
        return ic

    def to_json(self) -> dict:
        return {"linear": [list(r) for r in self.linear], "const": [list(r) for r in self.const]}

    @classmethod
    def from_json(cls, d: dict) -> IcMap:
        return cls(tuple((str(n), int(v), c) for n, v, c in d.get("linear", [])),
                   tuple((str(n), v) for n, v in d.get("const", [])))


@dataclass(frozen=True)
class Pruning:
    """Couplings the scaling pass dropped: rule (relative threshold, auto for the resistor
    range), how many (i, j) pairs and their relative Frobenius mass."""

    threshold_rel: float
    auto: bool
    pairs_dropped: int
    dropped_rel_mass: float

    def to_json(self) -> dict:
        return {"threshold_rel": self.threshold_rel, "auto": self.auto,
                "pairs_dropped": self.pairs_dropped, "dropped_rel_mass": self.dropped_rel_mass}

    @classmethod
    def from_json(cls, d: dict) -> Pruning:
        return cls(d["threshold_rel"], d["auto"], d["pairs_dropped"], d["dropped_rel_mass"])


@dataclass(frozen=True)
class Prediction:
    """What the deck's DC solution should be (x units, (N,)) and its relative distance from
    A⁻¹b, with the cause (finite gain, pruning, realisation, block Jacobi); None when not
    computed."""

    x_dc: tuple[float, ...] | None
    rel_deviation_from_exact: float | None
    cause: str
    #: tiled decks without their inter-tile couplings: distance from A_bj⁻¹b
    rel_deviation_from_block_jacobi: float | None = None

    def to_json(self) -> dict:
        d: dict[str, Any] = {"x_dc": None if self.x_dc is None else list(self.x_dc),
                             "rel_deviation_from_exact": self.rel_deviation_from_exact}
        if self.rel_deviation_from_block_jacobi is not None:
            d["rel_deviation_from_block_jacobi"] = self.rel_deviation_from_block_jacobi
        d["cause"] = self.cause
        return d

    @classmethod
    def from_json(cls, d: dict) -> Prediction:
        return cls(_tuple(d.get("x_dc")), d.get("rel_deviation_from_exact"),
                   d.get("cause", ""), d.get("rel_deviation_from_block_jacobi"))


@dataclass(frozen=True, eq=False)
class SystemRecord:
    """The system the deck realises: dense A (N, N) and b (N,), or the factor S (r, N), the
    damping λ and b of F̃ = SᵀS + λI."""

    b: np.ndarray
    A: np.ndarray | None = None
    S: np.ndarray | None = None
    damping: float | None = None

    @classmethod
    def of(cls, system: LinearSystem | FactoredSystem, factored: bool) -> SystemRecord:
        """The record of `system`; factored=True keeps S and λ (the factored topology)."""
        if factored:
            return cls(b=np.asarray(system.b), S=np.asarray(system.S), damping=system.damping)
        return cls(b=np.asarray(system.b), A=np.asarray(system.A))

    @property
    def is_factored(self) -> bool:
        return self.S is not None

    def matrix(self) -> tuple[np.ndarray, np.ndarray]:
        """(A (N, N), b (N,)) float64; A = SᵀS + λI (symmetrised) for a factored record."""
        b = np.asarray(self.b, dtype=float)
        if self.S is None:
            return np.asarray(self.A, dtype=float), b
        S = np.asarray(self.S, dtype=float)
        A = S.T @ S + float(self.damping) * np.eye(S.shape[1])
        return 0.5 * (A + A.T), b

    def to_system(self, name: str = "system") -> LinearSystem | FactoredSystem:
        if self.S is not None:
            return FactoredSystem.from_arrays(np.array(self.S), self.damping, np.array(self.b),
                                              name=name)
        return LinearSystem.from_arrays(np.array(self.A), np.array(self.b), name=name)

    def to_json(self) -> dict:
        if self.S is not None:
            return {"S": np.asarray(self.S).tolist(), "damping": self.damping,
                    "b": np.asarray(self.b).tolist()}
        return {"A": np.asarray(self.A).tolist(), "b": np.asarray(self.b).tolist()}

    @classmethod
    def from_json(cls, d: dict) -> SystemRecord:
        try:
            if "S" in d:
                return cls(b=np.array(d["b"]), S=np.array(d["S"]), damping=d["damping"])
            return cls(b=np.array(d["b"]), A=np.array(d["A"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"sidecar's 'system' record is malformed ({exc})") from None


@dataclass(frozen=True)
class NoiseRecord:
    """The deck's noise sources: ``spec`` is the specification the noise pass realised; the
    other fields are what it derived (κ₀, the step h = ``step_tau``·τ = ``step_s``, the current
    intensity ``sigma_I`` (A/√Hz) and per-sample amplitude ``amplitude_A`` (A), and for file
    noise the seed, files, sample count, covered duration (τ) and injection sign)."""

    kind: str = "none"
    spec: NoiseSpec | None = None
    kappa0: float | None = None
    step_tau: float | None = None
    step_s: float | None = None
    sigma_I: float | None = None
    amplitude_A: float | None = None
    step_rule: str | None = None
    reproducible: bool | None = None
    seed: int | None = None
    files: tuple[str, ...] | None = None
    n_samples: int | None = None
    duration_tau: float | None = None
    sign: float | None = None

    _KEYS = ("kappa0", "step_tau", "step_s", "sigma_I", "amplitude_A", "step_rule",
             "reproducible", "seed", "files", "n_samples", "duration_tau", "sign")

    def noise_spec(self) -> NoiseSpec:
        """The NoiseSpec that recompiles this noise (NoiseSpec() for a noiseless deck)."""
        from .compiler.noise import NoiseSpec

        return self.spec if self.spec is not None else NoiseSpec()

    def to_json(self) -> dict:
        d: dict[str, Any] = {"kind": self.kind}
        for k in self._KEYS:
            v = getattr(self, k)
            if v is not None:
                d[k] = list(v) if k == "files" else v
        if self.kind != "none" and self.spec is not None:
            s = self.spec
            d["spec"] = {"kind": s.kind, "kappa0": s.kappa0, "step_tau": s.step_tau,
                         "seed": s.seed, "duration_tau": s.duration_tau}
        return d

    @classmethod
    def from_json(cls, d: dict | None) -> NoiseRecord:
        from .compiler.noise import NoiseSpec

        d = d or {"kind": "none"}
        kind = d.get("kind", "none")
        vals = {k: d[k] for k in cls._KEYS if k in d}
        if "files" in vals:
            vals["files"] = tuple(vals["files"])
        if kind == "none":
            spec = NoiseSpec()
        elif "spec" in d:
            spec = NoiseSpec(**d["spec"])
        else:
            spec = _legacy_noise_spec(kind, d)
        return cls(kind=kind, spec=spec, **vals)


def _legacy_noise_spec(kind: str, d: dict) -> NoiseSpec:
    """The NoiseSpec of a noise record written before the spec itself was recorded: worked
    back from the derived values (a file realisation covers ⌈d/h⌉ + 2 steps)."""
    from .compiler.noise import NoiseSpec

    try:
        h = d["step_tau"]
        dur = 100.0
        if kind == "file":
            dur = (int(round(d["duration_tau"] / h)) - 2.5) * h
        return NoiseSpec(kind=kind, kappa0=d["kappa0"],
                         step_tau=h if d.get("step_rule") == "given" else None,
                         seed=d.get("seed", 0), duration_tau=dur)
    except (KeyError, TypeError, ZeroDivisionError) as exc:
        raise InputError(f"sidecar's 'noise' record is malformed ({exc})") from None


@dataclass(frozen=True)
class OpampRecord:
    """The op-amp model of a realised deck: 'vcvs' (ideal gain), 'single_pole' (macromodel
    subcircuit, with its internal resistor) or 'none' (ideal topology)."""

    model: str
    gain: float | None = None
    gbw_hz: float | None = None
    subckt: str | None = None
    internal_R_ohm: float | None = None
    range_check: str | None = None
    #: the op-amp part's record (catalogue part, figures, drawn offsets, user model, bias
    #: DAC), written after the fields above as the realisation pass made it
    extra: dict = field(default_factory=dict)

    _OPTIONAL = ("subckt", "internal_R_ohm", "range_check")

    @property
    def part(self) -> str | None:
        """The catalogue part's name (None: a generic model)."""
        return self.extra.get("part")

    @property
    def bias_dac_bits(self) -> int | None:
        """Bits of the bias DAC the deck was realised with (None: exact bias sources)."""
        return (self.extra.get("bias_dac") or {}).get("bits")

    @property
    def figures(self) -> dict | None:
        """The catalogue part's figures (gain, GBW, noise densities, offsets; SI units)."""
        return self.extra.get("figures")

    def to_json(self) -> dict:
        d: dict[str, Any] = {"model": self.model, "gain": self.gain, "gbw_hz": self.gbw_hz}
        for k in self._OPTIONAL:
            if getattr(self, k) is not None:
                d[k] = getattr(self, k)
        d.update(self.extra)
        return d

    @classmethod
    def from_json(cls, d: dict) -> OpampRecord:
        known = ("model", "gain", "gbw_hz", *cls._OPTIONAL)
        return cls(**{k: d.get(k) for k in known},
                   extra={k: v for k, v in d.items() if k not in known})


@dataclass(frozen=True, eq=False)
class Realization:
    """What the realisation pass built (``spu compile --series/--tolerance/--gbw/--vsat``):
    part series and tolerance, op-amp model, the effective system A_eff (N, N), b_eff (N,)
    and x_eff = A_eff⁻¹b_eff read back from the deck, its errors and the Johnson-noise floor.
    The sub-records (swing, compensation, baseline, johnson, stability, parts, options,
    Monte-Carlo) are reports: written as the pass made them."""

    series: str
    capacitor_series: str
    tolerance: float
    tolerance_distribution: str
    monte_carlo: dict | None
    opamp: OpampRecord
    swing: dict | None
    compensation: dict
    baseline: dict
    rel_error_A: float
    rel_error_x: float
    A_eff: np.ndarray
    b_eff: np.ndarray
    x_eff: np.ndarray
    tau_s: float
    kappa0_deck: tuple[float, ...]
    johnson: dict
    stability: dict | None
    parts: dict
    extraction: str
    options: dict
    #: electrical-rule findings the pass accepted (warnings), as records
    erc: list[dict] | None = None
    #: element name → nominal value (Ω, F, S) before the tolerance draw (Monte-Carlo decks)
    nominal_values: dict[str, float] | None = None
    #: why the capacitor was changed (a GBW-limited op-amp raised C), when it was
    capacitor_choice: str | None = None
    #: tolerance spread over many draws (the committed examples)
    monte_carlo_summary: dict | None = None
    #: keys this version does not know, kept as they are
    extra: dict = field(default_factory=dict)
    #: the key order of the record read (so a round trip is byte-identical)
    key_order: tuple[str, ...] = field(default=(), repr=False)

    _ARRAYS = ("A_eff", "b_eff", "x_eff")
    _OPTIONAL = ("erc", "nominal_values", "capacitor_choice", "monte_carlo_summary")

    @property
    def v_sat(self) -> float | None:
        """The op-amp rails ±V the swing was sized for (V), None when not sized."""
        return None if not self.swing else self.swing.get("v_sat")

    @property
    def kappa0_johnson_full(self) -> list[float] | None:
        """Johnson-noise κ₀ per variable of every resistor (N,), None when not computed."""
        return (self.johnson or {}).get("kappa0_full")

    @property
    def sized_kappa0(self) -> float | None:
        """The κ₀ the output swing (v₀, ERC) was sized for, None when v₀ was not chosen."""
        return None if not self.swing else self.swing.get("kappa0")

    def to_json(self) -> dict:
        d: dict[str, Any] = {}
        for f in fields(self):
            if f.name in ("extra", "key_order"):
                continue
            v = getattr(self, f.name)
            if f.name in self._OPTIONAL and v is None:
                continue
            if f.name == "opamp":
                v = v.to_json()
            elif f.name in self._ARRAYS:
                v = np.asarray(v).tolist()
            elif f.name == "kappa0_deck":
                v = list(v)
            d[f.name] = v
        d.update(self.extra)
        return _in_order(d, self.key_order)

    @classmethod
    def from_json(cls, d: dict) -> Realization:
        known = {f.name for f in fields(cls)} - {"extra", "key_order"}
        vals = {k: d.get(k) for k in known}
        vals["opamp"] = OpampRecord.from_json(d.get("opamp") or {"model": "none"})
        for k in cls._ARRAYS:
            vals[k] = np.array(d[k], dtype=float)
        vals["kappa0_deck"] = tuple(d.get("kappa0_deck") or ())
        return cls(**vals, extra={k: v for k, v in d.items() if k not in known},
                   key_order=tuple(d))


def _in_order(d: dict, order: tuple[str, ...]) -> dict:
    """`d` with the keys of `order` first, in that order, then the others as they are."""
    if not order:
        return d
    out = {k: d[k] for k in order if k in d}
    out.update((k, v) for k, v in d.items() if k not in out)
    return out


@dataclass(frozen=True)
class Tiling:
    """How ``spu compile --tiles K`` split the deck: the cells of each tile, the subcircuit
    and instance names, the cut weight of the partition (and of the contiguous split), and the
    block-Jacobi record when the inter-tile couplings were dropped. ``record`` holds the
    remaining report fields (written as the tiles pass made them)."""

    K: int
    n_tiles: int
    tiles: tuple[tuple[int, ...], ...]
    inter_tile_wires: int
    cut_fraction: float
    naive_cut_fraction: float
    block_jacobi: dict | None
    record: dict = field(default_factory=dict, repr=False)

    @property
    def block_jacobi_rel_error(self) -> float | None:
        """‖A_bj⁻¹b − A⁻¹b‖/‖A⁻¹b‖ when the inter-tile couplings were dropped, else None."""
        return None if not self.block_jacobi else self.block_jacobi["rel_error"]

    def to_json(self) -> dict:
        return dict(self.record)

    @classmethod
    def from_json(cls, d: dict) -> Tiling:
        return cls(K=d["K"], n_tiles=d["n_tiles"], tiles=tuple(tuple(t) for t in d["tiles"]),
                   inter_tile_wires=d["inter_tile_wires"], cut_fraction=d["cut_fraction"],
                   naive_cut_fraction=d["naive_cut_fraction"],
                   block_jacobi=d.get("block_jacobi"), record=dict(d))


# ------------------------------------------------------------------------------ the sidecar

#: optional records: JSON key → Sidecar field (written only when not None, in this order)
_OPTIONAL_RECORDS = ("cell_map", "realization", "tiles", "board")


@dataclass(frozen=True)
class Sidecar:
    """Everything a compiled deck's sidecar records (see the module docstring).

    name, topology, n; outputs: x_i = V(outputs[i]) / volts_per_unit (V per unit of x);
    tau_s: the circuit's time unit (s; τ_device/α); tau_device_s = R₀C; R0_ohm, C_F;
    matrix_scale α; opamp_gain (None: ideal elements); noise_nodes: the node each cell's
    noise current enters; ic_map: initial conditions; element_counts; system_sha256 and
    deck_sha256 (set when the deck is written) detect edits; options: the simulator options
    of the deck; spec: the hardware parameters it was compiled with.
    """

    name: str
    topology: str
    n: int
    outputs: tuple[str, ...]
    volts_per_unit: float
    tau_s: float
    format: str = FORMAT
    generator: str | None = None
    noise_nodes: tuple[str, ...] | None = None
    ic_map: IcMap | None = None
    tau_device_s: float | None = None
    R0_ohm: float | None = None
    C_F: float | None = None
    matrix_scale: float | None = None
    opamp_gain: float | None = None
    element_counts: dict[str, int] = field(default_factory=dict)
    system_sha256: str | None = None
    condition_number: float | None = None
    pruning: Pruning | None = None
    predicted: Prediction | None = None
    options: dict[str, str] = field(default_factory=dict)
    spec: HardwareSpec | None = None
    noise: NoiseRecord = field(default_factory=NoiseRecord)
    system: SystemRecord | None = field(default=None, compare=False)
    realization: Realization | None = field(default=None, compare=False)
    tiles: Tiling | None = None
    cell_map: CellMap | None = None
    #: a programmable board's record (`spu board`: spec, parts, slots, units), None otherwise
    board: BoardRecord | None = None
    #: keys this version does not know (records of other passes, hand-written keys), kept
    #: as they are
    extra: dict = field(default_factory=dict)
    deck_sha256: str | None = None
    #: the key order of the sidecar read (so that reading and writing it back is
    #: byte-identical); empty for a sidecar built by the compiler (the canonical order)
    key_order: tuple[str, ...] = field(default=(), compare=False, repr=False)

    def with_(self, **changes) -> Sidecar:
        """A copy with some fields changed; `calibration=` sets that record."""
        if "calibration" in changes:
            changes["extra"] = {**self.extra, "calibration": changes.pop("calibration")}
        return replace(self, **changes)

    @property
    def calibration(self) -> dict | None:
        """`spu calibrate`'s record (bias trims per DAC in V, probe, ADC), None without one."""
        return self.extra.get("calibration")

    # ---- views ---------------------------------------------------------------------------
    def require(self, *names: str, why: str) -> None:
        """InputError naming the fields (of `names`) this sidecar lacks."""
        missing = [k for k in names if getattr(self, k) is None]
        if missing:
            raise InputError(f"the sidecar lacks {', '.join(missing)}: {why}")

    def to_system(self) -> LinearSystem | FactoredSystem | None:
        """The recorded system (None if absent); both kinds expose .A, .b."""
        return None if self.system is None else self.system.to_system(self.name)

    def ic_voltages(self, x0: np.ndarray) -> dict[str, float]:
        """Initial node voltages (V) that start the circuit at state x0 (N,)."""
        if not self.ic_map:
            return {o: self.volts_per_unit * x0[i] for i, o in enumerate(self.outputs)}
        return self.ic_map.voltages(x0)

    # ---- JSON ----------------------------------------------------------------------------
    def to_json(self) -> dict:
        """The JSON object (plain dicts/lists; keys in the file's order)."""
        d: dict[str, Any] = {
            "format": self.format, "generator": self.generator, "name": self.name,
            "topology": self.topology, "n": self.n, "outputs": list(self.outputs),
            "noise_nodes": None if self.noise_nodes is None else list(self.noise_nodes),
            "ic_map": None if self.ic_map is None else self.ic_map.to_json(),
            "volts_per_unit": self.volts_per_unit, "tau_s": self.tau_s,
            "tau_device_s": self.tau_device_s, "R0_ohm": self.R0_ohm, "C_F": self.C_F,
            "matrix_scale": self.matrix_scale, "opamp_gain": self.opamp_gain,
            "element_counts": dict(self.element_counts), "system_sha256": self.system_sha256,
            "condition_number": self.condition_number,
            "pruning": None if self.pruning is None else self.pruning.to_json(),
            "predicted": None if self.predicted is None else self.predicted.to_json(),
            "options": dict(self.options),
            "spec": None if self.spec is None else self.spec.to_dict(),
            "noise": self.noise.to_json(),
            "system": None if self.system is None else self.system.to_json(),
        }
        for key in _OPTIONAL_RECORDS:
            rec = getattr(self, key)
            if rec is not None:
                d[key] = rec.to_json()
        d.update(self.extra)
        if self.deck_sha256 is not None:
            d["deck_sha256"] = self.deck_sha256
        if self.key_order:  # a sidecar read from a file: its keys, in its order
            d = {k: v for k, v in d.items() if v is not None or k in self.key_order}
        return _in_order(d, self.key_order)

    def dumps(self) -> str:
        """The sidecar file's text (indent 2, no NaN; deterministic)."""
        return json.dumps(self.to_json(), indent=2, allow_nan=False) + "\n"

    @classmethod
    def from_json(cls, d: Any, where: str = "sidecar") -> Sidecar:
        """Read a sidecar object; InputError (one line) for an unknown format, a missing
        required key or a malformed record."""
        if not isinstance(d, dict):
            raise InputError(f"{where} does not hold a JSON object")
        fmt = d.get("format", FORMAT)
        if fmt not in KNOWN_FORMATS:
            raise InputError(f"{where}: unknown sidecar format {fmt!r}; this version reads "
                             f"{', '.join(KNOWN_FORMATS)}")
        missing = [k for k in REQUIRED_KEYS if k not in d]
        if missing:
            raise InputError(f"{where} lacks the key(s) {', '.join(missing)}")
        outs = d["outputs"]
        if not isinstance(outs, list) or len(outs) != d["n"]:
            raise InputError(f"{where}: 'outputs' must list n = {d['n']} node names")
        known = {f.name for f in fields(cls)} - {"extra", "key_order"}
        try:
            from .compiler.cellmap import CellMap

            spec = d.get("spec")
            return cls(
                name=d.get("name", "system"), topology=d["topology"], n=d["n"],
                outputs=tuple(str(o) for o in outs), volts_per_unit=d["volts_per_unit"],
                tau_s=d["tau_s"], format=fmt, generator=d.get("generator"),
                noise_nodes=_tuple(d.get("noise_nodes")),
                ic_map=IcMap.from_json(d["ic_map"]) if d.get("ic_map") else None,
                tau_device_s=d.get("tau_device_s"), R0_ohm=d.get("R0_ohm"), C_F=d.get("C_F"),
                matrix_scale=d.get("matrix_scale"), opamp_gain=d.get("opamp_gain"),
                element_counts=dict(d.get("element_counts") or {}),
                system_sha256=d.get("system_sha256"),
                condition_number=d.get("condition_number"),
                pruning=Pruning.from_json(d["pruning"]) if d.get("pruning") else None,
                predicted=Prediction.from_json(d["predicted"]) if d.get("predicted") else None,
                options=dict(d.get("options") or {}),
                spec=HardwareSpec(**spec) if spec else None,
                noise=NoiseRecord.from_json(d.get("noise")),
                system=SystemRecord.from_json(d["system"]) if d.get("system") else None,
                realization=(Realization.from_json(d["realization"]) if d.get("realization")
                             else None),
                tiles=Tiling.from_json(d["tiles"]) if d.get("tiles") else None,
                cell_map=CellMap.from_json(d["cell_map"]) if d.get("cell_map") else None,
                board=_board_record(d["board"]) if d.get("board") else None,
                extra={k: v for k, v in d.items() if k not in known},
                deck_sha256=d.get("deck_sha256"),
                key_order=tuple(d),
            )
        except InputError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InputError(f"{where} has a malformed record ({type(exc).__name__}: {exc})"
                             ) from None

    @classmethod
    def loads(cls, text: str, where: str = "sidecar") -> Sidecar:
        try:
            d = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"{where} is not valid JSON ({exc})") from None
        return cls.from_json(d, where)


def _board_record(d: Any) -> BoardRecord:
    """The `board` record (imports the board package only for a board's sidecar)."""
    from .board.record import BoardRecord

    return BoardRecord.from_json(d)


def as_sidecar(meta: Sidecar | dict) -> Sidecar:
    """A Sidecar from either a Sidecar or its JSON object."""
    return meta if isinstance(meta, Sidecar) else Sidecar.from_json(meta)


@dataclass(frozen=True)
class OscillatorRecord:
    """The second-order (oscillator) deck's record: damping γ (in units of 1/τ) and the
    velocity nodes (V = v₀·v_i), in variable order; `record`: the whole JSON object."""

    damping_gamma: float
    velocity_nodes: tuple[str, ...]
    T_fast_tau: float | None = None
    record: dict = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, side: Sidecar) -> OscillatorRecord | None:
        """The oscillator record of a sidecar (None for first-order decks)."""
        d = side.extra.get("oscillator")
        if not d or "damping_gamma" not in d or "velocity_nodes" not in d:
            return None
        t_fast = d.get("T_fast_tau")
        return cls(float(d["damping_gamma"]), tuple(str(x) for x in d["velocity_nodes"]),
                   None if t_fast is None else float(t_fast), dict(d))
