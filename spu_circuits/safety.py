"""Safety checks for decks written by others, run before `spu simulate` / `spu validate`.

An ngspice deck is a program: `.control` blocks run shell commands and write files, `*#`
lines and `*ng_script` files are command scripts, `.include` / `.lib` and XSPICE models
(`filesource`, `table2d`, `d_source`, …) read any file the user can read, and a
`.spiceinit` beside the deck is executed on start. `check_deck_safety` refuses all of that
by default (UnsafeDeckError: one line naming the line number and the construct) and lets
through decks that only read files inside their own folder, such as the project's
reproducible-noise decks (their noise files sit beside the deck). `allow_unsafe=True` (the
CLI's `--allow-unsafe`) turns every check off.

The deck is read as ngspice 39 reads it, by spu_circuits.spice.lexer (the reader the
extractor and the back-ends use too; checked against ngspice's `listing`); physical lines
are checked as well, since some constructs act before any joining. The rules of that reader
(src/frontend/inpcom.c), checked by experiment:

* leading blanks are skipped and directives are case-insensitive *prefixes* (`.incfoo x`
  includes x, `.controlxyz` opens a control block);
* `+` lines continue the previous non-comment line even across comment and blank lines,
  and a line ending in `\\\\` continues onto the next line;
* a relative include is looked for in the working folder (the deck's), then along the
  `sourcepath` variable (ngspice's scripts folder), then in the including file's folder;
  `~/` is expanded;
* model lines are lower-cased before XSPICE opens their files: `file="Noise.txt"` opens
  `noise.txt`;
* the title line is read with a 5000-byte buffer, so the rest of a longer title becomes a
  line of its own;
* an include cycle makes ngspice 39 overflow its stack (segmentation fault).

What is *allowed*: element lines, `.model`, `.param`, `.options`, `.save`, `.print`/`.plot`
(without redirection), analysis cards, `.subckt`, and includes / model files that resolve
(symlinks and `..` followed) to regular files inside the deck's folder.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
from collections import deque
from pathlib import Path

from .backends.base import ANALYSIS_CARDS, Analysis, Backend, SimResult, prepare_deck
from .errors import InputError, UnsafeDeckError
from .spice.lexer import (
    Card,
    Directive,
    candidates,
    is_directive,
    lex,
    lex_included,
    lower_ascii,
    quoted_token,
    quoted_tokens,
    split_word,
    where,
)

#: control-language commands refused as the first word of any line (outside the title):
#: they only ever mean something in a control context, where they read/write files,
#: run programs, load code or change the environment
CONTROL_COMMANDS = frozenset({
    "shell", "source", "write", "wrdata", "wrs2p", "wrnodev", "hardcopy", "print", "plot",
    "asciiplot", "gnuplot", "xgraph", "codemodel", "load", "cd", "sysinfo", "set", "setcs",
    "unset", "alias", "edit", "echo", "exec", "rusage", "snsave", "snload", "osdi",
    "devload", "listing", "mdump", "mrdump", "altermod", "mc_source", "eprint", "eprvcd",
    "cdump", "help",
})

#: files ngspice executes as commands when it starts in a folder holding them
INIT_FILES = (".spiceinit", "spice.rc")

#: XSPICE code models refused outright (d_process starts a program, d_cosim loads a library)
REFUSED_MODELS = ("d_process", "d_cosim")

#: model parameters that name a file (filesource/table2d/table3d `file`, d_source
#: `input_file`, d_state `state_file`, d_process `process_file`)
_FILE_PARAM = re.compile(r"""(?<![\w])([a-z_]*file)\s*=\s*("[^"]*"|'[^']*'|[^\s()\[\]]+)""",
                         re.IGNORECASE)

#: control characters and Unicode line separators: ngspice splits lines at LF only, while
#: str.splitlines() (PySpice, editors, other tools) also breaks at CR, VT, FF,
#: U+001C-U+001E, U+0085, U+2028 and U+2029: refuse them all (CRLF is fine)
_CONTROL_CHARS = re.compile("[\x00-\x08\x0b-\x1f\x7f\x85\u2028\u2029]")

#: characters that ngspice treats specially inside a path (comments, quotes, parameters)
_BAD_PATH_CHARS = set("{}$;\"'`\\")

MAX_TITLE_CHARS = 4000
MAX_INCLUDE_DEPTH = 16
MAX_INCLUDE_BYTES = 64 * 2**20
_HINT = "refused; pass --allow-unsafe to run it anyway"


class _Scanner:
    """One check: physical lines here, cards from the lexer (which reads includes through
    `resolve_directive`, so included files are read only after they pass)."""

    def __init__(self, deck_dir: Path, roots: list[Path], strict: bool):
        self.deck_dir = deck_dir
        self.roots = roots
        self.strict = strict
        self.sourcepath = _ngspice_sourcepath()
        self.refs: dict[Path, None] = {}
        self.cards: list[Card] = []
        self.bytes_read = 0

    # ---- helpers -------------------------------------------------------------------------
    def refuse(self, where: str, no: int | None, what: str) -> None:
        if self.strict:
            at = f"line {no}: " if no is not None else ""
            raise UnsafeDeckError(f"{where}{at}{what} ({_HINT})")

    def refuse_at(self, card: Card, what: str) -> None:
        if self.strict:
            raise UnsafeDeckError(f"{where(card, self.show)}{what} ({_HINT})")

    def show(self, p: Path) -> str:
        try:
            return str(p.relative_to(self.roots[0]))
        except ValueError:
            return str(p)

    def inside(self, real: Path) -> bool:
        return any(real == r or real.is_relative_to(r) for r in self.roots)

    # ---- the deck ------------------------------------------------------------------------
    def scan(self, text: str) -> None:
        physical = text.replace("\r\n", "\n").split("\n")
        for no, raw in enumerate(physical, 1):
            self.check_physical(raw, no, "", title=no == 1)
        try:
            lexed = lex(text, self.deck_dir, self.resolve_directive)
        except InputError as exc:                # not a deck ngspice could read as we do
            self.refuse("", None, f"the deck cannot be read: {exc}")
            return
        self.cards = list(lexed.cards)
        for card in lexed.cards:
            self.check_card(card)
        # defence in depth: a reader that drops analysis lines one by one (as prepare_deck
        # once did) splices a `+` line after one of them onto the card before: check that
        # reading too (the dropped lines become comments, so line numbers stay)
        variant = [ln if no == 0 or not _is_analysis_line(ln) else "*"
                   for no, ln in enumerate(physical)]
        if variant != physical:
            for card in lex("\n".join(variant), self.deck_dir, self.resolve_directive).cards:
                self.check_card(card)

    def check_physical(self, raw: str, no: int, where: str, title: bool) -> None:
        m = _CONTROL_CHARS.search(raw)
        if m:
            self.refuse(where, no, f"control character U+{ord(m.group()):04X} in the line")
        s = raw.strip()
        low = s.lower()
        if title:
            if len(raw) > MAX_TITLE_CHARS:
                self.refuse(where, no, f"title line of {len(raw)} characters (ngspice splits "
                                       f"titles over 4999 characters into further lines)")
        if low.startswith("*ng_script"):
            # only the title counts, but PySpice drops blank lines, so any line may become it
            self.refuse(where, no, "`*ng_script` line (it makes the deck a command script)")
        if low.startswith("*#"):
            self.refuse(where, no, f"`*#` command line {_clip(s)!r}")
        if low.startswith(".control"):
            self.refuse(where, no, "`.control` block (it runs ngspice commands)")
        elif low.startswith(".endc"):
            self.refuse(where, no, "`.endc` (end of a control block)")
        if not title and low:
            word = low.split(None, 1)[0]
            if word in CONTROL_COMMANDS or word.startswith("pre_"):
                self.refuse(where, no, f"ngspice command `{word}` ({_clip(s)!r})")
        if low.startswith((".print", ".plot")) and ">" in s:
            self.refuse(where, no, f"output redirection in {_clip(s)!r}")

    def check_card(self, card: Card) -> None:
        """A card as ngspice reads it: directives it did not follow, .lib, .model files."""
        d = card.directive
        if d is not None and d.name is None:
            # ngspice stops at an .include without a name; refuse what a `+` line gives it
            name, _ = quoted_token(split_word(card.text)[1])
            if name is None:
                self.refuse_at(card, f"`{card.word}` without a plain file name")
            else:
                self.resolve(name, card, [self.deck_dir], f"`{card.word} {name}`")
            return
        if d is not None:
            return                               # checked (and read) by resolve_directive
        low = lower_ascii(card.text)
        if is_directive(low, ".lib"):
            toks = quoted_tokens(split_word(card.text)[1])
            if not toks:
                self.refuse_at(card, f"`{card.word}` without a plain file name")
                return
            name = toks[0]
            # `.lib NAME` defines a section, but in PSpice/LTspice compatibility modes it
            # includes the file NAME: check anything that looks like a file
            if any(c in name for c in "/~.") or (self.deck_dir / name).exists():
                self.follow(Directive("include", name), card, self.deck_dir, ())
        elif is_directive(low, ".model"):
            for model in REFUSED_MODELS:
                if model in _words(low):
                    self.refuse_at(card, f"XSPICE model `{model}`")
            for m in _FILE_PARAM.finditer(card.text):
                value = m.group(2)
                if value[:1] in "\"'":
                    value = value[1:-1]
                # XSPICE opens the lower-cased name, relative to the deck's folder
                self.resolve(value.lower(), card, [self.deck_dir],
                             f"model file `{m.group(1).lower()}={value}`"
                             + (f" (ngspice opens {value.lower()!r})" if value != value.lower()
                                else ""))

    # ---- references ----------------------------------------------------------------------
    def resolve(self, name: str, card: Card, base_dirs: list[Path], what: str,
                candidates_: list[Path] | None = None) -> tuple[Path, Path] | None:
        """(literal path, real path) of a referenced file, or refuse; None when refused."""
        if not name:
            self.refuse_at(card, f"{what}: empty file name")
            return None
        if any(c in _BAD_PATH_CHARS for c in name) or "//" in name:
            self.refuse_at(card, f"{what}: file name is not a plain path")
            return None
        if candidates_ is None:
            if name.startswith("~"):
                name = os.path.expanduser(name)
            p = Path(name)
            candidates_ = [p] if p.is_absolute() else [Path(os.getcwd(), d, p)
                                                       for d in base_dirs]
        found: tuple[Path, Path] | None = None
        for c in candidates_:
            along_path = any(c.is_relative_to(sp) for sp in self.sourcepath)
            real = _resolve_path(str(Path(os.getcwd(), c)))
            if real is None:
                self.refuse_at(card, f"{what} passes through /proc or /sys (or a symlink "
                                     "loop), whose links mean other things to ngspice")
                return None
            if along_path and not real.exists():
                continue                         # ngspice's search path: only a hit counts
            if not self.inside(real):
                self.refuse_at(card, f"{what} resolves to {real}, outside the deck's folder")
                return None
            if found is None and real.exists():
                found = (c, real)
        if found is None:
            self.refuse_at(card, f"{what} is not in the deck's folder (ngspice would "
                                 "search for it elsewhere)")
            return None
        literal, real = found
        if not real.is_file():
            self.refuse_at(card, f"{what} is not a regular file")
            return None
        self.refs.setdefault(real, None)
        return literal, real

    def resolve_directive(self, d: Directive, base: Path | None, card: Card,
                          stack: tuple[Path, ...]) -> tuple[Path, str] | None:
        """The lexer's resolver: check a directive's file, then hand over its text."""
        return self.follow(d, card, base if base is not None else self.deck_dir, stack)

    def follow(self, d: Directive, card: Card, base: Path, stack: tuple[Path, ...]
               ) -> tuple[Path, str] | None:
        what = f"`{card.word} {d.name}`"
        cands = candidates(d.name or "", base, self.deck_dir, self.sourcepath)
        got = self.resolve(d.name or "", card, [base], what, cands)
        if got is None:
            return None
        literal, real = got
        if real in stack:
            self.refuse_at(card, f"{what}: include cycle (ngspice 39 crashes on it)")
            return None
        if len(stack) >= MAX_INCLUDE_DEPTH:
            self.refuse_at(card, f"{what}: includes nested deeper than {MAX_INCLUDE_DEPTH}")
            return None
        if real.stat().st_size > MAX_INCLUDE_BYTES:
            self.refuse_at(card, f"{what}: file larger than {MAX_INCLUDE_BYTES >> 20} MiB")
            return None
        self.bytes_read += real.stat().st_size
        if self.bytes_read > 4 * MAX_INCLUDE_BYTES:
            self.refuse_at(card, f"{what}: the includes expand beyond "
                                 f"{4 * MAX_INCLUDE_BYTES >> 20} MiB")
            return None
        text = real.read_bytes().decode("utf-8", errors="surrogateescape")
        inner = f"{self.show(real)} (included from {where(card, self.show)[:-2]}), "
        for no, raw in enumerate(text.replace("\r\n", "\n").split("\n"), 1):
            self.check_physical(raw, no, inner, title=False)
        if card.directive is None:               # a `.lib NAME` checked as a file: its cards
            for c in lex_included(text, literal, real, self.deck_dir, self.resolve_directive,
                                  (*card.via, card.spans[0]), (*stack, real)):
                self.check_card(c)
            return None
        return literal, text


def _is_analysis_line(line: str) -> bool:
    return (line.split() or [""])[0].lower() in ANALYSIS_CARDS


def _words(text: str) -> set[str]:
    """Identifier-like words of a card (letters, digits, underscores)."""
    out, word = set(), []
    for ch in text + " ":
        if ch.isalnum() or ch == "_":
            word.append(ch)
        elif word:
            out.add("".join(word))
            word = []
    return out


@functools.cache
def _ngspice_sourcepath() -> tuple[Path, ...]:
    """ngspice's default `sourcepath` beyond `.` (its scripts folder, set by spinit)."""
    exe = shutil.which(os.environ.get("SPU_NGSPICE", "ngspice"))
    if exe is None:
        return ()
    scripts = Path(os.path.realpath(exe)).parent.parent / "share" / "ngspice" / "scripts"
    return (scripts,) if scripts.is_dir() else ()


def _resolve_path(path: str, max_links: int = 40) -> Path | None:
    """os.path.realpath of an absolute path, done component by component so that it can
    refuse (None) any step into /proc or /sys: their links (/proc/self/cwd, /dev/fd → …)
    resolve differently in ngspice's process than in ours. None also for symlink loops."""
    parts = deque(path.split("/"))
    resolved, links = "/", 0
    while parts:
        name = parts.popleft()
        if name in ("", "."):
            continue
        if name == "..":
            resolved = os.path.dirname(resolved)
            continue
        nxt = os.path.join(resolved, name)
        if nxt in ("/proc", "/sys"):
            return None
        if os.path.islink(nxt):
            links += 1
            if links > max_links:
                return None
            target = os.readlink(nxt)
            if target.startswith("/"):
                resolved = "/"
            parts.extendleft(reversed(target.split("/")))
            continue
        resolved = nxt
    return Path(resolved)


def _clip(s: str, n: int = 60) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


def check_deck_safety(text: str, deck_dir: str | Path, *, allow_unsafe: bool = False,
                      out_dir: str | Path | None = None) -> list[Path]:
    """Refuse a deck that would run commands or touch files outside its folder.

    text: the deck as written (title line first); deck_dir: the folder it lives in (ngspice
    runs there; relative paths resolve against it); out_dir: a further folder the deck may
    reference (e.g. where a run writes its files), None for none. Raises UnsafeDeckError
    naming the line and the construct; with allow_unsafe=True nothing is refused.

    Returns the files the deck references (includes, libraries and their own references,
    model files such as filesource noise), resolved, in order of first reference.
    """
    return _scan(text, deck_dir, allow_unsafe=allow_unsafe, out_dir=out_dir).refs


def _scan(text: str, deck_dir: str | Path, *, allow_unsafe: bool = False,
          out_dir: str | Path | None = None) -> _Scanner:
    deck_dir = Path(deck_dir)
    roots = [Path(os.path.realpath(deck_dir))]
    if out_dir is not None:
        roots.append(Path(os.path.realpath(out_dir)))
    sc = _Scanner(deck_dir, roots, strict=not allow_unsafe)
    for fname in INIT_FILES:
        if (deck_dir / fname).exists():
            sc.refuse(f"{deck_dir / fname}: ", None,
                      f"`{fname}` in the deck's folder (ngspice runs it as commands on start)")
    sc.scan(text)
    sc.refs = list(sc.refs)  # type: ignore[assignment]
    return sc


def scanned_cards(text: str, deck_dir: str | Path, *, allow_unsafe: bool = False
                  ) -> tuple[Card, ...]:
    """The cards the check reads the deck as (the lexer's, includes followed where allowed);
    raises UnsafeDeckError like `check_deck_safety` unless allow_unsafe."""
    return tuple(_scan(text, deck_dir, allow_unsafe=allow_unsafe).cards)


def check_deck_file(deck_path: str | Path, *, allow_unsafe: bool = False,
                    out_dir: str | Path | None = None) -> tuple[str, list[Path]]:
    """Read a deck file and check it: (its text, the files it references)."""
    path = Path(deck_path)
    if not path.is_file():
        raise InputError(f"deck not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(f"deck {path} is not a UTF-8 text file") from None
    try:
        refs = check_deck_safety(text, path.parent, allow_unsafe=allow_unsafe,
                                 out_dir=out_dir)
    except UnsafeDeckError as exc:
        raise UnsafeDeckError(f"{path}: {exc}") from None
    return text, refs


def check_prepared(text: str, deck_path: str | Path, analyses, *, allow_unsafe: bool = False,
                   out_dir: str | Path | None = None) -> None:
    """Check the exact texts the back-ends will run, prepare_deck(text, analysis) for each
    analysis: removing analysis cards can splice continuation lines onto others."""
    if allow_unsafe:
        return
    path = Path(deck_path)
    for analysis in analyses:
        try:
            check_deck_safety(prepare_deck(text, analysis), path.parent, out_dir=out_dir)
        except UnsafeDeckError as exc:
            raise UnsafeDeckError(f"{path} (as prepared for the run): {exc}") from None


def check_untrusted_deck(deck, analyses, *, allow_unsafe: bool = False) -> None:
    """For the CLIs: check a loaded Deck (simulate.Deck) as written and as prepared for each
    analysis it will be run with. Raises UnsafeDeckError naming the deck and line."""
    path = deck.path if deck.path is not None else Path.cwd() / "<deck>"
    try:
        check_deck_safety(deck.text, path.parent, allow_unsafe=allow_unsafe)
    except UnsafeDeckError as exc:
        raise UnsafeDeckError(f"{path}: {exc}") from None
    check_prepared(deck.text, path, analyses, allow_unsafe=allow_unsafe)


def run_untrusted(deck_path: str | Path, analysis: Analysis, backend: Backend | str = "shared",
                  allow_unsafe: bool = False, *, timeout_s: float = 60.0,
                  out_dir: str | Path | None = None) -> SimResult:
    """Check a deck written by someone else, then simulate it in its own folder.

    backend: a Backend, or a name ('cli', 'shared') for a fresh one closed afterwards.
    Nothing runs when the check refuses the deck (UnsafeDeckError).
    """
    path = Path(deck_path)
    text, _refs = check_deck_file(path, allow_unsafe=allow_unsafe, out_dir=out_dir)
    check_prepared(text, path, [analysis], allow_unsafe=allow_unsafe, out_dir=out_dir)
    if isinstance(backend, Backend):
        be, own = backend, False
    else:
        from .backends import get_backend

        be, own = get_backend(backend, timeout_s), True
    try:
        return be.run(text, analysis, cwd=str(path.resolve().parent), deck_name=str(path))
    finally:
        # an unsafe deck may have changed the shared worker's state (set sourcepath, …):
        # never reuse that ngspice instance
        if own or allow_unsafe:
            be.close()
