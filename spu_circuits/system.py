"""The compiler's input: a validated linear system A x = b with A symmetric positive definite."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.linalg

from .errors import InputError

#: relative tolerance for symmetry: max|A − Aᵀ| ≤ SYM_RTOL · max|A|
SYM_RTOL = 1e-8


def _as_real_array(value, what: str) -> np.ndarray:
    """Convert to a float64 array, rejecting non-numeric, complex and boolean data."""
    arr = np.asarray(value)
    if arr.dtype == object or arr.dtype.kind not in "iuf":
        kind = {"b": "boolean", "c": "complex", "U": "string", "S": "bytes", "O": "object"}.get(
            arr.dtype.kind, str(arr.dtype))
        raise InputError(f"{what} must hold real numbers, got dtype {kind}")
    return np.array(arr, dtype=np.float64)


def validate_matrix(A, *, sym_rtol: float = SYM_RTOL, check_pd: bool = True) -> np.ndarray:
    """Return A as a symmetric float64 (N, N) array, or raise InputError naming the defect."""
    A = _as_real_array(A, "A")
    if A.ndim != 2:
        raise InputError(f"A must be a 2-D matrix, got an array of shape {A.shape}")
    if A.shape[0] != A.shape[1]:
        raise InputError(f"A is not square: shape {A.shape[0]}×{A.shape[1]}")
    if A.shape[0] == 0:
        raise InputError("A is empty (0×0)")
    bad = ~np.isfinite(A)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise InputError(
            f"A has {int(bad.sum())} non-finite entr{'y' if bad.sum() == 1 else 'ies'} "
            f"(first: A[{i},{j}] = {A[i, j]})")
    scale = float(np.max(np.abs(A)))
    if scale == 0.0:
        raise InputError("A is the zero matrix (singular)")
    asym = float(np.max(np.abs(A - A.T)))
    if asym > sym_rtol * scale:
        i, j = np.unravel_index(np.argmax(np.abs(A - A.T)), A.shape)
        raise InputError(
            f"A is not symmetric: max |A−Aᵀ| = {asym:.3g} at ({i},{j}), "
            f"relative {asym / scale:.3g} > tolerance {sym_rtol:g}")
    A = 0.5 * A + 0.5 * A.T  # halves first: no overflow near the float64 limit
    if check_pd:
        try:
            scipy.linalg.cholesky(A, lower=True)
        except (np.linalg.LinAlgError, ValueError):  # ValueError: overflow inside Cholesky
            with np.errstate(all="ignore"):
                w = np.linalg.eigvalsh(A / scale)
            lam_min = float(w[0]) * scale
            if not np.isfinite(lam_min):
                raise InputError("A is too large to factorise in float64 (Cholesky "
                                 f"overflowed; max |A| = {scale:.3g})") from None
            kind = "singular" if abs(lam_min) <= 1e-14 * scale else "indefinite"
            raise InputError(
                f"A is not positive definite ({kind}): Cholesky failed, smallest eigenvalue "
                f"= {lam_min:.3g}") from None
    return A


def validate_rhs(b, n: int) -> np.ndarray:
    """Return b as a float64 (n,) vector, or raise InputError."""
    b = _as_real_array(b, "b")
    if b.ndim == 2 and 1 in b.shape:
        b = b.reshape(-1)
    if b.ndim != 1:
        raise InputError(f"b must be a vector, got an array of shape {b.shape}")
    if b.shape[0] != n:
        raise InputError(f"b has length {b.shape[0]} but A is {n}×{n}")
    bad = ~np.isfinite(b)
    if bad.any():
        i = int(np.argwhere(bad)[0, 0])
        raise InputError(f"b has {int(bad.sum())} non-finite entries (first: b[{i}] = {b[i]})")
    return b


@dataclass(frozen=True)
class LinearSystem:
    """A validated system A x = b: A (N, N) symmetric positive definite, b (N,), float64.

    Construct with `LinearSystem.from_arrays(A, b)`, which validates; the raw constructor
    trusts its arguments.
    """

    A: np.ndarray
    b: np.ndarray
    name: str = field(default="system", compare=False)

    @classmethod
    def from_arrays(cls, A, b=None, *, name: str = "system", sym_rtol: float = SYM_RTOL
                    ) -> LinearSystem:
        A = validate_matrix(A, sym_rtol=sym_rtol)
        b = np.ones(A.shape[0]) if b is None else validate_rhs(b, A.shape[0])
        A.setflags(write=False)
        b.setflags(write=False)
        return cls(A=A, b=b, name=name)

    @property
    def n(self) -> int:
        return int(self.A.shape[0])

    @functools.cached_property
    def eigenvalues(self) -> np.ndarray:
        """Eigenvalues of A, ascending (N,); computed once per system (A is read-only)."""
        w = np.linalg.eigvalsh(self.A)
        w.setflags(write=False)
        return w

    @functools.cached_property
    def _solution(self) -> np.ndarray:
        x = scipy.linalg.cho_solve(scipy.linalg.cho_factor(self.A), self.b)
        x.setflags(write=False)
        return x

    def solution(self) -> np.ndarray:
        """x* = A⁻¹b by Cholesky (N,); factorised once per system."""
        return self._solution.copy()

    @property
    def lambda_max(self) -> float:
        return float(self.eigenvalues[-1])

    def condition_number(self) -> float:
        w = self.eigenvalues
        return float(w[-1] / w[0])

    def digest(self) -> str:
        """sha256 of (N, A, b) as little-endian float64: identifies the system in sidecars."""
        return self._digest

    @functools.cached_property
    def _digest(self) -> str:
        h = hashlib.sha256()
        h.update(np.int64(self.n).tobytes())
        h.update(np.ascontiguousarray(self.A, dtype="<f8").tobytes())
        h.update(np.ascontiguousarray(self.b, dtype="<f8").tobytes())
        return h.hexdigest()


#: the array file formats `load_array` reads
ARRAY_FORMATS = ".npy, .npz, .csv (comma-separated) or .txt (whitespace-separated)"


def _load_text(path: Path, what: str) -> np.ndarray:
    """A float array from a .csv (commas) or .txt (whitespace) file: one row per line."""
    try:
        return np.loadtxt(path, delimiter="," if path.suffix.lower() == ".csv" else None,
                          dtype=float, ndmin=1, comments="#")
    except (ValueError, UnicodeDecodeError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{what}: cannot read {path} as numbers ({msg})") from None


def load_array(path: str | Path, what: str, key: str | None = None) -> np.ndarray:
    """Load one array from `.npy`, `.npz` (by `key`, or its only array), `.csv` or `.txt`;
    InputError if not."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{what}: file not found: {path}")
    if path.is_dir():
        raise InputError(f"{what}: {path} is a folder, not a .npy/.npz file (or .csv/.txt)")
    if path.suffix.lower() in (".csv", ".txt"):
        return _load_text(path, what)
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - corrupt headers raise SyntaxError, TokenError, …
        if path.suffix.lower() not in (".npy", ".npz"):
            raise InputError(f"{what}: cannot read {path}: the formats that load are "
                             f"{ARRAY_FORMATS}") from None
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{what}: cannot read {path} as .npy/.npz ({msg})") from None
    if isinstance(data, np.lib.npyio.NpzFile):
        with data:
            keys = list(data.keys())
            if key is None:
                if len(keys) != 1:
                    raise InputError(
                        f"{what}: {path} holds {len(keys)} arrays {keys}; name one")
                key = keys[0]
            if key not in keys:
                raise InputError(f"{what}: {path} has no array '{key}' (it has {keys})")
            try:
                return data[key]
            except Exception as exc:  # noqa: BLE001 - a corrupt member, as above
                raise InputError(f"{what}: cannot read array '{key}' from {path} ({exc})") from None
    return data


def load_system(matrix: str | Path, rhs: str | Path | None = None, *, name: str | None = None
                ) -> LinearSystem:
    """Load A (and b) from files. An `.npz` matrix file may hold both as arrays 'A' and 'b'."""
    matrix = Path(matrix)
    b = None
    if matrix.suffix == ".npz" and rhs is None:
        try:
            with np.load(matrix, allow_pickle=False) as z:
                keys = list(z.keys())
        except Exception:  # noqa: BLE001 - reported by load_array below
            keys = []
        if "A" in keys:
            A = load_array(matrix, "matrix", "A")
            b = load_array(matrix, "rhs", "b") if "b" in keys else None
        else:
            A = load_array(matrix, "matrix")
    else:
        A = load_array(matrix, "matrix")
    if rhs is not None:
        b = load_array(rhs, "rhs")
    return LinearSystem.from_arrays(A, b, name=name or matrix.stem)


def random_spd(n: int, cond: float = 10.0, seed: int = 0) -> np.ndarray:
    """A random SPD matrix (n, n) with eigenvalues log-spaced in [1, cond], unit diagonal scale."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    w = np.logspace(0.0, np.log10(cond), n) if n > 1 else np.array([1.0])
    A = (q * w) @ q.T
    return 0.5 * (A + A.T)


@dataclass(frozen=True)
class FactoredSystem:
    """F̃ x = b with F̃ = SᵀS + λI: S (r, N), damping λ > 0, b (N,), float64.

    The form TNGD produces (S = Lᵀ J /√batch); compiled by the `factored` topology with
    2·nnz(S) array resistors. Construct with `from_arrays`, which validates.
    """

    S: np.ndarray
    damping: float
    b: np.ndarray
    name: str = field(default="factored", compare=False)

    @classmethod
    def from_arrays(cls, S, damping: float, b=None, *, name: str = "factored"
                    ) -> FactoredSystem:
        S = _as_real_array(S, "S")
        if S.ndim == 1:
            S = S.reshape(1, -1)
        if S.ndim != 2 or S.shape[1] == 0:
            raise InputError(f"S must be a 2-D (r, N) matrix with N ≥ 1, got shape {S.shape}")
        bad = ~np.isfinite(S)
        if bad.any():
            k, j = np.argwhere(bad)[0]
            raise InputError(f"S has {int(bad.sum())} non-finite entries (first: S[{k},{j}])")
        try:
            lam = float(damping)
        except (TypeError, ValueError):
            raise InputError(f"damping must be a number, got {damping!r}") from None
        if not (np.isfinite(lam) and lam > 0):
            raise InputError(f"damping λ must be a finite number > 0, got {damping!r}")
        n = S.shape[1]
        b = np.ones(n) if b is None else validate_rhs(b, n)
        S.setflags(write=False)
        b.setflags(write=False)
        return cls(S=S, damping=lam, b=b, name=name)

    @property
    def n(self) -> int:
        return int(self.S.shape[1])

    @property
    def A(self) -> np.ndarray:
        """The dense F̃ = SᵀS + λI (N, N)."""
        return self.S.T @ self.S + self.damping * np.eye(self.n)

    def as_linear_system(self) -> LinearSystem:
        A = self.A
        return LinearSystem.from_arrays(0.5 * (A + A.T), self.b, name=self.name)

    def solution(self) -> np.ndarray:
        """F̃⁻¹b via the r×r Woodbury identity."""
        S, lam = self.S, self.damping
        small = lam * np.eye(S.shape[0]) + S @ S.T
        return (self.b - S.T @ np.linalg.solve(small, S @ self.b)) / lam

    @functools.cached_property
    def singular_values(self) -> np.ndarray:
        """Singular values of S, descending (min(r, N),); computed once per system."""
        sv = np.linalg.svd(self.S, compute_uv=False) if self.S.size else np.zeros(0)
        sv.setflags(write=False)
        return sv

    @property
    def lambda_max(self) -> float:
        """λ_max(F̃) = λ + σ_max(S)²."""
        sv = self.singular_values
        return self.damping + (float(sv[0] ** 2) if sv.size else 0.0)

    def condition_number(self) -> float:
        sv = self.singular_values
        top = float(sv[0] ** 2) if sv.size else 0.0
        return (self.damping + top) / self.damping

    def digest(self) -> str:
        h = hashlib.sha256(b"factored")
        h.update(np.int64(self.S.shape[0]).tobytes() + np.int64(self.n).tobytes())
        h.update(np.ascontiguousarray(self.S, dtype="<f8").tobytes())
        h.update(np.float64(self.damping).tobytes())
        h.update(np.ascontiguousarray(self.b, dtype="<f8").tobytes())
        return h.hexdigest()
