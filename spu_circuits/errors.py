"""User-facing errors. Each carries one clear line; the CLI prints it and exits non-zero."""

from __future__ import annotations


class SpuError(Exception):
    """Base class: a failure the user can act on, described in one line."""

    exit_code = 2


class InputError(SpuError, ValueError):
    """A matrix, vector, file or option given by the user is unusable."""


class CompileError(SpuError):
    """The system cannot be realised as a circuit under the hardware spec."""


class GraphCheckError(CompileError):
    """A netlist failed a structural check (names the node or element)."""


class UnsafeDeckError(SpuError):
    """A deck contains commands refused by default (shell, file access, outside includes)."""


class SimulationError(SpuError):
    """ngspice failed; `log_excerpt` holds the lines of its log that explain why."""

    exit_code = 3

    def __init__(self, message: str, log_excerpt: str = "", deck: str | None = None,
                 log_path: str | None = None):
        self.log_excerpt = log_excerpt
        self.deck = deck
        self.log_path = log_path
        super().__init__(message)

    def details(self) -> str:
        """The message followed by the quoted ngspice log lines."""
        parts = [str(self)]
        if self.deck:
            parts.append(f"  deck: {self.deck}")
        if self.log_path:
            parts.append(f"  log:  {self.log_path}")
        if self.log_excerpt:
            parts.append("  ngspice log:")
            parts.extend("    | " + line for line in self.log_excerpt.splitlines())
        return "\n".join(parts)


class NgspiceNotFound(SimulationError):
    """ngspice (CLI or shared library) is not installed."""


class SimulationTimeout(SimulationError):
    """An ngspice run exceeded its time limit and was stopped."""
