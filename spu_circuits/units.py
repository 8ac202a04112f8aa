"""Physical quantities on the command line: `--cap 100nF`, `--r0 10k`, `--gbw 10MHz`.

`parse_quantity(text, unit)` reads a number with an optional SI prefix and an optional unit:
prefixes f p n u µ m (milli) k K M (mega) meg MEG G T, case-sensitive where it matters
(m = milli, M = mega, as engineers write them; `meg` as SPICE writes it); the unit, when
given, must be the expected one (case-insensitive; Ω, ohm or R for resistance). A bare
number is read in base units (1e-9 → 1 nF) except where `require_unit` is set (frequencies:
`--gbw 10` would silently be 10 Hz, so it is refused with a message asking for a unit).
"""

from __future__ import annotations

import math
import re
from decimal import Decimal

from .errors import InputError

_PREFIX = {"f": 1e-15, "p": 1e-12, "n": 1e-9, "u": 1e-6, "µ": 1e-6, "μ": 1e-6, "m": 1e-3,
           "k": 1e3, "K": 1e3, "M": 1e6, "meg": 1e6, "MEG": 1e6, "Meg": 1e6, "G": 1e9,
           "T": 1e12}
_UNITS = {"F": ("f",), "ohm": ("ohm", "ohms", "ω", "r"), "Hz": ("hz",), "V": ("v",),
          "s": ("s",), "A": ("a",), "W": ("w",)}
_QTY = re.compile(r"^([+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)\s*(.*)$")


def parse_quantity(text: str | float | int, unit: str, *, what: str = "value",
                   require_unit: bool = False, positive: bool = True) -> float:
    """`text` as a float in base units of `unit` ('F', 'ohm', 'Hz', 'V', 's', 'A', 'W')."""
    if isinstance(text, bool):
        raise InputError(f"{what}: expected a quantity in {unit}, got {text!r}")
    if isinstance(text, int | float):
        if require_unit:
            raise InputError(f"{what} {text!r} has no unit: write e.g. {text:g}M{unit} or "
                             f"{text:g}{unit}")
        val = float(text)
    else:
        s = str(text).strip()
        m = _QTY.match(s)
        if not m:
            raise InputError(f"{what} {text!r}: give a number with an optional SI prefix and "
                             f"unit, e.g. 100n{unit}")
        val = float(m.group(1))
        rest = m.group(2).strip()
        mult, tail = 1.0, rest
        for p in sorted(_PREFIX, key=len, reverse=True):
            if rest.startswith(p) and (rest[len(p):].lower() in _UNITS[unit] + ("",)):
                # a lone 'F'/'A'/... is the unit, not a prefix ('1F', '2A'); 'm' alone = milli
                if rest == p and p.lower() in _UNITS[unit]:
                    continue
                mult, tail = _PREFIX[p], rest[len(p):]
                break
        if tail and tail.lower() not in _UNITS[unit]:
            raise InputError(f"{what} {text!r}: unknown prefix or unit {rest!r} (expected "
                             f"{unit}, prefixes f p n u m k M meg G)")
        if require_unit and not rest:
            raise InputError(f"{what} {text!r} has no unit: write e.g. {s}M{unit} or "
                             f"{s}{unit} (a bare number would be read as {s} {unit})")
        val = float(Decimal(m.group(1)) * Decimal(10) ** round(math.log10(mult)))
    if not math.isfinite(val) or (positive and not val > 0):
        raise InputError(f"{what} must be a positive finite quantity, got {text!r}")
    return val
