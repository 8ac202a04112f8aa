"""Fuzzing (hypothesis): the system loader and the circuit extractor either succeed or raise
a clear InputError, never another exception; plus byte-identical reproducibility of noise."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from spu_circuits.errors import InputError
from spu_circuits.parser import extract_system, parse_deck
from spu_circuits.system import LinearSystem, load_system

# the generated data overflow on purpose (huge floats, matmuls of them)
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

#: derandomize: CI runs the same 2,000 examples every time (a failure is reproducible)
FUZZ = settings(max_examples=2000, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

_floats = st.floats(allow_nan=True, allow_infinity=True, width=64)
_dtypes = st.sampled_from([np.float64, np.float32, np.int64, np.bool_, np.complex128])


@st.composite
def matrices(draw):
    dtype = draw(_dtypes)
    shape = draw(st.one_of(st.tuples(st.integers(0, 5), st.integers(0, 5)),
                           st.tuples(st.integers(0, 6)),
                           st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 2))))
    if dtype in (np.float64, np.float32):
        elems = _floats
    elif dtype is np.complex128:
        elems = st.complex_numbers(allow_nan=True, width=128)
    elif dtype is np.bool_:
        elems = st.booleans()
    else:
        elems = st.integers(-5, 5)
    A = draw(hnp.arrays(dtype, shape, elements=elems))
    if draw(st.booleans()) and A.ndim == 2 and A.shape[0] == A.shape[1] and dtype is np.float64:
        A = A @ A.T + draw(st.floats(0, 2)) * np.eye(A.shape[0])  # often SPD
    return A


@FUZZ
@given(matrices(), st.one_of(st.none(), hnp.arrays(np.float64, st.integers(0, 6),
                                                  elements=_floats)))
def test_system_validation_fuzz(A, b):
    with np.errstate(all="ignore"):
        try:
            s = LinearSystem.from_arrays(A, b)
        except InputError as exc:
            assert str(exc) and "\n" not in str(exc)
            return
    assert np.array_equal(s.A, s.A.T)
    assert np.all(np.isfinite(s.A)) and np.all(np.isfinite(s.b))
    np.linalg.cholesky(s.A)


@FUZZ
@given(st.one_of(st.binary(max_size=300),
                 matrices().map(lambda a: _npy_bytes(a)),
                 st.tuples(matrices(), st.integers(0, 200)).map(
                     lambda t: _npy_bytes(t[0])[: t[1]])))
def test_system_loader_fuzz(content):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "A.npy"
        path.write_bytes(content)
        with np.errstate(all="ignore"):
            try:
                load_system(path)
            except InputError as exc:
                assert str(exc) and "\n" not in str(exc)


def _npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


_NODES = ["0", "a", "b", "c", "d"]


@st.composite
def circuits(draw):
    lines = ["fuzz"]
    n = draw(st.integers(1, 8))
    for k in range(n):
        kind = draw(st.sampled_from("rcegiv"))
        p, q = draw(st.sampled_from(_NODES)), draw(st.sampled_from(_NODES))
        val = draw(st.one_of(st.floats(-1e6, 1e6, allow_nan=False), st.just(0.0),
                             st.sampled_from(["1k", "10u", "1meg", "nan", "1e400"])))
        if kind in "eg":
            cp, cq = draw(st.sampled_from(_NODES)), draw(st.sampled_from(_NODES))
            lines.append(f"{kind}{k} {p} {q} {cp} {cq} {val}")
        else:
            lines.append(f"{kind}{k} {p} {q} {val}")
    lines.append(".end")
    return "\n".join(lines) + "\n"


@FUZZ
@given(circuits())
def test_extractor_fuzz(text):
    with np.errstate(all="ignore"):
        try:
            parsed = parse_deck(text)
            extract_system(parsed)
        except InputError as exc:
            assert str(exc)


def test_noise_files_are_byte_identical(tmp_path):
    from spu_circuits.compiler import compile_system
    from spu_circuits.compiler.noise import NoiseSpec

    from .conftest import make_system

    system = make_system(20, 10.0, seed=3)
    paths = []
    for sub in ("a", "b"):
        c = compile_system(system, "dense", noise=NoiseSpec("file", 0.01, seed=5,
                                                            duration_tau=2.0))
        paths.append(c.write(tmp_path / sub, "n"))
    for name in ["n.cir", "n.json", *(c.meta["noise"]["files"])]:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    other = compile_system(system, "dense", noise=NoiseSpec("file", 0.01, seed=6,
                                                            duration_tau=2.0))
    assert other.extra_files != c.extra_files


def test_regressions_found_by_fuzzing(tmp_path):
    """Inputs hypothesis found: an entry near the float64 limit (symmetrising overflowed),
    and .npy files whose corrupt header made numpy raise SyntaxError."""
    s = LinearSystem.from_arrays(np.array([[8.98846567e307]]))
    assert np.isfinite(s.A).all()
    header = (b"\x93NUMPY\x01\x00v\x00{'descr' :'<f8' ,'fortran_order' :False ,"
              b"'shape' : (1\n,1),}\x00\x00\x00\x00\x00\x00\xe0\x7f")
    for content in (header, b"\x93NUMPY\x01\x00F\x00" + b"\x00" * 70 + b"'" * 3):
        (tmp_path / "A.npy").write_bytes(content)
        with pytest.raises(InputError, match="cannot read"):
            load_system(tmp_path / "A.npy")
