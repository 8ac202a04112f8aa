"""Dot cards: .model, .ic/.nodeset, .options, and the card classes the parser knows."""

from __future__ import annotations

from ..errors import InputError
from .cursor import Cursor
from .deck import Model
from .lexer import SPECIAL

ANALYSES = {".op", ".tran", ".dc", ".ac", ".noise", ".tf", ".sens", ".pz", ".disto", ".four",
             ".pss", ".sp"}
OUTPUT_CARDS = {".save", ".print", ".plot", ".probe", ".meas", ".measure", ".width", ".temp"}
UNSUPPORTED_CARDS = {".param", ".func", ".include", ".inc", ".lib", ".endl", ".if", ".elseif",
                      ".else", ".endif", ".csparam", ".data", ".enddata", ".spiceinit"}


def parse_model(toks: list[str], lineno: int) -> Model:
    where = f"line {lineno}: .model: "
    if len(toks) < 3:
        raise InputError(f"{where}expected '.model name type(params)'")
    name, mtype = toks[1], toks[2]
    for t in (name, mtype):
        if t in SPECIAL or t.startswith('"'):
            raise InputError(f"{where}bad name {t!r}")
    cur = Cursor(toks[3:], f"line {lineno}: .model {name!r}: ")
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
        if key in SPECIAL or key.startswith('"'):
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
                if v in SPECIAL:
                    raise cur.error(f"unexpected {v!r} in vector {key}")
                vec.append(v.strip('"'))
            params[key] = tuple(vec)
        elif val in SPECIAL:
            raise cur.error(f"missing value of {key}")
        else:
            params[key] = val[1:-1] if val.startswith('"') else val
    if paren:
        raise cur.error("missing ')'")
    return Model(name, mtype, params, lineno)


def parse_node_values(toks: list[str], lineno: int, card: str) -> dict[str, float]:
    """`.ic v(a)=1 v(b)=2` → {a: 1, b: 2}."""
    cur = Cursor(toks[1:], f"line {lineno}: {card}: ")
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


def parse_options(toks: list[str], lineno: int) -> dict[str, str]:
    cur = Cursor(toks[1:], f"line {lineno}: .options: ")
    out: dict[str, str] = {}
    while cur.more():
        key = cur.next("option")
        if key in SPECIAL:
            raise cur.error(f"unexpected {key!r}")
        if cur.peek() == "=":
            cur.i += 1
            val = cur.next(f"value of {key}")
            if val in SPECIAL:
                raise cur.error(f"missing value of {key}")
            out[key] = val
        else:
            out[key] = ""
    return out

