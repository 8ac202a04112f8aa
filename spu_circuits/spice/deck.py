"""The parsed deck: elements, models, subcircuit definitions and cards (typed data)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import InputError
from .lexer import Lexed
from .numbers import parse_number

GROUND = "0"


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
    scope: Scope


@dataclass
class Scope:
    elements: list[ParsedElement] = field(default_factory=list)
    models: dict[str, Model] = field(default_factory=dict)
    subckts: dict[str, SubcktDef] = field(default_factory=dict)
    parent: Scope | None = None

    def find_subckt(self, name: str) -> SubcktDef | None:
        s: Scope | None = self
        while s is not None:
            if name in s.subckts:
                return s.subckts[name]
            s = s.parent
        return None

    def find_model(self, name: str) -> tuple[Model, Scope] | None:
        s: Scope | None = self
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
    .end card was seen; lexed: the cards read (spice.lexer), for callers that compare.
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
    lexed: Lexed | None = field(default=None, repr=False, compare=False)

    def nodes(self) -> list[str]:
        """Every node except ground, in first-use order."""
        seen: dict[str, None] = {}
        for el in self.elements:
            for n in element_nodes(el):
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


def element_nodes(el: ParsedElement) -> tuple[str, ...]:
    if el.kind == "a":
        return tuple(n for p in el.ports for n in p.nodes)
    return el.nodes

