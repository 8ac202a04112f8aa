"""An independent ngspice netlist parser and linear-system extractor.

This module reads a deck as ngspice would and computes, by nodal analysis of the circuit *as
written*, the linear system it realises. It does not read the JSON sidecar and does not import
the compiler, so it can check the compiler (and hand-written or edited decks) from the outside.

`parse_deck(text) -> ParsedDeck`
    Title line, `+` continuation lines, comments (`*` lines; `;` anywhere and `$` after a
    blank, outside double quotes), case folding, SPICE numbers (`1k`, `1.5meg`, `10u`, `1mil`,
    e-notation; trailing unit letters are ignored as ngspice does: `1kohm`, `10uF`).
    Elements R, C, E (VCVS), G (VCCS), F (CCCS), H (CCVS), I and V (`dc X`, plain `X`, `ac`,
    `trnoise(...)`, pulse/sin/exp/pwl/sffm/am waveforms), A (XSPICE instances: ports and model
    name), X (subcircuit instances, flattened with ngspice's hierarchical names: node `mid` of
    instance `x1` becomes `x1.mid`, element `r1` in it becomes `r.x1.r1`).
    Cards: .model, .options/.option/.opt, .ic, .nodeset, .global, .subckt/.ends (nested
    definitions allowed), analysis cards (.op .tran .dc .ac .noise .tf ...), output cards
    (.save .print .plot .probe .meas .width .temp), .control/.endc (kept verbatim), .end
    (recorded; like ngspice 39, measured here, lines after it are still read).
    Anything else (L, K, D, Q, J, M, B, S, W, T, ... elements; .param, .include, .lib, ...;
    `{expressions}`; behavioural E/G sources) raises `InputError` naming the line and element.

`extract_system(parsed, outputs=None, volts_per_unit=None) -> Extracted`
    The modified nodal analysis (MNA) of the linear circuit, reduced to its capacitor states,
    expressed for the output node voltages: dx/dt = −M x + c (+ noise), x = V(outputs)/v₀.
    See `extract_system` for the method and `Extracted.as_system(tau_s)` for A_eff = τM,
    b_eff = τc and κ₀.

`dc_solution(parsed) -> dict[node, volts]`
    The DC operating point (capacitors open, noise sources at their DC value), as `.op` gives.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.linalg
import scipy.sparse
import scipy.sparse.linalg

from .errors import InputError

GROUND = "0"

#: SPICE scale suffixes (decimal exponents); `mil` (25.4e-6) is handled apart
_SUFFIX_EXP = {"t": 12, "g": 9, "k": 3, "m": -3, "u": -6, "n": -9, "p": -12, "f": -15}
_NUMBER = re.compile(r"([+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+))(?:e([+-]?[0-9]+))?([a-z]*)")
_TOKEN = re.compile(r'"[^"]*"|[()\[\]=,]|[^\s()\[\]=,"]+|"')
_SPECIAL = frozenset("()[]=,")

#: element letters this parser understands
SUPPORTED = "rcegfhivax"
_UNSUPPORTED = {
    "l": "inductor", "k": "coupled inductors", "d": "diode", "q": "bipolar transistor",
    "j": "JFET", "m": "MOSFET", "z": "MESFET", "b": "behavioural source",
    "s": "voltage-controlled switch", "w": "current-controlled switch",
    "t": "transmission line", "o": "lossy transmission line", "u": "RC line",
    "y": "transmission line", "p": "coupled transmission line", "n": "OSDI device",
}
_ANALYSES = {".op", ".tran", ".dc", ".ac", ".noise", ".tf", ".sens", ".pz", ".disto", ".four",
             ".pss", ".sp"}
_OUTPUT_CARDS = {".save", ".print", ".plot", ".probe", ".meas", ".measure", ".width", ".temp"}
_UNSUPPORTED_CARDS = {".param", ".func", ".include", ".inc", ".lib", ".endl", ".if", ".elseif",
                      ".else", ".endif", ".csparam", ".data", ".enddata", ".spiceinit"}
_WAVEFORMS = {"pulse", "sin", "exp", "pwl", "sffm", "am"}
_BEHAVIOURAL = {"vol", "cur", "value", "poly", "table", "laplace", "freq", "and", "or", "nand",
                "nor"}
#: XSPICE port types the parser accepts (the extractor handles %i %id %v %vd of filesources)
_PORT_TYPES = {"i", "id", "v", "vd", "g", "gd", "h", "hd", "d", "vnam"}
#: XSPICE code models the extractor reads as their linear region (the op-amp macromodel's
#: slew, rail and current `limit`s); the ERC checks that decks stay there
LINEARISED_XSPICE = ("limit",)
#: flattening guards (a deck that expands beyond these is refused, not simulated)
MAX_SUBCKT_DEPTH = 50
MAX_ELEMENTS = 1_000_000
#: systems up to this many MNA unknowns are solved densely, larger ones with sparse LU
DENSE_LIMIT = 2500


# --------------------------------------------------------------------------------------------
# numbers


def parse_number(token: str, where: str = "") -> float:
    """A SPICE number: `1k`, `1.5meg`, `10u`, `2.2e-9`, `1mil`, `10uF` (unit letters ignored).

    Raises InputError (prefixed with `where`) for anything else or a non-finite value.
    """
    tok = token.lower()
    m = _NUMBER.fullmatch(tok)
    if not m:
        raise InputError(f"{where}{token!r} is not a number")
    sig, exp, suffix = m.group(1), m.group(2), m.group(3)
    mult = 1.0
    shift = 0
    if suffix.startswith("meg"):
        shift = 6
    elif suffix.startswith("mil"):
        mult = 25.4e-6
    elif suffix[:1] in _SUFFIX_EXP:
        shift = _SUFFIX_EXP[suffix[0]]
    if exp is not None and len(exp.lstrip("+-")) > 6:
        value = float(f"{sig}e{exp}") * 10.0 ** shift       # over/underflows anyway
    else:
        # one decimal → float conversion: "10u" gives exactly float("10e-6")
        value = float(f"{sig}e{int(exp or 0) + shift}")
    value *= mult
    if not math.isfinite(value):
        raise InputError(f"{where}number {token!r} is out of range")
    return value


# --------------------------------------------------------------------------------------------
# parsed data


@dataclass(frozen=True)
class TrNoise:
    """ngspice TRNOISE(NA NT NALPHA NAMP RTSAM RTSCAPT RTSEMT): white part NA (A or V rms per
    sample) drawn every NT seconds; the 1/f (NALPHA, NAMP) and RTS parts are recorded only."""

    na: float
    nt: float
    nalpha: float = 0.0
    namp: float = 0.0
    rts: tuple[float, ...] = ()

    @property
    def intensity(self) -> float:
        """White-noise intensity σ² = NA²·NT (A²·s or V²·s)."""
        return self.na * self.na * self.nt


@dataclass(frozen=True)
class Port:
    """One XSPICE connection: type (`i`, `v`, `id`, `vd`, ...; None: the model's default) and
    its nodes (two for differential types)."""

    type: str | None
    nodes: tuple[str, ...]


@dataclass(frozen=True)
class ParsedElement:
    """One element of the flattened circuit.

    name: ngspice name (hierarchical for subcircuit contents, e.g. `r.x1.r2`); kind: its
    letter; nodes: terminals in ngspice order (e/g: out+, out−, ctrl+, ctrl−; f/h: out+, out−);
    value: Ω (r), F (c), V/V (e), S (g), A/A (f), Ω (h), the DC value in A or V (i, v);
    control: the controlling voltage source of f/h; params: extra numeric parameters (m,
    scale, ic, ac, acphase, ...); noise: TRNOISE of an i/v source; waveform: (name, args) of
    a time-varying i/v source; model and ports: an XSPICE (a) instance; line: the line
    number in the deck (the definition's line for subcircuit contents).
    """

    name: str
    kind: str
    nodes: tuple[str, ...]
    value: float | None = None
    line: int = 0
    control: str | None = None
    params: dict = field(default_factory=dict)
    noise: TrNoise | None = None
    waveform: tuple[str, tuple[float, ...]] | None = None
    model: str | None = None
    ports: tuple[Port, ...] = ()


@dataclass(frozen=True)
class Model:
    """A .model card: name, type (e.g. `filesource`), raw parameters (str or tuple of str for
    `[vectors]`; quoted strings without their quotes), line number."""

    name: str
    type: str
    params: dict
    line: int

    def number(self, key: str, default: float | None = None) -> float | None:
        raw = self.params.get(key)
        if raw is None:
            return default
        if isinstance(raw, tuple):
            raise InputError(f"line {self.line}: model {self.name!r}: {key} must be a number")
        return parse_number(raw, f"line {self.line}: model {self.name!r}: {key}: ")

    def vector(self, key: str) -> list[float]:
        raw = self.params.get(key)
        if raw is None:
            return []
        vals = raw if isinstance(raw, tuple) else (raw,)
        return [parse_number(v, f"line {self.line}: model {self.name!r}: {key}: ") for v in vals]


@dataclass
class SubcktDef:
    """A .subckt definition: its ports, local elements (unflattened), models and definitions."""

    name: str
    ports: tuple[str, ...]
    line: int
    scope: _Scope


@dataclass
class _Scope:
    elements: list[ParsedElement] = field(default_factory=list)
    models: dict[str, Model] = field(default_factory=dict)
    subckts: dict[str, SubcktDef] = field(default_factory=dict)
    parent: _Scope | None = None

    def find_subckt(self, name: str) -> SubcktDef | None:
        s: _Scope | None = self
        while s is not None:
            if name in s.subckts:
                return s.subckts[name]
            s = s.parent
        return None

    def find_model(self, name: str) -> tuple[Model, _Scope] | None:
        s: _Scope | None = self
        while s is not None:
            if name in s.models:
                return s.models[name], s
            s = s.parent
        return None


@dataclass
class ParsedDeck:
    """A parsed deck: the flattened circuit and its cards (all names lower case).

    title: the first line as written; elements: flattened, in deck order; models: by name
    (those local to a subcircuit under `path.name`); options: .options key → raw value ('' for
    a flag); ic, nodeset: node → volts; analyses: analysis cards as written (lower case);
    control: the .control block's lines; subckts: top-level definitions; globals: .global
    nodes; cards: other accepted dot-cards (output control) as written; ended: whether a
    .end card was seen.
    """

    title: str
    elements: list[ParsedElement] = field(default_factory=list)
    models: dict[str, Model] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    ic: dict[str, float] = field(default_factory=dict)
    nodeset: dict[str, float] = field(default_factory=dict)
    analyses: list[str] = field(default_factory=list)
    control: list[str] = field(default_factory=list)
    subckts: dict[str, SubcktDef] = field(default_factory=dict)
    globals: set[str] = field(default_factory=set)
    cards: list[str] = field(default_factory=list)
    ended: bool = False

    def nodes(self) -> list[str]:
        """Every node except ground, in first-use order."""
        seen: dict[str, None] = {}
        for el in self.elements:
            for n in _element_nodes(el):
                if n != GROUND:
                    seen.setdefault(n, None)
        return list(seen)

    def element(self, name: str) -> ParsedElement:
        for el in self.elements:
            if el.name == name.lower():
                return el
        raise KeyError(name)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for el in self.elements:
            out[el.kind] = out.get(el.kind, 0) + 1
        return dict(sorted(out.items()))


def _element_nodes(el: ParsedElement) -> tuple[str, ...]:
    if el.kind == "a":
        return tuple(n for p in el.ports for n in p.nodes)
    return el.nodes


# --------------------------------------------------------------------------------------------
# lexing


def _strip_comment(line: str) -> str:
    """Remove `;` comments and `$` comments (after a blank or at the start), outside quotes."""
    if ";" not in line and "$" not in line:
        return line
    quoted = False
    for k, ch in enumerate(line):
        if ch == '"':
            quoted = not quoted
        elif not quoted and (ch == ";" or (ch == "$" and (k == 0 or line[k - 1] in " \t"))):
            return line[:k]
    return line


def _logical_lines(text: str) -> tuple[str, list[tuple[int, str]]]:
    """(title, [(line number, lower-case logical line)]) with comments and continuations done."""
    if not isinstance(text, str):
        raise InputError(f"a deck must be text, got {type(text).__name__}")
    if "\x00" in text:
        raise InputError("the deck contains a NUL character (binary data?)")
    phys = text.splitlines()
    if not phys:
        raise InputError("empty deck: no title line")
    title = phys[0].strip()
    out: list[tuple[int, str]] = []
    for k, raw in enumerate(phys[1:], start=2):
        s = raw.strip()
        if not s or s.startswith("*"):
            continue
        s = _strip_comment(s).strip()
        if s.startswith("+"):
            if not out:
                raise InputError(f"line {k}: continuation line ('+') with no line to continue")
            n0, prev = out[-1]
            out[-1] = (n0, prev + " " + s[1:].strip().lower())
            continue
        if not s:
            continue
        out.append((k, s.lower()))
    return title, out


def _tokens(text: str, where: str) -> list[str]:
    toks = _TOKEN.findall(text)
    if '"' in toks:
        raise InputError(f"{where}unterminated quoted string")
    if "{" in text or "}" in text:
        raise InputError(f"{where}expressions in braces {{...}} are not supported")
    return toks


# --------------------------------------------------------------------------------------------
# element parsers


class _Cursor:
    """Tokens of one line with the error prefix `line N: <what> 'name': `."""

    def __init__(self, toks: list[str], where: str):
        self.toks, self.i, self.where = toks, 0, where

    def more(self) -> bool:
        return self.i < len(self.toks)

    def peek(self, k: int = 0) -> str | None:
        j = self.i + k
        return self.toks[j] if j < len(self.toks) else None

    def next(self, what: str) -> str:
        if self.i >= len(self.toks):
            raise self.error(f"missing {what}")
        t = self.toks[self.i]
        self.i += 1
        return t

    def node(self, what: str) -> str:
        t = self.next(what)
        if t in _SPECIAL or t.startswith('"'):
            raise self.error(f"expected {what}, got {t!r}")
        return GROUND if t == "gnd" else t

    def number(self, what: str) -> float:
        t = self.next(what)
        return parse_number(t, f"{self.where}{what}: ")

    def expect(self, tok: str) -> None:
        t = self.next(repr(tok))
        if t != tok:
            raise self.error(f"expected {tok!r}, got {t!r}")

    def error(self, msg: str) -> InputError:
        return InputError(f"{self.where}{msg}")


def _is_number(tok: str | None) -> bool:
    return tok is not None and _NUMBER.fullmatch(tok) is not None


def _key_values(cur: _Cursor, allowed: set[str], kind: str) -> dict[str, float]:
    """Trailing `key=value` parameters."""
    out: dict[str, float] = {}
    while cur.more():
        key = cur.next("parameter")
        if cur.peek() != "=":
            raise cur.error(f"unexpected {key!r} (expected key=value)")
        cur.i += 1
        if key not in allowed:
            raise cur.error(f"parameter {key!r} is not supported for a {kind} "
                            f"(supported: {', '.join(sorted(allowed)) or 'none'})")
        out[key] = cur.number(key)
    return out


def _parse_rc(name: str, toks: list[str], lineno: int) -> ParsedElement:
    kind = name[0]
    what = {"r": "resistor", "c": "capacitor"}[kind]
    cur = _Cursor(toks[1:], f"line {lineno}: {what} {name!r}: ")
    nodes = (cur.node("node 1"), cur.node("node 2"))
    value = None
    if _is_number(cur.peek()):
        value = cur.number("value")
    elif cur.peek() is not None and cur.peek(1) != "=":
        raise cur.error(f"{cur.peek()!r} is not a value ({what} models are not supported)")
    allowed = {"m", "scale", "ac", "noisy", kind} | ({"ic"} if kind == "c" else set())
    if kind == "r":
        allowed |= {"resistance"}
    else:
        allowed |= {"capacitance"}
    params = _key_values(cur, allowed, what)
    for key in (kind, "resistance", "capacitance"):
        if key in params:
            if value is not None:
                raise cur.error("value given twice")
            value = params.pop(key)
    if value is None:
        raise cur.error("missing value")
    scale = params.get("scale", 1.0)
    mult = params.get("m", 1.0)
    if mult == 0:
        raise cur.error("m=0 is not allowed")
    value = value * scale / mult if kind == "r" else value * scale * mult
    if not math.isfinite(value):
        raise cur.error("value is out of range")
    if kind == "r" and value == 0:
        raise cur.error("zero resistance is not allowed")
    return ParsedElement(name, kind, nodes, value, lineno, params=params)


def _parse_controlled(name: str, toks: list[str], lineno: int) -> ParsedElement:
    kind = name[0]
    what = {"e": "vcvs", "g": "vccs", "f": "cccs", "h": "ccvs"}[kind]
    cur = _Cursor(toks[1:], f"line {lineno}: {what} {name!r}: ")
    for t in toks[1:]:
        if t in _BEHAVIOURAL:
            raise cur.error(f"behavioural form {t!r} is not supported (only linear "
                            f"{'n+ n- nc+ nc- gain' if kind in 'eg' else 'n+ n- vname gain'})")
    if kind in "eg":
        nodes = tuple(cur.node(w) for w in ("out+ node", "out- node", "ctrl+ node",
                                              "ctrl- node"))
        control = None
    else:
        nodes = (cur.node("out+ node"), cur.node("out- node"))
        control = cur.node("controlling source")
        if not control.startswith("v"):
            raise cur.error(f"controlling element {control!r} must be a voltage source (v...)")
    gain_key = "gain" if kind in "ef" else ("gm" if kind == "g" else "r")
    if cur.peek(1) == "=":
        params = _key_values(cur, {gain_key, "m"}, what)
        if gain_key not in params:
            raise cur.error(f"missing {gain_key}")
        value = params.pop(gain_key)
    else:
        value = cur.number("gain")
        params = _key_values(cur, {"m"}, what)
    value *= params.get("m", 1.0)
    if not math.isfinite(value):
        raise cur.error("gain is out of range")
    return ParsedElement(name, kind, nodes, value, lineno, control=control, params=params)


def _func_args(cur: _Cursor, fname: str) -> tuple[float, ...]:
    """Arguments of `fname(a b c)` / `fname(a, b, c)` / `fname a b c`."""
    args: list[float] = []
    if cur.peek() == "(":
        cur.i += 1
        while True:
            t = cur.next(f"')' closing {fname}(")
            if t == ")":
                break
            if t == ",":
                continue
            args.append(parse_number(t, f"{cur.where}{fname} argument: "))
    else:
        while _is_number(cur.peek()):
            args.append(cur.number(f"{fname} argument"))
    return tuple(args)


def _parse_source(name: str, toks: list[str], lineno: int) -> ParsedElement:
    kind = name[0]
    what = {"i": "current source", "v": "voltage source"}[kind]
    cur = _Cursor(toks[1:], f"line {lineno}: {what} {name!r}: ")
    nodes = (cur.node("node +"), cur.node("node -"))
    dc: float | None = None
    params: dict[str, float] = {}
    noise: TrNoise | None = None
    wave: tuple[str, tuple[float, ...]] | None = None
    while cur.more():
        t = cur.next("value")
        if t == "dc":
            if dc is not None:
                raise cur.error("DC value given twice")
            if cur.peek() == "=":
                cur.i += 1
            dc = cur.number("dc value")
        elif _is_number(t):
            if dc is not None:
                raise cur.error(f"unexpected number {t!r} (DC value already given)")
            dc = parse_number(t, f"{cur.where}value: ")
        elif t == "ac":
            if cur.peek() == "=":
                cur.i += 1
            params["ac"] = cur.number("ac magnitude") if _is_number(cur.peek()) else 1.0
            if _is_number(cur.peek()):
                params["acphase"] = cur.number("ac phase")
        elif t == "trnoise":
            if noise is not None:
                raise cur.error("trnoise given twice")
            args = _func_args(cur, "trnoise")
            if not 1 <= len(args) <= 7:
                raise cur.error(f"trnoise takes 1 to 7 arguments (na nt ...), got {len(args)}")
            if any(a < 0 for a in args[:2]):
                raise cur.error("trnoise amplitude and step must be ≥ 0")
            args = args + (0.0,) * (4 - len(args)) if len(args) < 4 else args
            noise = TrNoise(args[0], args[1], args[2], args[3], tuple(args[4:]))
        elif t in _WAVEFORMS:
            if wave is not None:
                raise cur.error(f"two transient functions ({wave[0]} and {t})")
            wave = (t, _func_args(cur, t))
        elif t in ("trrandom", "distof1", "distof2", "portnum", "z0", "pwr", "freq", "phase"):
            raise cur.error(f"source function {t!r} is not supported")
        else:
            raise cur.error(f"unexpected {t!r} (expected dc X, X, ac, trnoise(...) or a "
                            "transient function)")
    if dc is None:
        dc = _waveform_t0(wave)
    return ParsedElement(name, kind, nodes, dc, lineno, params=params, noise=noise,
                         waveform=wave)


def _waveform_t0(wave: tuple[str, tuple[float, ...]] | None) -> float:
    """The value ngspice uses for DC when a source has a transient function but no DC value."""
    if wave is None:
        return 0.0
    fname, args = wave
    if fname == "pwl":
        return args[1] if len(args) >= 2 else 0.0
    if fname in ("pulse", "sin", "exp", "sffm"):
        return args[0] if args else 0.0
    return 0.0


def _parse_xspice(name: str, toks: list[str], lineno: int) -> ParsedElement:
    cur = _Cursor(toks[1:], f"line {lineno}: xspice instance {name!r}: ")
    if len(toks) < 2:
        raise cur.error("missing connections and model name")
    model = toks[-1]
    if model in _SPECIAL or model.startswith('"') or model.startswith("%"):
        raise cur.error(f"the last token must be the model name, got {model!r}")
    cur.toks = toks[1:-1]
    ports: list[Port] = []

    def one_port(ptype: str | None) -> None:
        if cur.peek() == "(":
            cur.i += 1
            nodes = []
            while cur.peek() != ")":
                t = cur.next("')'")
                if t == ",":
                    continue
                if t in _SPECIAL or t.startswith('"') or t.startswith("%"):
                    raise cur.error(f"unexpected {t!r} in a port")
                nodes.append(GROUND if t == "gnd" else t)
            cur.i += 1
            if not 1 <= len(nodes) <= 2:
                raise cur.error(f"a port takes 1 or 2 nodes, got {len(nodes)}")
            ports.append(Port(ptype, tuple(nodes)))
        else:
            ports.append(Port(ptype, (cur.node("port node"),)))

    def port_or_vector(depth: int) -> None:
        t = cur.peek()
        if t == "[":
            if depth:
                raise cur.error("nested '[' in a port vector")
            cur.i += 1
            while cur.peek() != "]":
                if cur.peek() is None:
                    raise cur.error("missing ']'")
                port_or_vector(1)
            cur.i += 1
            return
        if t is not None and t.startswith("%"):
            cur.i += 1
            ptype = t[1:]
            if ptype not in _PORT_TYPES:
                raise cur.error(f"unknown port type {t!r}")
            one_port(ptype)
            return
        if t == "null":
            cur.i += 1
            ports.append(Port(None, ()))
            return
        one_port(None)

    while cur.more():
        port_or_vector(0)
    if not ports:
        raise cur.error("no connections")
    return ParsedElement(name, "a", (), None, lineno, model=model, ports=tuple(ports))


def _parse_x(name: str, toks: list[str], lineno: int) -> ParsedElement:
    where = f"line {lineno}: subcircuit instance {name!r}: "
    if any(t in ("=", "params:") for t in toks):
        raise InputError(f"{where}subcircuit parameters are not supported")
    if len(toks) < 2:
        raise InputError(f"{where}missing subcircuit name")
    cur = _Cursor(toks[1:-1], where)
    nodes = []
    while cur.more():
        nodes.append(cur.node("node"))
    sub = toks[-1]
    if sub in _SPECIAL or sub.startswith('"'):
        raise InputError(f"{where}bad subcircuit name {sub!r}")
    return ParsedElement(name, "x", tuple(nodes), None, lineno, model=sub)


_ELEMENT_PARSERS = {"r": _parse_rc, "c": _parse_rc, "e": _parse_controlled,
                    "g": _parse_controlled, "f": _parse_controlled, "h": _parse_controlled,
                    "i": _parse_source, "v": _parse_source, "a": _parse_xspice, "x": _parse_x}


# --------------------------------------------------------------------------------------------
# cards


def _parse_model(toks: list[str], lineno: int) -> Model:
    where = f"line {lineno}: .model: "
    if len(toks) < 3:
        raise InputError(f"{where}expected '.model name type(params)'")
    name, mtype = toks[1], toks[2]
    for t in (name, mtype):
        if t in _SPECIAL or t.startswith('"'):
            raise InputError(f"{where}bad name {t!r}")
    cur = _Cursor(toks[3:], f"line {lineno}: .model {name!r}: ")
    params: dict[str, str | tuple[str, ...]] = {}
    paren = cur.peek() == "("
    if paren:
        cur.i += 1
    while cur.more():
        key = cur.next("parameter")
        if key == ")" and paren:
            paren = False
            if cur.more():
                raise cur.error(f"unexpected {cur.peek()!r} after ')'")
            break
        if key in _SPECIAL or key.startswith('"'):
            raise cur.error(f"unexpected {key!r}")
        if cur.peek() != "=":
            params[key] = "1"          # a flag
            continue
        cur.i += 1
        val = cur.next(f"value of {key}")
        if val == "[":
            vec = []
            while True:
                v = cur.next("']'")
                if v == "]":
                    break
                if v == ",":
                    continue
                if v in _SPECIAL:
                    raise cur.error(f"unexpected {v!r} in vector {key}")
                vec.append(v.strip('"'))
            params[key] = tuple(vec)
        elif val in _SPECIAL:
            raise cur.error(f"missing value of {key}")
        else:
            params[key] = val[1:-1] if val.startswith('"') else val
    if paren:
        raise cur.error("missing ')'")
    return Model(name, mtype, params, lineno)


def _parse_node_values(toks: list[str], lineno: int, card: str) -> dict[str, float]:
    """`.ic v(a)=1 v(b)=2` → {a: 1, b: 2}."""
    cur = _Cursor(toks[1:], f"line {lineno}: {card}: ")
    out: dict[str, float] = {}
    while cur.more():
        t = cur.next("v(node)=value")
        if t != "v":
            raise cur.error(f"expected v(node)=value, got {t!r}")
        cur.expect("(")
        node = cur.node("node")
        cur.expect(")")
        cur.expect("=")
        out[node] = cur.number(f"v({node})")
    return out


def _parse_options(toks: list[str], lineno: int) -> dict[str, str]:
    cur = _Cursor(toks[1:], f"line {lineno}: .options: ")
    out: dict[str, str] = {}
    while cur.more():
        key = cur.next("option")
        if key in _SPECIAL:
            raise cur.error(f"unexpected {key!r}")
        if cur.peek() == "=":
            cur.i += 1
            val = cur.next(f"value of {key}")
            if val in _SPECIAL:
                raise cur.error(f"missing value of {key}")
            out[key] = val
        else:
            out[key] = ""
    return out


def parse_deck(text: str) -> ParsedDeck:
    """Parse an ngspice deck (see the module docstring); subcircuits are flattened.

    Raises InputError naming the line for malformed or unsupported input.
    """
    title, lines = _logical_lines(text)
    deck = ParsedDeck(title=title)
    top = _Scope()
    stack: list[tuple[SubcktDef, _Scope]] = []     # open .subckt definitions
    names: list[set[str]] = [set()]
    scope = top
    in_control: int | None = None
    for lineno, line in lines:
        if in_control is not None:
            if line.split()[0] == ".endc":
                in_control = None
            else:
                deck.control.append(line)
            continue
        word = line.split()[0]
        if word.startswith("."):
            card = word
            if card == ".end":
                # ngspice 39 (measured) keeps reading elements after .end: so do we
                deck.ended = True
                continue
            if card == ".control":
                if stack:
                    raise InputError(f"line {lineno}: .control inside .subckt "
                                     f"{stack[-1][0].name!r}")
                in_control = lineno
                continue
            if card == ".endc":
                raise InputError(f"line {lineno}: .endc without .control")
            toks = _tokens(line, f"line {lineno}: {card}: ")
            if card == ".subckt":
                if len(toks) < 2 or toks[1] in _SPECIAL:
                    raise InputError(f"line {lineno}: .subckt: missing subcircuit name")
                if any(t in ("=", "params:") for t in toks):
                    raise InputError(f"line {lineno}: .subckt {toks[1]!r}: subcircuit "
                                     "parameters are not supported")
                if len(stack) >= MAX_SUBCKT_DEPTH:
                    raise InputError(f"line {lineno}: .subckt nesting deeper than "
                                     f"{MAX_SUBCKT_DEPTH}")
                ports = []
                for t in toks[2:]:
                    if t in _SPECIAL or t.startswith('"'):
                        raise InputError(f"line {lineno}: .subckt {toks[1]!r}: bad port {t!r}")
                    ports.append(GROUND if t == "gnd" else t)
                if GROUND in ports:
                    raise InputError(f"line {lineno}: .subckt {toks[1]!r}: ground (0) cannot "
                                     "be a port")
                if len(set(ports)) != len(ports):
                    raise InputError(f"line {lineno}: .subckt {toks[1]!r}: repeated port")
                if toks[1] in scope.subckts:
                    raise InputError(f"line {lineno}: .subckt {toks[1]!r} defined twice "
                                     f"(first at line {scope.subckts[toks[1]].line})")
                sub = SubcktDef(toks[1], tuple(ports), lineno, _Scope(parent=scope))
                scope.subckts[sub.name] = sub
                stack.append((sub, scope))
                names.append(set())
                scope = sub.scope
                continue
            if card == ".ends":
                if not stack:
                    raise InputError(f"line {lineno}: .ends without .subckt")
                sub, parent = stack.pop()
                names.pop()
                if len(toks) > 1 and toks[1] != sub.name:
                    raise InputError(f"line {lineno}: .ends {toks[1]!r} closes .subckt "
                                     f"{sub.name!r} (line {sub.line})")
                scope = parent
                continue
            if card == ".model":
                model = _parse_model(toks, lineno)
                if model.name in scope.models:
                    raise InputError(f"line {lineno}: .model {model.name!r} defined twice")
                scope.models[model.name] = model
                continue
            if stack:
                raise InputError(f"line {lineno}: {card} is not allowed inside .subckt "
                                 f"{stack[-1][0].name!r}")
            if card in (".options", ".option", ".opt"):
                deck.options.update(_parse_options(toks, lineno))
            elif card == ".ic":
                deck.ic.update(_parse_node_values(toks, lineno, ".ic"))
            elif card == ".nodeset":
                deck.nodeset.update(_parse_node_values(toks, lineno, ".nodeset"))
            elif card == ".global":
                for t in toks[1:]:
                    if t in _SPECIAL:
                        raise InputError(f"line {lineno}: .global: bad node {t!r}")
                    deck.globals.add(GROUND if t == "gnd" else t)
            elif card in _ANALYSES:
                deck.analyses.append(line)
            elif card in _OUTPUT_CARDS or card == ".title":
                deck.cards.append(line)
            elif card in _UNSUPPORTED_CARDS:
                raise InputError(f"line {lineno}: unsupported card {card}")
            else:
                raise InputError(f"line {lineno}: unknown card {card}")
            continue
        letter = word[0]
        if letter not in SUPPORTED:
            what = _UNSUPPORTED.get(letter, "unknown element type")
            raise InputError(
                f"line {lineno}: unsupported element {word!r} ({what}); this parser handles "
                "R, C, E, G, F, H, I, V, A and X elements")
        toks = _tokens(line, f"line {lineno}: {word!r}: ")
        el = _ELEMENT_PARSERS[letter](toks[0], toks, lineno)
        if el.name in names[-1]:
            raise InputError(f"line {lineno}: duplicate element name {el.name!r}")
        names[-1].add(el.name)
        scope.elements.append(el)
    if in_control is not None:
        raise InputError(f"line {in_control}: .control without .endc")
    if stack:
        sub = stack[-1][0]
        raise InputError(f"line {sub.line}: .subckt {sub.name!r} has no .ends")
    deck.subckts = dict(top.subckts)
    deck.models = dict(top.models)
    _flatten(top, "", {}, deck, [], 0)
    _check_references(deck)
    return deck


def _flatten(scope: _Scope, path: str, nodemap: dict[str, str], deck: ParsedDeck,
             active: list[str], depth: int) -> None:
    """Append the scope's elements to deck.elements with hierarchical names."""
    local_names = {el.name for el in scope.elements}

    def node(n: str) -> str:
        if not path or n == GROUND or n in deck.globals:
            return n
        return nodemap.get(n) or f"{path}.{n}"

    def ename(name: str) -> str:
        return f"{name[0]}.{path}.{name}" if path else name

    def mname(name: str) -> str:
        found = scope.find_model(name)
        if found is None:
            return name                         # reported by _check_references
        model, owner = found
        if owner.parent is None:
            return name
        # local model: named after the instance path of the scope that defines it
        key = f"{path}.{name}"
        deck.models.setdefault(key, Model(key, model.type, model.params, model.line))
        return key

    for el in scope.elements:
        if len(deck.elements) > MAX_ELEMENTS:
            raise InputError(f"line {el.line}: the flattened circuit exceeds "
                             f"{MAX_ELEMENTS} elements")
        if el.kind == "x":
            sub = scope.find_subckt(el.model or "")
            if sub is None:
                raise InputError(f"line {el.line}: {el.name!r}: unknown subcircuit "
                                 f"{el.model!r}")
            if sub.name in active:
                raise InputError(f"line {el.line}: {el.name!r}: recursive subcircuit "
                                 f"{sub.name!r}")
            if len(el.nodes) != len(sub.ports):
                raise InputError(
                    f"line {el.line}: {el.name!r} connects {len(el.nodes)} node(s) but "
                    f"subcircuit {sub.name!r} (line {sub.line}) has {len(sub.ports)} port(s)")
            if depth >= MAX_SUBCKT_DEPTH:
                raise InputError(f"line {el.line}: subcircuits nested deeper than "
                                 f"{MAX_SUBCKT_DEPTH}")
            inner = f"{path}.{el.name}" if path else el.name
            sub_map = {p: node(n) for p, n in zip(sub.ports, el.nodes, strict=True)}
            _flatten(sub.scope, inner, sub_map, deck, [*active, sub.name], depth + 1)
            continue
        if not path:
            deck.elements.append(el)
            continue
        control = el.control
        if control is not None and control in local_names:
            control = ename(control)
        ports = tuple(Port(p.type, tuple(node(n) for n in p.nodes)) for p in el.ports)
        deck.elements.append(ParsedElement(
            ename(el.name), el.kind, tuple(node(n) for n in el.nodes), el.value, el.line,
            control, el.params, el.noise, el.waveform,
            mname(el.model) if el.model else None, ports))


def _check_references(deck: ParsedDeck) -> None:
    by_name: dict[str, ParsedElement] = {}
    for el in deck.elements:
        if el.name in by_name:
            raise InputError(f"line {el.line}: duplicate element name {el.name!r} "
                             f"(first at line {by_name[el.name].line})")
        by_name[el.name] = el
    for el in deck.elements:
        if el.kind in "fh":
            ctl = by_name.get(el.control or "")
            if ctl is None or ctl.kind != "v":
                raise InputError(f"line {el.line}: {el.name!r}: controlling voltage source "
                                 f"{el.control!r} not found")
        if el.kind == "a" and el.model not in deck.models:
            raise InputError(f"line {el.line}: {el.name!r}: unknown model {el.model!r}")


# --------------------------------------------------------------------------------------------
# modified nodal analysis


@dataclass(frozen=True)
class NoiseSource:
    """A white-noise input of the circuit.

    element: its element name (`anz0[3]` for column 3 of an XSPICE filesource); kind:
    'trnoise' or 'filesource'; port: 'current' or 'voltage'; nodes: (n+, n−) (a current flows
    from n+ through the source to n−; a voltage is V(n+) − V(n−)); amplitude: rms per sample
    (A or V: TRNOISE NA, or the filesource amplscale times the samples' unit rms); step_s:
    sample period NT (s; None when unknown); intensity: amplitude²·step_s (A²·s or V²·s; NaN
    when the step is unknown); line: deck line.
    """

    element: str
    kind: str
    port: str
    nodes: tuple[str, str]
    amplitude: float
    step_s: float | None
    line: int

    @property
    def intensity(self) -> float:
        if self.step_s is None:
            return float("nan")
        return self.amplitude ** 2 * self.step_s


@dataclass
class _Circuit:
    """The MNA of the linear circuit: K z = s, z = [node voltages; branch currents].

    Branch current convention: the current through the element from its n+ to its n−.
    """

    nodes: list[str]
    branches: list[str]                # element names with a branch current
    K: scipy.sparse.csc_matrix
    s: np.ndarray                      # deterministic (DC) right-hand side
    noise_cols: np.ndarray             # unit-amplitude noise inputs (n_unknowns, n_noise)
    noise: list[NoiseSource]
    caps: list[ParsedElement]          # capacitors (value ≠ 0); state branches when stateful
    warnings: list[str]


def _filesource_step(model: Model, deck_dir: str | Path | None) -> float | None:
    """Sample period of a filesource: the file's first time step × timescale (needs the file)."""
    if deck_dir is None:
        return None
    fname = model.params.get("file")
    if not isinstance(fname, str):
        return None
    base = Path(deck_dir).resolve()
    path = (base / fname).resolve()
    if base not in path.parents:
        return None                            # only files beside the deck are read
    try:
        with open(path) as fh:
            times = []
            for raw in fh:
                s = raw.strip()
                if not s or s.startswith("#") or s.startswith("*"):
                    continue
                times.append(float(s.replace(",", " ").split()[0]))
                if len(times) == 2:
                    break
    except (OSError, ValueError, IndexError, InputError):
        return None
    if len(times) < 2:
        return None
    step = (times[1] - times[0]) * (model.number("timescale", 1.0) or 1.0)
    return step if step > 0 else None


def _build_mna(deck: ParsedDeck, *, caps_as_states: bool, deck_dir: str | Path | None = None,
               noise_step_s: float | None = None) -> _Circuit:
    elements = deck.elements
    if not elements:
        raise InputError("the deck has no elements")
    notes: list[str] = []
    nodes = deck.nodes()
    nidx = {n: k for k, n in enumerate(nodes)}
    branches: list[str] = []
    # current-like and voltage-like noise / DC inputs expanded from XSPICE filesources
    caps = [el for el in elements if el.kind == "c" and el.value != 0.0]
    zero_caps = [el.name for el in elements if el.kind == "c" and el.value == 0.0]
    if zero_caps:
        notes.append(f"zero-valued capacitors ignored: {', '.join(zero_caps[:5])}")
    for el in elements:
        if el.kind in "veh":
            branches.append(el.name)
        elif el.kind == "a":
            model = deck.models[el.model or ""]
            if model.type in LINEARISED_XSPICE:
                branches.append(el.name)
                continue
            if model.type != "filesource":
                raise InputError(f"line {el.line}: {el.name!r}: XSPICE model type "
                                 f"{model.type!r} is not supported by the extractor (only "
                                 "filesource noise/stimulus sources and the op-amp "
                                 "macromodel's limit, linearised)")
            for k, p in enumerate(el.ports):
                ptype = p.type or "v"
                if ptype in ("v", "vd") and p.nodes:
                    branches.append(f"{el.name}[{k}]")
    if caps_as_states:
        branches += [c.name for c in caps]
    bidx = {b: len(nodes) + k for k, b in enumerate(branches)}
    n_unk = len(nodes) + len(branches)
    kr: list[int] = []
    kc: list[int] = []
    kv: list[float] = []
    s = np.zeros(n_unk)
    noise: list[NoiseSource] = []
    ncols: list[np.ndarray] = []

    def ix(n: str) -> int | None:
        return None if n == GROUND else nidx[n]

    def stamp(r: int | None, c: int | None, v: float) -> None:
        if r is not None and c is not None:
            kr.append(r)
            kc.append(c)
            kv.append(v)

    def current(np_: str, nm: str, vec: np.ndarray, val: float) -> None:
        """A current val flowing from np_ through the source to nm (leaves np_, enters nm)."""
        a, b = ix(np_), ix(nm)
        if a is not None:
            vec[a] -= val
        if b is not None:
            vec[b] += val

    def branch(name: str, np_: str, nm: str) -> int:
        j = bidx[name]
        a, b = ix(np_), ix(nm)
        stamp(a, j, 1.0)
        stamp(b, j, -1.0)
        stamp(j, a, 1.0)
        stamp(j, b, -1.0)
        return j

    def add_noise(src: NoiseSource, row_vals: list[tuple[int | None, float]]) -> None:
        col = np.zeros(n_unk)
        for r, v in row_vals:
            if r is not None:
                col[r] += v
        noise.append(src)
        ncols.append(col)

    for el in elements:
        k = el.kind
        if k == "r":
            a, b = ix(el.nodes[0]), ix(el.nodes[1])
            g = 1.0 / el.value
            stamp(a, a, g)
            stamp(b, b, g)
            stamp(a, b, -g)
            stamp(b, a, -g)
        elif k == "c":
            if caps_as_states and el.value != 0.0:
                branch(el.name, *el.nodes)
        elif k == "g":
            a, b, cp, cm = (ix(n) for n in el.nodes)
            gm = el.value
            stamp(a, cp, gm)
            stamp(a, cm, -gm)
            stamp(b, cp, -gm)
            stamp(b, cm, gm)
        elif k == "e":
            j = branch(el.name, el.nodes[0], el.nodes[1])
            stamp(j, ix(el.nodes[2]), -el.value)
            stamp(j, ix(el.nodes[3]), el.value)
        elif k == "f":
            jc = bidx[el.control]
            stamp(ix(el.nodes[0]), jc, el.value)
            stamp(ix(el.nodes[1]), jc, -el.value)
        elif k == "h":
            j = branch(el.name, el.nodes[0], el.nodes[1])
            stamp(j, bidx[el.control], -el.value)
        elif k in "iv":
            if el.waveform is not None:
                notes.append(f"{el.name}: transient function {el.waveform[0]} ignored; "
                                f"its DC value {el.value!r} is used")
            if k == "i":
                current(el.nodes[0], el.nodes[1], s, el.value)
            else:
                j = branch(el.name, *el.nodes)
                s[j] += el.value
            if el.noise is not None:
                tn = el.noise
                if tn.namp != 0 or any(tn.rts):
                    notes.append(f"{el.name}: trnoise 1/f or RTS components ignored")
                src = NoiseSource(el.name, "trnoise", "current" if k == "i" else "voltage",
                                  (el.nodes[0], el.nodes[1]), tn.na, tn.nt, el.line)
                if k == "i":
                    add_noise(src, [(ix(el.nodes[0]), -1.0), (ix(el.nodes[1]), 1.0)])
                else:
                    add_noise(src, [(bidx[el.name], 1.0)])
        elif k == "a" and deck.models[el.model or ""].type in LINEARISED_XSPICE:
            model = deck.models[el.model or ""]
            gain = model.number("gain", 1.0)
            in_off = model.number("in_offset", 0.0)
            pin = el.ports[0].nodes
            ip, im = ix(pin[0]), ix(pin[1]) if len(pin) > 1 else None
            out = el.ports[-1].nodes
            # linear region: V(out) = gain·(V(in) + in_offset), an ideal voltage output
            j = branch(el.name, out[0], out[1] if len(out) > 1 else GROUND)
            stamp(j, ip, -gain)
            stamp(j, im, gain)
            s[j] += gain * in_off
        elif k == "a":
            model = deck.models[el.model or ""]
            scale = model.vector("amplscale")
            offset = model.vector("amploffset")
            step = noise_step_s if noise_step_s is not None else _filesource_step(model,
                                                                                 deck_dir)
            if step is None:
                notes.append(f"{el.name}: filesource sample period unknown (pass deck_dir "
                                "or noise_step_s); its noise intensity is NaN")
            for col, p in enumerate(el.ports):
                if not p.nodes:
                    continue
                ptype = p.type or "v"
                np_ = p.nodes[0]
                nm = p.nodes[1] if len(p.nodes) > 1 else GROUND
                if ptype in ("i", "v") and len(p.nodes) != 1 or \
                        ptype in ("id", "vd") and len(p.nodes) != 2:
                    raise InputError(f"line {el.line}: {el.name!r}: port %{ptype} takes "
                                     f"{1 if ptype in ('i', 'v') else 2} node(s)")
                if ptype not in ("i", "id", "v", "vd"):
                    raise InputError(f"line {el.line}: {el.name!r}: filesource port type "
                                     f"%{ptype} is not supported (use %i, %id, %v, %vd)")
                amp = scale[col] if col < len(scale) else 1.0
                off = offset[col] if col < len(offset) else 0.0
                src = NoiseSource(f"{el.name}[{col}]", "filesource",
                                  "current" if ptype in ("i", "id") else "voltage",
                                  (np_, nm), abs(amp), step, el.line)
                if ptype in ("i", "id"):
                    # an XSPICE %i output of value y sinks y from its + node: like `i n+ n- y`
                    current(np_, nm, s, off)
                    add_noise(src, [(ix(np_), -1.0), (ix(nm), 1.0)])
                else:
                    j = branch(f"{el.name}[{col}]", np_, nm)
                    s[j] += off
                    add_noise(src, [(j, 1.0)])
    cols = np.stack(ncols, axis=1) if ncols else np.zeros((n_unk, 0))
    K = scipy.sparse.csc_matrix((kv, (kr, kc)), shape=(n_unk, n_unk))
    K.sum_duplicates()
    return _Circuit(nodes, branches, K, s, cols, noise, caps, notes)


def _solve(K: scipy.sparse.csc_matrix, rhs: np.ndarray, nodes: list[str], what: str
           ) -> np.ndarray:
    """Solve K z = rhs (rhs: (n,) or (n, k)) with power-of-two equilibration and a singularity
    check; dense LU up to DENSE_LIMIT unknowns, sparse LU (SuperLU) beyond."""
    n = K.shape[0]
    if n == 0:
        return np.zeros_like(rhs)
    if not np.all(np.isfinite(K.data)) or not np.all(np.isfinite(rhs)):
        raise InputError(f"{what}: element values out of range (non-finite conductances)")
    A = K.tocsc(copy=True)
    A.eliminate_zeros()
    r = np.ones(n)
    c = np.ones(n)
    for _ in range(8):                       # Ruiz scaling, by exact powers of two
        absA = abs(A)
        rmax = absA.max(axis=1).toarray().ravel()
        cmax = absA.max(axis=0).toarray().ravel()
        if np.any(rmax == 0) or np.any(cmax == 0):
            break
        dr = np.exp2(-np.round(np.log2(rmax) / 2))
        dc = np.exp2(-np.round(np.log2(cmax) / 2))
        if np.all(dr == 1) and np.all(dc == 1):
            break
        A = (scipy.sparse.diags(dr) @ A @ scipy.sparse.diags(dc)).tocsc()
        r *= dr
        c *= dc
    absA = abs(A)
    zero = (absA.max(axis=1).toarray().ravel() == 0) | (absA.max(axis=0).toarray().ravel() == 0)
    if zero.any():
        bad = np.flatnonzero(zero)[:5]
        names = [nodes[k] if k < len(nodes) else f"branch {k - len(nodes)}" for k in bad]
        raise InputError(f"{what}: the circuit equations are singular: no DC connection at "
                         f"{', '.join(names)} (a floating node?)")
    singular = InputError(f"{what}: the circuit equations are singular (a floating node or "
                          "sub-circuit, a loop of voltage sources/capacitors, or a cut-set of "
                          "current sources)")
    rs = rhs * (r[:, None] if rhs.ndim == 2 else r)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if n <= DENSE_LIMIT:
            lu, piv = scipy.linalg.lu_factor(A.toarray(), check_finite=False)
            d = np.abs(np.diag(lu))
            if not d.min() > n * np.finfo(float).eps * d.max():
                raise singular
            y = scipy.linalg.lu_solve((lu, piv), rs, check_finite=False)
        else:
            try:
                lu = scipy.sparse.linalg.splu(A, permc_spec="COLAMD",
                                              options={"DiagPivotThresh": 1.0})
            except RuntimeError:
                raise singular from None
            d = np.abs(lu.U.diagonal())
            if not d.min() > n * np.finfo(float).eps * d.max():
                raise singular
            y = lu.solve(np.asarray(rs, dtype=float))
    z = y * (c[:, None] if rhs.ndim == 2 else c)
    if not np.all(np.isfinite(z)):
        raise InputError(f"{what}: the circuit equations have no finite solution")
    return z


def dc_solution(parsed: ParsedDeck) -> dict[str, float]:
    """Node voltages (V) of the DC operating point, by MNA as ngspice's `.op` computes it.

    Capacitors are open; sources take their DC value (TRNOISE adds nothing; a filesource
    contributes its amploffset, whereas ngspice's `.op` also adds its t = 0 sample).
    Raises InputError when the DC equations are singular (e.g. a node with no DC path).
    """
    ckt = _build_mna(parsed, caps_as_states=False)
    z = _solve(ckt.K, ckt.s, ckt.nodes, "DC solution")
    return {n: float(z[k]) for k, n in enumerate(ckt.nodes)}


# --------------------------------------------------------------------------------------------
# extraction


@dataclass(frozen=True)
class StateSpace:
    """The circuit reduced to its capacitor voltages w (one per capacitor, V(n+) − V(n−)).

    dw/dt = F w + f + B ξ (ξ: independent unit white noises, one per `noise` source);
    node voltages: V = Pz w + rz; capacitors: their names; nodes: all node names.
    """

    capacitors: tuple[str, ...]
    F: np.ndarray
    f: np.ndarray
    B: np.ndarray
    nodes: tuple[str, ...]
    Pz: np.ndarray
    rz: np.ndarray
    Rz_noise: np.ndarray


@dataclass(frozen=True)
class EffectiveSystem:
    """The circuit as an OU process τ dx = −(A x − b) dt + noise, for a chosen τ.

    A = τM, b = τc; noise_cov K = τD/2 (so that dx carries 2K/τ dt: for K = κ₀ I this is
    the model's sqrt(2κ₀τ) dW); kappa0: diag(K) per variable; kappa0_eff: their mean;
    x_dc = A⁻¹b, the stationary mean.
    """

    A: np.ndarray
    b: np.ndarray
    tau_s: float
    noise_cov: np.ndarray
    kappa0: np.ndarray
    kappa0_eff: float
    x_dc: np.ndarray


@dataclass(frozen=True)
class Extracted:
    """The linear system a circuit realises, in the units of x = V(outputs)/v₀.

    outputs: the output nodes (x_i = V(outputs[i]) / volts_per_unit);
    M (N, N) and c (N,), both in 1/s: dx/dt = −M x + c + (noise);
    diffusion D (N, N), x-units²/s: the noise increment over dt has covariance D·dt;
    tau_natural_s: N / trace(M), the τ for which A_eff = τM has unit mean diagonal (callers
    who know the deck's τ, e.g. the sidecar's tau_s, pass it to `as_system`);
    node_gain (n_nodes, N) and node_offset (n_nodes,): the readout map of every node,
    V(nodes[k]) = node_gain[k] @ x + node_offset[k] (volts); it gives initial conditions
    for a transient from x₀;
    noise_sources: the white-noise inputs found; state: the capacitor state space;
    warnings: what the extraction ignored or could not determine.
    """

    outputs: tuple[str, ...]
    volts_per_unit: float
    M: np.ndarray
    c: np.ndarray
    diffusion: np.ndarray
    tau_natural_s: float
    nodes: tuple[str, ...]
    node_gain: np.ndarray
    node_offset: np.ndarray
    noise_sources: tuple[NoiseSource, ...]
    state: StateSpace
    warnings: tuple[str, ...] = ()

    @property
    def n(self) -> int:
        return len(self.outputs)

    @property
    def x_dc(self) -> np.ndarray:
        """The DC (stationary mean) solution M⁻¹c = A_eff⁻¹ b_eff for any τ."""
        return np.linalg.solve(self.M, self.c)

    def as_system(self, tau_s: float | None = None) -> EffectiveSystem:
        """A_eff = τM, b_eff = τc and the noise level for the time unit τ (default: natural)."""
        tau = self.tau_natural_s if tau_s is None else float(tau_s)
        if not (math.isfinite(tau) and tau > 0):
            raise InputError(f"tau_s must be a positive number, got {tau_s!r}")
        A = tau * self.M
        b = tau * self.c
        K = 0.5 * tau * self.diffusion
        k0 = np.diag(K).copy()
        return EffectiveSystem(A=A, b=b, tau_s=tau, noise_cov=K, kappa0=k0,
                               kappa0_eff=float(np.mean(k0)) if k0.size else 0.0,
                               x_dc=np.linalg.solve(A, b))

    def node_voltages(self, x: np.ndarray) -> dict[str, float]:
        """Every node's voltage when the outputs hold x (e.g. for `.ic` from x₀)."""
        v = self.node_gain @ np.asarray(x, dtype=float) + self.node_offset
        return {n: float(val) for n, val in zip(self.nodes, v, strict=True)}


def default_outputs(parsed: ParsedDeck) -> list[str]:
    """The output node of each capacitor, in deck order (the canonical state readout).

    Rule: a capacitor with one terminal at ground reads out at its other terminal (the
    ideal gm-C topology); otherwise it reads out at the terminal that is the output (n+) of a
    voltage-controlled or current-controlled voltage source whose n− is ground, i.e. an
    op-amp integrator's output (dense and factored topologies: `c s o` with `e o 0 0 s`).
    Capacitors of value 0 are ignored. Raises InputError when a capacitor fits neither case
    or two capacitors would share an output node: pass `outputs` explicitly then.
    """
    driven = {el.nodes[0] for el in parsed.elements if el.kind in "eh" and el.nodes[1] == GROUND}
    outs: list[str] = []
    for el in parsed.elements:
        if el.kind != "c" or el.value == 0.0:
            continue
        a, b = el.nodes
        if b == GROUND and a != GROUND:
            out = a
        elif a == GROUND and b != GROUND:
            out = b
        else:
            cand = [n for n in (a, b) if n in driven]
            if len(cand) != 1:
                raise InputError(
                    f"line {el.line}: capacitor {el.name!r} ({a}, {b}) has neither a grounded "
                    "terminal nor exactly one terminal driven by an op-amp (VCVS) output; "
                    "pass the output nodes explicitly")
            out = cand[0]
        if out in outs:
            raise InputError(f"line {el.line}: capacitor {el.name!r} reads out at node "
                             f"{out!r}, already the output of another capacitor; pass the "
                             "output nodes explicitly")
        outs.append(out)
    if not outs:
        raise InputError("the deck has no capacitors, hence no dynamics to extract")
    return outs


def state_space(parsed: ParsedDeck, *, deck_dir: str | Path | None = None,
                noise_step_s: float | None = None) -> tuple[StateSpace, list[NoiseSource],
                                                              list[str]]:
    """The circuit reduced to its capacitor voltages (see `extract_system`)."""
    ckt = _build_mna(parsed, caps_as_states=True, deck_dir=deck_dir,
                     noise_step_s=noise_step_s)
    if not ckt.caps:
        raise InputError("the deck has no capacitors, hence no dynamics to extract")
    nc, nn = len(ckt.caps), len(ckt.nodes)
    cap_rows = [nn + ckt.branches.index(c.name) for c in ckt.caps]
    E = np.zeros((ckt.K.shape[0], nc))
    E[cap_rows, np.arange(nc)] = 1.0
    rhs = np.concatenate([E, ckt.s[:, None], ckt.noise_cols], axis=1)
    Z = _solve(ckt.K, rhs, ckt.nodes, "state extraction")
    P = Z[cap_rows, :nc]
    r = Z[cap_rows, nc]
    Rn = Z[cap_rows, nc + 1:]
    cvals = np.array([c.value for c in ckt.caps])
    sigma = np.array([np.sqrt(src.intensity) for src in ckt.noise])
    ss = StateSpace(
        capacitors=tuple(c.name for c in ckt.caps),
        F=P / cvals[:, None], f=r / cvals, B=(Rn * sigma[None, :]) / cvals[:, None],
        nodes=tuple(ckt.nodes), Pz=Z[:nn, :nc], rz=Z[:nn, nc],
        Rz_noise=Z[:nn, nc + 1:] * sigma[None, :])
    return ss, ckt.noise, ckt.warnings


def extract_system(parsed: ParsedDeck, outputs: list[str] | None = None,
                   volts_per_unit: float | None = None, *, deck_dir: str | Path | None = None,
                   noise_step_s: float | None = None) -> Extracted:
    """The linear system the circuit realises, by nodal analysis of the deck as written.

    Method. The MNA of the linear circuit reads G z + C dz/dt = s + S ξ (z: node voltages
    and the branch currents of V, E, H sources; ξ: unit white noises). Every capacitor k is
    replaced by a voltage source holding its voltage w_k = V(n+) − V(n−); solving the
    resulting resistive network for unit w_k, for the sources and for each noise input gives
    the capacitor currents q = P w + r + R ξ and every node voltage V = Pz w + rz. This is the
    Kron reduction (Schur complement) of all algebraic unknowns onto the capacitor states:
    C_d dw/dt = q, i.e. dw/dt = F w + f + B ξ with F = C_d⁻¹P, f = C_d⁻¹r.
    The outputs y = V(outputs) = H w + h (H = Pz rows, h = rz rows) must be one per
    capacitor with H invertible; with x = y/v₀:
        dx/dt = −M x + c + Bx ξ,  M = −H F H⁻¹,  c = H (f − F H⁻¹ h)/v₀,  Bx = H B/v₀.
    For a time unit τ the circuit is τ dx = −(A x − b) dt + … with A = τM, b = τc
    (`Extracted.as_system(tau)`); at equilibrium the capacitor currents vanish, so
    M⁻¹c is the DC operating point of the outputs (over v₀).

    Noise. A white current of intensity σ_I² (A²·s: TRNOISE σ_I² = NA²·NT; a filesource
    column of unit-variance samples every NT scaled by amplscale: σ_I² = amplscale²·NT)
    enters the state equation through its column of B (for a noise current straight into an
    integrator's node: σ_I/C_i). In x units the diffusion is D = Bx Bxᵀ (x²/s); for a single
    source into node i of capacitance C_i, D_ii = (σ_I/(C_i v₀))². Matching
    τ dx = … + sqrt(2κ₀τ) dW, whose diffusion is 2κ₀/τ, gives κ₀ = D_ii τ/2 per variable
    (`EffectiveSystem.kappa0`); with the compiler's σ_I = (v₀/R₀)·sqrt(2κ₀τ) and τ = R₀C
    this returns κ₀. Noise that reaches the outputs without passing a capacitor (algebraic
    feed-through) has no finite variance and is only reported in `warnings`.
    No noise sources: D = 0, κ₀ = 0. A filesource's sample period is read from its file
    (needs `deck_dir`) or given as `noise_step_s`; otherwise its intensity is NaN.

    outputs: output node names in variable order (default: `default_outputs`);
    volts_per_unit: v₀ (default 1: x in volts).
    """
    v0 = 1.0 if volts_per_unit is None else float(volts_per_unit)
    if not (math.isfinite(v0) and v0 > 0):
        raise InputError(f"volts_per_unit must be a positive number, got {volts_per_unit!r}")
    if noise_step_s is not None and not (math.isfinite(noise_step_s) and noise_step_s > 0):
        raise InputError(f"noise_step_s must be a positive number, got {noise_step_s!r}")
    ss, noise, notes = state_space(parsed, deck_dir=deck_dir, noise_step_s=noise_step_s)
    outs = default_outputs(parsed) if outputs is None else [str(o).lower() for o in outputs]
    nidx = {n: k for k, n in enumerate(ss.nodes)}
    missing = [o for o in outs if o not in nidx]
    if missing:
        raise InputError(f"output node(s) not in the circuit: {', '.join(missing[:5])}")
    if len(set(outs)) != len(outs):
        raise InputError("output nodes repeat")
    nc = len(ss.capacitors)
    if len(outs) != nc:
        raise InputError(
            f"{len(outs)} output node(s) for {nc} capacitor state(s): the outputs must "
            "determine the state (one per capacitor); use state_space() for the full model")
    rows = [nidx[o] for o in outs]
    H, h = ss.Pz[rows], ss.rz[rows]
    cond = np.linalg.cond(H)
    if not np.isfinite(cond) or cond > 1e12:
        raise InputError(f"the output voltages do not determine the capacitor states "
                         f"(readout condition number {cond:.3g})")
    Hinv = np.linalg.inv(H)
    M = -(H @ ss.F) @ Hinv
    c = H @ (ss.f - ss.F @ (Hinv @ h)) / v0
    Bx = H @ ss.B / v0
    D = Bx @ Bx.T
    trace = float(np.trace(M))
    tau_nat = len(outs) / trace if trace > 0 else float("nan")
    ft = np.abs(ss.Rz_noise[rows])
    ft = ft[np.isfinite(ft)]
    if ft.size and ft.max() > 0:
        ref = np.nanmax(np.abs(H @ ss.B)) * (tau_nat if tau_nat > 0 else 1.0)
        if not ft.max() <= 1e-9 * ref:
            notes.append("some noise reaches the outputs without passing a capacitor "
                            "(feed-through), not included in the diffusion")
    G = ss.Pz @ Hinv
    return Extracted(outputs=tuple(outs), volts_per_unit=v0, M=M, c=c, diffusion=D,
                     tau_natural_s=tau_nat, nodes=ss.nodes, node_gain=G * v0,
                     node_offset=ss.rz - G @ h, noise_sources=tuple(noise), state=ss,
                     warnings=tuple(notes))
