"""What every check shares: the deck, its target system, the sampling plan, the back-end,
the noiseless / TRNOISE / file-noise variants and the cached SPICE samples (:class:`Validation`)."""

from __future__ import annotations

import contextlib
import math
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from spu_circuits.backends import Backend, get_backend
from spu_circuits.compiler.noise import NoiseSpec
from spu_circuits.errors import InputError
from spu_circuits.simulate import Deck, sample
from spu_circuits.system import LinearSystem
from validation.checks.results import CheckResult
from validation.checks.settings import Settings
from validation.checks.variants import with_noise


@dataclass
class Plan:
    """The sampling plan in units of τ (everything on the noise grid)."""

    h: float
    dt: float
    burn_in: float
    chain_duration: float
    samples_per_chain: int
    n_batches: int
    lags: list[int]
    path_duration: float
    chains: int

    @property
    def simulated_tau(self) -> float:
        return self.chains * (self.burn_in + self.chain_duration)


def make_plan(s: Settings, h: float, T_slow: float) -> Plan:
    """The plan for noise step h and slowest time scale T_slow (both in τ): the settings'
    durations, in units of T_slow, rounded onto the noise grid (sampling interval a multiple
    of h, lags below a batch)."""
    m = max(1, round(s.sample_dt * T_slow / h))
    dt = m * h
    burn = math.ceil(s.burn_in * T_slow / h) * h
    per_batch = max(1, math.ceil(s.batch * T_slow / dt))
    n_samples = per_batch * s.batches_per_chain
    lags = sorted({max(1, round(lag * T_slow / dt)) for lag in s.lags})
    lags = [L for L in lags if L < per_batch] or [1]
    path = math.ceil(s.path_duration * T_slow / h) * h
    return Plan(h=h, dt=dt, burn_in=burn, chain_duration=n_samples * dt,
                samples_per_chain=n_samples, n_batches=s.batches_per_chain, lags=lags,
                path_duration=path, chains=s.chains)


class Validation:
    """One deck, the system it should realise, and everything the checks share.

    deck: a :class:`Deck` with its sidecar; system: the target (default: the sidecar's);
    kappa0/noise_step: override the deck's noise (else the deck's, else the settings');
    backend: a back-end object (reused) or its name; log: progress callback (str → None).
    """

    def __init__(self, deck: Deck, system: LinearSystem | None = None, *,
                 settings: Settings | None = None, backend: Backend | str = "shared",
                 kappa0: float | None = None, noise_step: float | None = None,
                 log: Callable[[str], None] | None = None, timeout_s: float = 600.0):
        side = deck.need_sidecar()
        self.deck = deck
        self.sidecar = side
        self.settings = settings or Settings()
        system = system if system is not None else deck.system()
        if system is None:
            raise InputError("the sidecar records no system; give --matrix (and --rhs)")
        if hasattr(system, "as_linear_system"):  # FactoredSystem: F̃ = SᵀS + λI
            system = system.as_linear_system()
        if system.n != int(side.n):
            raise InputError(f"the system has N = {system.n} but the deck realises "
                             f"N = {side.n} variables")
        self.system = system
        self.A = np.array(system.A, dtype=float)
        self.b = np.array(system.b, dtype=float)
        self.n = system.n
        self.x_star = system.solution()
        w = np.linalg.eigvalsh(self.A)
        self.lam_min, self.lam_max = float(w[0]), float(w[-1])
        self.T_s, self.T_f = 1.0 / self.lam_min, 1.0 / self.lam_max
        nz = side.noise
        self.deck_noise = nz
        if kappa0 is not None and not (math.isfinite(kappa0) and kappa0 > 0):
            raise InputError(f"kappa0 must be positive, got {kappa0!r}")
        if noise_step is not None and not (math.isfinite(noise_step) and noise_step > 0):
            raise InputError(f"the noise step must be positive, got {noise_step!r}")
        self.kappa0 = float(kappa0 if kappa0 is not None
                            else nz.kappa0 or self.settings.kappa0)
        sized = side.realization.sized_kappa0 if side.realization is not None else None
        if sized is not None and self.kappa0 > float(sized) * (1 + 1e-9):
            raise InputError(
                f"the deck was sized (v0, ERC) for kappa0 = {float(sized):g}; validating at "
                f"kappa0 = {self.kappa0:g} would drive its outputs past the swing it was "
                f"checked for: give --kappa0 {float(sized):g} or less, or recompile with "
                f"--size-kappa0 {self.kappa0:g}")
        self.h = float(noise_step if noise_step is not None
                       else nz.step_tau or self.settings.noise_step_frac / self.lam_max)
        self.noise_step_given = noise_step
        self.own_noise_ok = (kappa0 is None or kappa0 == nz.kappa0) and (
            noise_step is None or noise_step == nz.step_tau)
        self.backend_name = backend if isinstance(backend, str) else backend.name
        self._backend = backend if isinstance(backend, Backend) else None
        self._own_backend = self._backend is None
        self.timeout_s = timeout_s
        self.log = log or (lambda msg: None)
        self._tmp: Path | None = None
        self.plan = self._plan()
        self.results: list[CheckResult] = []
        self.edited = deck.edited

    # -- resources -------------------------------------------------------------------------
    @property
    def backend(self) -> Backend:
        if self._backend is None:
            self._backend = get_backend(self.backend_name, self.timeout_s)
        return self._backend

    @property
    def tmpdir(self) -> Path:
        if self._tmp is None:
            self._tmp = Path(tempfile.mkdtemp(prefix="spu-validate-"))
        return self._tmp

    def close(self) -> None:
        if self._own_backend and self._backend is not None:
            self._backend.close()
            self._backend = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- plan ------------------------------------------------------------------------------
    def _plan(self) -> Plan:
        return make_plan(self.settings, self.h, self.T_s)

    def describe(self) -> dict:
        p = self.plan
        return {
            "n": self.n, "topology": self.sidecar.topology, "tau_s": self.sidecar.tau_s,
            "kappa0": self.kappa0, "noise_step_tau": self.h, "lambda_min": self.lam_min,
            "lambda_max": self.lam_max, "T_slow_tau": self.T_s, "T_fast_tau": self.T_f,
            "deck_noise": self.deck_noise.kind, "deck_edited": self.edited,
            "backend": self.backend_name, "settings": asdict(self.settings),
            "plan": asdict(p) | {"simulated_tau": p.simulated_tau},
        }

    # -- deck variants ---------------------------------------------------------------------
    def noiseless(self) -> Deck:
        return with_noise(self.deck, NoiseSpec("none"), self.A)

    def trnoise_deck(self) -> tuple[Deck, str]:
        if self.deck_noise.kind == "trnoise" and self.own_noise_ok:
            return self.deck, "the deck's own TRNOISE sources"
        d = with_noise(self.deck, NoiseSpec("trnoise", self.kappa0, step_tau=self.h), self.A)
        return d, "TRNOISE sources generated from the sidecar"

    def file_deck(self, duration: float) -> tuple[Deck, str]:
        nz = self.deck_noise
        if (nz.kind == "file" and self.own_noise_ok and self.deck.path is not None
                and (nz.duration_tau or 0) >= duration
                and all((self.deck.path.parent / f).exists() for f in nz.files or ())):
            return self.deck, f"the deck's own noise files (seed {nz.seed})"
        d = with_noise(self.deck, NoiseSpec("file", self.kappa0, step_tau=self.h,
                                            seed=self.settings.seed, duration_tau=duration),
                       self.A, workdir=self.tmpdir / "pathwise")
        return d, f"noise files generated from the sidecar (seed {self.settings.seed})"

    # -- running ---------------------------------------------------------------------------
    def run(self, names: list[str] | None = None) -> list[CheckResult]:
        from validation.checks.registry import checks_for  # the checks import this module

        CHECKS = checks_for(self.sidecar.topology)  # noqa: N806

        names = list(names or CHECKS)
        unknown = [n for n in names if n not in CHECKS]
        if unknown:
            raise InputError(f"unknown check(s) {', '.join(unknown)}; choose from "
                             f"{', '.join(CHECKS)}")
        out = []
        for name in names:
            self.log(f"[{name}] running")
            t0 = time.monotonic()
            res = CHECKS[name](self)
            res.seconds = time.monotonic() - t0
            self.log(f"[{name}] {'PASS' if res.passed else 'FAIL'} ({res.seconds:.1f} s)")
            out.append(res)
            self.results.append(res)
        return out

    # shared by statistical, surrogate and the report
    def spice_samples(self) -> np.ndarray:
        """(chains, T, N) TRNOISE samples on the plan (cached)."""
        if getattr(self, "_spice_X", None) is not None:
            return self._spice_X
        p = self.plan
        deck, self._trnoise_source = self.trnoise_deck()
        self.log(f"[statistical] {p.chains} runs × ({p.burn_in:.3g} + {p.chain_duration:.3g}) τ"
                 f", noise step {p.h:.3g} τ ({p.simulated_tau / p.h:.3g} noise steps in all)")
        chains = []
        for c in range(p.chains):
            t0 = time.monotonic()
            u, X = sample(deck, burn_in_tau=p.burn_in, duration_tau=p.chain_duration,
                          dt_tau=p.dt, x0=self.x_star, backend=self.backend,
                          tmax_tau=p.h / 2, timeout_s=self.timeout_s)
            if X.shape[0] < p.samples_per_chain + 1:
                raise InputError(f"ngspice returned {X.shape[0]} samples, expected "
                                 f"{p.samples_per_chain + 1}")
            chains.append(X[1:p.samples_per_chain + 1])
            self.log(f"[statistical]   run {c + 1}/{p.chains} done "
                     f"({time.monotonic() - t0:.1f} s)")
        self._spice_X = np.stack(chains)
        return self._spice_X


@contextlib.contextmanager
def torch_threads(n: int = 1):
    """Run torch on `n` threads: the surrogate's many tiny (chains × N) products are ~40×
    slower with several threads on a loaded machine (thread hand-off dominates)."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def predicted_deviation(v: Validation) -> float | None:
    pred = v.sidecar.predicted.rel_deviation_from_exact if v.sidecar.predicted else None
    return None if pred is None else float(pred)


def deterministic_threshold(v: Validation, floor: float) -> tuple[float, str]:
    """dc_factor·(predicted deviation) + floor; dc_unknown when the sidecar has none."""
    s = v.settings
    pred = predicted_deviation(v)
    if pred is None:
        thr, why = s.dc_unknown, f"{s.dc_unknown:g} (the sidecar predicts no deviation)"
    else:
        thr, why = s.dc_factor * pred + floor, (f"{s.dc_factor:g}× the sidecar's predicted "
                                                f"deviation {pred:.3g} + {floor:g}")
    if s.max_error is not None and s.max_error < thr:
        return s.max_error, f"the spec --max-error {s.max_error:g}"
    return thr, why
