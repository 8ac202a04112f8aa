"""A cursor over the tokens of one card, with the card's error prefix."""

from __future__ import annotations

from ..errors import InputError
from .deck import GROUND
from .lexer import SPECIAL
from .numbers import parse_number


class Cursor:
    """Tokens of one line with the error prefix `line N: <what> 'name': `."""

    def __init__(self, toks: list[str], where: str):
        self.toks, self.i, self.where = toks, 0, where

    def more(self) -> bool:
        return self.i < len(self.toks)

    def peek(self, k: int = 0) -> str | None:
        j = self.i + k
        return self.toks[j] if j < len(self.toks) else None

    def next(self, what: str) -> str:
        if self.i >= len(self.toks):
            raise self.error(f"missing {what}")
        t = self.toks[self.i]
        self.i += 1
        return t

    def node(self, what: str) -> str:
        t = self.next(what)
        if t in SPECIAL or t.startswith('"'):
            raise self.error(f"expected {what}, got {t!r}")
        return GROUND if t == "gnd" else t

    def number(self, what: str) -> float:
        t = self.next(what)
        return parse_number(t, f"{self.where}{what}: ")

    def expect(self, tok: str) -> None:
        t = self.next(repr(tok))
        if t != tok:
            raise self.error(f"expected {tok!r}, got {t!r}")

    def error(self, msg: str) -> InputError:
        return InputError(f"{self.where}{msg}")

