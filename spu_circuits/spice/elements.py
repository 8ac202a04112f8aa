"""Element cards: R, C, E, G, F, H, I, V, A (XSPICE) and X (subcircuit instances)."""

from __future__ import annotations

import math

from ..errors import InputError
from .cursor import Cursor
from .deck import GROUND, ParsedElement, Port, TrNoise
from .lexer import SPECIAL
from .numbers import is_number, parse_number

#: element letters this parser understands
SUPPORTED = "rcegfhivax"
UNSUPPORTED = {
    "l": "inductor", "k": "coupled inductors", "d": "diode", "q": "bipolar transistor",
    "j": "JFET", "m": "MOSFET", "z": "MESFET", "b": "behavioural source",
    "s": "voltage-controlled switch", "w": "current-controlled switch",
    "t": "transmission line", "o": "lossy transmission line", "u": "RC line",
    "y": "transmission line", "p": "coupled transmission line", "n": "OSDI device",
}
_WAVEFORMS = {"pulse", "sin", "exp", "pwl", "sffm", "am"}
_BEHAVIOURAL = {"vol", "cur", "value", "poly", "table", "laplace", "freq", "and", "or", "nand",
                "nor"}
#: XSPICE port types the parser accepts (the extractor handles %i %id %v %vd of filesources)
_PORT_TYPES = {"i", "id", "v", "vd", "g", "gd", "h", "hd", "d", "vnam"}


def _key_values(cur: Cursor, allowed: set[str], kind: str) -> dict[str, float]:
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
    cur = Cursor(toks[1:], f"line {lineno}: {what} {name!r}: ")
    nodes = (cur.node("node 1"), cur.node("node 2"))
    value = None
    if is_number(cur.peek()):
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
    cur = Cursor(toks[1:], f"line {lineno}: {what} {name!r}: ")
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


def _func_args(cur: Cursor, fname: str) -> tuple[float, ...]:
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
        while is_number(cur.peek()):
            args.append(cur.number(f"{fname} argument"))
    return tuple(args)


def _parse_source(name: str, toks: list[str], lineno: int) -> ParsedElement:
    kind = name[0]
    what = {"i": "current source", "v": "voltage source"}[kind]
    cur = Cursor(toks[1:], f"line {lineno}: {what} {name!r}: ")
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
        elif is_number(t):
            if dc is not None:
                raise cur.error(f"unexpected number {t!r} (DC value already given)")
            dc = parse_number(t, f"{cur.where}value: ")
        elif t == "ac":
            if cur.peek() == "=":
                cur.i += 1
            params["ac"] = cur.number("ac magnitude") if is_number(cur.peek()) else 1.0
            if is_number(cur.peek()):
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
    cur = Cursor(toks[1:], f"line {lineno}: xspice instance {name!r}: ")
    if len(toks) < 2:
        raise cur.error("missing connections and model name")
    model = toks[-1]
    if model in SPECIAL or model.startswith('"') or model.startswith("%"):
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
                if t in SPECIAL or t.startswith('"') or t.startswith("%"):
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
    cur = Cursor(toks[1:-1], where)
    nodes = []
    while cur.more():
        nodes.append(cur.node("node"))
    sub = toks[-1]
    if sub in SPECIAL or sub.startswith('"'):
        raise InputError(f"{where}bad subcircuit name {sub!r}")
    return ParsedElement(name, "x", tuple(nodes), None, lineno, model=sub)


ELEMENT_PARSERS = {"r": _parse_rc, "c": _parse_rc, "e": _parse_controlled,
                    "g": _parse_controlled, "f": _parse_controlled, "h": _parse_controlled,
                    "i": _parse_source, "v": _parse_source, "a": _parse_xspice, "x": _parse_x}

