"""SPICE numbers: `1k`, `1.5meg`, `10u`, `2.2e-9`, `1mil`, `10uF` (unit letters ignored)."""

from __future__ import annotations

import math
import re

from ..errors import InputError

#: SPICE scale suffixes (decimal exponents); `mil` (25.4e-6) is handled apart
_SUFFIX_EXP = {"t": 12, "g": 9, "k": 3, "m": -3, "u": -6, "n": -9, "p": -12, "f": -15}
NUMBER = re.compile(r"([+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+))(?:e([+-]?[0-9]+))?([a-z]*)")


def parse_number(token: str, where: str = "") -> float:
    """A SPICE number: `1k`, `1.5meg`, `10u`, `2.2e-9`, `1mil`, `10uF` (unit letters ignored).

    Raises InputError (prefixed with `where`) for anything else or a non-finite value.
    """
    tok = token.lower()
    m = NUMBER.fullmatch(tok)
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


def is_number(tok: str | None) -> bool:
    return tok is not None and NUMBER.fullmatch(tok) is not None

