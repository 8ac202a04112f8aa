"""`parse_deck`: the cards of a deck read into scopes (subcircuits), then flattened."""

from __future__ import annotations

from ..errors import InputError
from .cards import (
    ANALYSES,
    OUTPUT_CARDS,
    UNSUPPORTED_CARDS,
    parse_model,
    parse_node_values,
    parse_options,
)
from .deck import GROUND, ParsedDeck, Scope, SubcktDef
from .elements import ELEMENT_PARSERS, SUPPORTED, UNSUPPORTED
from .flatten import MAX_SUBCKT_DEPTH, check_references, flatten
from .lexer import SPECIAL, is_directive, lex, split_word, tokens


def parse_deck(text: str) -> ParsedDeck:
    """Parse an ngspice deck (see the module docstring); subcircuits are flattened.

    Raises InputError naming the line for malformed or unsupported input.
    """
    lexed = lex(text)
    if lexed.lines == ("",):
        raise InputError("empty deck: no title line")
    deck = ParsedDeck(title=lexed.title, ended=lexed.ended, lexed=lexed)
    top = Scope()
    stack: list[tuple[SubcktDef, Scope]] = []     # open .subckt definitions
    names: list[set[str]] = [set()]
    scope = top
    for lx in lexed.cards:
        lineno, line = lx.line, lx.text.lower()
        word = split_word(line)[0]
        if lx.control:
            if is_directive(line, ".control") and stack:
                raise InputError(f"line {lineno}: .control inside .subckt "
                                 f"{stack[-1][0].name!r}")
            if not is_directive(line, ".control") and not is_directive(line, ".endc"):
                deck.control.append(line)
            continue
        if lx.directive is not None:
            raise InputError(f"line {lineno}: unsupported card {word}")
        if lx.error is not None:
            raise InputError(f"line {lineno}: {lx.error}")
        if word.startswith("."):
            card = word
            if is_directive(card, ".endc"):
                raise InputError(f"line {lineno}: .endc without .control")
            toks = tokens(line, f"line {lineno}: {card}: ")
            if card == ".subckt":
                if len(toks) < 2 or toks[1] in SPECIAL:
                    raise InputError(f"line {lineno}: .subckt: missing subcircuit name")
                if any(t in ("=", "params:") for t in toks):
                    raise InputError(f"line {lineno}: .subckt {toks[1]!r}: subcircuit "
                                     "parameters are not supported")
                if len(stack) >= MAX_SUBCKT_DEPTH:
                    raise InputError(f"line {lineno}: .subckt nesting deeper than "
                                     f"{MAX_SUBCKT_DEPTH}")
                ports = []
                for t in toks[2:]:
                    if t in SPECIAL or t.startswith('"'):
                        raise InputError(f"line {lineno}: .subckt {toks[1]!r}: bad port {t!r}")
                    ports.append(GROUND if t == "gnd" else t)
                if GROUND in ports:
                    raise InputError(f"line {lineno}: .subckt {toks[1]!r}: ground (0) cannot "
                                     "be a port")
                if len(set(ports)) != len(ports):
                    raise InputError(f"line {lineno}: .subckt {toks[1]!r}: repeated port")
                if toks[1] in scope.subckts:
                    raise InputError(f"line {lineno}: .subckt {toks[1]!r} defined twice "
                                     f"(first at line {scope.subckts[toks[1]].line})")
                sub = SubcktDef(toks[1], tuple(ports), lineno, Scope(parent=scope))
                scope.subckts[sub.name] = sub
                stack.append((sub, scope))
                names.append(set())
                scope = sub.scope
                continue
            if card == ".ends":
                if not stack:
                    raise InputError(f"line {lineno}: .ends without .subckt")
                sub, parent = stack.pop()
                names.pop()
                if len(toks) > 1 and toks[1] != sub.name:
                    raise InputError(f"line {lineno}: .ends {toks[1]!r} closes .subckt "
                                     f"{sub.name!r} (line {sub.line})")
                scope = parent
                continue
            if card == ".model":
                model = parse_model(toks, lineno)
                if model.name in scope.models:
                    raise InputError(f"line {lineno}: .model {model.name!r} defined twice")
                scope.models[model.name] = model
                continue
            if stack:
                raise InputError(f"line {lineno}: {card} is not allowed inside .subckt "
                                 f"{stack[-1][0].name!r}")
            if card in (".options", ".option", ".opt"):
                deck.options.update(parse_options(toks, lineno))
            elif card == ".ic":
                deck.ic.update(parse_node_values(toks, lineno, ".ic"))
            elif card == ".nodeset":
                deck.nodeset.update(parse_node_values(toks, lineno, ".nodeset"))
            elif card == ".global":
                for t in toks[1:]:
                    if t in SPECIAL:
                        raise InputError(f"line {lineno}: .global: bad node {t!r}")
                    deck.globals.add(GROUND if t == "gnd" else t)
            elif card in ANALYSES:
                deck.analyses.append(line)
            elif card in OUTPUT_CARDS or card == ".title":
                deck.cards.append(line)
            elif card in UNSUPPORTED_CARDS:
                raise InputError(f"line {lineno}: unsupported card {card}")
            else:
                raise InputError(f"line {lineno}: unknown card {card}")
            continue
        letter = word[0]
        if letter not in SUPPORTED:
            what = UNSUPPORTED.get(letter, "unknown element type")
            raise InputError(
                f"line {lineno}: unsupported element {word!r} ({what}); this parser handles "
                "R, C, E, G, F, H, I, V, A and X elements")
        toks = tokens(line, f"line {lineno}: {word!r}: ")
        el = ELEMENT_PARSERS[letter](toks[0], toks, lineno)
        if el.name in names[-1]:
            raise InputError(f"line {lineno}: duplicate element name {el.name!r}")
        names[-1].add(el.name)
        scope.elements.append(el)
    if lexed.open_control is not None:
        raise InputError(f"line {lexed.open_control.line}: .control without .endc")
    if stack:
        sub = stack[-1][0]
        raise InputError(f"line {sub.line}: .subckt {sub.name!r} has no .ends")
    deck.subckts = dict(top.subckts)
    deck.models = dict(top.models)
    flatten(top, "", {}, deck, [], 0)
    check_references(deck)
    return deck
