"""Deck edits by card: rewrite or drop whole cards (every physical line ngspice joins into
them) and keep every other line as written. Used by the back-ends' deck preparation, the
noise stripping of validation and the error budget, and calibration trims."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from .lexer import Card, Lexed, lex


def physical_text_lines(lexed: Lexed) -> list[str]:
    """The deck's physical lines (LF-split, a CR before the LF dropped, no empty last line)."""
    lines = [ln[:-1] if ln.endswith("\r") else ln for ln in lexed.lines]
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def rewrite_cards(lexed: Lexed, new: Callable[[Card], list[str] | None], *,
                  ends: bool = False) -> tuple[list[str], int]:
    """(the deck's physical lines with cards rewritten, how many lines went or changed).

    new(card): the lines that replace all the card's physical lines ([] drops it), or None
    to keep it as written. Only cards wholly in the deck text itself (not from included
    files) and outside `.control` blocks are offered; ends: also drop `.end` lines. The
    title stays.
    """
    lines = physical_text_lines(lexed)
    replace: dict[int, list[str]] = {}
    gone: set[int] = set()
    for card in lexed.cards:
        if card.control or any(src is not None for src, _ in card.spans):
            continue
        got = new(card)
        if got is None:
            continue
        nos = [no for _, no in card.spans if no != 1]
        if nos:
            replace[nos[0]] = got
            gone.update(nos[1:])
    if ends:
        gone |= {no for src, no in lexed.end_spans if src is None and no != 1}
    out: list[str] = []
    for no, ln in enumerate(lines, 1):
        if no in replace:
            out += replace[no]
        elif no not in gone:
            out.append(ln)
    return out, len(gone) + sum(1 for no in replace if replace[no] != [lines[no - 1]])


def drop_cards(lexed: Lexed, drop: Callable[[Card], bool], *, ends: bool = False
               ) -> tuple[list[str], int]:
    """(the physical lines of the deck without the cards `drop` selects, how many lines went):
    see `rewrite_cards`."""
    return rewrite_cards(lexed, lambda card: [] if drop(card) else None, ends=ends)


def strip_noise(text: str, noise_elements: Iterable[str] = ()) -> tuple[str, int]:
    """The deck without noise sources, and how many physical lines were removed.

    Removed with all their physical lines (`+` continuations): the elements
    `noise_elements` (e.g. the cell map's Role.NOISE elements), element cards with a
    ``trnoise(`` function, XSPICE instances of a ``filesource`` model and the ``.model``
    cards of ``filesource`` models.
    """
    names = {str(n).lower() for n in noise_elements}
    lexed = lex(text)

    def words(card: Card) -> list[str]:
        return card.text.lower().replace("(", " ( ").split()

    def filesource_model(w: list[str]) -> bool:
        return w[0] == ".model" and w[2:3] == ["filesource"]

    files = {w[1] for c in lexed.cards if filesource_model(w := words(c))}

    def noisy(card: Card) -> bool:
        w = words(card)
        if filesource_model(w):
            return True
        return not w[0].startswith(".") and (
            w[0] in names or "trnoise(" in card.text.lower().replace(" ", "")
            or (w[0][0] == "a" and w[-1] in files))

    kept, removed = drop_cards(lexed, noisy)
    return "\n".join(kept) + "\n", removed
