"""Decks with their sidecars, and the analyses users run on them (DC solution, transients).

Results come back in x units through the sidecar: x_i = V(outputs[i]) / volts_per_unit, and
times in units of the sidecar's τ (`tau_s`, the effective time unit of the circuit).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .backends import Backend, Op, Tran, get_backend
from .errors import InputError
from .netlist import deck_digest, sidecar_path
from .sidecar import REQUIRED_KEYS, Sidecar
from .spice.lexer import lex
from .system import FactoredSystem, LinearSystem
from .timesteps import INTERNAL_STEP_FRAC

SIDECAR_KEYS = REQUIRED_KEYS  # the former name


@dataclass
class Deck:
    """A deck's text, its sidecar (None for hand-written decks) and where it lives."""

    text: str
    sidecar: Sidecar | None = None
    path: Path | None = None

    def __post_init__(self) -> None:
        if isinstance(self.sidecar, dict):  # the sidecar's JSON object (older callers)
            self.sidecar = Sidecar.from_json(self.sidecar)

    @classmethod
    def from_compiled(cls, compiled, path: Path | None = None) -> Deck:
        return cls(compiled.deck_text(), compiled.sidecar, path)

    @classmethod
    def load(cls, path: str | Path, *, require_sidecar: bool = False,
             check_digest: bool = True) -> Deck:
        """Read `path` and the `.json` sidecar beside it; InputError if they disagree."""
        path = Path(path)
        if not path.is_file():
            raise InputError(f"deck not found: {path}")
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            raise InputError(f"deck {path} is not a text file") from None
        if not text.strip():
            raise InputError(f"deck {path} is empty")
        side = sidecar_path(path)
        if not side.exists():
            if require_sidecar:
                raise InputError(f"deck {path} has no sidecar {side.name} beside it")
            return cls(text, None, path)
        try:
            side_text = side.read_text()
        except UnicodeDecodeError as exc:
            raise InputError(f"sidecar {side} is not valid JSON ({exc})") from None
        deck = cls(text, Sidecar.loads(side_text, f"sidecar {side}"), path)
        deck.check_sidecar(check_digest)
        return deck

    @property
    def meta(self) -> dict | None:
        """The sidecar as its JSON object (a fresh copy), None without one."""
        return None if self.sidecar is None else self.sidecar.to_json()

    def check_sidecar(self, check_digest: bool = True) -> None:
        """InputError when the sidecar does not describe this deck."""
        side = self.need_sidecar()
        outs = side.outputs
        tokens = {t.lower() for card in lex(self.text).cards
                  if not card.control and not card.word.startswith(".")
                  for t in card.text.split()[1:]}
        absent = [o for o in outs if str(o).lower() not in tokens]
        if absent:
            raise InputError(
                f"sidecar does not match its deck: output node(s) {', '.join(absent[:4])} "
                f"do not appear in {self.path.name if self.path else 'the deck'}")
        want = side.deck_sha256
        if check_digest and want and want != deck_digest(self.text):
            raise InputError(
                f"sidecar does not match its deck: {self.path.name if self.path else 'deck'} "
                "was changed after it was compiled (sha256 differs)")

    # ---- sidecar views -------------------------------------------------------------------
    def need_sidecar(self) -> Sidecar:
        if self.sidecar is None:
            raise InputError("this deck has no sidecar: its outputs and scaling are unknown")
        return self.sidecar

    @property
    def edited(self) -> bool:
        """True when the deck text differs from the one its sidecar's digest records."""
        want = self.sidecar.deck_sha256 if self.sidecar is not None else None
        return bool(want) and want != deck_digest(self.text)

    @property
    def calibration(self) -> dict | None:
        """The sidecar's calibration record (None without a sidecar or calibration)."""
        return self.sidecar.calibration if self.sidecar is not None else None

    @property
    def outputs(self) -> list[str]:
        return list(self.need_sidecar().outputs)

    @property
    def volts_per_unit(self) -> float:
        return float(self.need_sidecar().volts_per_unit)

    @property
    def tau_s(self) -> float:
        return float(self.need_sidecar().tau_s)

    @property
    def cwd(self) -> str | None:
        return str(self.path.resolve().parent) if self.path else None

    def system(self) -> LinearSystem | FactoredSystem | None:
        """The system recorded in the sidecar (None if absent); both kinds expose .A, .b."""
        return None if self.sidecar is None else self.sidecar.to_system()

    def ic_voltages(self, x0: np.ndarray) -> dict[str, float]:
        """Initial node voltages (V) that start the circuit at state x0 (N,). A second-order
        (oscillator) deck also takes (x₀, v₀) (2N,); with x₀ alone its velocity starts at 0."""
        side = self.need_sidecar()
        x0 = np.asarray(x0, dtype=float).reshape(-1)
        n = len(self.outputs)
        second = bool(side.extra.get("oscillator"))
        if second and x0.shape[0] in (n, 2 * n):
            x0 = np.concatenate([x0, np.zeros(2 * n - x0.shape[0])])
        elif x0.shape[0] != n:
            raise InputError(f"x0 has length {x0.shape[0]}, the deck has {n}"
                             + (f" (or {2 * n} with the velocities)" if second else ""))
        return side.ic_voltages(x0)


def _backend(backend: Backend | str | None, timeout_s: float) -> tuple[Backend, bool]:
    if isinstance(backend, Backend):
        return backend, False
    return get_backend(backend or "shared", timeout_s), True


def solve_op(deck: Deck, backend: Backend | str | None = None, timeout_s: float = 60.0
             ) -> np.ndarray:
    """DC operating point read back as x (N,)."""
    from .calibrate import apply_calibration

    be, own = _backend(backend, timeout_s)
    try:
        res = be.run(apply_calibration(deck.text, deck.calibration), Op(), cwd=deck.cwd,
                     deck_name=str(deck.path or "<deck>"))
    finally:
        if own:
            be.close()
    return res.voltages(deck.outputs) / deck.volts_per_unit


def default_tmax_tau(deck: Deck, frac: float = INTERNAL_STEP_FRAC) -> float:
    """Internal step bound in units of τ: frac/λ_max(A) (A from the sidecar; frac if
    unknown), and at most a quarter of the deck's noise step."""
    sysm = deck.system()
    tmax = frac if sysm is None else frac / float(np.linalg.eigvalsh(sysm.A)[-1])
    step = deck.sidecar.noise.step_tau if deck.sidecar is not None else None
    return min(tmax, step / 4) if step else tmax


def transient(deck: Deck, x0, t_stop_tau: float, dt_tau: float, *,
              tmax_tau: float | None = None, backend: Backend | str | None = None,
              timeout_s: float = 120.0) -> tuple[np.ndarray, np.ndarray]:
    """Transient from x0 (noisy if the deck has noise sources): (u (T,) in τ, x (T, N))."""
    if not (t_stop_tau > 0 and dt_tau > 0):
        raise InputError("transient: t_stop and dt must be positive")
    tau = deck.tau_s
    tmax = tmax_tau if tmax_tau is not None else default_tmax_tau(deck)
    an = Tran(step_s=dt_tau * tau, stop_s=t_stop_tau * tau, tmax_s=min(tmax, dt_tau) * tau,
              ic=deck.ic_voltages(x0), uic=True)
    return _run_tran(deck, an, backend, timeout_s)


def _run_tran(deck: Deck, an: Tran, backend, timeout_s: float
              ) -> tuple[np.ndarray, np.ndarray]:
    """Run a transient; (u (T,) in units of τ, x (T, N)) through the sidecar."""
    from .calibrate import apply_calibration

    be, own = _backend(backend, timeout_s)
    try:
        res = be.run(apply_calibration(deck.text, deck.calibration), an, cwd=deck.cwd,
                     deck_name=str(deck.path or "<deck>"))
    finally:
        if own:
            be.close()
    return res.time / deck.tau_s, res.voltages(deck.outputs) / deck.volts_per_unit


def sample(deck: Deck, *, burn_in_tau: float, duration_tau: float, dt_tau: float,
           x0=None, backend: Backend | str | None = None, timeout_s: float = 600.0,
           tmax_tau: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A noisy transient, sampled after a burn-in: (u (T,) in τ, x (T, N)).

    Samples at u = burn_in + k·dt, k = 0 … ⌊duration/dt⌋. x0 defaults to the sidecar's A⁻¹b.
    The internal step is bounded by a quarter of the noise step (and frac/λ_max).
    """
    noise = deck.need_sidecar().noise
    if not (burn_in_tau >= 0 and duration_tau > 0 and dt_tau > 0):
        raise InputError("sampling needs burn_in ≥ 0, duration > 0 and dt > 0 (units of τ)")
    t_end = burn_in_tau + duration_tau
    if noise.kind == "file" and t_end > noise.duration_tau * (1 + 1e-9):
        raise InputError(
            f"the deck's noise file covers {noise.duration_tau:.4g} τ but burn-in + "
            f"duration = {t_end:.4g} τ; recompile with a longer --noise-duration")
    if x0 is None:
        sysm = deck.system()
        x0 = sysm.solution() if sysm is not None else np.zeros(len(deck.outputs))
    tmax = tmax_tau if tmax_tau is not None else default_tmax_tau(deck)
    tau = deck.tau_s
    an = Tran(step_s=min(dt_tau, tmax) * tau, stop_s=t_end * tau, tmax_s=tmax * tau,
              ic=deck.ic_voltages(x0), uic=True)
    u, X = _run_tran(deck, an, backend, timeout_s)
    grid = burn_in_tau + dt_tau * np.arange(int(np.floor(duration_tau / dt_tau + 1e-9)) + 1)
    grid = grid[grid <= u[-1] * (1 + 1e-12)]
    return grid, interp_at(u, X, grid)


def interp_at(u: np.ndarray, x: np.ndarray, at) -> np.ndarray:
    """Linear interpolation of a trajectory x (T, N) at times `at` (M,) → (M, N)."""
    at = np.atleast_1d(np.asarray(at, dtype=float))
    return np.stack([np.interp(at, u, x[:, k]) for k in range(x.shape[1])], axis=-1)
