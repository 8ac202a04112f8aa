"""The independent ngspice parser and linear-system extractor (kept import path).

The code lives in `spu_circuits.spice` (one module per concept); this module re-exports its
public names so that `from spu_circuits.parser import extract_system, parse_deck, ...` keeps
working.
"""

from . import spice as _spice
from .spice import *  # noqa: F403 - this path re-exports spu_circuits.spice's public names

__all__ = list(_spice.__all__)
