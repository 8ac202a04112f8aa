"""Noise pass: a white-noise current into each integrator's summing node, intensity set by κ₀.

In x units the circuit then obeys τ dx = −(A x − b) dt + sqrt(2 κ₀ τ) dW (τ = the sidecar's
`tau_s`): the current has intensity σ_I = (α v₀/R₀)·sqrt(2 κ₀ τ) A/√Hz.

Two realisations, both holding piecewise-linear noise of step NT (= step_tau·τ):
- `trnoise`: ngspice TRNOISE(NA NT 0 0), NA = σ_I/√NT. Fast, but not reproducible (ngspice 39
  seeds it from the process id and ignores every seed option).
- `file`: standard-normal samples z_k drawn with numpy from `seed`, written beside the deck
  and fed through the XSPICE `filesource` model (≤ 16 columns per instance, lower-case file
  names). The surrogate can integrate the very same samples (`read_noise_files`), so SPICE
  and the surrogate can be compared path by path. In x units the forcing is +s·z(u) with
  s = sqrt(2κ₀/h), h = step_tau (DESIGN §2 convention).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..netlist import GROUND, Netlist, fmt
from ..sidecar import NoiseRecord, Sidecar
from ..timesteps import NOISE_STEP_FRAC
from .cellmap import Role

#: columns per filesource instance (longer lines are misread by ngspice 39)
FILE_COLUMNS = 16
#: NT = DEFAULT_STEP_FRAC / λ_max(A) when no step is given
#: (:data:`spu_circuits.timesteps.NOISE_STEP_FRAC`, where the reason is given).
DEFAULT_STEP_FRAC = NOISE_STEP_FRAC
#: refuse to write noise files holding more samples than this (≈ 16 bytes each)
MAX_FILE_SAMPLES = 20_000_000


@dataclass(frozen=True)
class NoiseSpec:
    """kind: 'none' | 'trnoise' | 'file'; kappa0: κ₀ (x-units²); step_tau: NT/τ (None: from
    the fastest mode of A); seed and duration_tau: the file realisation's samples cover
    [0, duration_tau·τ]."""

    kind: str = "none"
    kappa0: float = 0.0
    step_tau: float | None = None
    seed: int = 0
    duration_tau: float = 100.0

    def __post_init__(self):
        if self.kind not in ("none", "trnoise", "file"):
            raise InputError(f"unknown noise kind {self.kind!r}; choose none, trnoise or file")
        if not (math.isfinite(self.kappa0) and self.kappa0 >= 0):
            raise InputError(f"kappa0 must be a finite number ≥ 0, got {self.kappa0!r}")
        if self.kind != "none" and self.kappa0 == 0:
            raise InputError("noise needs kappa0 > 0 (use --noise none for a noiseless deck)")
        if self.step_tau is not None and not (math.isfinite(self.step_tau)
                                              and self.step_tau > 0):
            raise InputError(f"noise step must be positive, got {self.step_tau!r}")
        if not (math.isfinite(self.duration_tau) and self.duration_tau > 0):
            raise InputError(f"noise duration must be positive, got {self.duration_tau!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise InputError(f"seed must be a non-negative integer, got {self.seed!r}")


def default_step_tau(A: np.ndarray, frac: float = DEFAULT_STEP_FRAC) -> float:
    """NT/τ = frac/λ_max(A)."""
    return frac / float(np.linalg.eigvalsh(A)[-1])


def draw_noise(seed: int, n_steps: int, n: int) -> np.ndarray:
    """Standard-normal samples z (n_steps + 1, n), rounded to the 10 digits written to file
    (each value is the float of its ``%.9e`` text; one format call per row)."""
    z = np.random.default_rng(seed).standard_normal((n_steps + 1, n))
    row = " ".join(["%.9e"] * n)
    text = " ".join(row % tuple(r) for r in z.tolist())
    return np.array(text.split(), dtype=np.float64).reshape(z.shape)


def file_names(name: str, n: int) -> list[str]:
    return [f"{name.lower()}_noise{k}.txt" for k in range(math.ceil(n / FILE_COLUMNS))]


def add_noise(net: Netlist, side: Sidecar, noise: NoiseSpec, A: np.ndarray | None, name: str,
              sign: float, *, roles: dict[str, str] | None = None,
              lambda_max: float | None = None) -> tuple[NoiseRecord, dict[str, bytes]]:
    """Add the noise sources to `net` for the deck described by `side` (n, τ, α, v₀, R₀ and
    the noise nodes); returns the sidecar's noise record and the files to write.

    A (N×N) is read only when the noise step must come from its fastest mode (may be None
    otherwise).

    sign: +1 when a current into the injection node pushes x up (ideal), −1 when it pushes
    x down (dense integrators); the file realisation compensates so that forcing is +s·z.
    roles: when given, each added element's name is recorded there with Role.NOISE (for
    the cell map). lambda_max: λ_max(A) when the caller knows it (the default step then
    needs no eigen-decomposition of A).
    """
    roles = {} if roles is None else roles
    if noise.kind == "none":
        return NoiseRecord(spec=noise), {}
    n = side.n
    tau = side.tau_s
    alpha, v0, r0 = side.matrix_scale, side.volts_per_unit, side.R0_ohm
    if noise.step_tau is not None:
        h = noise.step_tau
    elif lambda_max is not None:
        h = DEFAULT_STEP_FRAC / float(lambda_max)
    else:
        h = default_step_tau(A)
    nt_s = h * tau
    sigma_i = alpha * v0 / r0 * math.sqrt(2.0 * noise.kappa0 * tau)   # A/√Hz
    na = sigma_i / math.sqrt(nt_s)                                    # A per sample
    nodes = side.noise_nodes
    rec = {"kind": noise.kind, "kappa0": noise.kappa0, "step_tau": h, "step_s": nt_s,
           "sigma_I": sigma_i, "amplitude_A": na, "step_rule":
           "given" if noise.step_tau is not None else f"{DEFAULT_STEP_FRAC}/lambda_max(A)"}
    files: dict[str, bytes] = {}
    if noise.kind == "trnoise":
        for i, node in enumerate(nodes):
            el = net.add(f"inz{i}", (GROUND, node), None,
                         f"dc 0 trnoise({fmt(na)} {fmt(nt_s)} 0 0)")
            roles[el.name] = Role.NOISE.value
        rec["reproducible"] = False
    else:
        k_steps = int(math.ceil(noise.duration_tau / h)) + 2
        if (k_steps + 1) * n > MAX_FILE_SAMPLES:
            raise InputError(
                f"file noise would need {(k_steps + 1) * n:.3g} samples ({k_steps + 1} steps of "
                f"{h:.3g} τ × {n} variables), more than {MAX_FILE_SAMPLES:.0e}; shorten "
                "--noise-duration or lengthen --noise-step")
        z = draw_noise(noise.seed, k_steps, n)
        t = np.arange(k_steps + 1) * nt_s
        names = file_names(name, n)
        # a filesource %i output sinks its current: scale −sign·NA injects +sign·NA·z
        scale = -sign * na
        for k, fname in enumerate(names):
            cols = range(k * FILE_COLUMNS, min(n, (k + 1) * FILE_COLUMNS))
            ports = " ".join(f"%i({nodes[i]})" for i in cols)
            model = f"noisesrc{k}"
            el = net.add(f"anz{k}", (), None, f"[{ports}] {model}")
            roles[el.name] = Role.NOISE.value
            ones = " ".join(fmt(scale) for _ in cols)
            zeros = " ".join("0" for _ in cols)
            net.models.append(
                f".model {model} filesource(file=\"{fname}\" amploffset=[{zeros}] "
                f"amplscale=[{ones}] timeoffset=0 timescale=1 timerelative=false "
                "amplstep=false)")
            row = " ".join(["%.12e", *(["%.9e"] * len(cols))])
            block = np.column_stack([t, z[:, cols.start:cols.stop]]).tolist()
            files[fname] = ("\n".join(row % tuple(r) for r in block) + "\n").encode()
        rec.update(reproducible=True, seed=noise.seed, files=tuple(names),
                   n_samples=k_steps + 1, duration_tau=k_steps * h, sign=sign)
    return NoiseRecord(spec=noise, **rec), files


def read_noise_files(deck_dir: str | Path, noise: NoiseRecord) -> np.ndarray:
    """The standard-normal samples z (K+1, N) that a `file`-noise deck feeds to ngspice."""
    if noise.kind != "file":
        raise InputError("this deck has no file noise (compile with --noise file)")
    cols = []
    for fname in noise.files:
        path = Path(deck_dir) / fname
        if not path.exists():
            raise InputError(f"noise file {path} is missing")
        data = np.loadtxt(path, ndmin=2)
        cols.append(data[:, 1:])
    return np.concatenate(cols, axis=1)
