"""The back-end interface: analyses as plain data, results as arrays, ngspice logs on failure."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from ..errors import SimulationError
from ..netlist import fmt

#: dot-commands a back-end replaces with the analysis it is asked to run
_ANALYSIS_CARDS = (".op", ".tran", ".dc", ".ac", ".noise", ".tf", ".sens", ".pz", ".disto",
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
    """The deck with its analysis cards replaced by `analysis` (title line kept)."""
    lines = text.splitlines()
    body = [ln for ln in lines[1:]
            if not ln.strip().lower().startswith(_ANALYSIS_CARDS)]
    return "\n".join([lines[0] if lines else "deck", *body, *analysis.cards(), ".end"]) + "\n"


_ERR_PAT = re.compile(
    r"error|singular|timestep too small|too small|abort|fatal|cannot|can't|could not|"
    r"not found|unknown|failed|no such|warning", re.I)


def log_excerpt(log: str, max_lines: int = 12) -> str:
    """The lines of an ngspice log that explain a failure (or its tail when none match)."""
    lines = [ln.rstrip() for ln in log.splitlines() if ln.strip()]
    hits = [ln for ln in lines if _ERR_PAT.search(ln)]
    hits = [ln for ln in hits if "can't find init file" not in ln.lower()]
    chosen = hits[:max_lines] if hits else lines[-max_lines:]
    return "\n".join(chosen)


def normalise_name(name: str) -> str:
    """'V(o1)' / 'o1' → 'o1'; 'vb0#branch' kept; lower case."""
    name = name.strip().lower()
    m = re.fullmatch(r"v\((.+)\)", name)
    return m.group(1) if m else name


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
