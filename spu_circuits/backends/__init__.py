"""ngspice back-ends behind one interface: `cli` (batch subprocess) and `shared` (PySpice)."""

from .base import Backend, Op, SimResult, Tran, prepare_deck
from .cli import CliBackend
from .shared import SharedBackend

BACKENDS = {"cli": CliBackend, "shared": SharedBackend}


def get_backend(name: str = "shared", timeout_s: float = 60.0) -> Backend:
    """A back-end by name ('cli' or 'shared'), with a per-run timeout in seconds."""
    try:
        return BACKENDS[name](timeout_s=timeout_s)
    except KeyError:
        raise ValueError(f"unknown backend {name!r}; choose from {sorted(BACKENDS)}") from None


__all__ = ["Backend", "CliBackend", "Op", "SharedBackend", "SimResult", "Tran", "get_backend",
           "prepare_deck"]
