"""spu_circuits.spice.extract: round trips through compiled decks (A_eff, b_eff, κ₀),
hand-written decks, the noise formula and clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from spu_circuits.compiler import compile_system
from spu_circuits.compiler.noise import NoiseSpec
from spu_circuits.compiler.scaling import scale
from spu_circuits.compiler.topology_dense import finite_gain_dc
from spu_circuits.errors import InputError
from spu_circuits.parser import (
    dc_solution,
    default_outputs,
    extract_system,
    parse_deck,
    state_space,
)
from spu_circuits.spec import HardwareSpec

from .conftest import make_system

T = "title\n"


#: no coupling of the random test matrices is pruned with this resistor range
WIDE = HardwareSpec(r_max_ohm=1e13)


CASES = [(2, 10.0), (8, 1e3), (32, 1e3)]


def rel(a, b) -> float:
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(b))


def extract_compiled(cc, **kw):
    ex = extract_system(parse_deck(cc.deck_text()), volts_per_unit=cc.meta["volts_per_unit"],
                        **kw)
    return ex, ex.as_system(cc.meta["tau_s"])


@pytest.mark.parametrize("n,cond", CASES)
def test_round_trip_ideal_exact(n, cond):
    system = make_system(n, cond, seed=n)
    spec = WIDE.with_(volts_per_unit=0.25)
    cc = compile_system(system, "ideal", spec)
    ex, es = extract_compiled(cc)
    sc = scale(system, spec)
    assert ex.outputs == tuple(cc.outputs)
    assert rel(es.A, sc.A) < 1e-12
    assert rel(es.b, sc.b) < 1e-12
    assert rel(es.x_dc, system.solution()) < 1e-12 * cond
    assert np.all(es.kappa0 == 0) and es.kappa0_eff == 0.0      # no noise sources


@pytest.mark.parametrize("n,cond", CASES)
def test_round_trip_dense_high_gain(n, cond):
    system = make_system(n, cond, seed=n + 1)
    spec = WIDE.with_(opamp_gain=1e12)
    cc = compile_system(system, "dense", spec)
    ex, es = extract_compiled(cc)
    sc = scale(system, spec)
    assert ex.outputs == tuple(cc.outputs)         # the op-amp outputs o{i}
    assert rel(es.A, sc.A) < 1e-10                 # measured ≈ 2e-12..4e-12 (∝ 1/gain)
    assert rel(es.b, sc.b) < 1e-10


@pytest.mark.parametrize("n,cond", CASES)
@pytest.mark.parametrize("gain", [1e5, 1e6])
def test_dense_finite_gain_dc_is_the_circuit(n, cond, gain):
    system = make_system(n, cond, seed=n + 2)
    spec = WIDE.with_(opamp_gain=gain)
    cc = compile_system(system, "dense", spec)
    ex, es = extract_compiled(cc)
    sc = scale(system, spec)
    x_nodal = finite_gain_dc(sc.A, sc.b, sc.alpha, spec)
    assert rel(es.x_dc, x_nodal) < 1e-10
    assert rel(ex.x_dc, x_nodal) < 1e-10             # x_dc does not depend on τ
    # and the DC operating point of the MNA agrees
    dc = dc_solution(parse_deck(cc.deck_text()))
    x_op = np.array([dc[o] for o in cc.outputs]) / spec.volts_per_unit
    assert rel(x_op, x_nodal) < 1e-10


@pytest.mark.parametrize("n,r", [(2, 1), (8, 3), (32, 6)])
def test_round_trip_factored(n, r):
    from spu_circuits.compiler.scaling import scale_factored
    from spu_circuits.system import FactoredSystem

    rng = np.random.default_rng(n)
    fs = FactoredSystem.from_arrays(rng.standard_normal((r, n)), 0.1, rng.standard_normal(n))
    spec = WIDE.with_(opamp_gain=1e12)
    cc = compile_system(fs, "factored", spec)
    ex, es = extract_compiled(cc)
    sc = scale_factored(fs, spec)
    assert ex.outputs == tuple(cc.outputs)
    # measured 9e-12 .. 3e-11: the 1/gain error grows with the resistors at each virtual ground
    assert rel(es.A, sc.A) < 1e-9
    assert rel(es.b, sc.b) < 1e-10
    assert rel(ex.x_dc, cc.meta["predicted"]["x_dc"]) < 1e-10


def test_readout_map_matches_compiler_ic_map():
    system = make_system(4, 30.0, seed=7)
    spec = WIDE.with_(volts_per_unit=0.5)
    cc = compile_system(system, "dense", spec)
    ex, _ = extract_compiled(cc)
    idx = {n: k for k, n in enumerate(ex.nodes)}
    for node, var, coef in cc.meta["ic_map"]["linear"]:
        row = ex.node_gain[idx[node]]
        assert row[var] == pytest.approx(coef, rel=1e-9, abs=1e-15)
        assert np.abs(np.delete(row, var)).max() < 1e-12
    for node, volts in cc.meta["ic_map"]["const"]:
        assert ex.node_offset[idx[node]] == pytest.approx(volts, rel=1e-12)
    x0 = np.arange(4.0)
    v = ex.node_voltages(x0)
    assert [v[o] for o in cc.outputs] == pytest.approx(list(0.5 * x0), abs=1e-12)


def test_natural_tau_gives_unit_mean_diagonal():
    cc = compile_system(make_system(5, 10.0), "ideal", WIDE)
    ex = extract_system(parse_deck(cc.deck_text()))
    es = ex.as_system()
    assert np.mean(np.diag(es.A)) == pytest.approx(1.0)
    assert es.tau_s == ex.tau_natural_s
    # rescaling τ rescales A and b together; the solution does not move
    es2 = ex.as_system(3.0 * ex.tau_natural_s)
    assert np.allclose(es2.A, 3 * es.A) and np.allclose(es2.x_dc, es.x_dc)


@pytest.mark.parametrize("topology,gain,tol", [("ideal", 1e6, 1e-12), ("dense", 1e12, 1e-10),
                                               ("dense", 1e6, 1e-5)])
@pytest.mark.parametrize("kind", ["trnoise", "file"])
def test_noise_kappa0_round_trip(topology, gain, tol, kind, tmp_path):
    system = make_system(3, 20.0, seed=4)
    spec = WIDE.with_(opamp_gain=gain, volts_per_unit=0.5)
    cc = compile_system(system, topology, spec,
                        noise=NoiseSpec(kind, kappa0=0.02, duration_tau=0.5))
    kw = {}
    if kind == "file":
        cc.write(tmp_path, system.name)
        kw["deck_dir"] = tmp_path
    ex, es = extract_compiled(cc, **kw)
    assert len(ex.noise_sources) == 3
    assert ex.warnings == ()
    assert {s.kind for s in ex.noise_sources} == {"trnoise" if kind == "trnoise" else
                                                   "filesource"}
    assert all(s.step_s == pytest.approx(cc.meta["noise"]["step_s"], rel=1e-9)
               for s in ex.noise_sources)
    assert es.kappa0 == pytest.approx([0.02] * 3, rel=tol)
    assert es.kappa0_eff == pytest.approx(0.02, rel=tol)
    off = es.noise_cov - np.diag(np.diag(es.noise_cov))
    assert np.abs(off).max() <= 1e-12 * 0.02                # independent per variable
    # noise sources add no DC term
    sc = scale(system, spec)
    assert rel(es.b, sc.b) < max(tol, 1e-12) * 10


def test_file_noise_step_unknown_without_files():
    cc = compile_system(make_system(2, 5.0), "ideal", WIDE,
                        noise=NoiseSpec("file", kappa0=0.01, duration_tau=0.2))
    parsed = parse_deck(cc.deck_text())
    ex = extract_system(parsed)
    assert np.all(np.isnan(ex.diffusion))
    assert any("sample period unknown" in w for w in ex.warnings)
    step = cc.meta["noise"]["step_s"]
    ex = extract_system(parsed, volts_per_unit=1.0, noise_step_s=step)
    assert ex.as_system(cc.meta["tau_s"]).kappa0 == pytest.approx([0.01, 0.01], rel=1e-12)


def test_noise_formula_hand_deck():
    """One TRNOISE current σ_I² = NA²·NT into a grounded C: D = (σ_I/(C v₀))², κ₀ = Dτ/2."""
    na, nt, C, R, v0 = 2e-6, 1e-9, 2e-9, 500.0, 0.5
    text = f"""noise
c1 x 0 {C}
r1 x 0 {R}
in x 0 dc 0 trnoise({na} {nt} 0 0)
"""
    ex = extract_system(parse_deck(text), volts_per_unit=v0)
    tau = R * C
    D = (na * na * nt) / (C * v0) ** 2
    assert ex.diffusion[0, 0] == pytest.approx(D, rel=1e-12)
    es = ex.as_system(tau)
    assert es.kappa0[0] == pytest.approx(D * tau / 2, rel=1e-12)
    assert es.A[0, 0] == pytest.approx(1.0, rel=1e-12)
    assert es.b[0] == 0.0


def test_noise_feedthrough_is_reported():
    text = T + "c1 a 0 1n\nr1 a 0 1k\nvn y a dc 0 trnoise(1m 1n)\n"
    ex = extract_system(parse_deck(text), outputs=["y"])
    assert np.all(ex.diffusion == 0)
    assert any("feed-through" in w for w in ex.warnings)


HAND_DENSE = """Hand-written 2x2 SPU: A = [[2, -1], [-1, 2]], b = [1, 0.5], tau = 1u
* op-amp integrator and inverter as subcircuits
.SUBCKT integ s o
Eop o 0 0 s 1e12
Cint s o 1nF     ; integrating capacitor
.ENDS integ
.subckt inv in out
rin in m 1K
rfb m out
+ 1k
eop out 0 0 m 1e12 $ ideal op-amp
.ends
xi0 s0 o0 integ
xi1 s1 o1 INTEG
xn0 o0 p0 inv
xn1 o1 p1 inv
ra00 o0 s0 500
ra01 p1 s0 1k
ra10 p0 s1 1k
ra11 o1 s1 0.5k
vb0 u0 0 -1
vb1 u1 GND dc -500m
rb0 u0 s0 1k
rb1 u1 s1 1e3ohm
.options reltol=1e-9 abstol=1e-15
.op
.end
"""


def test_hand_written_dense_deck():
    p = parse_deck(HAND_DENSE)
    assert p.title.startswith("Hand-written 2x2 SPU")
    assert p.ended
    assert p.options == {"reltol": "1e-9", "abstol": "1e-15"}
    assert p.analyses == [".op"]
    names = {el.name for el in p.elements}
    assert {"e.xi0.eop", "c.xi1.cint", "r.xn0.rfb", "e.xn1.eop"} <= names
    assert p.element("r.xn0.rfb").nodes == ("xn0.m", "p0")
    assert p.element("r.xn0.rfb").value == 1000.0           # continuation line
    assert p.element("c.xi0.cint").nodes == ("s0", "o0")
    assert p.element("vb1").nodes == ("u1", "0") and p.element("vb1").value == -0.5
    assert p.element("rb1").value == 1000.0
    assert default_outputs(p) == ["o0", "o1"]
    es = extract_system(p).as_system(1e-6)
    assert np.allclose(es.A, [[2, -1], [-1, 2]], rtol=0, atol=1e-10)
    assert np.allclose(es.b, [1, 0.5], rtol=0, atol=1e-10)


def test_hand_written_ideal_deck_with_suffixes():
    text = """gm-C by hand
.model unused filesource(file="x.txt" amplscale=[1])
c0 x0 0 1n
c1 x1 0 1000p
g00 x0 0 x0 0 2m
g01 x0 0 x1 0 -1m
g10 x1 0 x0 0 -1m
g11 x1 0 x1 0 2MS
ib0 0 x0 dc 1u
ib1 0 x1 500n
.tran 1n 10u
"""
    p = parse_deck(text)
    assert not p.ended
    assert p.analyses == [".tran 1n 10u"]
    assert p.models["unused"].type == "filesource"
    assert p.models["unused"].params["file"] == "x.txt"
    ex = extract_system(p, volts_per_unit=1e-3)
    es = ex.as_system(1e-6)
    assert np.allclose(es.A, [[2, -1], [-1, 2]], rtol=1e-14)
    assert np.allclose(es.b, [1, 0.5], rtol=1e-14)
    assert ex.outputs == ("x0", "x1")


@pytest.mark.parametrize("body,kwargs,message", [
    ("r1 a 0 1k\nv1 a 0 1\n", {}, "no capacitors"),
    ("c1 a 0 1n\nr1 a 0 1k\ne1 b 0 a c 2\nr2 b 0 1k\n", {}, "no DC connection at c"),
    ("c1 a b 1n\nr1 a 0 1k\nr2 b 0 1k\n", {}, r"line 2: capacitor 'c1' \(a, b\) has neither"),
    ("c1 a 0 1n\nr1 a 0 1k\n", {"outputs": ["zz"]}, r"output node\(s\) not in the circuit: zz"),
    ("c1 a 0 1n\nc2 b 0 1n\nr1 a 0 1k\nr2 b 0 1k\n", {"outputs": ["a"]},
     r"1 output node\(s\) for 2 capacitor state\(s\)"),
    ("c1 a 0 1n\nr1 a 0 1k\n", {"volts_per_unit": -1},
     "volts_per_unit must be a positive number, got -1"),
    ('.model g1 gain(gain=2)\na1 a b g1\nc1 a 0 1n\nr1 a 0 1k\nr2 b 0 1k\n', {},
     r"line 3: 'a1': XSPICE model type 'gain' is not supported"),
    ("c1 a 0 1n\nv1 a 0 1\n", {}, "singular"),
])
def test_extract_errors(body, kwargs, message):
    with pytest.raises(InputError, match=message):
        extract_system(parse_deck(T + body), **kwargs)


def test_state_space_with_extra_pole():
    """A single-pole op-amp (an internal RC) adds a state: the full model is still available."""
    text = T + """c1 s o 1n
rint a 0 1k
cint a 0 1p
gop a 0 s 0 1
eop o 0 a 0 1
r1 o s 1k
rb u s 1k
vb u 0 -1
"""
    p = parse_deck(text)
    ss, _, _ = state_space(p)
    assert ss.F.shape == (2, 2)
    with pytest.raises(InputError, match="2 capacitor state"):
        extract_system(p, outputs=["o"])
    # both states read out (V(s) = w_c1 + V(a), V(a) = w_cint): a stable 2nd-order system
    ex = extract_system(p, outputs=["s", "a"])
    assert np.all(np.linalg.eigvals(ex.M).real > 0)
    dc = dc_solution(p)
    assert ex.x_dc == pytest.approx([dc["s"], dc["a"]], rel=1e-9)


def test_pure_integrator_and_after_end():
    """A current into a lone capacitor integrates (M = 0); lines after .end still count."""
    p = parse_deck(T + "c1 a 0 2n\n.end\ni1 0 a 1m\n")
    assert p.ended and [el.name for el in p.elements] == ["c1", "i1"]
    ex = extract_system(p, volts_per_unit=0.5)
    assert np.all(ex.M == 0) and ex.c == pytest.approx([1e-3 / 2e-9 / 0.5])
    with pytest.raises(InputError, match="tau_s must be a positive number"):
        ex.as_system()


def _factored_deck(S: np.ndarray, lam: float, b: np.ndarray, gain: float) -> str:
    """A hand-built `factored` circuit (DESIGN §3) for A = SᵀS + λI, R₀ = 1 kΩ, C = 1 nF."""
    r, n = S.shape
    lines = ["factored by hand"]
    for i in range(n):
        lines += [f"eint{i} o{i} 0 0 s{i} {gain!r}", f"c{i} s{i} o{i} 1n",
                  f"rinv{i} o{i} n{i} 1k", f"rfb{i} n{i} p{i} 1k",
                  f"einv{i} p{i} 0 0 n{i} {gain!r}", f"vb{i} u{i} 0 {-float(b[i])!r}",
                  f"rb{i} u{i} s{i} 1k", f"rl{i} o{i} s{i} {1e3 / lam!r}"]
    for k in range(r):
        lines += [f"ey{k} y{k} 0 0 t{k} {gain!r}", f"rty{k} t{k} y{k} 1k",
                  f"rqi{k} y{k} m{k} 1k", f"rqf{k} m{k} q{k} 1k", f"eq{k} q{k} 0 0 m{k} {gain!r}"]
        for j in range(n):
            if S[k, j] != 0:
                src = f"o{j}" if S[k, j] > 0 else f"p{j}"
                lines.append(f"rs{k}_{j} {src} t{k} {1e3 / abs(float(S[k, j]))!r}")
                back = f"q{k}" if S[k, j] > 0 else f"y{k}"
                lines.append(f"rb{k}_{j} {back} s{j} {1e3 / abs(float(S[k, j]))!r}")
    return "\n".join([*lines, ".op", ".end"]) + "\n"


def test_factored_circuit_by_hand():
    rng = np.random.default_rng(5)
    S = rng.standard_normal((3, 6))
    lam, b = 0.1, rng.standard_normal(6)
    A = S.T @ S + lam * np.eye(6)
    p = parse_deck(_factored_deck(S, lam, b, 1e12))
    assert default_outputs(p) == [f"o{i}" for i in range(6)]   # transimpedance stages: no state
    es = extract_system(p).as_system(1e-6)
    assert rel(es.A, A) < 1e-9
    assert rel(es.b, b) < 1e-9


def test_subcircuit_tiles_with_local_noise_models():
    text = """tiles
.subckt tile s
.model nz filesource(file="f.txt" amplscale=[2])
anz %i(s) nz
c1 s 0 1n
r1 s 0 1k
.ends
x1 a tile
x2 b tile
"""
    p = parse_deck(text)
    assert sorted(p.models) == ["x1.nz", "x2.nz"]
    assert p.element("a.x2.anz").model == "x2.nz"
    ex = extract_system(p, noise_step_s=1e-9)
    assert ex.outputs == ("a", "b")
    assert [s.element for s in ex.noise_sources] == ["a.x1.anz[0]", "a.x2.anz[0]"]
    # σ_I² = 2² · 1e-9 A²s into 1 nF: D = σ_I²/C² per variable, independent
    assert np.allclose(ex.diffusion, 4e-9 / 1e-18 * np.eye(2), rtol=1e-12)
