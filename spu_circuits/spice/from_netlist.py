"""`parse_netlist`: the ParsedDeck of a Netlist IR without writing and re-reading its text.

`parse_netlist(net)` equals `parse_deck(net.to_text())` (same elements in the same order,
same values bit for bit, same line numbers, models, subcircuits flattened the same way; the
test suite checks this for every topology and pass): R, C, E, G, I and V elements with a
plain value are built directly (their values go through text as `repr`, which round-trips a
float64 exactly), every other element, model and card is read by the parser's own card
readers from its line; a netlist whose `models` hold other lines than one `.model` card each
(a vendor library's text) is read from its written text as a whole. Passes that extract
the same circuit many times (realisation, compensation) use it to skip the text round trip.
"""

from __future__ import annotations

from ..netlist import Element, Netlist, fmt
from .cards import parse_model, parse_node_values, parse_options
from .deck import ParsedDeck, ParsedElement, Scope, SubcktDef
from .elements import ELEMENT_PARSERS
from .flatten import check_references, flatten
from .lexer import lex, tokens

_DIRECT = frozenset("rcegiv")


def _element(el: Element, lineno: int) -> ParsedElement:
    if el.kind in _DIRECT and el.value is not None and not el.spec:
        return ParsedElement(el.name, el.kind, el.nodes, float(el.value), lineno, params={})
    return _card(el.line(), lineno, lambda line: ELEMENT_PARSERS[line[0]](
        line.split(None, 1)[0], tokens(line, f"line {lineno}: "), lineno))


def _card(text: str, lineno: int, read):
    """Read one card as the lexer presents it to the parser (comments stripped, lower
    case)."""
    cards = lex("title\n" + text).cards
    if len(cards) != 1:
        raise ValueError(f"netlist line {text!r} is not one card")
    return read(cards[0].text.lower())


def _is_model_card(line: str) -> bool:
    return "\n" not in line and "\r" not in line and line.lstrip().lower().startswith(".model")


def parse_netlist(net: Netlist, memo: dict | None = None) -> ParsedDeck:
    """The ParsedDeck of `net`, equal to `parse_deck(net.to_text())` (see the module doc).

    memo: a dict the caller keeps between calls on similar netlists: an element already read
    at the same line is not read again (ParsedElements are immutable).
    """
    if not all(_is_model_card(m) for m in net.models):
        # raw model text (a vendor library: comments, continuations, .subckt blocks): read
        # the written deck as a whole
        from .parse import parse_deck

        return parse_deck(net.to_text())
    if memo is None:
        memo = {}

    def element(el: Element, lineno: int) -> ParsedElement:
        key = (el, lineno)
        got = memo.get(key)
        if got is None:
            got = memo[key] = _element(el, lineno)
        return got

    deck = ParsedDeck(title=net.title.replace("\n", " ").strip())
    top = Scope()
    lineno = 1 + len(net.header)
    if net.options:
        lineno += 1
        opts = " ".join(f"{k}={v}" for k, v in net.options.items())
        deck.options.update(_card(".options " + opts, lineno,
                                  lambda line: parse_options(tokens(line, ""), lineno)))
    for text in net.models:
        lineno += 1
        model = _card(text, lineno, lambda line, k=lineno: parse_model(tokens(line, ""), k))
        top.models[model.name] = model
    for sub in net.subcircuits:
        lineno += 1
        definition = SubcktDef(sub.name, tuple(sub.ports), lineno, Scope(parent=top))
        lineno += len(sub.comments)
        for el in sub.elements:
            lineno += 1
            definition.scope.elements.append(element(el, lineno))
        lineno += 1
        top.subckts[sub.name] = definition
    for el in net.elements:
        lineno += 1
        top.elements.append(element(el, lineno))
    if net.ic:
        lineno += 1
        text = ".ic " + " ".join(f"v({n})={fmt(v)}" for n, v in net.ic.items())
        deck.ic.update(_card(text, lineno,
                             lambda line: parse_node_values(tokens(line, ""), lineno, ".ic")))
    for card in net.analyses:
        lineno += 1
        deck.analyses.append(_card(card, lineno, lambda line: line))
    if net.control:
        text = "t\n.control\n" + "\n".join(net.control) + "\n.endc"
        deck.control = [c.text.lower() for c in lex(text).cards
                        if c.word not in (".control", ".endc")]
    deck.ended = True
    deck.subckts = dict(top.subckts)
    deck.models = dict(top.models)
    flatten(top, "", {}, deck, [], 0)
    check_references(deck)
    return deck
