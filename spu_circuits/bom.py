"""Bill of materials of a compiled or realised deck, and component totals per topology.

`bom_rows(x)` takes a `Netlist`, a `CompiledCircuit` / `RealizedCircuit` (netlist + sidecar
meta), or the path of a deck (read with the independent parser, its sidecar beside it). Parts
get reference designators in deck order, per kind: R (resistors, trims included), C
(capacitors), U (op-amps: a VCVS with its output to ground, or an `opamp_sp` macromodel
instance), GM (transconductors of the gm-C topology), V (voltage sources: the bias DACs), I
(DC current sources), N (noise sources: TRNOISE current sources and XSPICE filesource
instances). Rows group equal parts: designators compressed into ranges ("R1-R8,R12"), the
value with unit ("1.00 kΩ", "1 nF"), series, tolerance and count; ordered by kind, then
value, then first designator, so the CSV is deterministic. Op-amp macromodel internals
(`.subckt` contents) are not parts. Op-amps and noise sources are found by their role in the
sidecar's cell map (`spu_circuits.compiler.cellmap`); a bare Netlist without one is
classified by element type (an op-amp: a VCVS with its output to ground). For a Monte-Carlo
realisation the nominal (ordered) values recorded in the sidecar are listed, not the drawn
ones.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path

from .compiler.cellmap import OPAMP_ROLES, Role
from .errors import InputError
from .netlist import GROUND, Netlist, atomic_write
from .sidecar import Sidecar, as_sidecar

#: BOM kinds in output order: (kind, designator prefix)
KIND_ORDER = (("resistor", "R"), ("capacitor", "C"), ("op-amp", "U"),
              ("transconductor", "GM"), ("voltage source", "V"), ("current source", "I"),
              ("noise source", "N"))
_PREFIX = dict(KIND_ORDER)
_RANK = {k: i for i, (k, _) in enumerate(KIND_ORDER)}
CSV_COLUMNS = ("refs", "part", "value", "value_si", "series", "tolerance", "count")

_SI = [(1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""), (1e-3, "m"), (1e-6, "µ"), (1e-9, "n"),
       (1e-12, "p"), (1e-15, "f")]


def format_value(value: float, unit: str, digits: int = 3, strip: bool = False) -> str:
    """'1.00 kΩ' (digits = 3), '1 nF' (strip trailing zeros); SI prefixes f … G."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g} {unit}"
    mag = abs(value)
    for scale, prefix in _SI:  # noqa: B007 - the loop picks (scale, prefix)
        if mag >= scale * (1 - 1e-9):
            break
    m = value / scale
    # digits significant figures, mantissa in [1, 1000)
    if abs(float(f"{m:.{digits}g}")) >= 1000 and scale < 1e9:
        idx = [s for s, _ in _SI].index(scale)
        scale, prefix = _SI[idx - 1]
        m = value / scale
    ints = len(str(int(abs(float(f"{m:.{digits}g}")))))
    dec = max(digits - ints, 0)
    text = f"{m:.{dec}f}"
    if strip and "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"{text} {prefix}{unit}"


def group_refs(prefix: str, numbers: list[int]) -> str:
    """[1,2,3,4,8,12,13] → 'R1-R4,R8,R12,R13' (runs of three or more become ranges)."""
    nums = sorted(set(numbers))
    out: list[str] = []
    i = 0
    while i < len(nums):
        j = i
        while j + 1 < len(nums) and nums[j + 1] == nums[j] + 1:
            j += 1
        if j - i >= 2:
            out.append(f"{prefix}{nums[i]}-{prefix}{nums[j]}")
        else:
            out.extend(f"{prefix}{n}" for n in nums[i:j + 1])
        i = j + 1
    return ",".join(out)


@dataclass(frozen=True)
class _Part:
    name: str
    kind: str            # BOM kind
    value: float | None
    label: str           # value text


def _pct(tol: float | None) -> str:
    if not tol:
        return ""
    return f"{tol * 100:g}%"


def _source(x) -> tuple[list[tuple[str, str, tuple[str, ...], float | None, str | None]],
                        Sidecar | None]:
    """(elements as (name, letter, nodes, value, spec/model), sidecar) of any accepted input."""
    if isinstance(x, Netlist):
        return [(e.name, e.kind, e.nodes, e.value, e.spec) for e in x.elements], None
    if hasattr(x, "netlist") and hasattr(x, "sidecar"):
        net = x.netlist
        return [(e.name, e.kind, e.nodes, e.value, e.spec) for e in net.elements], x.sidecar
    path = Path(x)
    if not path.is_file():
        raise InputError(f"deck not found: {path}")
    from .parser import parse_deck

    parsed = parse_deck(path.read_text())
    side_path = path.with_suffix(".json")
    side = Sidecar.loads(side_path.read_text(), f"sidecar {side_path}") \
        if side_path.exists() else None
    roles = _roles(side)
    els: list = []
    seen_inst: set[str] = set()
    for e in parsed.elements:
        if "." in e.name:
            # flattened subcircuit contents: an element of the cell map (tiles) is a part of
            # its own; otherwise one part per instance (the op-amp macromodel)
            local, inst = e.name.split(".")[-1], e.name.split(".")[1]
            if local in roles and inst in roles and roles[inst] == Role.TILE.value:
                els.append((local, e.kind, e.nodes, e.value,
                            "trnoise" if getattr(e, "noise", None) is not None else e.model))
            elif inst not in seen_inst:
                seen_inst.add(inst)
                els.append((inst, "x", (), None, None))
            continue
        els.append((e.name, e.kind, e.nodes, e.value,
                    "trnoise" if getattr(e, "noise", None) is not None else e.model))
    return els, side


def _roles(side: Sidecar | None) -> dict[str, str]:
    """Element name → role, from the sidecar's cell map ({} without one)."""
    return dict(side.cell_map.roles) if side is not None and side.cell_map else {}


def _parts(x) -> tuple[list[_Part], dict]:
    els, side = _source(x)
    rec = side.realization if side is not None else None
    nominal = (rec.nominal_values if rec is not None else None) or {}
    series = rec.series if rec is not None else "exact"
    cap_series = rec.capacitor_series if rec is not None else "exact"
    gain = rec.opamp.gain if rec is not None else (side.opamp_gain if side else None)
    gbw = rec.opamp.gbw_hz if rec is not None else None
    digits = {"e12": 2, "e24": 2, "e96": 3, "e192": 3}
    roles = _roles(side)
    part_no = rec.opamp.part if rec is not None else None
    # decks with a catalogue op-amp list the op-amp part and the resistors' package/rating
    pkg = ""
    fig = (rec.opamp.figures if rec is not None else None) or {}
    if part_no:
        from .compiler.erc import RESISTOR_PACKAGES

        p = (rec.options or {}).get("package", "0603")
        pkg = f" {p} {RESISTOR_PACKAGES[p]:g} W"
    parts: list[_Part] = []
    for name, letter, nodes, value, spec in els:
        v = nominal.get(name, value)
        role = roles.get(name)
        if role == Role.TILE.value:
            continue                    # a tile instance: its parts are listed one by one
        if role == Role.OPAMP_ERROR.value:
            continue                    # an op-amp's V_os / I_b: a model, not a part
        if role in OPAMP_ROLES and letter == "e":
            parts.append(_Part(name, "op-amp", None,
                               f"A0 {value:g}" if value is not None else "op-amp"))
        elif role == Role.NOISE.value:
            parts.append(_Part(name, "noise source", None,
                               "filesource (sampled noise)" if letter == "a"
                               else "white-noise current"))
        elif letter == "r":
            parts.append(_Part(name, "resistor", v,
                               format_value(v, "Ω", digits.get(series, 4)) + pkg))
        elif letter == "c":
            parts.append(_Part(name, "capacitor", v,
                               format_value(v, "F", digits.get(cap_series, 3), strip=True)))
        elif letter == "e" and len(nodes) == 4 and nodes[1] == GROUND:
            parts.append(_Part(name, "op-amp", None,
                               f"A0 {value:g}" if value is not None else "op-amp"))
        elif letter == "x":
            lab = f"A0 {gain:g}" if gain else "op-amp"
            if part_no:
                lab = f"{part_no} ({fig.get('package', '')}, {lab}"
            if gbw:
                lab += f", GBW {format_value(gbw, 'Hz', 3, strip=True)}"
            parts.append(_Part(name, "op-amp", None, lab + (")" if part_no else "")))
        elif letter == "g":
            parts.append(_Part(name, "transconductor", v,
                               format_value(abs(v), "S", 4) if v is not None else "gm"))
        elif letter == "v":
            parts.append(_Part(name, "voltage source", None, "programmable (bias DAC)"))
        elif letter == "i":
            noisy = spec is not None and "trnoise" in str(spec)
            parts.append(_Part(name, "noise source" if noisy else "current source", None,
                               "white-noise current" if noisy else "programmable"))
        elif letter == "a":
            parts.append(_Part(name, "noise source", None, "filesource (sampled noise)"))
        else:
            parts.append(_Part(name, "other", None, letter))
    return parts, {"series": series, "cap_series": cap_series,
                   "tolerance": rec.tolerance if rec is not None else None}


def designators(x) -> dict[str, str]:
    """Element name → reference designator (R1, C3, U12, ...), numbered in deck order."""
    parts, _ = _parts(x)
    count: dict[str, int] = {}
    out = {}
    for p in parts:
        pre = _PREFIX.get(p.kind, "X")
        count[pre] = count.get(pre, 0) + 1
        out[p.name] = f"{pre}{count[pre]}"
    return out


def bom_rows(x) -> list[dict]:
    """Grouped BOM rows (see the module docstring): dicts with the CSV_COLUMNS keys."""
    parts, info = _parts(x)
    refs = designators(x)
    groups: dict[tuple, list[_Part]] = {}
    for p in parts:
        key = (p.kind, p.label)
        groups.setdefault(key, []).append(p)
    rows = []
    for (kind, label), ps in groups.items():
        if kind == "resistor":
            ser, tol = info["series"], _pct(info["tolerance"])
        elif kind == "capacitor":
            ser, tol = info["cap_series"], _pct(info["tolerance"])
        elif kind == "transconductor":
            ser, tol = "", _pct(info["tolerance"])
        else:
            ser, tol = "", ""
        pre = _PREFIX.get(kind, "X")
        nums = [int(refs[p.name][len(pre):]) for p in ps]
        vals = [p.value for p in ps if p.value is not None]
        rows.append({
            "refs": group_refs(pre, nums), "part": kind, "value": label,
            "value_si": (f"{vals[0]:.6g}" if vals else ""),
            "series": ser.upper() if ser and ser != "exact" else ("exact" if ser else ""),
            "tolerance": tol, "count": len(ps), "_first": min(nums),
            "_sort": vals[0] if vals else 0.0,
        })
    rows.sort(key=lambda r: (_RANK.get(r["part"], 99), r["_sort"], r["_first"]))
    for r in rows:
        del r["_first"], r["_sort"]
    return rows


def bom_csv_text(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(CSV_COLUMNS), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: r.get(k, "") for k in CSV_COLUMNS})
    total = {}
    for r in rows:
        total[r["part"]] = total.get(r["part"], 0) + int(r["count"])
    for kind, _ in KIND_ORDER:
        if kind in total:
            w.writerow({"refs": "", "part": f"total {kind}s", "value": "", "value_si": "",
                        "series": "", "tolerance": "", "count": total[kind]})
    return buf.getvalue()


def write_bom_csv(path: str | Path, rows: list[dict]) -> Path:
    """Write the BOM rows as CSV (UTF-8), with one 'total <kind>s' line per kind (the op-amp
    count among them); atomic."""
    path = Path(path)
    atomic_write({path: bom_csv_text(rows)})
    return path


def component_totals(x) -> dict:
    """Totals per kind: resistors, capacitors, opamps, transconductors, sources (bias
    voltage/current sources), noise_sources, with the topology (when known).

    x: a Sidecar or its JSON object (uses its element counts and noise record), a Netlist,
    a CompiledCircuit/RealizedCircuit, or a deck path.
    """
    if isinstance(x, Sidecar | dict):
        side = as_sidecar(x)
        c = side.element_counts
        n = int(side.n)
        topo = side.topology
        trn = n if side.noise.kind == "trnoise" else 0
        return {"topology": topo, "resistors": c.get("resistor", 0),
                "capacitors": c.get("capacitor", 0),
                "opamps": (c.get("vcvs", 0) + c.get("subcircuit", 0)) if topo != "ideal" else 0,
                "transconductors": c.get("vccs", 0),
                "sources": c.get("voltage_source", 0) + c.get("current_source", 0) - trn,
                "noise_sources": c.get("xspice", 0) + trn}
    parts, _ = _parts(x)
    side = getattr(x, "sidecar", None)
    kinds = [p.kind for p in parts]
    return {"topology": side.topology if side is not None else None,
            "resistors": kinds.count("resistor"), "capacitors": kinds.count("capacitor"),
            "opamps": kinds.count("op-amp"), "transconductors": kinds.count("transconductor"),
            "sources": kinds.count("voltage source") + kinds.count("current source"),
            "noise_sources": kinds.count("noise source")}
