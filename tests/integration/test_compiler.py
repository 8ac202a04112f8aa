"""Issue 2 acceptance: compile → ngspice → A⁻¹b, finite-gain physics, transients, determinism."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.linalg

from spu_circuits.compiler import compile_system
from spu_circuits.simulate import Deck, interp_at, solve_op, transient
from spu_circuits.spec import HardwareSpec

from ..conftest import make_system, needs_ngspice

SIZES_CONDS = [(2, 10.0), (8, 1e3), (32, 1e3), (32, 10.0)]
#: a resistor range wide enough that no coupling of these random matrices is pruned, so the
#: circuit realises A exactly (auto-pruning is tested separately)
WIDE = HardwareSpec(r_max_ohm=1e13)


def independent_dense_dc(A: np.ndarray, b: np.ndarray, alpha: float, gain: float,
                         R0: float = 1e3) -> np.ndarray:
    """Exact nodal DC solution of the dense circuit with op-amp gain G, derived here from KCL.

    Unknowns: all node voltages (o, p, s, n) with u fixed; written out as a full MNA-style
    system so that it does not share code with the compiler's own prediction.
    """
    N = len(b)
    idx = lambda k, i: k * N + i  # noqa: E731  (o=0, p=1, s=2, n=3)
    M = np.zeros((4 * N, 4 * N))
    rhs = np.zeros(4 * N)
    for i in range(N):
        # integrator op-amp: o_i + G s_i = 0
        M[idx(0, i), idx(0, i)] = 1.0
        M[idx(0, i), idx(2, i)] = gain
        # inverter op-amp: p_i + G n_i = 0
        M[idx(1, i), idx(1, i)] = 1.0
        M[idx(1, i), idx(3, i)] = gain
        # KCL at n_i: (o_i − n_i)/R0 + (p_i − n_i)/R0 = 0
        M[idx(3, i), idx(0, i)] += 1 / R0
        M[idx(3, i), idx(1, i)] += 1 / R0
        M[idx(3, i), idx(3, i)] -= 2 / R0
        # KCL at s_i: Σ g (src − s) + (u − s)/R0 = 0, u = −α b_i
        row = idx(2, i)
        M[row, idx(2, i)] -= 1 / R0
        rhs[row] -= (-alpha * b[i]) / R0
        for j in range(N):
            if A[i, j] == 0:
                continue
            g = alpha * abs(A[i, j]) / R0
            src = idx(0, j) if A[i, j] > 0 else idx(1, j)
            M[row, src] += g
            M[row, idx(2, i)] -= g
    v = np.linalg.solve(M, rhs)
    return v[:N]


@needs_ngspice
@pytest.mark.parametrize("n,cond", SIZES_CONDS)
def test_ideal_op_gives_solution(n, cond, backend):
    system = make_system(n, cond, seed=n)
    compiled = compile_system(system, "ideal", WIDE)
    assert compiled.meta["pruning"]["pairs_dropped"] == 0
    deck = Deck.from_compiled(compiled)
    x = solve_op(deck, backend)
    ref = system.solution()
    assert np.linalg.norm(x - ref) / np.linalg.norm(ref) < 1e-9


@needs_ngspice
@pytest.mark.parametrize("n,cond", SIZES_CONDS)
def test_dense_op_matches_exact_nodal_solution(n, cond, backend):
    system = make_system(n, cond, seed=n)
    compiled = compile_system(system, "dense", WIDE)
    assert compiled.meta["pruning"]["pairs_dropped"] == 0
    x = solve_op(Deck.from_compiled(compiled), backend)
    alpha = compiled.meta["matrix_scale"]
    nodal = independent_dense_dc(system.A, system.b, alpha, 1e6)
    assert np.linalg.norm(x - nodal) / np.linalg.norm(nodal) < 1e-9
    # the sidecar's prediction is that same solution
    pred = np.array(compiled.meta["predicted"]["x_dc"])
    assert np.linalg.norm(pred - nodal) / np.linalg.norm(nodal) < 1e-9
    dev = np.linalg.norm(x - system.solution()) / np.linalg.norm(system.solution())
    assert dev == pytest.approx(compiled.meta["predicted"]["rel_deviation_from_exact"], rel=1e-5)


@needs_ngspice
def test_dense_gain_error_scales_inverse_with_gain(cli_backend):
    system = make_system(8, 1e3, seed=3)
    ref = system.solution()
    devs = {}
    for gain in (1e5, 1e6, 1e7, 1e9):
        c = compile_system(system, "dense", WIDE.with_(opamp_gain=gain))
        x = solve_op(Deck.from_compiled(c), cli_backend)
        devs[gain] = np.linalg.norm(x - ref) / np.linalg.norm(ref)
    # deviation ∝ 1/gain: each decade of gain removes a decade of error (to 10%)
    for lo, hi in ((1e5, 1e6), (1e6, 1e7)):
        assert devs[lo] / devs[hi] == pytest.approx(10.0, rel=0.1)
    assert devs[1e9] < 1e-5


@needs_ngspice
@pytest.mark.parametrize("topology", ["ideal", "dense"])
def test_noiseless_transient_matches_mean_trajectory(topology, backend):
    system = make_system(8, 100.0, seed=5)
    compiled = compile_system(system, topology, WIDE.with_(opamp_gain=1e9))
    deck = Deck.from_compiled(compiled)
    x0 = np.random.default_rng(7).standard_normal(8)
    u, X = transient(deck, x0, 3.0, 0.05, backend=backend)
    xs = system.solution()
    times = [0.5, 1.0, 3.0]
    got = interp_at(u, X, times)
    for k, t in enumerate(times):
        exact = xs + scipy.linalg.expm(-system.A * t) @ (x0 - xs)
        assert np.linalg.norm(got[k] - exact) / np.linalg.norm(x0 - xs) < 1e-4
    # the first point (ngspice's first step, u[0] ≪ 1) starts from x0
    exact0 = xs + scipy.linalg.expm(-system.A * u[0]) @ (x0 - xs)
    assert u[0] < 1e-3
    assert np.linalg.norm(X[0] - exact0) / np.linalg.norm(x0 - xs) < 1e-6


@pytest.mark.parametrize("topology", ["ideal", "dense"])
def test_byte_identical_output(tmp_path, topology):
    system = make_system(8, 50.0, seed=1)
    p1 = compile_system(system, topology).write(tmp_path / "a", "deck")
    p2 = compile_system(system, topology).write(tmp_path / "b", "deck")
    assert p1.read_bytes() == p2.read_bytes()
    assert p1.with_suffix(".json").read_bytes() == p2.with_suffix(".json").read_bytes()


def test_sidecar_contents(tmp_path):
    system = make_system(8, 50.0, seed=1)
    deck = compile_system(system, "dense").write(tmp_path, "ex")
    meta = json.loads(deck.with_suffix(".json").read_text())
    for key in ("outputs", "volts_per_unit", "tau_s", "R0_ohm", "C_F", "topology",
                "element_counts", "system_sha256", "deck_sha256", "predicted"):
        assert key in meta
    assert meta["outputs"] == [f"o{i}" for i in range(8)]
    assert meta["element_counts"]["vcvs"] == 16
    # every coupling is a resistor R0/(alpha |A_ij|) within the spec range
    text = deck.read_text()
    rs = [float(ln.split()[-1]) for ln in text.splitlines() if ln.startswith("ra")]
    assert len(rs) == int(np.count_nonzero(system.A))
    assert min(rs) >= 100 and max(rs) <= 10e6
    assert text.splitlines()[0].startswith("spu-tngd rand8: dense SPU")
    assert "reltol=" in text  # the deck records its simulator options


def test_scaling_fits_resistor_range():
    system = make_system(4, 10.0, seed=2)
    big = type(system).from_arrays(system.A * 1e3, system.b)
    c = compile_system(big, "dense")
    assert c.meta["matrix_scale"] == pytest.approx(1e-3 * c.meta["matrix_scale"] * 1e3)
    rs = [el.value for el in c.netlist.elements if el.kind == "r"]
    assert min(rs) >= 100.0 * (1 - 1e-12)
    # time unit scales with 1/alpha so that tau dx/dt = −(A x − b) still holds
    assert c.meta["tau_s"] == pytest.approx(1e-6 / c.meta["matrix_scale"])


def test_pruning_reports_dropped_mass():
    system = make_system(6, 10.0, seed=4)
    A = system.A.copy()
    A[0, 5] = A[5, 0] = 1e-6 * np.abs(A).max()
    s2 = type(system).from_arrays(A, system.b)
    c = compile_system(s2, "ideal", HardwareSpec(prune_rel=1e-4))
    assert c.meta["pruning"]["pairs_dropped"] >= 1
    assert 0 < c.meta["pruning"]["dropped_rel_mass"] < 1e-4
    assert "g0_5" not in {el.name for el in c.netlist.elements}


@needs_ngspice
def test_cli_compile_and_simulate(tmp_path):
    from click.testing import CliRunner

    from spu_circuits.cli import main

    system = make_system(8, 30.0, seed=9)
    np.save(tmp_path / "A.npy", system.A)
    np.save(tmp_path / "b.npy", system.b)
    r = CliRunner().invoke(main, ["compile", "--matrix", str(tmp_path / "A.npy"), "--rhs",
                                  str(tmp_path / "b.npy"), "--topology", "ideal", "--out",
                                  str(tmp_path / "out"), "--name", "ex"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "out" / "ex.cir").exists() and (tmp_path / "out" / "ex.json").exists()
    for be in ("cli", "shared"):
        r = CliRunner().invoke(main, ["simulate", str(tmp_path / "out" / "ex.cir"),
                                      "--backend", be, "--save", str(tmp_path / f"{be}.npz")])
        assert r.exit_code == 0, r.output
        assert "relative error vs A^-1 b" in r.output
        x = np.load(tmp_path / f"{be}.npz")["x"]
        assert np.allclose(x, system.solution(), rtol=1e-9, atol=0)


def test_cli_bad_input_is_one_line(tmp_path):
    from click.testing import CliRunner

    from spu_circuits.cli import main

    np.save(tmp_path / "A.npy", np.array([[1.0, 2.0], [0.0, 1.0]]))
    r = CliRunner().invoke(main, ["compile", "--matrix", str(tmp_path / "A.npy"), "--out",
                                  str(tmp_path / "out")])
    assert r.exit_code == 2
    assert "A is not symmetric: max |A−Aᵀ| = 2" in r.output
    assert "Traceback" not in r.output
    assert not (tmp_path / "out").exists()


def test_missing_ngspice_is_clear(monkeypatch):
    from spu_circuits.backends import Op, get_backend
    from spu_circuits.errors import NgspiceNotFound

    monkeypatch.setenv("SPU_NGSPICE", "ngspice-does-not-exist")
    with pytest.raises(NgspiceNotFound, match="apt-get install ngspice"):
        get_backend("cli").run("t\nr1 1 0 1\n.end\n", Op())


def test_auto_prune_drops_unrealisable_couplings():
    system = make_system(6, 10.0, seed=4)
    A = system.A.copy()
    A[1, 4] = A[4, 1] = 1e-7 * np.abs(A).max()
    s2 = type(system).from_arrays(A, system.b)
    c = compile_system(s2, "ideal")
    assert c.meta["pruning"]["pairs_dropped"] >= 1
    assert "pruning" in c.meta["predicted"]["cause"]
    from spu_circuits.errors import CompileError

    with pytest.raises(CompileError, match="span a ratio of"):
        compile_system(s2, "ideal", HardwareSpec(auto_prune=False))


def test_prepare_deck_keeps_subcircuit_and_control_ends():
    from spu_circuits.backends import Op, prepare_deck

    text = "t\n.subckt a 1 2\nr1 1 2 1k\n.ends\n.op\n.tran 1 2\n.end\n"
    out = prepare_deck(text, Op()).splitlines()
    assert ".ends" in out and out.count(".end") == 1 and ".tran 1 2" not in out
