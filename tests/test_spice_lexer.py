"""spu_circuits.spice.lexer: ngspice 39's reading rules, a round trip through random
formatting, and a differential test: the safety scanner and the extractor see the same cards
(hostile-deck corpus of tests/integration/test_safety.py and fuzzed decks)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spu_circuits.errors import InputError, UnsafeDeckError
from spu_circuits.safety import scanned_cards
from spu_circuits.spice import parse_deck
from spu_circuits.spice.lexer import (
    candidates,
    file_resolver,
    lex,
    quoted_token,
    strip_comment,
)

from .integration.test_safety import BODY, COMMAND_DECKS, FILESOURCE_TRICKS, INCLUDE_DECKS


def texts(deck: str, **kw) -> list[tuple[int, str]]:
    """(line, text with blanks collapsed) of each card (ngspice keeps the blank after `+`:
    `r1 a 1k` + `+ m=1` reads `r1 a 1k  m=1`, collapsed later)."""
    return [(c.line, " ".join(c.text.split())) for c in lex(deck, **kw).cards]


# ------------------------------------------------------------------------ reading rules
# (each rule measured against ngspice 39.3's `listing`:
#  tests/integration/test_spice_lexer_ngspice.py)


@pytest.mark.parametrize("line,control,want", [
    ("r1 a b 1k ; c", False, "r1 a b 1k"),
    ("r1 a b 1k;c", False, "r1 a b 1k"),
    ('r1 a "x;y" 0', False, 'r1 a "x'),                 # quotes do not protect a `;`
    ("r1 a b 1k $ c", False, "r1 a b 1k"),
    ("r1 a b 1k\t$c", False, "r1 a b 1k"),
    ("r1 a,$b 1k", False, "r1 a,"),                     # `$` after a comma
    ("r1 a b$c 1k", False, "r1 a b$c 1k"),              # `$` inside a word: kept
    ("r1 a b 1k//c", False, "r1 a b 1k"),
    ("r1 a b 1k/x", False, "r1 a b 1k/x"),
    ("r1 a b 1k $x", True, "r1 a b 1k $x"),             # in .control only `$ ` counts
    ("r1 a b 1k $ x", True, "r1 a b 1k"),
    ("r1 a b 1k   ", False, "r1 a b 1k"),
    ("  ; all comment", False, "*  ; all comment"[:1] + " ; all comment"),
])
def test_strip_comment(line, control, want):
    got = strip_comment(line, control)
    assert got == want or (want.startswith("*") and got.startswith("*"))


def test_continuations_comments_and_blank_lines():
    deck = ("T\nR1 A B 1K ; c\n+ m=1\n* between\n\n  \n+scale=1\n\tr2 a 0 2k\n"
            "  + m=2 $ note\nr3 a b 1k \\\\\nm=3\n")
    assert texts(deck) == [(2, "r1 a b 1k m=1 scale=1"), (8, "r2 a 0 2k m=2"),
                           (10, "r3 a b 1k m=3")]
    card = lex(deck).cards[0]
    assert card.spans == ((None, 2), (None, 3), (None, 7))


def test_lines_split_at_lf_only_and_cr_is_dropped():
    deck = "t\r\nr0 a 0 1\r\nr1 a 0\r 1\nr2 a\u20280 1\n"
    assert [(c.line, c.text) for c in lex(deck).cards] == [
        (2, "r0 a 0 1"), (3, "r1 a 0 1"), (4, "r2 a\u20280 1")]
    assert lex(deck).title == "t"


def test_title_end_at_and_unusual_first_characters():
    deck = "First Title\n.title Second Title\nr1 a 0 1k\n.end\nr2 a 0 1k\n;x\n+ r3 a 0 1\n" \
           "=odd\n@\nr9 a 0 1\n"
    lx = lex(deck)
    assert lx.title == "Second Title" and lx.ended and lx.end_spans == ((None, 4),)
    assert [(c.line, c.text) for c in lx.cards] == [(3, "r1 a 0 1k"), (5, "r2 a 0 1k")]


def test_long_title_becomes_two_lines():
    lx = lex("t" * 4999 + "r1 a 0 1k\nv1 a 0 1\n")
    assert lx.title == "t" * 4999
    assert [(c.line, c.text) for c in lx.cards] == [(1, "r1 a 0 1k"), (2, "v1 a 0 1")]


def test_case_is_kept_where_ngspice_keeps_it():
    deck = "t\nR1 A B 1K\nCD B 0 1U\n.include Part.cir\n.control\nwrite Out.raw V(A)\n" \
           "print V(A) > File.TXT\n.endc\n"
    lx = lex(deck)
    assert [c.text for c in lx.cards] == [
        "r1 a b 1k", "CD B 0 1U", ".include Part.cir", ".control", "write Out.raw V(A)",
        "print v(a) > File.TXT", ".endc"]
    assert [c.control for c in lx.cards] == [False] * 3 + [True] * 4
    assert lx.cards[2].directive.name == "Part.cir" and lx.cards[2].directive.path is None


def test_control_and_subckt_structure():
    deck = "t\n.subckt s p q\nr1 p q 1k\n.subckt inner a\nr2 a 0 1\n.ends\n.ends s\n" \
           ".controlxyz\nrun\n.endc\nx1 a b s\n.control\nop\n"
    lx = lex(deck)
    assert [(c.text.split()[0], c.subckt, c.control) for c in lx.cards] == [
        (".subckt", (), False), ("r1", ("s",), False), (".subckt", ("s",), False),
        ("r2", ("s", "inner"), False), (".ends", ("s",), False), (".ends", (), False),
        (".controlxyz", (), True), ("run", (), True), (".endc", (), True),
        ("x1", (), False), (".control", (), True), ("op", (), True)]
    assert lx.open_control is lx.cards[-2]


def test_orphan_continuation_is_flagged():
    card = lex("t\n+ r1 a 0 1\nr2 a 0 1\n").cards[0]
    assert card.error and card.text == "+ r1 a 0 1"


def test_includes_splice_like_ngspice(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.cir").write_text("+ m=2\nr5 q 0 5k\n")
    (tmp_path / "sub" / "b.cir").write_text("* b\n.include c.cir\n")
    (tmp_path / "sub" / "c.cir").write_text("r7 q 0 7k\n")
    (tmp_path / "lib.l").write_text("* lib\n.lib fast\nr8 q 0 8k\n.lib lib.l slow\n.endl\n"
                                    ".lib slow\nr9 q 0 9k\n.endl slow\n")
    deck = ("t\nr1 a 0 1k\n.include a.cir\n+ scale=2\n.INC 'sub/b.cir' ; comment\n"
            ".lib lib.l fast\n")
    lx = lex(deck, tmp_path, file_resolver(tmp_path))
    got = [(c.source.name if c.source else None, c.line, " ".join(c.text.split()))
           for c in lx.cards]
    assert got == [
        (None, 2, "r1 a 0 1k m=2"),             # the include's first `+` line continues r1
        (None, 3, ".include a.cir"),
        ("a.cir", 2, "r5 q 0 5k scale=2"),      # the `+` after .include continues a.cir
        (None, 5, ".INC 'sub/b.cir'"),
        ("b.cir", 2, ".include c.cir"),          # nested: resolved in sub/ (found there)
        ("c.cir", 1, "r7 q 0 7k"),
        (None, 6, ".lib lib.l fast"),
        ("lib.l", 3, "r8 q 0 8k"),
        ("lib.l", 4, ".lib lib.l slow"),
        ("lib.l", 7, "r9 q 0 9k"),
    ]
    assert lx.cards[5].via == ((None, 5), (tmp_path / "sub" / "b.cir", 2))
    assert lx.cards[1].directive.path == (tmp_path / "a.cir").resolve()


def test_include_cycle_and_missing_file_are_input_errors(tmp_path):
    (tmp_path / "loop.cir").write_text("* loop\n.include loop.cir\n")
    with pytest.raises(InputError, match="cycle"):
        lex("t\n.include loop.cir\n", tmp_path, file_resolver(tmp_path))
    with pytest.raises(InputError, match="line 2: include file 'nothere.cir' not found"):
        lex("t\n.include nothere.cir\n", tmp_path, file_resolver(tmp_path))


def test_candidates_follow_ngspice_order(tmp_path):
    sp = Path("/usr/share/ngspice/scripts")
    assert candidates("x.cir", tmp_path / "sub", tmp_path, (sp,)) == [
        tmp_path / "x.cir", sp / "x.cir", tmp_path / "sub" / "x.cir"]
    assert candidates("/abs/x", tmp_path, tmp_path) == [Path("/abs/x")]
    assert quoted_token('  "a b" c') == ("a b", " c")
    assert quoted_token(" 'open") == (None, " 'open")


def test_parser_reads_the_lexer_cards():
    deck = "t\nR1 A 0 1K ; c\n+ m=2\nC1 A 0 1N $ x\n.end\nV1 A 0 1\n"
    p = parse_deck(deck)
    assert [c.text for c in p.lexed.cards] == ["r1 a 0 1k  m=2", "c1 a 0 1n", "v1 a 0 1"]
    assert p.element("r1").value == 500.0 and p.ended


# --------------------------------------------------------- differential: scanner ⇄ parser


@pytest.fixture(scope="module")
def site():
    with tempfile.TemporaryDirectory() as tmp:
        deck, outside = Path(tmp, "deck"), Path(tmp, "outside")
        deck.mkdir()
        (deck / "sub").mkdir()
        outside.mkdir()
        (outside / "outside.cir").write_text("* outside\nr9 b 0 1k\n")
        (outside / "outside.txt").write_text("0 1\n1e-3 1\n")
        yield deck, outside


def same_cards(a, b) -> bool:
    return [(c.text, c.spans, c.control) for c in a] == [(c.text, c.spans, c.control) for c in b]


def check_same_reading(text: str, deck: Path) -> None:
    """The scanner (includes followed) and the parser (no includes) read the deck text the
    same way: every card the parser accepts is the scanner's; a deck with file directives is
    refused by the parser at the first one (or earlier)."""
    scanned = scanned_cards(text, deck, allow_unsafe=True)
    plain = lex(text).cards
    own = [c for c in scanned if c.source is None and not c.via]
    try:
        parsed = parse_deck(text)
    except InputError as exc:
        msg = str(exc)
        directives = [c.line for c in plain if c.directive is not None]
        if directives and not any(c.source is not None for c in scanned):
            assert same_cards(own, plain)
        if msg.startswith("line "):
            line = int(msg.split(":", 1)[0].split()[1])
            assert line in {no for c in plain for _, no in c.spans}, msg
            assert not directives or line <= directives[0], msg
        return
    assert same_cards(parsed.lexed.cards, plain)
    assert same_cards(own, plain) and len(own) == len(scanned)


HOSTILE = [t for t, _, _ in COMMAND_DECKS + INCLUDE_DECKS] + [
    f"t\n{BODY}a1 %vd([n1 0]) src\nr5 n1 0 1k\n{trick}" for trick in FILESOURCE_TRICKS] + [
    f"t\n{BODY}" + sep.join(["r3 a 0 1k", ".control", "shell touch {M}", ".endc"]) + "\n"
    for sep in ["\u2028", "\u2029", "\x85", "\r", "\x0b", "\x1e"]] + [
    "t" * 4999 + ".control\nshell touch {M}\n.endc\n" + BODY,
    f"t\n{BODY}.print tran v(a) > {{O}}/p.txt\n", "\n*ng_script\necho {M}\n",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_corpus_read_alike(site, text):
    deck, outside = site
    check_same_reading(text.format(B=BODY, M=outside / "PWNED", O=outside), deck)


def test_hostile_corpus_is_refused(site):
    """Every deck of the corpus is still refused when the scanner reads it by the lexer."""
    deck, outside = site
    for text in HOSTILE:
        text = text.format(B=BODY, M=outside / "PWNED", O=outside)
        with pytest.raises(UnsafeDeckError):
            scanned_cards(text, deck)


# fuzzed decks: cards rendered with random formatting, read back

_NODES = ["a", "b", "n1", "out", "0", "gnd"]
_VALUES = ["1k", "2.2u", "10", "1e-9", "4.7meg", "3m"]
_COMMENTS = [" ; note", " $ note", "\t$note", " //note", ";x", ""]
_LEADS = ["", " ", "\t", "  \t"]
_BETWEEN = ["* c", "", "  ", "$ c", "# c", "  * indented"]


def formatted_deck(rng) -> tuple[str, list[tuple[int, list[str]]]]:
    """(deck text, expected [(first line, words)]): random R/C/V and dot cards, each split
    into `+` / backslash continuation lines with comment and blank lines between, random
    case, end-of-line comments, leading blanks, LF or CRLF."""
    cards, names = [], set()
    for _ in range(rng.randrange(9)):
        if rng.randrange(6) == 0:
            cards.append(rng.choice([[".op"], [".options", "reltol=1e-6"], [".save", "v(a)"]]))
            continue
        name = f"{rng.choice('rcv')}{rng.randrange(31)}"
        if name not in names:
            names.add(name)
            cards.append([name, rng.choice(_NODES), rng.choice(_NODES), rng.choice(_VALUES)])
    eol = rng.choice(["\r\n", "\n"])
    lines = [rng.choice(["Title", "T 1 2", "  spaced title "])]
    want = []
    for words in cards:
        cut = sorted({rng.randrange(1, len(words)) for _ in range(rng.randrange(4))}) \
            if len(words) > 1 else []
        parts = [" ".join(words[a:b]) for a, b in zip([0, *cut], [*cut, len(words)],
                                                      strict=True)]
        seps = [""] + [rng.choice(["+", "+ ", "+\t", "\\\\"]) for _ in parts[1:]]
        want.append((len(lines) + 1, [w.lower() for w in words]))
        for k, part in enumerate(parts):
            if rng.random() < 0.5:
                part = part.upper()
            plus = seps[k].startswith("+")
            if plus:     # comment and blank lines do not break a `+` continuation
                lines += [rng.choice(_BETWEEN) for _ in range(rng.randrange(3))]
            text = rng.choice(_LEADS) + (seps[k] if plus else "") + part
            backslash = k + 1 < len(parts) and seps[k + 1] == "\\\\"
            lines.append(text + (" \\\\" if backslash else rng.choice(_COMMENTS)))
        if rng.randrange(4) == 0:
            lines.append(rng.choice(["* comment", "", "\t", "; semi"]))
    return eol.join(lines) + eol, want


@settings(max_examples=2000, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.randoms(use_true_random=False))
def test_fuzzed_decks_round_trip_and_read_alike(site, rng):
    text, want = formatted_deck(rng)
    got = [(c.line, c.text.split()) for c in lex(text).cards]
    assert got == want, text
    check_same_reading(text, site[0])
