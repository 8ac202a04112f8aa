"""spu_circuits.spice.edit: whole cards (all their physical lines) dropped or rewritten, every
other line kept as written; the back-ends' deck preparation and noise stripping on top."""

from __future__ import annotations

from spu_circuits.backends import Op
from spu_circuits.backends.base import prepare_deck
from spu_circuits.spice.edit import drop_cards, rewrite_cards, strip_noise
from spu_circuits.spice.lexer import lex

DECK = ("title\n"
        "R1 a b 1k ; keep\n"
        ".tran 1u 1m\n"
        "* a comment between\n"
        "+ 0 1n\n"
        "v1 a 0 dc 1\n"
        "+ ac 1\n"
        ".model src filesource(file=\"n.txt\"\n"
        "+ amplscale=[1])\n"
        "anz0 %i([b]) src\n"
        "inz1 0 b dc 0 trnoise(1n 1u 0 0)\n"
        ".end\n")


def test_drop_cards_takes_continuation_lines_along():
    lines, n = drop_cards(lex(DECK), lambda c: c.word == ".tran", ends=True)
    assert n == 3
    assert lines == ["title", "R1 a b 1k ; keep", "* a comment between", "v1 a 0 dc 1",
                     "+ ac 1", '.model src filesource(file="n.txt"', "+ amplscale=[1])",
                     "anz0 %i([b]) src", "inz1 0 b dc 0 trnoise(1n 1u 0 0)"]


def test_rewrite_cards_replaces_all_lines_of_a_card():
    lines, n = rewrite_cards(lex(DECK), lambda c: ["v1 a 0 2"] if c.word == "v1" else None)
    assert "v1 a 0 2" in lines and "+ ac 1" not in lines and n == 2
    assert len(lines) == len(DECK.splitlines()) - 1


def test_prepare_deck_leaves_no_orphan_continuation():
    """The old line-by-line removal left `+ 0 1n`, which then continued the R1 card."""
    text = prepare_deck(DECK, Op())
    assert "+ 0 1n" not in text and text.endswith(".op\n.end\n")
    assert [c.text for c in lex(text).cards][0] == "r1 a b 1k"


def test_strip_noise_by_cards():
    text, n = strip_noise(DECK)
    assert n == 4                       # .model (2 lines), anz0, inz1
    assert "filesource" not in text and "anz0" not in text and "trnoise" not in text
    assert "+ ac 1" in text and text.startswith("title\n")
    assert strip_noise(DECK, ["r1"])[1] == 5
