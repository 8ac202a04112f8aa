"""Deck text → logical lines (title, `+` continuations, comments, case) and tokens."""

from __future__ import annotations

import re

from ..errors import InputError

_TOKEN = re.compile(r'"[^"]*"|[()\[\]=,]|[^\s()\[\]=,"]+|"')
SPECIAL = frozenset("()[]=,")


def _strip_comment(line: str) -> str:
    """Remove `;` comments and `$` comments (after a blank or at the start), outside quotes."""
    if ";" not in line and "$" not in line:
        return line
    quoted = False
    for k, ch in enumerate(line):
        if ch == '"':
            quoted = not quoted
        elif not quoted and (ch == ";" or (ch == "$" and (k == 0 or line[k - 1] in " \t"))):
            return line[:k]
    return line


def logical_lines(text: str) -> tuple[str, list[tuple[int, str]]]:
    """(title, [(line number, lower-case logical line)]) with comments and continuations done."""
    if not isinstance(text, str):
        raise InputError(f"a deck must be text, got {type(text).__name__}")
    if "\x00" in text:
        raise InputError("the deck contains a NUL character (binary data?)")
    phys = text.splitlines()
    if not phys:
        raise InputError("empty deck: no title line")
    title = phys[0].strip()
    out: list[tuple[int, str]] = []
    for k, raw in enumerate(phys[1:], start=2):
        s = raw.strip()
        if not s or s.startswith("*"):
            continue
        s = _strip_comment(s).strip()
        if s.startswith("+"):
            if not out:
                raise InputError(f"line {k}: continuation line ('+') with no line to continue")
            n0, prev = out[-1]
            out[-1] = (n0, prev + " " + s[1:].strip().lower())
            continue
        if not s:
            continue
        out.append((k, s.lower()))
    return title, out


def tokens(text: str, where: str) -> list[str]:
    toks = _TOKEN.findall(text)
    if '"' in toks:
        raise InputError(f"{where}unterminated quoted string")
    if "{" in text or "}" in text:
        raise InputError(f"{where}expressions in braces {{...}} are not supported")
    return toks

