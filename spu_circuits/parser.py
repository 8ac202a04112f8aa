"""The independent ngspice parser and linear-system extractor (kept import path).

The code lives in `spu_circuits.spice` (one module per concept); this module re-exports its
public names so that `from spu_circuits.parser import extract_system, parse_deck, ...` keeps
working.
"""

from .spice import (
    DENSE_LIMIT,
    GROUND,
    MAX_ELEMENTS,
    MAX_SUBCKT_DEPTH,
    SUPPORTED,
    EffectiveSystem,
    Extracted,
    Model,
    NoiseSource,
    ParsedDeck,
    ParsedElement,
    Port,
    StateSpace,
    SubcktDef,
    TrNoise,
    dc_solution,
    default_outputs,
    extract_system,
    parse_deck,
    parse_number,
    state_space,
)

__all__ = [
    "DENSE_LIMIT", "GROUND", "MAX_ELEMENTS", "MAX_SUBCKT_DEPTH", "SUPPORTED", "EffectiveSystem",
    "Extracted", "Model", "NoiseSource", "ParsedDeck", "ParsedElement", "Port", "StateSpace",
    "SubcktDef", "TrNoise", "dc_solution", "default_outputs", "extract_system", "parse_deck",
    "parse_number", "state_space",
]
