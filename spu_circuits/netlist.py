"""Netlist IR (elements and nodes as data), the deck writer and the JSON sidecar.

Decks are self-contained ngspice input: `ngspice -b deck.cir` runs them with nothing else.
All names are lower case (ngspice folds case). Numbers are written with `repr`, so a deck
round-trips its float64 values exactly and identical input gives byte-identical output.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

GROUND = "0"

#: element letter → what it is (ngspice element types used by this project)
KINDS = {
    "r": "resistor",
    "c": "capacitor",
    "e": "vcvs",
    "g": "vccs",
    "i": "current_source",
    "v": "voltage_source",
    "a": "xspice",
    "x": "subcircuit",
}


def fmt(value: float) -> str:
    """Shortest exact decimal form of a float64 (deterministic)."""
    return repr(float(value))


@dataclass(frozen=True)
class Element:
    """One netlist element.

    name: ngspice name (its first letter is the type: r, c, e, g, i, v, a, x);
    nodes: terminal nodes in ngspice order (for e/g: out+, out−, ctrl+, ctrl−);
    value: Ω for r, F for c, V/V for e, S for g, A for i, V for v (None when `spec` is used);
    spec: raw text written instead of the value (e.g. "dc 0 trnoise(...)" or a model name).
    """

    name: str
    nodes: tuple[str, ...]
    value: float | None = None
    spec: str | None = None
    #: the element letter (lower case), derived from the name
    kind: str = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "kind", self.name[0].lower())

    @property
    def dc_terminals(self) -> tuple[str, ...]:
        """Terminals joined by a DC conducting branch (the output pair for controlled sources)."""
        return self.nodes[:2] if self.kind in "rvleg" else ()

    def line(self) -> str:
        parts = [self.name, *self.nodes]
        if self.value is not None:
            parts.append(fmt(self.value))
        if self.spec:
            parts.append(self.spec)
        return " ".join(parts)


@dataclass(frozen=True)
class Subcircuit:
    """A `.subckt` definition as data: name, port nodes (in order), body elements (their
    nodes local: a port name or an internal node), comment lines written after `.subckt`."""

    name: str
    ports: tuple[str, ...]
    elements: tuple[Element, ...]
    comments: tuple[str, ...] = ()

    def lines(self) -> list[str]:
        return [" ".join([".subckt", self.name, *self.ports]),
                *(f"* {c}" for c in self.comments),
                *(el.line() for el in self.elements),
                f".ends {self.name}"]


@dataclass
class Netlist:
    """A circuit as data: elements, models, subcircuits, options, initial conditions and
    analyses. `models` holds `.model` lines; `subcircuits` the `.subckt` definitions (written
    after the models), instantiated by X elements whose `spec` is the subcircuit name."""

    title: str
    elements: list[Element] = field(default_factory=list)
    header: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    subcircuits: list[Subcircuit] = field(default_factory=list)
    options: dict[str, str] = field(default_factory=dict)
    ic: dict[str, float] = field(default_factory=dict)
    analyses: list[str] = field(default_factory=lambda: [".op"])
    control: list[str] = field(default_factory=list)
    _names: set[str] = field(default_factory=set, repr=False)

    def add(self, name: str, nodes, value: float | None = None, spec: str | None = None
            ) -> Element:
        name = name.lower()
        if name in self._names:
            raise ValueError(f"duplicate element name {name!r}")
        el = Element(name, tuple([str(n).lower() for n in nodes]), value, spec)
        self._names.add(name)
        self.elements.append(el)
        return el

    def append(self, el: Element) -> Element:
        """Add an existing Element (its name and nodes already lower case)."""
        if el.name in self._names:
            raise ValueError(f"duplicate element name {el.name!r}")
        self._names.add(el.name)
        self.elements.append(el)
        return el

    def copy(self, elements: bool = True) -> Netlist:
        """A copy (lists copied; elements too unless `elements=False`, which leaves none)."""
        out = Netlist(title=self.title, header=list(self.header), models=list(self.models),
                      subcircuits=list(self.subcircuits), options=dict(self.options),
                      ic=dict(self.ic), analyses=list(self.analyses),
                      control=list(self.control))
        if elements:
            out.elements = list(self.elements)
            out._names = set(self._names)
        return out

    def subcircuit(self, name: str) -> Subcircuit | None:
        return next((s for s in self.subcircuits if s.name == name), None)

    def nodes(self) -> list[str]:
        """All node names except ground, in first-use order."""
        seen: dict[str, None] = {}
        for el in self.elements:
            for n in el.nodes:
                if n != GROUND:
                    seen.setdefault(n, None)
        return list(seen)

    def counts(self) -> dict[str, int]:
        """Element counts by type name (sorted, deterministic)."""
        c = Counter(KINDS.get(el.kind, el.kind) for el in self.elements)
        return dict(sorted(c.items()))

    def to_text(self) -> str:
        lines = [self.title.replace("\n", " ")]
        lines += ["* " + h for h in self.header]
        if self.options:
            lines.append(".options " + " ".join(f"{k}={v}" for k, v in self.options.items()))
        lines += self.models
        for sub in self.subcircuits:
            lines += sub.lines()
        lines += [el.line() for el in self.elements]
        if self.ic:
            lines.append(".ic " + " ".join(f"v({n})={fmt(v)}" for n, v in self.ic.items()))
        lines += self.analyses
        if self.control:
            lines += [".control", *self.control, ".endc"]
        lines.append(".end")
        return "\n".join(lines) + "\n"


def _new_file_mode(path: Path) -> int:
    """The mode `open(path, "w")` would leave: the existing file's, else 0o666 minus umask."""
    try:
        return path.stat().st_mode & 0o777
    except FileNotFoundError:
        mask = os.umask(0)
        os.umask(mask)
        return 0o666 & ~mask


def atomic_write(files: dict[Path, str | bytes], *, durable: bool = True) -> None:
    """Write several files so that each appears whole or not at all (temp file + rename),
    with the mode a plain write would give (mkstemp's own is 0600).

    durable: fsync each file before the rename (survives a power loss); False skips that
    (still whole-or-nothing if the process dies), for files written in a loop."""
    tmps: list[tuple[str, Path]] = []
    try:
        for path, content in files.items():
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            tmps.append((tmp, path))
            os.fchmod(fd, _new_file_mode(path))
            with os.fdopen(fd, "wb") as fh:
                fh.write(content.encode() if isinstance(content, str) else content)
                if durable:
                    fh.flush()
                    os.fsync(fh.fileno())
        for tmp, path in tmps:
            os.replace(tmp, path)
        tmps = []
    finally:
        for tmp, _ in tmps:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass


def deck_digest(text: str) -> str:
    """sha256 of a deck's text, recorded in its sidecar to detect edits."""
    return hashlib.sha256(text.encode()).hexdigest()


def sidecar_path(deck: str | Path) -> Path:
    return Path(deck).with_suffix(".json")


def dumps_sidecar(meta) -> str:
    """The sidecar file's text of a Sidecar or of its JSON object (indent 2, no NaN)."""
    if hasattr(meta, "dumps"):
        return meta.dumps()
    return json.dumps(meta, indent=2, allow_nan=False) + "\n"
