"""Decks with their sidecars, and the analyses users run on them (DC solution, transients).

Results come back in x units through the sidecar: x_i = V(outputs[i]) / volts_per_unit, and
times in units of the sidecar's τ (`tau_s`, the effective time unit of the circuit).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .backends import Backend, Op, Tran, get_backend
from .errors import InputError
from .netlist import deck_digest, sidecar_path
from .spice.lexer import lex
from .system import FactoredSystem, LinearSystem
from .timesteps import INTERNAL_STEP_FRAC

SIDECAR_KEYS = ("outputs", "volts_per_unit", "tau_s", "topology", "n")


@dataclass
class Deck:
    """A deck's text, where it lives, and its sidecar metadata (None for hand-written decks)."""

    text: str
    meta: dict | None = None
    path: Path | None = None

    @classmethod
    def from_compiled(cls, compiled, path: Path | None = None) -> Deck:
        return cls(compiled.deck_text(), dict(compiled.meta), path)

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
            meta = json.loads(side.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"sidecar {side} is not valid JSON ({exc})") from None
        if not isinstance(meta, dict):
            raise InputError(f"sidecar {side} does not hold a JSON object")
        missing = [k for k in SIDECAR_KEYS if k not in meta]
        if missing:
            raise InputError(f"sidecar {side} lacks the key(s) {', '.join(missing)}")
        deck = cls(text, meta, path)
        deck.check_sidecar(check_digest)
        return deck

    def check_sidecar(self, check_digest: bool = True) -> None:
        """InputError when the sidecar does not describe this deck."""
        meta = self.meta or {}
        where = self.path.with_suffix(".json").name if self.path else "sidecar"
        outs = meta.get("outputs")
        if not isinstance(outs, list) or len(outs) != meta.get("n"):
            raise InputError(f"{where}: 'outputs' must list n = {meta.get('n')} node names")
        tokens = {t.lower() for card in lex(self.text).cards
                  if not card.control and not card.word.startswith(".")
                  for t in card.text.split()[1:]}
        absent = [o for o in outs if str(o).lower() not in tokens]
        if absent:
            raise InputError(
                f"sidecar does not match its deck: output node(s) {', '.join(absent[:4])} "
                f"do not appear in {self.path.name if self.path else 'the deck'}")
        want = meta.get("deck_sha256")
        if check_digest and want and want != deck_digest(self.text):
            raise InputError(
                f"sidecar does not match its deck: {self.path.name if self.path else 'deck'} "
                "was changed after it was compiled (sha256 differs)")

    # ---- sidecar views -------------------------------------------------------------------
    def _need_meta(self) -> dict:
        if self.meta is None:
            raise InputError("this deck has no sidecar: its outputs and scaling are unknown")
        return self.meta

    @property
    def outputs(self) -> list[str]:
        return list(self._need_meta()["outputs"])

    @property
    def volts_per_unit(self) -> float:
        return float(self._need_meta()["volts_per_unit"])

    @property
    def tau_s(self) -> float:
        return float(self._need_meta()["tau_s"])

    @property
    def cwd(self) -> str | None:
        return str(self.path.resolve().parent) if self.path else None

    def system(self) -> LinearSystem | FactoredSystem | None:
        """The system recorded in the sidecar (None if absent); both kinds expose .A, .b."""
        rec = (self.meta or {}).get("system")
        if not rec:
            return None
        name = self.meta.get("name", "system")
        try:
            if "S" in rec:
                return FactoredSystem.from_arrays(np.array(rec["S"]), rec["damping"],
                                                  np.array(rec["b"]), name=name)
            return LinearSystem.from_arrays(np.array(rec["A"]), np.array(rec["b"]), name=name)
        except (KeyError, TypeError) as exc:
            raise InputError(f"sidecar's 'system' record is malformed ({exc})") from None

    def ic_voltages(self, x0: np.ndarray) -> dict[str, float]:
        """Initial node voltages (V) that start the circuit at state x0 (N,)."""
        m = self._need_meta().get("ic_map")
        x0 = np.asarray(x0, dtype=float).reshape(-1)
        if x0.shape[0] != len(self.outputs):
            raise InputError(f"x0 has length {x0.shape[0]}, the deck has {len(self.outputs)}")
        if not m:
            return {o: self.volts_per_unit * x0[i] for i, o in enumerate(self.outputs)}
        ic = {node: coef * x0[var] for node, var, coef in m["linear"]}
        ic.update({node: val for node, val in m["const"]})
        return ic


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
        res = be.run(apply_calibration(deck.text, deck.meta), Op(), cwd=deck.cwd,
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
    step = ((deck.meta or {}).get("noise") or {}).get("step_tau")
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
        res = be.run(apply_calibration(deck.text, deck.meta), an, cwd=deck.cwd,
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
    meta = deck._need_meta()
    if not (burn_in_tau >= 0 and duration_tau > 0 and dt_tau > 0):
        raise InputError("sampling needs burn_in ≥ 0, duration > 0 and dt > 0 (units of τ)")
    noise = meta.get("noise", {})
    t_end = burn_in_tau + duration_tau
    if noise.get("kind") == "file" and t_end > noise["duration_tau"] * (1 + 1e-9):
        raise InputError(
            f"the deck's noise file covers {noise['duration_tau']:.4g} τ but burn-in + "
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
