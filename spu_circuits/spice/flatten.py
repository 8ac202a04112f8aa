"""Subcircuit flattening with ngspice's hierarchical names, and reference checks."""

from __future__ import annotations

from ..errors import InputError
from .deck import GROUND, Model, ParsedDeck, ParsedElement, Port, Scope

#: flattening guards (a deck that expands beyond these is refused, not simulated)
MAX_SUBCKT_DEPTH = 50
MAX_ELEMENTS = 1_000_000


def flatten(scope: Scope, path: str, nodemap: dict[str, str], deck: ParsedDeck,
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
            return name                         # reported by check_references
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
            flatten(sub.scope, inner, sub_map, deck, [*active, sub.name], depth + 1)
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


def check_references(deck: ParsedDeck) -> None:
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
