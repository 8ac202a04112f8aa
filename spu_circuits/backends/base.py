"""The back-end interface: analyses as plain data, results as arrays, ngspice logs on failure."""

from __future__ import annotations

import os
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError, SimulationError
from ..netlist import fmt
from ..spice.edit import drop_cards
from ..spice.lexer import is_directive, lex, tokens

#: dot-commands a back-end replaces with the analysis it is asked to run
ANALYSIS_CARDS = (".op", ".tran", ".dc", ".ac", ".noise", ".tf", ".sens", ".pz", ".disto",
                   ".end", ".ic")


@dataclass(frozen=True)
class Op:
    """DC operating point."""

    def cards(self) -> list[str]:
        return [".op"]


@dataclass(frozen=True)
class Tran:
    """Transient from t = 0 to stop_s (s), output every step_s (s), internal step ≤ tmax_s.

    ic: initial node voltages {node: volts} (applied with `.ic`); uic skips the initial
    operating point (then every unlisted node starts at 0 V).
    """

    step_s: float
    stop_s: float
    tmax_s: float | None = None
    ic: dict[str, float] = field(default_factory=dict)
    uic: bool = False

    def cards(self) -> list[str]:
        out = []
        if self.ic:
            out.append(".ic " + " ".join(f"v({n})={fmt(v)}" for n, v in sorted(self.ic.items())))
        card = f".tran {fmt(self.step_s)} {fmt(self.stop_s)}"
        if self.tmax_s is not None:
            card += f" 0 {fmt(self.tmax_s)}"
        if self.uic:
            card += " uic"
        out.append(card)
        return out


Analysis = Op | Tran


def analysis_kind(analysis: Analysis) -> str:
    return "op" if isinstance(analysis, Op) else "tran"


@dataclass
class SimResult:
    """Vectors of one analysis: node voltages by lower-case node name (V), `time` (s) for tran."""

    analysis: str
    vectors: dict[str, np.ndarray]
    log: str = ""

    @property
    def time(self) -> np.ndarray:
        return self.vectors["time"]

    def voltages(self, nodes: list[str]) -> np.ndarray:
        """Voltages of `nodes`: (len(nodes),) for op, (T, len(nodes)) for tran."""
        missing = [n for n in nodes if n.lower() not in self.vectors]
        if missing:
            raise SimulationError(
                f"ngspice returned no vector for node(s) {', '.join(missing[:5])}", self.log)
        cols = [np.asarray(self.vectors[n.lower()], dtype=float) for n in nodes]
        arr = np.stack(cols, axis=-1)
        return arr[0] if self.analysis == "op" else arr


def prepare_deck(text: str, analysis: Analysis) -> str:
    """The deck with its analysis cards replaced by `analysis`.

    The cards are those ngspice reads (spice.lexer): a card named exactly as one of
    ANALYSIS_CARDS (or `.end`) goes with all its physical lines (`+` and backslash
    continuations), so no continuation line is left to splice onto another card; the other
    lines are kept as written. The title line is kept; a blank title becomes "untitled" so
    that the CLI and shared mode (PySpice drops blank lines) read the same first line.
    """
    lines, _ = drop_cards(lex(text), lambda card: card.word in ANALYSIS_CARDS, ends=True)
    title = lines[0] if lines and lines[0].strip() else "untitled"
    body = lines[1:]
    return "\n".join([title, *body, *analysis.cards(), ".end"]) + "\n"


#: lines that decide a failure, shown first
_DECISIVE = re.compile(
    r"error|abort|fatal|timestep too small|singular|cannot|can't open|could not|failed|"
    r"no such|not found|unknown|mismatch|segmentation|crash", re.I)
#: other diagnostic lines
_DIAG = re.compile(r"warning|too small|instance:|message:", re.I)
#: convergence-aid chatter that would crowd out the decisive lines
_CHATTER = re.compile(
    r"trying gmin|further gmin|gmin stepping|source stepping|supplies reduced|"
    r"comments and warnings go to log-file|can't find init file|last gmin step|"
    r"starting (dynamic|true) gmin|starting source", re.I)


def log_excerpt(log: str, max_lines: int = 12) -> str:
    """The lines of an ngspice log that explain a failure: decisive lines first, gmin and
    source-stepping chatter dropped, duplicates removed (its tail when nothing matches)."""
    lines = [ln.rstrip() for ln in log.splitlines() if ln.strip()]
    lines = [ln for ln in lines if not _CHATTER.search(ln)]
    decisive = list(dict.fromkeys(ln for ln in lines if _DECISIVE.search(ln)))
    diag = list(dict.fromkeys(ln for ln in lines if _DIAG.search(ln) and ln not in decisive))
    chosen = (decisive + diag)[:max_lines]
    return "\n".join(chosen if chosen else lines[-max_lines:])


def check_model_files(text: str, cwd: str | None) -> None:
    """Before a run: every XSPICE filesource file exists and holds numeric rows.

    ngspice 39 runs silently at 0 V when such a file is empty, a folder or not numeric.
    The `.model` cards are read as ngspice reads them (continuations joined, comments gone).
    """
    base = Path(cwd) if cwd else Path.cwd()
    for card in lex(text).cards:
        name = _filesource_file(card.text)
        if name is None:
            continue
        path = base / name
        if not path.is_file():
            raise SimulationError(f"filesource file {name!r} cannot be opened (looked in {base})")
        try:
            with path.open() as fh:
                rows = [next(fh) for _ in range(2)]
            ok = all(len(r.split()) >= 2 and all(_is_float(t) for t in r.split())
                     for r in rows)
        except (StopIteration, UnicodeDecodeError, OSError):
            ok = False
        if not ok:
            raise SimulationError(
                f"filesource file {name!r} does not hold at least two numeric rows "
                "(time and values); ngspice would run it silently as 0 V")


def _filesource_file(card: str) -> str | None:
    """The `file=` of a `.model NAME filesource(...)` card (lower case, as ngspice opens
    it), None for any other card."""
    if not is_directive(card, ".model"):
        return None
    try:
        toks = tokens(card, "")
    except InputError:
        return None
    if "filesource" not in toks[2:3]:
        return None
    for k in range(3, len(toks) - 2):
        if toks[k] == "file" and toks[k + 1] == "=":
            return toks[k + 2].strip('"').lower()
    return None


def _is_float(tok: str) -> bool:
    try:
        float(tok)
    except ValueError:
        return False
    return True


def normalise_name(name: str) -> str:
    """'V(o1)' / 'o1' → 'o1'; 'vb0#branch' kept; lower case."""
    name = name.strip().lower()
    if len(name) > 3 and name.startswith("v(") and name.endswith(")"):
        return name[2:-1]
    return name


def isolated_env(folder: str) -> dict[str, str]:
    """Environment for an ngspice process: user init files come from `folder` (an empty
    `.spiceinit` written there), never from the deck's folder or the home folder."""
    init = Path(folder) / ".spiceinit"
    if not init.exists():
        init.write_text("* spu-tngd: no user init\n")
    return dict(os.environ, SPICE_USERINIT_DIR=str(folder), SPICE_ASCIIRAWFILE="0")


class Backend(ABC):
    """Runs a deck's text with one analysis. Implementations: `cli`, `shared`."""

    name: str

    def __init__(self, timeout_s: float = 60.0):
        self.timeout_s = float(timeout_s)

    @abstractmethod
    def run(self, deck_text: str, analysis: Analysis, *, cwd: str | None = None,
            deck_name: str | None = None) -> SimResult:
        """Simulate; raise SimulationError (with the log excerpt) on any failure."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (worker processes)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
