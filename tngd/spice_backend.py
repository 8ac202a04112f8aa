"""The ngspice back-end a `spice`-type solver holds: opened on first use, closed with the
solver; a `Backend` object the caller passed in is used as it is and left open."""

from __future__ import annotations

from spu_circuits.backends import Backend, get_backend


class OwnedBackend:
    """backend: a back-end name ('shared', 'cli') or a Backend object; timeout_s: per run."""

    def __init__(self, backend: str | Backend, timeout_s: float):
        self._arg = backend
        self._timeout_s = float(timeout_s)
        self._backend: Backend | None = backend if isinstance(backend, Backend) else None

    def get(self) -> Backend:
        if self._backend is None:
            self._backend = get_backend(str(self._arg), self._timeout_s)
        return self._backend

    def close(self) -> None:
        """Close the back-end if this object opened it (a caller's back-end stays open)."""
        if self._backend is not None and not isinstance(self._arg, Backend):
            self._backend.close()
            self._backend = None


class BackendOwner:
    """Mixed in before a `Solver` that holds an `OwnedBackend` in ``_spice``: `backend` opens
    it on first use, `close()` closes it and then calls the solver's own `close()`."""

    _spice: OwnedBackend

    @property
    def backend(self) -> Backend:
        return self._spice.get()

    def close(self) -> None:
        self._spice.close()
        super().close()  # type: ignore[misc]
