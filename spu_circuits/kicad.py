"""KiCad netlist export (`spu kicad DECK.cir --out NAME.net`) and a small s-expression reader.

The netlist is KiCad's s-expression format `(export (version "E") (design …) (components …)
(libparts) (libraries) (nets …))`, which Pcbnew imports (File → Import → Netlist) to place
footprints and draw ratsnest lines. One component per top-level deck element (subcircuit
instances are one component: the op-amp macromodel is an op-amp, an MDAC or digipot model is
that part), one net per node:

- nets: `/x1` … `/xN` for the cell outputs (the sidecar's outputs, in variable order), `GND`
  for node 0, `/<node>` for every other node; power nets `+15V`, `-15V` (op-amp supplies) and
  `+5V` (logic supply of programmable parts), and the SPI bus `/SPI_SCLK`, `/SPI_SYNC`,
  `/SPI_SDI` daisy-chained through the parts' SDO pins (`/SPI_D<k>`), last to `/SPI_SDO`;
- R: 0603 resistors; C: 0805 capacitors; U: op-amps (VCVS to ground, `opamp_sp` or catalogue
  `spu_<part>` instances) in SOIC-8 with the catalogue part's number (OPA192 for the ideal and
  generic models), MDACs (AD5443, MSOP-10), digipots (AD5293, TSSOP-14),
  sign switches (ADG1419, MSOP-8), transconductors of the gm-C reference (generic 4-pin);
- J: sources become connectors (2-pin headers): the bias DAC voltages (`vb*`: a DAC channel
  off the board), DC current sources, and the noise sources — a TRNOISE or filesource
  current into a summing node is brought in from a noise-generator board (a Johnson-noise
  or DAC-driven white-noise current source; see the README) through a header per cell.

Pins carry `pintype`: `passive` for the connections the deck describes (a subcircuit instance's
ports), `power_in` for supplies and ground pins (an MDAC's IOUT2 and GND, which its model
references internally), `input`/`output` for the SPI bus and the switch selects. The
round-trip test reads the file back (`read_sexpr`) and compares the graph of its passive pins
with the deck's circuit graph.
Pin numbers of the programmable parts follow their datasheets' package drawings as known here;
check them against the footprint before fabrication.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from .errors import InputError
from .sidecar import Sidecar, as_sidecar

FOOTPRINTS = {
    "R": "Resistor_SMD:R_0603_1608Metric",
    "C": "Capacitor_SMD:C_0805_2012Metric",
    "opamp": "Package_SO:SOIC-8_3.9x4.9mm_P1.27mm",
    "J": "Connector_PinHeader_2.54mm:PinHeader_1x02_P2.54mm_Vertical",
    "gm": "Package_SO:SOIC-8_3.9x4.9mm_P1.27mm",
}
#: orderable part numbers (SOIC-8, single) of the catalogue's op-amps
#: (spu_circuits.compiler.opamps); VCVS and generic single-pole op-amps are listed as OPA192
OPAMP_MPNS = {"OPA192": "OPA192IDR", "OPA189": "OPA189IDR", "TL072": "TL072CDR",
              "ADA4077": "ADA4077-1BRZ", "LT1028": "LT1028ACS8#PBF"}
_NS = uuid.UUID("6c1f0e5e-3b7e-4d0a-9a51-5b0a2f1c7e11")


@dataclass(frozen=True)
class TopElement:
    """A top-level deck element: name, letter, nodes, value text, model/subcircuit name."""

    name: str
    kind: str
    nodes: tuple[str, ...]
    value: str = ""
    model: str = ""


@dataclass
class Component:
    ref: str
    value: str
    footprint: str
    element: str
    mpn: str = ""
    lib_part: str = "Device:R"
    pins: list[tuple[str, str, str, str]] = field(default_factory=list)  # num, func, type, net


# ----------------------------------------------------------------------------- deck reading


def top_level_elements(text: str) -> tuple[list[TopElement], dict[str, list[str]]]:
    """Top-level elements (subcircuit bodies and control blocks skipped) and the subcircuit
    definitions' body lines by name (to see which touch ground)."""
    lines: list[str] = []
    for ln in text.replace("\r\n", "\n").split("\n")[1:]:
        s = ln.strip()
        if s.startswith("+") and lines:
            lines[-1] += " " + s[1:]
        elif s and not s.startswith("*"):
            lines.append(s.split(";")[0].strip())
    out: list[TopElement] = []
    subs: dict[str, list[str]] = {}
    cur: list[str] | None = None
    ctl = False
    for s in lines:
        low = s.lower()
        w = low.split()[0] if low else ""
        if ctl:
            ctl = w != ".endc"
            continue
        if w == ".control":
            ctl = True
            continue
        if w == ".subckt":
            cur = subs.setdefault(low.split()[1], [])
            continue
        if w == ".ends":
            cur = None
            continue
        if cur is not None:
            cur.append(low)
            continue
        if not w or w.startswith("."):
            continue
        out.append(_element(low))
    return out, subs


def _element(low: str) -> TopElement:
    k = low[0]
    if k == "a":
        ports = re.findall(r"\(([^()]*)\)", low)
        nodes = tuple(n for p in ports for n in p.split())
        return TopElement(low.split()[0], "a", nodes, "", low.split()[-1])
    toks = re.sub(r"\s*=\s*", "=", low).split()
    name = toks[0]
    if k == "x":
        pos = [t for t in toks[1:] if "=" not in t]
        return TopElement(name, "x", tuple(pos[:-1]), " ".join(t for t in toks if "=" in t),
                          pos[-1])
    nn = 4 if k in "eg" else 2
    return TopElement(name, k, tuple(toks[1:1 + nn]), " ".join(toks[1 + nn:]))


# ----------------------------------------------------------------------------- mapping


def _si(v: float) -> str:
    for s, p in ((1e6, "M"), (1e3, "k"), (1.0, ""), (1e-3, "m"), (1e-6, "u"), (1e-9, "n"),
                 (1e-12, "p")):
        if abs(v) >= s * (1 - 1e-12):
            return f"{v / s:.6g}{p}"
    return f"{v:.6g}"


def _num(text: str) -> float | None:
    try:
        return float(text.split()[0])
    except (ValueError, IndexError):
        return None


def _sidecar(meta: Sidecar | dict | None) -> Sidecar | None:
    return None if not meta else as_sidecar(meta)


def components(text: str, meta: Sidecar | dict | None
               ) -> tuple[list[Component], dict[str, str]]:
    """Components with their pins, and node → net name (meta: the deck's sidecar or its
    JSON object, None for a hand-written deck)."""
    els, _ = top_level_elements(text)
    side = _sidecar(meta)
    outputs = [str(o).lower() for o in (side.outputs if side else ())]
    netname = {o: f"/x{i + 1}" for i, o in enumerate(outputs)}

    def net(n: str) -> str:
        if n in ("0", "gnd"):
            return "GND"
        return netname.get(n, f"/{n}")

    board = side.board if side else None
    part_mpn = board.part.mpn if board else None
    switch_mpn = board.switch.mpn if board else None
    counters: dict[str, int] = {}

    def ref(prefix: str) -> str:
        counters[prefix] = counters.get(prefix, 0) + 1
        return f"{prefix}{counters[prefix]}"

    comps: list[Component] = []
    spi_k = 0

    def spi(c: Component, sclk: str, sdi: str, sdo: str | None, sync: str) -> None:
        nonlocal spi_k
        c.pins.append((sclk, "SCLK", "input", "/SPI_SCLK"))
        c.pins.append((sdi, "SDIN", "input", "/SPI_SDI" if spi_k == 0 else f"/SPI_D{spi_k}"))
        if sdo:
            spi_k += 1
            c.pins.append((sdo, "SDO", "output", f"/SPI_D{spi_k}"))
        c.pins.append((sync, "SYNC", "input", "/SPI_SYNC"))

    def opamp(e: TopElement, out: str, inn: str, inp: str) -> Component:
        name = (e.model[4:].upper() if e.model.startswith("spu_")
                else (board.opamp if board else None) or "OPA192")
        c = Component(ref("U"), name, FOOTPRINTS["opamp"], e.name,
                      OPAMP_MPNS.get(name, name), f"Amplifier_Operational:{name}")
        c.pins += [("1", "OUT", "passive", net(out)), ("2", "-", "passive", net(inn)),
                   ("3", "+", "passive", net(inp)), ("4", "V-", "power_in", "-15V"),
                   ("7", "V+", "power_in", "+15V")]
        return c

    for e in els:
        k = e.kind
        if k in "rc":
            v = _num(e.value)
            pre = "R" if k == "r" else "C"
            c = Component(ref(pre), _si(v) if v is not None else e.value, FOOTPRINTS[pre],
                          e.name, "", f"Device:{pre}")
            c.pins += [("1", "", "passive", net(e.nodes[0])),
                       ("2", "", "passive", net(e.nodes[1]))]
        elif k == "e" and e.nodes[1] == "0":
            c = opamp(e, e.nodes[0], e.nodes[3], e.nodes[2])
        elif k == "x" and e.model.startswith(("opamp", "spu_")) and len(e.nodes) == 3:
            c = opamp(e, e.nodes[2], e.nodes[1], e.nodes[0])
        elif k in "vi" and e.name.startswith(("vos_", "iib_")):
            # an op-amp's input offset / bias current: part of its model, not a part to buy
            c = Component(ref("M"), "op-amp error model (no part)", "", e.name, "",
                          "Device:Model")
            c.pins += [(str(i + 1), "", "passive", net(n)) for i, n in enumerate(e.nodes)]
        elif k == "x" and e.model.startswith("mdac"):
            c = Component(ref("U"), part_mpn or "AD5443",
                          "Package_SO:MSOP-10_3x3mm_P0.5mm", e.name,
                          part_mpn or "AD5443YRMZ", "Analog_DAC:AD5443")
            c.pins += [("1", "IOUT1", "passive", net(e.nodes[1])),
                       ("2", "IOUT2", "power_in", "GND"), ("3", "GND", "power_in", "GND"),
                       ("8", "VDD", "power_in", "+5V"), ("9", "VREF", "passive",
                                                          net(e.nodes[0]))]
            spi(c, "4", "5", "6", "7")
        elif k == "x" and e.model.startswith("digipot"):
            c = Component(ref("U"), part_mpn or "AD5293",
                          "Package_SO:TSSOP-14_4.4x5mm_P0.65mm", e.name,
                          part_mpn or "AD5293BRUZ-20", "Potentiometer_Digital:AD5293")
            c.pins += [("3", "A", "passive", net(e.nodes[0])),
                       ("4", "W", "passive", net(e.nodes[1])),
                       ("2", "VSS", "power_in", "-15V"), ("13", "VDD", "power_in", "+15V"),
                       ("6", "GND", "power_in", "GND"), ("7", "VLOGIC", "power_in", "+5V")]
            spi(c, "9", "10", "11", "8")
        elif k == "x" and e.model == "spdt":
            c = Component(ref("U"), switch_mpn or "ADG1419",
                          "Package_SO:MSOP-8_3x3mm_P0.65mm", e.name,
                          switch_mpn or "ADG1419BRMZ", "Analog_Switch:ADG1419BRMZ")
            c.pins += [("8", "SA", "passive", net(e.nodes[0])),
                       ("6", "SB", "passive", net(e.nodes[1])),
                       ("1", "D", "passive", net(e.nodes[2])),
                       ("3", "VDD", "power_in", "+15V"), ("5", "VSS", "power_in", "-15V"),
                       ("4", "GND", "power_in", "GND"), ("2", "IN", "input",
                                                        f"/SEL_{e.name.upper()}")]
        elif k == "x":
            c = Component(ref("U"), e.model, "", e.name, "", "Device:Module")
            c.pins += [(str(i + 1), "", "passive", net(n)) for i, n in enumerate(e.nodes)]
        elif k == "g":
            v = _num(e.value)
            c = Component(ref("U"), f"gm {v:.4g} S" if v is not None else "gm",
                          FOOTPRINTS["gm"], e.name, "", "Device:OTA")
            c.pins += [(str(i + 1), f, "passive", net(n)) for i, (f, n) in
                       enumerate(zip(("OUT+", "OUT-", "IN+", "IN-"), e.nodes, strict=True))]
        elif k in "viae":
            what = {"v": "bias DAC / voltage input", "i": "current input",
                    "a": "noise current input"}.get(k, "controlled source")
            if k == "i" and "trnoise" in e.value:
                what = "noise current input"
            c = Component(ref("J"), what, FOOTPRINTS["J"] if len(e.nodes) == 2 else "",
                          e.name, "", "Connector_Generic:Conn_01x02")
            c.pins += [(str(i + 1), "", "passive", net(n)) for i, n in enumerate(e.nodes)]
        else:
            raise InputError(f"element {e.name!r}: no KiCad mapping for kind {k!r}")
        comps.append(c)
    return comps, netname


# ----------------------------------------------------------------------------- writing


def _q(s: str) -> str:
    return '"' + str(s).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _stamp(name: str) -> str:
    return str(uuid.uuid5(_NS, name))


def to_kicad(text: str, meta: Sidecar | dict | None, source: str = "") -> str:
    """The KiCad netlist text of a deck (deterministic)."""
    comps, _ = components(text, meta)
    out = ['(export (version "E")', "  (design",
           f"    (source {_q(source)})", '    (tool "spu-tngd kicad export"))',
           "  (components"]
    for c in comps:
        fields = [f'(field (name "SpiceElement") {_q(c.element)})']
        if c.mpn:
            fields.append(f'(field (name "MPN") {_q(c.mpn)})')
        lib, _, part = c.lib_part.partition(":")
        out.append(f"    (comp (ref {_q(c.ref)})")
        out.append(f"      (value {_q(c.value)})")
        if c.footprint:
            out.append(f"      (footprint {_q(c.footprint)})")
        out.append(f"      (fields {' '.join(fields)})")
        out.append(f"      (libsource (lib {_q(lib)}) (part {_q(part)}) (description \"\"))")
        out.append('      (sheetpath (names "/") (tstamps "/"))')
        out.append(f"      (tstamps {_q(_stamp(c.element))}))")
    out.append("  )")
    out.append("  (libparts)")
    out.append("  (libraries)")
    nets: dict[str, list[tuple[str, str, str, str]]] = {}
    for c in comps:
        for num, func, ptype, n in c.pins:
            nets.setdefault(n, []).append((c.ref, num, func, ptype))
    order = sorted(nets, key=lambda n: (n != "GND", not n.startswith(("+", "-")), n))
    out.append("  (nets")
    for code, n in enumerate(order, 1):
        out.append(f"    (net (code {_q(code)}) (name {_q(n)})")
        for r, num, func, ptype in nets[n]:
            fn = f" (pinfunction {_q(func)})" if func else ""
            out.append(f"      (node (ref {_q(r)}) (pin {_q(num)}){fn} (pintype {_q(ptype)}))")
        out[-1] += ")"
    out.append("  )")
    out.append(")")
    return "\n".join(out) + "\n"


def deck_to_kicad(path: Path) -> tuple[str, str]:
    """(netlist text, summary) of a deck file and its sidecar (when there is one)."""
    from .simulate import Deck

    deck = Deck.load(path)
    text = to_kicad(deck.text, deck.sidecar, Path(path).name)
    comps, _ = components(deck.text, deck.sidecar)
    by = {}
    for c in comps:
        by[c.ref.rstrip("0123456789")] = by.get(c.ref.rstrip("0123456789"), 0) + 1
    n_nets = len(re.findall(r"^\s+\(net ", text, flags=re.M))
    return text, ", ".join(f"{v} {k}" for k, v in sorted(by.items())) + f", {n_nets} nets"


# ----------------------------------------------------------------------------- reading


_SX = re.compile(r'\s*(?:(\()|(\))|"((?:[^"\\]|\\.)*)"|([^\s()"]+))')


def read_sexpr(text: str):
    """Parse an s-expression into nested lists of strings (quoted strings unescaped)."""
    stack: list[list] = [[]]
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _SX.match(text, pos)
        if not m:
            raise InputError(f"s-expression: cannot read at offset {pos}")
        pos = m.end()
        if m.group(1):
            stack.append([])
        elif m.group(2):
            if len(stack) < 2:
                raise InputError(f"s-expression: unbalanced ')' at offset {pos}")
            done = stack.pop()
            stack[-1].append(done)
        elif m.group(3) is not None:
            stack[-1].append(re.sub(r"\\(.)", r"\1", m.group(3)))
        else:
            stack[-1].append(m.group(4))
    if len(stack) != 1 or len(stack[0]) != 1:
        raise InputError("s-expression: unbalanced parentheses")
    return stack[0][0]


def _find(node: list, key: str) -> list:
    return [x for x in node if isinstance(x, list) and x and x[0] == key]


def kicad_graph(text: str, pintypes=("passive",)):
    """Bipartite connectivity graph of a KiCad netlist (pins of the given types): component
    nodes labelled by their SpiceElement field, net nodes by net name."""
    import networkx as nx

    tree = read_sexpr(text)
    if tree[0] != "export":
        raise InputError("not a KiCad netlist (no (export ...))")
    element = {}
    for comp in _find(_find(tree, "components")[0], "comp"):
        r = _find(comp, "ref")[0][1]
        fields = _find(comp, "fields")
        name = r
        for f in _find(fields[0], "field") if fields else []:
            if _find(f, "name")[0][1] == "SpiceElement":
                name = f[-1]
        element[r] = name
    g = nx.Graph()
    for net in _find(_find(tree, "nets")[0], "net"):
        nname = _find(net, "name")[0][1]
        for node in _find(net, "node"):
            pt = _find(node, "pintype")
            if pt and pt[0][1] not in pintypes:
                continue
            r = _find(node, "ref")[0][1]
            g.add_node(("c", element[r]), label=f"c:{element[r]}")
            g.add_node(("n", nname), label=f"n:{nname}")
            g.add_edge(("c", element[r]), ("n", nname))
    return g


def deck_graph(text: str, meta: Sidecar | dict | None,
               params: dict[str, float] | None = None):
    """The deck's circuit graph from the independent parser: one node per top-level
    element (subcircuit contents folded into their instance), one per external node (named
    as in the KiCad export), an edge per connection."""
    import networkx as nx

    from .parser import parse_deck
    from .spice.params import elaborate

    side = _sidecar(meta)
    if params is None and side is not None and side.board is not None:
        from .board.program import BoardLayout
        from .board.topology import test_params

        lay = BoardLayout.from_sidecar(side)
        params = test_params(lay.spec, lay.slots)
    if "{" in text or ".param" in text.lower():
        text = elaborate(text, params or {})
    parsed = parse_deck(text)
    # a subcircuit instance connects through its ports only (its models' internal references
    # to ground are supplies or the part's own ground pins, not netlist connections)
    ports = {e.name: set(e.nodes) for e in top_level_elements(text)[0] if e.kind == "x"}
    outputs = [str(o).lower() for o in (side.outputs if side else ())]
    netname = {o: f"/x{i + 1}" for i, o in enumerate(outputs)}
    g = nx.Graph()
    for el in parsed.elements:
        parts = el.name.split(".")
        comp = parts[1] if len(parts) > 2 else el.name
        inst = comp if len(parts) > 2 else None
        nodes = (tuple(n for p in el.ports for n in p.nodes) if el.kind == "a" else el.nodes)
        for n in nodes:
            if inst is not None and n not in ports.get(inst, ()):
                continue  # internal node (or internal ground reference) of the instance
            name = "GND" if n == "0" else netname.get(n, f"/{n}")
            g.add_node(("c", comp), label=f"c:{comp}")
            g.add_node(("n", name), label=f"n:{name}")
            g.add_edge(("c", comp), ("n", name))
    return g


BOM_COLUMNS = ("refs", "value", "mpn", "footprint", "count")


def parts_bom_csv(text: str, meta: Sidecar | dict | None) -> str:
    """Bill of materials from the KiCad components (one row per value, part number and
    footprint; manufacturer part numbers for op-amps, MDACs, digipots and switches)."""
    import csv
    import io

    from .bom import group_refs

    comps, _ = components(text, meta)
    groups: dict[tuple[str, str, str, str], list[int]] = {}
    for c in comps:
        pre = c.ref.rstrip("0123456789")
        groups.setdefault((pre, c.value, c.mpn, c.footprint), []).append(int(c.ref[len(pre):]))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(BOM_COLUMNS)
    for (pre, value, mpn, fp), nums in sorted(groups.items(), key=lambda kv: (kv[0][0],
                                                                              min(kv[1]))):
        w.writerow([group_refs(pre, nums), value, mpn, fp, len(nums)])
    return buf.getvalue()
