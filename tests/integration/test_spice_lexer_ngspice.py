"""The lexer against ngspice itself: for committed decks and tricky hand-written ones, the
cards spu_circuits.spice.lexer yields are the cards ngspice 39 lists (`listing`), card by card.

Each deck is run by the CLI back-end in a sandbox folder with a trusted wrapper (a
`.control` block holding `listing`, which user decks may not contain) and the listing is
read back from the log. Normalisation on both sides, as ngspice's own `listing` applies it
(inp_casefix) or as its later passes do (inp_remove_excess_ws, `gnd` → `0`): lower case,
double quotes as blanks, blanks collapsed and around `= ( ) ,`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from spu_circuits.backends import Op
from spu_circuits.backends.base import prepare_deck
from spu_circuits.backends.cli import CliBackend
from spu_circuits.spice.lexer import file_resolver, is_directive, lex, lower_ascii

from ..conftest import needs_ngspice

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = sorted(ROOT.glob("netlists/*.cir")) + sorted(ROOT.glob("validation/examples/*/*.cir"))

#: the listing is asked for before the analysis runs
WRAPPER = "\n.control\nlisting\nrun\n.endc\n"

TRICKY = {
    "continuations": (
        "Tricky Continuations\n"
        "R1 A B 1K ; semicolon comment\n"
        "* a comment between continuation lines\n"
        "\n"
        "+ M=2 $ dollar comment\n"
        "   \t+scale=1\n"
        "r2 b 0 2k\t$tab comment\n"
        "r3 b 0 3k//slash comment\n"
        "r4 b 0 4k ,$comma comment\n"
        "r5 a 0 5k \\\\\n"
        "m=1\n"
        ";semicolon line joined by the next\n"
        "+ r6 a 0 6k\n"
        "CD b 0 1u\n"
        "v1 a 0 dc 1\r\n"
        "r7 a 0\r 7k\n"
        ".title The Real Title\n"
        ".end\n"
        "r8 a 0 8k\n"),
    "includes": (
        ".include first.cir\n"
        "r1 a b 1k\n"
        ".include plus.cir\n"
        "+ scale=2\n"
        ".INC 'sub/nested.cir' ; a comment\n"
        ".lib lib.l fast\n"
        "v1 a 0 1\n"),
    "subcircuits": (
        "subcircuits\n"
        ".subckt cell in out\n"
        "r1 in mid 1k ; local\n"
        "+ m=1\n"
        "c1 mid 0 1n\n"
        "e1 out 0 mid 0 2\n"
        ".ends cell\n"
        "x1 a b cell\n"
        "x2 b c cell\n"
        "r9 c 0 1k\n"
        "v1 a 0 1\n"
        ".options reltol=1e-6\n"
        ".op\n"),
}

FILES = {
    "first.cir": "* first include, read from the title line\nr0 a 0 10k\n",
    "plus.cir": "+ m=3\nr5 q 0 5k\n",
    "sub/nested.cir": "* nested\n.include inner.cir\n",
    "sub/inner.cir": "r7 q 0 7k\n",
    "lib.l": "* lib\n.lib fast\nr8 q 0 8k\n.lib lib.l slow\n.endl\n.lib slow\nr9 q 0 9k\n"
             ".endl slow\n",
}


def normalise(card: str) -> list[str]:
    s = lower_ascii(card).replace('"', " ")
    for ch in "=(),":
        s = s.replace(ch, f" {ch} ")
    return ["0" if t == "gnd" else t for t in s.split()]


def ngspice_listing(text: str, folder: Path) -> list[str]:
    """The cards of `listing` for the deck text run in folder (title, `.global gnd` and the
    final `.end` left out)."""
    res = CliBackend(timeout_s=60).run(text + WRAPPER, Op(), cwd=str(folder))
    out = []
    for ln in res.log.splitlines():
        num, sep, card = ln.partition(" : ")
        if sep and num.strip().isdigit() and len(num) >= 6:
            out.append(card)
        elif out and out[-1] == ".end":
            break
    # the title is printed unless it is a comment (an `.include` on line 1 is one)
    start = out.index(".global gnd")
    assert start <= 1 and out[-1] == ".end", out[:3]
    return out[start + 1:-1]


def lexer_listing(text: str, folder: Path) -> list[str]:
    """The lexer's cards of the text the back-end runs, as `listing` shows them (no file
    directives, which ngspice turns into comments; no `.end`)."""
    prepared = prepare_deck(text + WRAPPER, Op())
    cards = lex(prepared, folder, file_resolver(folder)).cards
    listed = [c.text for c in cards if c.directive is None
              and not (is_directive(c.text, ".end") and not c.text[4:5].isalpha())]
    # ngspice keeps `.options` cards apart (ci_options) and lists them last
    return [c for c in listed if not is_directive(c, ".opt")] + \
        [c for c in listed if is_directive(c, ".opt")]


def compare(text: str, folder: Path) -> int:
    theirs = [normalise(c) for c in ngspice_listing(text, folder)]
    ours = [normalise(c) for c in lexer_listing(text, folder)]
    diff = [(k, a, b) for k, (a, b) in enumerate(zip(ours, theirs, strict=False)) if a != b]
    assert not diff and len(ours) == len(theirs), (diff[:3], len(ours), len(theirs))
    return len(ours)


@needs_ngspice
@pytest.mark.parametrize("deck", COMMITTED, ids=lambda p: p.name)
def test_committed_decks_read_as_ngspice_lists_them(deck, tmp_path):
    assert compare(deck.read_text(), tmp_path) > 50


@needs_ngspice
@pytest.mark.parametrize("name", sorted(TRICKY))
def test_tricky_decks_read_as_ngspice_lists_them(name, tmp_path):
    for rel, content in FILES.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(content)
    n = compare(TRICKY[name], tmp_path)
    assert n >= 8
    if name == "continuations":
        # the cases that differ from a naive reader are in the comparison
        cards = lexer_listing(TRICKY[name], tmp_path)
        assert any(c.startswith("r1 a b 1k") and "scale=1" in c for c in cards)
        assert not any(c.startswith("r6") for c in cards)   # joined onto a comment
        assert any(c.startswith("r8") for c in cards)       # read after .end
