"""An independent ngspice netlist parser and linear-system extractor.

This package reads a deck as ngspice would and computes, by nodal analysis of the circuit *as
written*, the linear system it realises. It does not read the JSON sidecar and does not import
the compiler, so it can check the compiler (and hand-written or edited decks) from the outside.

`parse_deck(text) -> ParsedDeck`
    The cards of `lexer.lex`, read as ngspice 39 reads a deck (title line, `+` and `\\\\`
    continuations, `;` `//` `$` comments, case, `.title`, `.end`), then SPU-level parsing:
    SPICE numbers (`1k`, `1.5meg`, `10u`, `1mil`, e-notation; trailing unit letters are
    ignored as ngspice does: `1kohm`, `10uF`).
    Elements R, C, E (VCVS), G (VCCS), F (CCCS), H (CCVS), I and V (`dc X`, plain `X`, `ac`,
    `trnoise(...)`, pulse/sin/exp/pwl/sffm/am waveforms), A (XSPICE instances: ports and model
    name), X (subcircuit instances, flattened with ngspice's hierarchical names: node `mid` of
    instance `x1` becomes `x1.mid`, element `r1` in it becomes `r.x1.r1`).
    Cards: .model, .options/.option/.opt, .ic, .nodeset, .global, .subckt/.ends (nested
    definitions allowed), analysis cards (.op .tran .dc .ac .noise .tf ...), output cards
    (.save .print .plot .probe .meas .width .temp), .control/.endc (kept verbatim), .end
    (recorded; like ngspice 39, measured here, lines after it are still read).
    Files named by `.include`/`.lib` are not read (the lexer can, with a resolver).
    Anything else (L, K, D, Q, J, M, B, S, W, T, ... elements; .param, .include, .lib, ...;
    `{expressions}`; behavioural E/G sources) raises `InputError` naming the line and element.

`extract_system(parsed, outputs=None, volts_per_unit=None) -> Extracted`
    The modified nodal analysis (MNA) of the linear circuit, reduced to its capacitor states,
    expressed for the output node voltages: dx/dt = −M x + c (+ noise), x = V(outputs)/v₀.
    See `extract_system` for the method and `Extracted.as_system(tau_s)` for A_eff = τM,
    b_eff = τc and κ₀.

`dc_solution(parsed) -> dict[node, volts]`
    The DC operating point (capacitors open, noise sources at their DC value), as `.op` gives.

Modules, one concept each: `lexer` (deck text → cards as ngspice reads them, and tokens),
`edit` (drop whole cards from a deck text), `numbers` (SPICE numbers), `deck` (the parsed
data types), `cursor` (tokens of one card), `elements` (element cards), `cards` (dot cards),
`parse` (`parse_deck`), `flatten` (subcircuits), `mna` (modified nodal analysis,
`dc_solution`), `extract` (`extract_system`, `state_space`).
"""

from .deck import GROUND, Model, ParsedDeck, ParsedElement, Port, SubcktDef, TrNoise
from .elements import SUPPORTED
from .extract import (
    EffectiveSystem,
    Extracted,
    StateSpace,
    default_outputs,
    extract_system,
    state_space,
)
from .flatten import MAX_ELEMENTS, MAX_SUBCKT_DEPTH
from .mna import DENSE_LIMIT, NoiseSource, dc_solution
from .numbers import parse_number
from .parse import parse_deck

__all__ = [
    "DENSE_LIMIT", "GROUND", "MAX_ELEMENTS", "MAX_SUBCKT_DEPTH", "SUPPORTED", "EffectiveSystem",
    "Extracted", "Model", "NoiseSource", "ParsedDeck", "ParsedElement", "Port", "StateSpace",
    "SubcktDef", "TrNoise", "dc_solution", "default_outputs", "extract_system", "parse_deck",
    "parse_number", "state_space",
]
