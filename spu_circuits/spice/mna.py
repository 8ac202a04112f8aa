"""Modified nodal analysis of the flattened linear circuit; the DC operating point."""

from __future__ import annotations

import hashlib
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.linalg
import scipy.sparse
import scipy.sparse.linalg

from ..errors import InputError
from .deck import GROUND, Model, ParsedDeck, ParsedElement

#: systems up to this many MNA unknowns are solved densely, larger ones with sparse LU
DENSE_LIMIT = 2500


#: XSPICE code models the extractor reads as their linear region (the op-amp macromodel's
#: slew, rail and current `limit`s); the ERC checks that decks stay there
LINEARISED_XSPICE = ("limit",)

@dataclass(frozen=True)
class NoiseSource:
    """A white-noise input of the circuit.

    element: its element name (`anz0[3]` for column 3 of an XSPICE filesource); kind:
    'trnoise' or 'filesource'; port: 'current' or 'voltage'; nodes: (n+, n−) (a current flows
    from n+ through the source to n−; a voltage is V(n+) − V(n−)); amplitude: rms per sample
    (A or V: TRNOISE NA, or the filesource amplscale times the samples' unit rms); step_s:
    sample period NT (s; None when unknown); intensity: amplitude²·step_s (A²·s or V²·s; NaN
    when the step is unknown); line: deck line.
    """

    element: str
    kind: str
    port: str
    nodes: tuple[str, str]
    amplitude: float
    step_s: float | None
    line: int

    @property
    def intensity(self) -> float:
        if self.step_s is None:
            return float("nan")
        return self.amplitude ** 2 * self.step_s


@dataclass
class Circuit:
    """The MNA of the linear circuit: K z = s, z = [node voltages; branch currents].

    Branch current convention: the current through the element from its n+ to its n−.
    """

    nodes: list[str]
    branches: list[str]                # element names with a branch current
    K: scipy.sparse.csc_matrix
    s: np.ndarray                      # deterministic (DC) right-hand side
    noise_cols: np.ndarray             # unit-amplitude noise inputs (n_unknowns, n_noise)
    noise: list[NoiseSource]
    caps: list[ParsedElement]          # capacitors (value ≠ 0); state branches when stateful
    warnings: list[str]


def _filesource_step(model: Model, deck_dir: str | Path | None) -> float | None:
    """Sample period of a filesource: the file's first time step × timescale (needs the file)."""
    if deck_dir is None:
        return None
    fname = model.params.get("file")
    if not isinstance(fname, str):
        return None
    base = Path(deck_dir).resolve()
    path = (base / fname).resolve()
    if base not in path.parents:
        return None                            # only files beside the deck are read
    try:
        with open(path) as fh:
            times = []
            for raw in fh:
                s = raw.strip()
                if not s or s.startswith("#") or s.startswith("*"):
                    continue
                times.append(float(s.replace(",", " ").split()[0]))
                if len(times) == 2:
                    break
    except (OSError, ValueError, IndexError, InputError):
        return None
    if len(times) < 2:
        return None
    step = (times[1] - times[0]) * (model.number("timescale", 1.0) or 1.0)
    return step if step > 0 else None


def build_mna(deck: ParsedDeck, *, caps_as_states: bool, deck_dir: str | Path | None = None,
              noise_step_s: float | None = None) -> Circuit:
    elements = deck.elements
    if not elements:
        raise InputError("the deck has no elements")
    notes: list[str] = []
    nodes = deck.nodes()
    nidx = {n: k for k, n in enumerate(nodes)}
    branches: list[str] = []
    # current-like and voltage-like noise / DC inputs expanded from XSPICE filesources
    caps = [el for el in elements if el.kind == "c" and el.value != 0.0]
    zero_caps = [el.name for el in elements if el.kind == "c" and el.value == 0.0]
    if zero_caps:
        notes.append(f"zero-valued capacitors ignored: {', '.join(zero_caps[:5])}")
    for el in elements:
        if el.kind in "veh":
            branches.append(el.name)
        elif el.kind == "a":
            model = deck.models[el.model or ""]
            if model.type in LINEARISED_XSPICE:
                branches.append(el.name)
                continue
            if model.type != "filesource":
                raise InputError(f"line {el.line}: {el.name!r}: XSPICE model type "
                                 f"{model.type!r} is not supported by the extractor (only "
                                 "filesource noise/stimulus sources and the op-amp "
                                 "macromodel's limit, linearised)")
            for k, p in enumerate(el.ports):
                ptype = p.type or "v"
                if ptype in ("v", "vd") and p.nodes:
                    branches.append(f"{el.name}[{k}]")
    if caps_as_states:
        branches += [c.name for c in caps]
    bidx = {b: len(nodes) + k for k, b in enumerate(branches)}
    n_unk = len(nodes) + len(branches)
    kr: list[int] = []
    kc: list[int] = []
    kv: list[float] = []
    s = np.zeros(n_unk)
    noise: list[NoiseSource] = []
    ncols: list[np.ndarray] = []

    def ix(n: str) -> int | None:
        return None if n == GROUND else nidx[n]

    def stamp(r: int | None, c: int | None, v: float) -> None:
        if r is not None and c is not None:
            kr.append(r)
            kc.append(c)
            kv.append(v)

    def current(np_: str, nm: str, vec: np.ndarray, val: float) -> None:
        """A current val flowing from np_ through the source to nm (leaves np_, enters nm)."""
        a, b = ix(np_), ix(nm)
        if a is not None:
            vec[a] -= val
        if b is not None:
            vec[b] += val

    def branch(name: str, np_: str, nm: str) -> int:
        j = bidx[name]
        a, b = ix(np_), ix(nm)
        stamp(a, j, 1.0)
        stamp(b, j, -1.0)
        stamp(j, a, 1.0)
        stamp(j, b, -1.0)
        return j

    def add_noise(src: NoiseSource, row_vals: list[tuple[int | None, float]]) -> None:
        col = np.zeros(n_unk)
        for r, v in row_vals:
            if r is not None:
                col[r] += v
        noise.append(src)
        ncols.append(col)

    for el in elements:
        k = el.kind
        if k == "r":
            a, b = ix(el.nodes[0]), ix(el.nodes[1])
            g = 1.0 / el.value
            stamp(a, a, g)
            stamp(b, b, g)
            stamp(a, b, -g)
            stamp(b, a, -g)
        elif k == "c":
            if caps_as_states and el.value != 0.0:
                branch(el.name, *el.nodes)
        elif k == "g":
            a, b, cp, cm = (ix(n) for n in el.nodes)
            gm = el.value
            stamp(a, cp, gm)
            stamp(a, cm, -gm)
            stamp(b, cp, -gm)
            stamp(b, cm, gm)
        elif k == "e":
            j = branch(el.name, el.nodes[0], el.nodes[1])
            stamp(j, ix(el.nodes[2]), -el.value)
            stamp(j, ix(el.nodes[3]), el.value)
        elif k == "f":
            jc = bidx[el.control]
            stamp(ix(el.nodes[0]), jc, el.value)
            stamp(ix(el.nodes[1]), jc, -el.value)
        elif k == "h":
            j = branch(el.name, el.nodes[0], el.nodes[1])
            stamp(j, bidx[el.control], -el.value)
        elif k in "iv":
            if el.waveform is not None:
                notes.append(f"{el.name}: transient function {el.waveform[0]} ignored; "
                                f"its DC value {el.value!r} is used")
            if k == "i":
                current(el.nodes[0], el.nodes[1], s, el.value)
            else:
                j = branch(el.name, *el.nodes)
                s[j] += el.value
            if el.noise is not None:
                tn = el.noise
                if tn.namp != 0 or any(tn.rts):
                    notes.append(f"{el.name}: trnoise 1/f or RTS components ignored")
                src = NoiseSource(el.name, "trnoise", "current" if k == "i" else "voltage",
                                  (el.nodes[0], el.nodes[1]), tn.na, tn.nt, el.line)
                if k == "i":
                    add_noise(src, [(ix(el.nodes[0]), -1.0), (ix(el.nodes[1]), 1.0)])
                else:
                    add_noise(src, [(bidx[el.name], 1.0)])
        elif k == "a" and deck.models[el.model or ""].type in LINEARISED_XSPICE:
            model = deck.models[el.model or ""]
            gain = model.number("gain", 1.0)
            in_off = model.number("in_offset", 0.0)
            pin = el.ports[0].nodes
            ip, im = ix(pin[0]), ix(pin[1]) if len(pin) > 1 else None
            out = el.ports[-1].nodes
            # linear region: V(out) = gain·(V(in) + in_offset), an ideal voltage output
            j = branch(el.name, out[0], out[1] if len(out) > 1 else GROUND)
            stamp(j, ip, -gain)
            stamp(j, im, gain)
            s[j] += gain * in_off
        elif k == "a":
            model = deck.models[el.model or ""]
            scale = model.vector("amplscale")
            offset = model.vector("amploffset")
            step = noise_step_s if noise_step_s is not None else _filesource_step(model,
                                                                                 deck_dir)
            if step is None:
                notes.append(f"{el.name}: filesource sample period unknown (pass deck_dir "
                                "or noise_step_s); its noise intensity is NaN")
            for col, p in enumerate(el.ports):
                if not p.nodes:
                    continue
                ptype = p.type or "v"
                np_ = p.nodes[0]
                nm = p.nodes[1] if len(p.nodes) > 1 else GROUND
                if ptype in ("i", "v") and len(p.nodes) != 1 or \
                        ptype in ("id", "vd") and len(p.nodes) != 2:
                    raise InputError(f"line {el.line}: {el.name!r}: port %{ptype} takes "
                                     f"{1 if ptype in ('i', 'v') else 2} node(s)")
                if ptype not in ("i", "id", "v", "vd"):
                    raise InputError(f"line {el.line}: {el.name!r}: filesource port type "
                                     f"%{ptype} is not supported (use %i, %id, %v, %vd)")
                amp = scale[col] if col < len(scale) else 1.0
                off = offset[col] if col < len(offset) else 0.0
                src = NoiseSource(f"{el.name}[{col}]", "filesource",
                                  "current" if ptype in ("i", "id") else "voltage",
                                  (np_, nm), abs(amp), step, el.line)
                if ptype in ("i", "id"):
                    # an XSPICE %i output of value y sinks y from its + node: like `i n+ n- y`
                    current(np_, nm, s, off)
                    add_noise(src, [(ix(np_), -1.0), (ix(nm), 1.0)])
                else:
                    j = branch(f"{el.name}[{col}]", np_, nm)
                    s[j] += off
                    add_noise(src, [(j, 1.0)])
    cols = np.stack(ncols, axis=1) if ncols else np.zeros((n_unk, 0))
    K = scipy.sparse.csc_matrix((kv, (kr, kc)), shape=(n_unk, n_unk))
    K.sum_duplicates()
    return Circuit(nodes, branches, K, s, cols, noise, caps, notes)


#: factorisations kept for re-use (an unchanged K, e.g. successive extractions that differ
#: only in source values, is equilibrated and factorised once; results are bit-identical)
FACTOR_CACHE_SIZE = 4
_factors: OrderedDict[bytes, tuple] = OrderedDict()


def _key(K: scipy.sparse.csc_matrix) -> bytes:
    h = hashlib.blake2b(digest_size=20)
    h.update(np.asarray(K.shape, dtype=np.int64).tobytes())
    for arr in (K.indptr, K.indices, K.data):
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.digest()


def solve(K: scipy.sparse.csc_matrix, rhs: np.ndarray, nodes: list[str], what: str
          ) -> np.ndarray:
    """Solve K z = rhs (rhs: (n,) or (n, k)) with power-of-two equilibration and a singularity
    check; dense LU up to DENSE_LIMIT unknowns, sparse LU (SuperLU) beyond. The last
    FACTOR_CACHE_SIZE factorisations are kept: the same K is factorised once."""
    n = K.shape[0]
    if n == 0:
        return np.zeros_like(rhs)
    if not np.all(np.isfinite(K.data)) or not np.all(np.isfinite(rhs)):
        raise InputError(f"{what}: element values out of range (non-finite conductances)")
    K = K.tocsc()
    key = _key(K)
    got = _factors.get(key)
    if got is None:
        got = _factor(K, nodes, what)
        _factors[key] = got
        while len(_factors) > FACTOR_CACHE_SIZE:
            _factors.popitem(last=False)
    else:
        _factors.move_to_end(key)
    r, c, dense, fac = got
    rs = rhs * (r[:, None] if rhs.ndim == 2 else r)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dense:
            y = scipy.linalg.lu_solve(fac, rs, check_finite=False)
        else:
            y = fac.solve(np.asarray(rs, dtype=float))
    z = y * (c[:, None] if rhs.ndim == 2 else c)
    if not np.all(np.isfinite(z)):
        raise InputError(f"{what}: the circuit equations have no finite solution")
    return z


def _factor(K: scipy.sparse.csc_matrix, nodes: list[str], what: str) -> tuple:
    """(row scaling r, column scaling c, dense?, LU) of K; InputError when singular."""
    n = K.shape[0]
    A = K.tocsc(copy=True)
    A.eliminate_zeros()
    r = np.ones(n)
    c = np.ones(n)
    for _ in range(8):                       # Ruiz scaling, by exact powers of two
        absA = abs(A)
        rmax = absA.max(axis=1).toarray().ravel()
        cmax = absA.max(axis=0).toarray().ravel()
        if np.any(rmax == 0) or np.any(cmax == 0):
            break
        dr = np.exp2(-np.round(np.log2(rmax) / 2))
        dc = np.exp2(-np.round(np.log2(cmax) / 2))
        if np.all(dr == 1) and np.all(dc == 1):
            break
        A = (scipy.sparse.diags(dr) @ A @ scipy.sparse.diags(dc)).tocsc()
        r *= dr
        c *= dc
    absA = abs(A)
    zero = (absA.max(axis=1).toarray().ravel() == 0) | (absA.max(axis=0).toarray().ravel() == 0)
    if zero.any():
        bad = np.flatnonzero(zero)[:5]
        names = [nodes[k] if k < len(nodes) else f"branch {k - len(nodes)}" for k in bad]
        raise InputError(f"{what}: the circuit equations are singular: no DC connection at "
                         f"{', '.join(names)} (a floating node?)")
    singular = InputError(f"{what}: the circuit equations are singular (a floating node or "
                          "sub-circuit, a loop of voltage sources/capacitors, or a cut-set of "
                          "current sources)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if n <= DENSE_LIMIT:
            lu, piv = scipy.linalg.lu_factor(A.toarray(), check_finite=False)
            d = np.abs(np.diag(lu))
            if not d.min() > n * np.finfo(float).eps * d.max():
                raise singular
            return r, c, True, (lu, piv)
        try:
            lu = scipy.sparse.linalg.splu(A, permc_spec="COLAMD",
                                          options={"DiagPivotThresh": 1.0})
        except RuntimeError:
            raise singular from None
        d = np.abs(lu.U.diagonal())
        if not d.min() > n * np.finfo(float).eps * d.max():
            raise singular
        return r, c, False, lu


def dc_solution(parsed: ParsedDeck) -> dict[str, float]:
    """Node voltages (V) of the DC operating point, by MNA as ngspice's `.op` computes it.

    Capacitors are open; sources take their DC value (TRNOISE adds nothing; a filesource
    contributes its amploffset, whereas ngspice's `.op` also adds its t = 0 sample).
    Raises InputError when the DC equations are singular (e.g. a node with no DC path).
    """
    ckt = build_mna(parsed, caps_as_states=False)
    z = solve(ckt.K, ckt.s, ckt.nodes, "DC solution")
    return {n: float(z[k]) for k, n in enumerate(ckt.nodes)}
