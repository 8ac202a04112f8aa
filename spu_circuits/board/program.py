"""Programming a board: a system → code words, the quantised system A_q, b_q they realise,
and the solution error that quantisation costs.

Code choice (`method`):

- `round`: each entry independently gets the code whose conductance is nearest its target
  (the part's law with its recorded fixed error: the calibration table in the sidecar, and the
  switch's on-resistance); each bias the nearest DAC code.
- `optimal`: starts from `round` and moves single codes by ±1 (couplings, damping and biases),
  keeping a move when it lowers ‖A_q⁻¹b_q − A⁻¹b‖ (coordinate descent, a few sweeps). It
  minimises the solution error the issue asks about, not the entry-wise error.

A_q, b_q are what the board realises at DC for these codes by the part laws (ideal op-amps,
open switches' leakage neglected); the extractor (`run.board_effective`) adds the finite gain
and the leakage. The predicted error is ‖A_q⁻¹b_q − A⁻¹b‖/‖A⁻¹b‖ (exact, from A_q, b_q);
the first-order estimate is cond(A)·(step/2)/‖A‖ with step the largest code step in units
of A (reported beside it).

Refused (InputError, one line naming the entry): more variables or factor rows than the board
has, an entry beyond the range, a system of the wrong kind (factored ↔ dense), a quantised A_q
whose symmetric part is not positive definite, and a solution that drives an op-amp output
beyond the rails.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..sidecar import Sidecar, as_sidecar
from ..system import FactoredSystem, LinearSystem
from .parts import PartModel
from .topology import BoardSpec, PartSlot

METHODS = ("round", "optimal")
CODES_FORMAT = "spu-tngd-codes/1"
#: coordinate-descent sweeps of the `optimal` method
SWEEPS = 4
#: entries may exceed the range by this relative amount (float round-off of callers)
RANGE_RTOL = 1e-12


@dataclass
class BoardLayout:
    """What `program` needs to know about a board (from its sidecar)."""

    spec: BoardSpec
    slots: list[PartSlot]
    name: str = "board"
    deck_sha256: str | None = None

    @classmethod
    def from_sidecar(cls, side: Sidecar | None) -> BoardLayout:
        """The layout of a board deck's sidecar; InputError for any other deck."""
        if side is None or side.board is None:
            raise InputError("this deck is not a programmable board (its sidecar has no "
                             "'board' record); write one with `spu board`")
        return cls(side.board.spec, list(side.board.slots), side.name, side.deck_sha256)

    @classmethod
    def from_meta(cls, meta: Sidecar | dict | None) -> BoardLayout:
        """As `from_sidecar`, from a Sidecar or its JSON object."""
        return cls.from_sidecar(None if meta is None else as_sidecar(meta))


@dataclass
class Program:
    """Codes for one system on one board, and what they realise.

    params: every deck parameter (code_*, sel_*, bias_*) → integer; A_q (N, N), b_q (N,): the
    quantised system; x_q = A_q⁻¹b_q; x_exact = A⁻¹b (padded to the board's N); n_used: the
    system's variables (the rest of the cells are parked at x = 0); scale: system units per
    board unit (1 unless a caller rescales); rel_error: ‖x_q − x‖/‖x‖ over the used cells.
    """

    board: str
    board_sha256: str | None
    method: str
    params: dict[str, int]
    A_q: np.ndarray
    b_q: np.ndarray
    x_q: np.ndarray
    x_exact: np.ndarray
    n_used: int
    system: dict
    rel_error: float
    first_order: float
    entry_rel_error: float
    extra: dict = field(default_factory=dict)

    def param_lines(self, per_line: int = 8) -> list[str]:
        """`.param` lines setting every parameter (short lines: ngspice reads them whole)."""
        items = [f"{k}={v}" for k, v in self.params.items()]
        return [".param " + " ".join(items[i:i + per_line])
                for i in range(0, len(items), per_line)]

    def include_text(self) -> str:
        head = (f"* spu-tngd program for board {self.board} ({self.method} codes); "
                f"predicted solution error {self.rel_error:.3g}")
        return "\n".join([head, *self.param_lines()]) + "\n"

    def to_json(self) -> dict:
        return {"format": CODES_FORMAT, "board": self.board, "board_sha256": self.board_sha256,
                "method": self.method, "n_used": self.n_used,
                "predicted": {"rel_error_x": self.rel_error,
                              "first_order_rel_error_x": self.first_order,
                              "rel_error_A": self.entry_rel_error,
                              "what": "||A_q^-1 b_q - A^-1 b|| / ||A^-1 b|| from the part "
                                      "laws (ideal op-amps)"},
                "system": self.system, "A_q": self.A_q.tolist(), "b_q": self.b_q.tolist(),
                "x_q": self.x_q.tolist(), "x_exact": self.x_exact.tolist(),
                "params": self.params, **self.extra}

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=1, allow_nan=False) + "\n"

    @classmethod
    def from_json(cls, d: dict) -> Program:
        if not isinstance(d, dict) or d.get("format") != CODES_FORMAT:
            raise InputError(f"not a codes file (format {CODES_FORMAT!r} expected)")
        try:
            p = d["predicted"]
            params = {str(k): int(v) for k, v in d["params"].items()}
            return cls(d["board"], d.get("board_sha256"), d["method"], params,
                       np.array(d["A_q"], dtype=float), np.array(d["b_q"], dtype=float),
                       np.array(d["x_q"], dtype=float), np.array(d["x_exact"], dtype=float),
                       int(d["n_used"]), d["system"], float(p["rel_error_x"]),
                       float(p["first_order_rel_error_x"]), float(p["rel_error_A"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"codes file is malformed ({exc})") from None

    @classmethod
    def load(cls, path: str | Path) -> Program:
        path = Path(path)
        if not path.is_file():
            raise InputError(f"codes file not found: {path}")
        try:
            d = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"codes file {path} is not valid JSON ({exc})") from None
        return cls.from_json(d)

    def target(self) -> LinearSystem | FactoredSystem:
        """The system these codes were chosen for (system units)."""
        s = self.system
        if "S" in s:
            return FactoredSystem.from_arrays(np.array(s["S"]), float(s["damping"]),
                                              np.array(s["b"]), name="programmed")
        return LinearSystem.from_arrays(np.array(s["A"]), np.array(s["b"]), name="programmed")


# ------------------------------------------------------------------------------ part laws


def entry_conductance(spec: BoardSpec, part: PartModel, code, err, switched: bool):
    """DC conductance (S) of an entry: part (code, fixed error) behind a closed switch."""
    g = part.conductance(code, err)
    if not switched:
        return g
    if part.kind == "mdac":
        return g * spec.switch.on_ratio(part.R_ladder_ohm)
    return g / (1 + g * spec.switch.R_on_ohm)


def nearest_codes(spec: BoardSpec, part: PartModel, target_S: np.ndarray, err: np.ndarray,
                  switched: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per entry, the code (and 0/1 'on') whose conductance is nearest target_S (S ≥ 0)."""
    P, top = part.positions, part.max_code
    t = np.asarray(target_S, dtype=float)
    if part.kind == "mdac":
        ratio = np.where(switched, spec.switch.on_ratio(part.R_ladder_ohm), 1.0)
        guess = t / ratio * P * part.R_ladder_ohm
    else:
        with np.errstate(divide="ignore"):
            r = np.where(t > 0, 1.0 / np.maximum(t, 1e-300), np.inf)
        r = r - np.where(switched, spec.switch.R_on_ohm, 0.0)
        guess = (r - part.R_w_ohm) * P / (part.R_ab_ohm * (1 + err))
    guess = np.clip(np.nan_to_num(guess, nan=top, posinf=top), 0, top)
    base = np.round(guess).astype(np.int64)
    best_c, best_d = base.copy(), np.full(t.shape, np.inf)
    for d in (-2, -1, 0, 1, 2):
        c = np.clip(base + d, 0, top)
        dist = np.abs(_cond(spec, part, c, err, switched) - t)
        better = dist < best_d
        best_c, best_d = np.where(better, c, best_c), np.where(better, dist, best_d)
    on = np.ones(t.shape, dtype=np.int64)
    if part.kind == "digipot":
        # an open switch realises 0: use it when 0 is nearer than the weakest position
        off = (t < best_d) & switched
        on = np.where(off, 0, 1)
        best_c = np.where(off, 0, best_c)
    return best_c, on


def _cond(spec, part, code, err, switched):
    g_sw = entry_conductance(spec, part, code, err, True)
    g_no = part.conductance(code, err)
    return np.where(switched, g_sw, g_no)


# ------------------------------------------------------------------------------ programming


@dataclass
class _Arrays:
    """Slot data as arrays, in slot order."""

    kind: np.ndarray
    row: np.ndarray
    col: np.ndarray
    err: np.ndarray
    switched: np.ndarray


def _arrays(slots: list[PartSlot]) -> _Arrays:
    return _Arrays(np.array([s.kind for s in slots]), np.array([s.row for s in slots]),
                   np.array([s.col for s in slots]), np.array([s.err for s in slots]),
                   np.array([s.sel is not None for s in slots]))


def _padded(system, spec: BoardSpec) -> tuple[dict, np.ndarray, int]:
    """Target entries per slot kind, padded to the board; refuses what does not fit."""
    N, R, Ar = spec.n, spec.range, spec.A_range
    lim = (1 + RANGE_RTOL)
    if isinstance(system, FactoredSystem):
        if not spec.factored:
            raise InputError("this is a dense board: give --matrix A.npy (a factored system "
                             "S, λ needs a board written with --factored R)")
        S, lam, b = system.S, float(system.damping), system.b
        r, n = S.shape
        if n > N:
            raise InputError(f"the system has {n} variables, the board {N} cells")
        if r > spec.r:
            raise InputError(f"S has {r} rows, the board {spec.r} stages (--factored)")
        big = np.abs(S) > R * lim
        if big.any():
            k, j = np.argwhere(big)[0]
            raise InputError(f"S[{k},{j}] = {S[k, j]:.6g} lies outside the board's range "
                             f"±{R:g}")
        if lam > Ar * lim:
            raise InputError(f"damping λ = {lam:.6g} lies outside the board's range "
                             f"{Ar:g} (= range²)")
        Sp = np.zeros((spec.r, N))
        Sp[:r, :n] = S
        tgt = {"S": Sp, "damping": np.full(N, lam)}
        A = Sp.T @ Sp + lam * np.eye(N)
    else:
        if spec.factored:
            raise InputError("this is a factored board: give --factor S.npy --damping λ "
                             "(a dense matrix needs a board without --factored)")
        A0, b = system.A, system.b
        n = A0.shape[0]
        if n > N:
            raise InputError(f"the system has {n} variables, the board {N} cells")
        big = np.abs(A0) > R * lim
        if big.any():
            i, j = np.argwhere(big)[0]
            raise InputError(f"A[{i},{j}] = {A0[i, j]:.6g} lies outside the board's range "
                             f"±{R:g}")
        A = np.diag(np.full(N, Ar))  # unused cells: A_ii = full scale, b_i = 0 → x_i = 0
        A[:n, :n] = A0
        tgt = {"A": A}
    bbig = np.abs(b) > Ar * lim
    if bbig.any():
        i = int(np.argmax(bbig))
        raise InputError(f"b[{i}] = {b[i]:.6g} lies outside the board's bias range ±{Ar:g}")
    bp = np.zeros(N)
    bp[:n] = b
    tgt["b"] = bp
    return tgt, A, n


def _targets(tgt: dict, a: _Arrays, spec: BoardSpec) -> np.ndarray:
    """Signed target value of each slot in its own units (A, S or λ)."""
    out = np.zeros(a.kind.shape)
    for kind in ("A", "S_in", "S_out", "damping"):
        m = a.kind == kind
        if not m.any():
            continue
        if kind == "A":
            out[m] = tgt["A"][a.row[m], a.col[m]]
        elif kind == "damping":
            out[m] = tgt["damping"][a.row[m]]
        else:
            out[m] = tgt["S"][a.row[m], a.col[m]]
    return out


def _unit_S(a: _Arrays, spec: BoardSpec) -> np.ndarray:
    """Conductance per unit of each slot's value (S): G_u for A/λ, g_fs/range for S."""
    return np.where(np.isin(a.kind, ("S_in", "S_out")), spec.g_fs_S / spec.range,
                    spec.G_unit_S)


def realised(spec: BoardSpec, a: _Arrays, codes: np.ndarray, on: np.ndarray,
             sign: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(A_q, b_q) the codes realise at DC by the part laws."""
    part, N = spec.part, spec.n
    g = _cond(spec, part, codes, a.err, a.switched) * on
    val = sign * g / _unit_S(a, spec)
    if spec.factored:
        Sin, Sout = np.zeros((spec.r, N)), np.zeros((spec.r, N))
        m = a.kind == "S_in"
        Sin[a.row[m], a.col[m]] = val[m]
        m = a.kind == "S_out"
        Sout[a.row[m], a.col[m]] = val[m]
        m = a.kind == "damping"
        A = Sout.T @ Sin
        A[a.row[m], a.row[m]] += val[m]
    else:
        A = np.zeros((N, N))
        A[a.row, a.col] = val
    b = bias / spec.bias_max_code * spec.A_range
    return A, b


def _solution_error(A, b, x_ref, n):
    try:
        x = np.linalg.solve(A, b)
    except np.linalg.LinAlgError:
        return np.inf, None
    return float(np.linalg.norm(x[:n] - x_ref[:n])), x


def program(system: LinearSystem | FactoredSystem, layout: BoardLayout,
            method: str = "round") -> Program:
    """Choose the codes of `system` on the board `layout` (see the module docstring)."""
    if method not in METHODS:
        raise InputError(f"unknown code choice {method!r}; choose from {', '.join(METHODS)}")
    spec, slots = layout.spec, layout.slots
    a = _arrays(slots)
    tgt, A_pad, n = _padded(system, spec)
    part = spec.part
    target = _targets(tgt, a, spec)
    sign = np.where(target < 0, -1, 1)
    codes, on = nearest_codes(spec, part, np.abs(target) * _unit_S(a, spec), a.err,
                              a.switched)
    bmax = spec.bias_max_code
    bias = np.clip(np.round(tgt["b"] / spec.A_range * bmax), -bmax, bmax).astype(np.int64)
    x_ref = np.linalg.solve(A_pad, tgt["b"])
    if method == "optimal":
        codes, on, bias = _descend(spec, a, codes, on, sign, bias, x_ref, n)
    A_q, b_q = realised(spec, a, codes, on, sign, bias)
    w = np.linalg.eigvalsh(0.5 * (A_q + A_q.T))
    if w[0] <= 0:
        raise InputError(f"the quantised matrix A_q is not positive definite (smallest "
                         f"eigenvalue of its symmetric part {w[0]:.3g}) at {part.bits} bits; "
                         "use more bits or a system with a larger smallest eigenvalue")
    x_q = np.linalg.solve(A_q, b_q)
    _check_swing(spec, x_q, tgt)
    nx = max(float(np.linalg.norm(x_ref[:n])), 1e-300)
    rel = float(np.linalg.norm(x_q[:n] - x_ref[:n])) / nx
    step = _code_step(spec, part)
    cond = float(np.linalg.cond(A_pad[:n, :n]))
    first = cond * 0.5 * step / float(np.linalg.norm(A_pad[:n, :n], 2))
    entry = float(np.linalg.norm(A_q[:n, :n] - A_pad[:n, :n]) / np.linalg.norm(A_pad[:n, :n]))
    params: dict[str, int] = {f"bias_{i}": int(bias[i]) for i in range(spec.n)}
    for s, c, o, sg in zip(slots, codes, on, sign, strict=True):
        params[s.code] = int(c)
        if s.sel is not None:
            params[s.sel] = int(sg) * int(o)
    if isinstance(system, FactoredSystem):
        rec = {"S": system.S.tolist(), "damping": float(system.damping),
               "b": system.b.tolist()}
    else:
        rec = {"A": system.A.tolist(), "b": system.b.tolist()}
    return Program(layout.name, layout.deck_sha256, method, params, A_q, b_q, x_q, x_ref, n,
                   rec, rel, first, entry)


def _code_step(spec: BoardSpec, part: PartModel) -> float:
    """Largest code step in units of A: MDAC one LSB of the range; digipot the step at full
    scale (its coarsest)."""
    if part.kind == "mdac":
        return spec.A_range / part.max_code
    P = part.positions
    c = P // 32
    g1 = part.conductance(c, 0.0)
    g0 = part.conductance(c - 1, 0.0)
    return float(abs(g0 - g1) / spec.G_unit_S)


def _check_swing(spec: BoardSpec, x: np.ndarray, tgt: dict) -> None:
    v = np.abs(x) * spec.v0
    if v.max() > spec.v_sat:
        i = int(np.argmax(v))
        raise InputError(f"x[{i}] = {x[i]:.4g} drives o{i} to {v[i]:.3g} V, beyond the "
                         f"±{spec.v_sat:g} V rails; use a board with a smaller v0")
    if spec.factored:
        y = np.abs(tgt["S"] @ x) * spec.v0 / spec.range
        if y.max() > spec.v_sat:
            k = int(np.argmax(y))
            raise InputError(f"stage y{k} would swing to {y[k]:.3g} V, beyond the "
                             f"±{spec.v_sat:g} V rails; use a board with a smaller v0")


def _descend(spec, a, codes, on, sign, bias, x_ref, n):
    """Coordinate descent on single codes (±1) and bias codes (±1), SWEEPS sweeps."""
    top, bmax = spec.part.max_code, spec.bias_max_code
    codes, bias = codes.copy(), bias.copy()
    A, b = realised(spec, a, codes, on, sign, bias)
    best, _ = _solution_error(A, b, x_ref, n)

    def improve(arr: np.ndarray, k: int, lo: int, hi: int) -> bool:
        """Move arr[k] by −1 or +1 (within lo…hi) if that lowers the error; keep the first
        move that does."""
        nonlocal best
        for d in (-1, 1):
            c = arr[k] + d
            if not lo <= c <= hi:
                continue
            old = arr[k]
            arr[k] = c
            err, _ = _solution_error(*realised(spec, a, codes, on, sign, bias), x_ref, n)
            if err < best:
                best = err
                return True
            arr[k] = old
        return False

    for _ in range(SWEEPS):
        improved = False
        for k in range(len(codes)):
            if on[k] and improve(codes, k, 0, top):
                improved = True
        for i in range(len(bias)):
            if improve(bias, i, -bmax, bmax):
                improved = True
        if not improved:
            break
    return codes, on, bias
