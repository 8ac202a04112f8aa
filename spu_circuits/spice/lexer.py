"""Deck text → cards (logical lines), exactly as ngspice 39 reads a deck file; card tokens.

This follows ngspice 39.3's reader (src/frontend/inpcom.c: `inp_read`, `readline`,
`inp_stripcomments_line`, `inp_stitch_continuation_lines`, `expand_section_ref`,
`inp_check_syntax`) step by step, and was checked against ngspice's own `listing`
(tests/integration/test_spice_lexer_ngspice.py):

1. Physical lines: split at LF only; every CR is dropped; leading blanks and tabs are
   dropped (the title keeps them); blank lines are skipped (a blank title is kept); a line
   starting with `@` ends the file. The title is read into a 5000-byte buffer: the rest of a
   longer first line is a line of its own.
2. Per line, in reading order: `.control` / `.endc` are counted (case-insensitive *prefix*
   match, as for every directive here); `.title X` sets the title and becomes a comment;
   `.inc…` (`.include`, `.inc`) reads the file named by its first (quoted) token, after
   end-of-line comments are stripped from that line, and splices its lines in (the directive
   becomes a comment); lines are lower-cased (ASCII) except those starting with a file or
   shell command (`.inc`, `.lib`, `write`, `shell`, `source`, …); a `.end` line becomes a
   comment and reading goes on; a line ending in two backslashes continues on the next
   line (which is given a `+`).
3. (Main deck) `.lib FILE SECTION` splices in the lines of `.lib SECTION` … `.endl` of FILE,
   recursively; `.lib` lines in included files resolve against the deck's folder.
4. End-of-line comments: `;` and `//` anywhere (quotes are not respected), `$` after a
   blank, tab or comma; inside `.control` blocks (and everywhere while a `.control` is left
   open) only `$ ` (a dollar and a blank). A line left empty becomes a comment.
5. Continuation: a line starting with `+` is appended, after one blank, to the last line that
   is not a comment (`*`, `$`, `#`), across comment and blank lines; with none before it, the
   `+` line stays, flagged (ngspice: "Illegal continuation line: ignored").
6. Cards that start with one of ``=[]?()&%$"!:,\\f;`` become comments (ngspice warns).

Each file goes through steps 1, 2, 4 and 5 on its own, except its first line, and is spliced
into the file that includes it, whose steps 4 and 5 then run over the whole. So a `+` line
at the start of an included file continues the includer's last card, and a `+` line after
an `.include` line continues the included file's last card, as in ngspice.

`lex(text, deck_dir, resolver)` returns a `Lexed` (title, cards). File directives are kept
as cards with a `Directive` (ngspice turns them into comments) so that a reader can see
them; a `resolver` decides whether and where a directive's file is read (none: not read).
"""

from __future__ import annotations

import os
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..errors import InputError

_TOKEN = re.compile(r'"[^"]*"|[()\[\]=,]|[^\s()\[\]=,"]+|"')
SPECIAL = frozenset("()[]=,")

#: fgets(buf, 5000): the first line holds at most 4999 bytes, the rest is a line of its own
TITLE_BYTES = 4999
#: lines starting with these (case-insensitive) keep their case
_KEEP_CASE = ("write", "wrdata", ".lib", ".inc", "codemodel", "osdi", "pre_osdi", "echo",
              "shell", "source", "cd ", "load", "setcs")
#: first characters that inp_check_syntax turns into a comment
_UNUSUAL_FIRST = frozenset('=[]?()&%$"!:,\f;')
_C_SPACE = " \t\n\v\f\r"
_LIB_SPLIT = re.compile("[ \t\n\v\f\r'\"]+")
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
#: include nesting beyond this is refused (ngspice 39 has no limit and crashes on a cycle)
MAX_INCLUDE_DEPTH = 16

#: (file, 1-based physical line): None for the deck text itself
Span = tuple[Path | None, int]


@dataclass(frozen=True)
class Directive:
    """A file directive: kind 'include' (`.include`, `.inc…`) or 'lib' (`.lib FILE SECTION`).

    name: the file as written (None: no file name; ngspice stops there with an error);
    section: the `.lib` section; path: the file that was read (None: not read).
    """

    kind: str
    name: str | None
    section: str | None = None
    path: Path | None = None


@dataclass(frozen=True)
class Card:
    """One logical line of the deck.

    text: as ngspice holds it after reading (continuations joined, comments stripped, case
    folded as ngspice folds it, no leading or trailing blanks); spans: the physical lines it
    was joined from, first one first; via: the directives (spans) the file it comes from was
    read through, outermost first; control: inside a `.control` … `.endc` block (markers
    included); subckt: the enclosing `.subckt` names, outermost first; directive: set for a
    file directive; error: why ngspice ignores or rejects it (a `+` line with nothing to
    continue, a directive without a file name).
    """

    text: str
    spans: tuple[Span, ...]
    via: tuple[Span, ...] = ()
    control: bool = False
    subckt: tuple[str, ...] = ()
    directive: Directive | None = None
    error: str | None = None

    @property
    def line(self) -> int:
        """The physical line (1-based) where the card starts, in `source`."""
        return self.spans[0][1]

    @property
    def source(self) -> Path | None:
        """The file the card starts in (None: the deck text)."""
        return self.spans[0][0]

    @property
    def word(self) -> str:
        """The first blank-separated word, lower case ('' for none)."""
        parts = self.text.split(None, 1)
        return parts[0].lower() if parts else ""


@dataclass(frozen=True)
class Lexed:
    """A deck as ngspice reads it.

    title: the first line as written, stripped (or the text of the last `.title` card);
    cards: in deck order, comments dropped, directives kept; ended: a `.end` card was seen;
    end_spans: the physical lines of `.end` cards; open_control: the `.control` card left
    without `.endc` (None: none); lines: the deck text's physical lines (split at LF).
    """

    title: str
    cards: tuple[Card, ...]
    ended: bool = False
    end_spans: tuple[Span, ...] = ()
    open_control: Card | None = None
    lines: tuple[str, ...] = ()


#: resolver(directive, folder of the including file, directive card, real paths being read)
#: → (the path found, as ngspice names it, and its text), or None to leave the file unread
Resolver = Callable[[Directive, Path | None, Card, tuple[Path, ...]], tuple[Path, str] | None]


# --------------------------------------------------------------------------------------------
# small pieces of ngspice's reader


def is_directive(text: str, name: str) -> bool:
    """ngspice's `ciprefix(name, text)`: a case-insensitive prefix match."""
    return text[:len(name)].lower() == name


def split_word(text: str) -> tuple[str, str]:
    """(first word, the rest from the blank after it), with C's blanks (" \\t\\n\\v\\f\\r")."""
    k = 0
    while k < len(text) and text[k] not in _C_SPACE:
        k += 1
    return text[:k], text[k:]


def lower_ascii(text: str) -> str:
    return text.translate(_ASCII_LOWER)


def quoted_token(text: str) -> tuple[str | None, str]:
    """ngspice's `get_quoted_token`: the first blank-separated or '…' / "…" quoted token of
    text and the rest; None when there is none or its quote is not closed."""
    s = text.lstrip(_C_SPACE)
    if not s:
        return None, text
    if s[0] in "'\"":
        end = s.find(s[0], 1)
        if end < 0:
            return None, text
        return s[1:end], s[end + 1:]
    k = 0
    while k < len(s) and s[k] not in _C_SPACE:
        k += 1
    return s[:k], s[k + 1:]


def quoted_tokens(text: str) -> list[str]:
    """Every `quoted_token` of text in turn ([] when a quote is not closed)."""
    out: list[str] = []
    rest = text
    while rest.strip(_C_SPACE):
        tok, rest = quoted_token(rest)
        if tok is None:
            return []
        out.append(tok)
    return out


def strip_comment(s: str, control: bool) -> str:
    """ngspice's `inp_stripcomments_line`: the line without its end-of-line comment and the
    blanks before it; a line that is all comment becomes `*…`. control: in a `.control`
    block (only `$ ` starts a comment there, besides `;` and `//`)."""
    if not s or s[0] == "*":
        return s
    n, d = len(s), 0
    while d < n:
        c = s[d]
        d += 1
        nxt = s[d] if d < n else ""
        if nxt == ";":
            break
        if not control and c == "$":
            if d >= 2 and s[d - 2] in " ,\t":
                d -= 1
                break
        elif control and c == "$" and nxt == " ":
            d -= 1
            break
        elif c == "/" and nxt == "/":
            d -= 1
            break
    if d == 0:
        return "*" + s[1:]
    d -= 1
    while d >= 0 and s[d] in " \t":
        d -= 1
    d += 1
    if d <= 0:
        return "*" + s[1:]
    return s[:d]


def _fold_case(buf: str) -> str:
    """inp_read's case folding of one physical line."""
    low = lower_ascii(buf)
    if low.startswith(("plot", "gnuplot", "hardcopy")):
        return _fold_plot(buf)
    if low.startswith(("print", "eprint", "asciiplot")):
        k = buf.find(">")
        return low if k < 0 else low[:k] + buf[k:]
    if low.startswith(_KEEP_CASE):
        return buf
    return low


def _fold_plot(buf: str) -> str:
    """plot/gnuplot/hardcopy: lower case except the token after title, xlabel, ylabel."""
    out = list(buf)
    i, n = 0, len(buf)
    while i < n:
        out[i] = lower_ascii(out[i])
        rest = lower_ascii(buf[i:i + 6])
        skip = 5 if rest.startswith("title") else 6 if rest.startswith(("xlabel", "ylabel"))\
            else 0
        if skip:
            for _ in range(skip):
                i += 1
                if i < n:
                    out[i] = lower_ascii(out[i])
            while i < n and buf[i] == " ":
                i += 1
            if i >= n:
                break
            stop = " "
            if buf[i] in "'\"":
                stop = buf[i]
                i += 1
            while i < n and buf[i] != stop:
                i += 1
            continue
        i += 1
    return "".join(out)


def _backslash_continues(buf: str) -> tuple[str, bool]:
    """chk_for_line_continuation: a line ending in two backslashes (the two become blanks)."""
    if not buf or buf[0] in "*$":
        return buf, False
    end = len(buf.rstrip(_C_SPACE))
    if end >= 2 and buf[end - 2:end] == "\\\\":
        return buf[:end - 2] + "  " + buf[end:], True
    return buf, False


def _first_char(text: str) -> str:
    """The first character above a blank, as the continuation stitcher looks at it."""
    for ch in text:
        if ch > " ":
            return ch
    return ""


def physical_lines(text: str) -> list[str]:
    """The lines ngspice's file reader starts from (`readline`): split at LF only, CR
    dropped, leading blanks and tabs dropped, blank lines skipped; the title (first line) as
    written, its first 4999 bytes (the rest is a line of its own). For feeding ngspice the
    same lines through its shared-library interface."""
    phys = text.split("\n")
    if phys and phys[-1] == "":
        phys.pop()
    if not phys:
        return []
    data = phys[0].encode("utf-8", "surrogateescape")
    head = [data[:TITLE_BYTES].decode("utf-8", "surrogateescape").removesuffix("\r")]
    rest = [data[TITLE_BYTES:].decode("utf-8", "surrogateescape")] \
        if len(data) > TITLE_BYTES - 1 else []
    body = (ln.replace("\r", "").lstrip(" \t") for ln in rest + phys[1:])
    return head + [ln for ln in body if ln]


# --------------------------------------------------------------------------------------------
# the reader


@dataclass
class _Line:
    text: str
    spans: list[Span]
    via: tuple[Span, ...]
    directive: Directive | None = None
    error: str | None = None

    def comment(self) -> bool:
        return self.directive is None and _first_char(self.text) in ("", "#", "$", "*")


@dataclass
class _State:
    resolver: Resolver | None
    cwd: Path | None
    control: int = 0                                    # ngspice's static is_control
    libraries: dict[Path, tuple[Path, list[_Line]]] = field(default_factory=dict)
    ended: bool = False
    end_spans: list[Span] = field(default_factory=list)
    new_title: str | None = None


class _Reader:
    def __init__(self, state: _State):
        self.st = state

    def read(self, text: str, source: Path | None, depth: int, base: Path | None,
             via: tuple[Span, ...], stack: tuple[Path, ...]) -> list[_Line]:
        """inp_read of one file: its lines, comments stripped and continuations joined
        (except the first line, left to the includer)."""
        out: list[_Line] = []
        phys = text.split("\n")
        if phys and phys[-1] == "":
            phys.pop()
        queue = deque(enumerate(phys, 1))
        first = depth == 0
        shell_cont = False
        while queue:
            no, raw = queue.popleft()
            if first:
                first = False
                data = raw.encode("utf-8", "surrogateescape")
                if len(data) > TITLE_BYTES - 1:
                    queue.appendleft((no, data[TITLE_BYTES:].decode("utf-8", "surrogateescape")))
                    raw = data[:TITLE_BYTES].decode("utf-8", "surrogateescape")
                buf = raw
            else:
                buf = raw.replace("\r", "").lstrip(" \t")
                if not buf:
                    continue
            if buf.startswith("@"):
                break
            if is_directive(buf, ".control"):
                self.st.control += 1
            elif is_directive(buf, ".endc"):
                self.st.control -= 1
            span: Span = (source, no)
            if is_directive(buf, ".title"):
                if depth == 0:
                    self.st.new_title = split_word(buf)[1].lstrip(_C_SPACE).split("\r")[0]
                buf = "*" + buf[1:]
            if is_directive(buf, ".inc"):
                stripped = strip_comment(buf, False)
                name, _ = quoted_token(split_word(stripped)[1])
                if name is None:
                    # ngspice stops with "Error: .include filename missing"; kept as a card
                    # (a `+` line may continue it) so that a reader sees and refuses it
                    out.append(_Line(buf, [span], via, Directive("include", None),
                                     ".include without a file name (ngspice stops here)"))
                    buf, shell_cont = _backslash_continues(buf)
                    continue
                marker = _Line(stripped, [span], via, Directive("include", name))
                out.append(marker)
                out += self.include(marker, base, stack)
                buf = "*end of: " + buf[9:]
            buf = _fold_case(buf)
            if depth == 0 and no == 1 and not out and buf.endswith("\r"):
                buf = buf[:-1]
            if is_directive(buf, ".end") and (len(buf) == 4 or buf[4] in _C_SPACE):
                if depth == 0:
                    self.st.ended = True
                self.st.end_spans.append(span)
                buf = "*" + buf[1:]
            if shell_cont:
                buf = "+" + buf
            buf, shell_cont = _backslash_continues(buf)
            out.append(_Line(buf, [span], via))
        if depth == 0 and out:
            self.expand_libraries(out, base)
        if out:
            self.strip_comments(out[1:], self.st.control != 0)
            out[1:] = _stitch(out[1:])
        return out

    def include(self, marker: _Line, base: Path | None, stack: tuple[Path, ...]
                ) -> list[_Line]:
        """The lines of the file a directive names (read by the resolver), or none."""
        got = self.resolve(marker, base, stack)
        if got is None:
            return []
        found, real, text = got
        via = (*marker.via, marker.spans[0])
        # nested names resolve against the folder of the file as found (ngdirname)
        return self.read(text, real, len(stack) + 1, found.parent, via, (*stack, real))

    def resolve(self, marker: _Line, base: Path | None, stack: tuple[Path, ...]
                ) -> tuple[Path, Path, str] | None:
        """(path found, real path, text) of a directive's file, or None."""
        if self.st.resolver is None or marker.directive is None:
            return None
        card = _card(marker, ())
        got = self.st.resolver(marker.directive, base, card, stack)
        if got is None:
            return None
        found, text = got
        real = Path(os.path.realpath(found))
        if real in stack:
            raise InputError(f"{where(card)}{marker.directive.kind} cycle through {real}")
        if len(stack) >= MAX_INCLUDE_DEPTH:
            raise InputError(f"{where(card)}files included deeper than {MAX_INCLUDE_DEPTH}")
        marker.directive = replace(marker.directive, path=real)
        return found, real, text

    def expand_libraries(self, lines: list[_Line], base: Path | None,
                         stack: tuple[Path, ...] = ()) -> None:
        """expand_section_references: `.lib FILE SECTION` → the section's lines, in place."""
        k = 0
        while k < len(lines):
            ln = lines[k]
            if ln.directive is None and is_directive(ln.text, ".lib"):
                k += self.expand_one(lines, k, base, stack)
            k += 1

    def expand_one(self, lines: list[_Line], k: int, base: Path | None,
                   stack: tuple[Path, ...], sections: tuple[tuple[Path, str], ...] = ()
                   ) -> int:
        """Expand the `.lib` reference at lines[k]; returns how many lines were inserted.
        sections: the (library, section) pairs being expanded (a repeat is a cycle)."""
        ln = lines[k]
        words = _lib_words(ln.text)
        if len(words) < 2:
            return 0                                   # a section definition `.lib NAME`
        name, section = words[0], words[1]
        marker = _Line(ln.text, ln.spans, ln.via, Directive("lib", name, section))
        lines[k] = marker
        got = self.resolve(marker, base, stack)
        if got is None:
            return 0
        _found, real, text = got
        if real not in self.st.libraries:
            via = (*marker.via, marker.spans[0])
            self.st.libraries[real] = (real.parent, self.read(text, real, 1, real.parent, via,
                                                              (*stack, real)))
        habitat, deck = self.st.libraries[real]
        key = (real, lower_ascii(section))
        if key in sections:
            raise InputError(f"{where(_card(marker, ()))}.lib section {section!r} of {name} "
                             "includes itself (ngspice 39 crashes on it)")
        start = next((j for j, c in enumerate(deck) if is_directive(c.text, ".lib")
                      and len(_lib_words(c.text)) == 1
                      and lower_ascii(_lib_words(c.text)[0]) == lower_ascii(section)), None)
        if start is None:
            marker.error = f".lib section {section!r} not found in {name} (ngspice stops here)"
            return 0
        j = start + 1
        while j < len(deck) and not is_directive(deck[j].text, ".endl"):
            if deck[j].directive is None and is_directive(deck[j].text, ".lib"):
                j += self.expand_one(deck, j, habitat, stack, (*sections, key))
            j += 1
        if j >= len(deck):
            marker.error = f".lib section {section!r} of {name} has no .endl (ngspice stops)"
            return 0
        section_lines = [_Line(c.text, list(c.spans), c.via, c.directive, c.error)
                         for c in deck[start:j + 1]]
        section_lines[0].text = "*<" + section_lines[0].text[2:]
        section_lines[-1].text = "*>" + section_lines[-1].text[2:]
        lines[k + 1:k + 1] = section_lines
        return len(section_lines)

    def strip_comments(self, lines: list[_Line], open_control: bool) -> None:
        """inp_stripcomments_deck over one file's lines."""
        in_control = False
        for ln in lines:
            if is_directive(ln.text, ".control"):
                in_control = True
            if is_directive(ln.text, ".endc"):
                in_control = False
            if ln.directive is None or ln.directive.name is None:
                ln.text = strip_comment(ln.text, in_control or open_control)


def _lib_words(text: str) -> list[str]:
    """The file and section words of a `.lib` line, as expand_section_ref splits it."""
    return [w for w in _LIB_SPLIT.split(split_word(text)[1]) if w][:2]


def _stitch(lines: list[_Line]) -> list[_Line]:
    """inp_stitch_continuation_lines: `+` lines joined onto the last non-comment line."""
    out: list[_Line] = []
    prev: _Line | None = None
    for ln in lines:
        if ln.comment() or (ln.directive is not None and ln.directive.name is not None):
            out.append(ln)
            continue
        text = ln.text
        k = 0
        while k < len(text) and text[k] <= " ":
            k += 1
        if text[k:k + 1] == "+":
            if prev is None:
                ln.error = ln.error or "continuation line ('+') with no line to continue"
                out.append(ln)
                continue
            tail = text[k + 1:]
            prev.text = prev.text + " " + tail if tail and prev.text else prev.text or tail
            prev.spans += ln.spans
            continue
        prev = ln
        out.append(ln)
    return out


def _card(ln: _Line, subckt: tuple[str, ...], control: bool = False) -> Card:
    return Card(ln.text.strip(_C_SPACE) if ln.directive is None else ln.text.strip(),
                tuple(ln.spans), ln.via, control, subckt, ln.directive, ln.error)


def where(card: Card, show: Callable[[Path], str] = str) -> str:
    """`line N: ` for a card of the deck; `FILE (included from line M), line N: ` for one of
    an included file (nested: `F2 (included from F1 (included from line M), line K), …`)."""
    prefix = ""
    for k, (_src, no) in enumerate(card.via):
        inner = card.via[k + 1][0] if k + 1 < len(card.via) else card.source
        prefix = f"{show(inner) if inner is not None else 'the deck'} (included from " \
                 f"{prefix}line {no}), "
    return f"{prefix}line {card.line}: "


def lex(text: str, deck_dir: str | Path | None = None, resolver: Resolver | None = None,
        ) -> Lexed:
    """The cards of a deck text as ngspice 39 reads them (see the module docstring).

    deck_dir: the deck's folder (ngspice's folder of the deck, and its working folder);
    resolver: reads the files of `.include` / `.lib` directives (None: they are not read, and
    their cards are kept for the caller to refuse or skip). Raises InputError for text that
    is not a deck (not a str, NUL characters, an include cycle).
    """
    if not isinstance(text, str):
        raise InputError(f"a deck must be text, got {type(text).__name__}")
    if "\x00" in text:
        raise InputError("the deck contains a NUL character (binary data?)")
    base = Path(deck_dir) if deck_dir is not None else None
    st = _State(resolver, base)
    lines = _Reader(st).read(text, None, 0, base, (), ())
    if not lines:
        return Lexed(title="", cards=(), lines=tuple(text.split("\n")))
    for ln in lines[1:]:
        if ln.directive is None and ln.text[:1] in _UNUSUAL_FIRST:
            ln.text = "*" + ln.text[1:]
    raw_title = text.split("\n", 1)[0]
    data = raw_title.encode("utf-8", "surrogateescape")
    if len(data) > TITLE_BYTES - 1:
        raw_title = data[:TITLE_BYTES].decode("utf-8", "surrogateescape")
    title = st.new_title if st.new_title is not None else raw_title.strip()
    cards: list[Card] = []
    subckt: list[str] = []
    control: Card | None = None
    body = lines[1:] if lines[0].directive is None else lines
    for ln in body:
        if ln.comment():
            continue
        card = _card(ln, tuple(subckt))
        if control is not None or is_directive(card.text, ".control"):
            card = replace(card, control=True)
            if control is None:
                control = card
            if is_directive(card.text, ".endc"):
                control = None
        elif is_directive(card.text, ".subckt"):
            parts = card.text.split()
            subckt.append(parts[1] if len(parts) > 1 else "")
        elif is_directive(card.text, ".ends") and subckt:
            subckt.pop()
            card = replace(card, subckt=tuple(subckt))
        cards.append(card)
    return Lexed(title=title, cards=tuple(cards), ended=st.ended,
                 end_spans=tuple(st.end_spans), open_control=control,
                 lines=tuple(text.split("\n")))


def lex_included(text: str, found: Path, real: Path, deck_dir: str | Path | None,
                 resolver: Resolver | None, via: tuple[Span, ...] = (),
                 stack: tuple[Path, ...] = ()) -> tuple[Card, ...]:
    """The cards of a file read as an included file (no title line), e.g. to check a file
    that a deck names in a way ngspice itself does not follow."""
    base = Path(deck_dir) if deck_dir is not None else None
    lines = _Reader(_State(resolver, base)).read(text, real, len(stack) + 1, found.parent, via,
                                                 stack or (real,))
    return tuple(_card(ln, ()) for ln in lines if not ln.comment())


# --------------------------------------------------------------------------------------------
# include files


def candidates(name: str, base: Path | None, cwd: Path | None,
               sourcepath: tuple[Path, ...] = ()) -> list[Path]:
    """The paths ngspice tries, in order, for the file `name` of a directive in a file in
    folder `base` (inp_pathresolve_at): an absolute name as is; `~/…` expanded; else
    `./name` in the working folder `cwd`, then along `sourcepath`, then in `base`."""
    if name.startswith("~/"):
        return [Path(os.path.expanduser(name))]
    p = Path(name)
    if p.is_absolute():
        return [p]
    if base is None:
        return [*([cwd / name] if cwd is not None else [Path(name)]),
                *(sp / name for sp in sourcepath)]
    here = cwd if cwd is not None else base
    return list(dict.fromkeys([here / name, *(sp / name for sp in sourcepath), base / name]))


def file_resolver(cwd: Path | None, sourcepath: tuple[Path, ...] = ()) -> Resolver:
    """A resolver that reads the first of `candidates` that is a file (no other checks: for
    trusted decks; `spu_circuits.safety` has the checking one)."""

    def resolve(directive: Directive, base: Path | None, card: Card,
                stack: tuple[Path, ...]) -> tuple[Path, str] | None:
        if directive.name is None:
            return None
        for path in candidates(directive.name, base, cwd, sourcepath):
            if path.is_file():
                return path, path.read_bytes().decode("utf-8", "surrogateescape")
        raise InputError(f"{where(card)}{directive.kind} file {directive.name!r} not found")

    return resolve


# --------------------------------------------------------------------------------------------
# tokens of one card


def tokens(text: str, where: str) -> list[str]:
    """The tokens of a card for the parser: "quoted strings", `( ) [ ] = ,` and words."""
    toks = _TOKEN.findall(text)
    if '"' in toks:
        raise InputError(f"{where}unterminated quoted string")
    if "{" in text or "}" in text:
        raise InputError(f"{where}expressions in braces {{...}} are not supported")
    return toks
