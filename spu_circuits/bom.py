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
              ("noise source", "N"), ("connector", "J"), ("cable", "W"))
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


def _is_tile_subckt(name: str) -> bool:
    return name.startswith("tile") and name[4:].isdigit()


def _source(x) -> tuple[list[tuple[str, str, tuple[str, ...], float | None, str | None]],
                        Sidecar | None, dict[str, int]]:
    """(elements as (name, letter, nodes, value, spec/model), sidecar, element → tile index)
    of any accepted input. A tiled deck's tile instances are expanded: each part inside a
    tile is listed under its own (local) name, with its tile."""
    if isinstance(x, Netlist) or (hasattr(x, "netlist") and hasattr(x, "sidecar")):
        net = x if isinstance(x, Netlist) else x.netlist
        side = None if isinstance(x, Netlist) else x.sidecar
        els, tile_of = [], {}
        for e in net.elements:
            sub_name = (e.spec or "").split()[0] if e.kind == "x" and e.spec else ""
            sub = net.subcircuit(sub_name) if _is_tile_subckt(sub_name) else None
            if sub is None:
                els.append((e.name, e.kind, e.nodes, e.value, e.spec))
                continue
            els.append((e.name, e.kind, e.nodes, e.value, e.spec))  # the tile (role TILE)
            for f in sub.elements:
                els.append((f.name, f.kind, f.nodes, f.value, f.spec))
                tile_of[f.name] = int(sub_name[4:])
        return els, side, tile_of
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
    tile_of: dict[str, int] = {}
    seen_inst: set[str] = set()
    if side is not None and side.tiles is not None:  # the tile instances (connectors)
        els += [(f"xtile{t}", "x", (), None, None) for t in range(side.tiles.n_tiles)]
    for e in parsed.elements:
        if "." in e.name:
            # flattened subcircuit contents: an element of a tile is a part of its own (an
            # op-amp macromodel inside a tile: one part per instance); otherwise one part
            # per instance (the op-amp macromodel)
            bits = e.name.split(".")
            inst = bits[1]
            in_tile = roles.get(inst) == Role.TILE.value
            if in_tile and len(bits) == 3:
                els.append((bits[2], e.kind, e.nodes, e.value,
                            "trnoise" if getattr(e, "noise", None) is not None else e.model))
                tile_of[bits[2]] = int(inst[5:])
                continue
            key = bits[2] if in_tile else inst
            if key not in seen_inst:
                seen_inst.add(key)
                els.append((key, "x", (), None, None))
                if in_tile:
                    tile_of[key] = int(inst[5:])
            continue
        els.append((e.name, e.kind, e.nodes, e.value,
                    "trnoise" if getattr(e, "noise", None) is not None else e.model))
    return els, side, tile_of


def _roles(side: Sidecar | None) -> dict[str, str]:
    """Element name → role, from the sidecar's cell map ({} without one)."""
    return dict(side.cell_map.roles) if side is not None and side.cell_map else {}


def _parts(x) -> tuple[list[_Part], dict]:
    els, side, tile_of = _source(x)
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
    tiling = side.tiles if side is not None else None
    src = (side.extra.get("noise_source") or {}) if side is not None else {}
    ref_noise = src.get("reference_circuit")
    for name, letter, nodes, value, spec in els:
        v = nominal.get(name, value)
        role = roles.get(name)
        if role == Role.TILE.value:
            # a tile instance: its parts are listed one by one; the tile's wiring to the
            # backplane is a connector on the tile and a cable (one way per port)
            t = int(name[5:])
            pins = int(tiling.record["ports_per_tile"][t]) + 1  # the ports and ground
            parts.append(_Part(name + ":J", "connector", None,
                               f"{pins}-pin tile connector (tile{t})"))
            parts.append(_Part(name + ":W", "cable", None,
                               f"{pins}-way cable tile{t} - backplane"))
            continue
        if role == Role.OPAMP_ERROR.value:
            continue                    # an op-amp's V_os / I_b: a model, not a part
        if role in OPAMP_ROLES and letter == "e":
            parts.append(_Part(name, "op-amp", None,
                               f"A0 {value:g}" if value is not None else "op-amp"))
        elif role == Role.NOISE.value:
            parts.append(_Part(name, "noise source", None, ref_noise or (
                "filesource (sampled noise)" if letter == "a" else "white-noise current")))
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
                   "tolerance": rec.tolerance if rec is not None else None,
                   "tile_of": tile_of, "roles": roles, "tiled": tiling is not None}


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


def bom_rows(x, tile: int | None = None) -> list[dict]:
    """Grouped BOM rows (see the module docstring): dicts with the CSV_COLUMNS keys.

    tile: only the parts on that tile of a tiled deck (its own BOM, the whole board's
    designators); -1: the backplane's parts (outside every tile: inter-tile couplings,
    shared stages, the tiles' connectors and cables)."""
    parts, info = _parts(x)
    refs = designators(x)
    if tile is not None:
        tile_of = info["tile_of"]
        parts = [p for p in parts if tile_of.get(p.name, -1) == tile
                 or (p.kind == "connector" and p.name == f"xtile{tile}:J")]
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


DESIGNATOR_COLUMNS = ("ref", "element", "part", "role", "tile", "cell")


def designator_rows(x) -> list[dict]:
    """One row per BOM reference: the designator (R83 …), the deck element it is, its part
    kind, its role in the cell map ('' without one), its tile ('' untiled, 'backplane' for
    parts outside every tile of a tiled deck) and the cell(s) it belongs to (the variable
    index i; 'i,j' for a coupling A_ij; '' for shared parts). A connector / cable row names
    the tile instance it wires (`xtile<t>:J`, `xtile<t>:W`)."""
    parts, info = _parts(x)
    refs = designators(x)
    _, side, _ = _source(x)
    cm = side.cell_map if side is not None else None
    cell_of: dict[str, str] = {}
    if cm is not None:
        for c in cm.cells:
            for v in vars(c).values():
                if isinstance(v, str):
                    cell_of.setdefault(v, str(c.index))
        for cp in cm.couplings:
            for e in cp.elements:
                cell_of.setdefault(e, f"{cp.row},{cp.col}")
    rows = []
    for p in parts:
        base = p.name.split(":")[0]
        t = info["tile_of"].get(p.name)
        if p.kind in ("connector", "cable"):
            tile = base[5:]
        elif t is not None:
            tile = str(t)
        else:
            tile = "backplane" if info["tiled"] else ""
        rows.append({"ref": refs[p.name], "element": p.name, "part": p.kind,
                     "role": info["roles"].get(base, ""), "tile": tile,
                     "cell": cell_of.get(p.name, "")})
    return rows


def designators_csv_text(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(DESIGNATOR_COLUMNS), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow(r)
    return buf.getvalue()


def write_bom_files(out_dir: str | Path, name: str, x) -> list[Path]:
    """Write NAME_bom.csv (the whole board), NAME_designators.csv (reference → element,
    role, tile, cell) and, for a tiled deck, NAME_tile<t>_bom.csv per tile and
    NAME_backplane_bom.csv; atomic, all at once. Returns the paths written."""
    out = Path(out_dir)
    files = {out / f"{name}_bom.csv": bom_csv_text(bom_rows(x)),
             out / f"{name}_designators.csv": designators_csv_text(designator_rows(x))}
    side = getattr(x, "sidecar", None)
    if side is not None and side.tiles is not None:
        for t in range(side.tiles.n_tiles):
            files[out / f"{name}_tile{t}_bom.csv"] = bom_csv_text(bom_rows(x, tile=t))
        files[out / f"{name}_backplane_bom.csv"] = bom_csv_text(bom_rows(x, tile=-1))
    atomic_write(files)
    return list(files)
