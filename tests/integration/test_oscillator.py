"""Oscillator topology acceptance: .op vs the finite-gain nodal solution and A⁻¹b, noiseless
transients vs the exact second-order mean, pathwise and statistical checks (seeded file noise),
a 20 % coupling fault, the sidecar record and the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from spu_circuits import theory_second_order as t2
from spu_circuits.compiler import compile_system, topology_oscillator
from spu_circuits.compiler.noise import NoiseSpec
from spu_circuits.parser import dc_solution, parse_deck
from spu_circuits.simulate import Deck, solve_op
from spu_circuits.spec import HardwareSpec
from spu_circuits.system import FactoredSystem, LinearSystem, random_spd

from ..conftest import HAVE_NGSPICE, make_system, needs_ngspice
from .test_validation import edit_coupling, visible_coupling

pytestmark = needs_ngspice

IDEAL = HardwareSpec(opamp_gain=1e9, r_max_ohm=1e13)


@pytest.fixture(scope="module")
def be():
    if not HAVE_NGSPICE:
        pytest.skip("ngspice is not installed")
    from spu_circuits.backends import get_backend

    backend = get_backend("shared", timeout_s=1200)
    yield backend
    backend.close()


def _unit_system(n: int, cond: float, seed: int) -> LinearSystem:
    """SPD with eigenvalues in [1/cond, 1] (λ_max = 1: the fastest oscillator has period 2πτ)."""
    A = random_spd(n, cond, seed) / cond
    b = np.random.default_rng(seed + 7).standard_normal(n)
    return LinearSystem.from_arrays(0.5 * (A + A.T), b, name=f"osc{n}")


# ----------------------------------------------------------------------------- DC


@pytest.mark.parametrize("n", [2, 8, 32])
@pytest.mark.parametrize("gain", [1e6, 1e9])
def test_op_matches_finite_gain_nodal_solution(be, n, gain):
    system = make_system(n, 1e3 if n > 2 else 100.0, seed=n)
    spec = HardwareSpec(opamp_gain=gain, r_max_ohm=1e13)
    c = compile_system(system, "oscillator", spec)
    x = solve_op(Deck.from_compiled(c), be)
    xs = system.solution()
    nx = np.linalg.norm(xs)
    gamma = c.meta["oscillator"]["damping_gamma"]
    # independent: closed-form nodal analysis in numpy, and the parser's MNA of the deck text
    x_fg = topology_oscillator.finite_gain_dc(np.array(system.A), np.array(system.b),
                                              c.meta["matrix_scale"], gamma, spec)
    volts = dc_solution(parse_deck(c.deck_text()))
    x_mna = np.array([volts[o] for o in c.outputs])
    assert np.linalg.norm(x - x_fg) / nx < 1e-9
    assert np.linalg.norm(x - x_mna) / nx < 1e-9
    if gain == 1e9:
        assert np.linalg.norm(x - xs) / nx < 1e-5
    assert c.meta["predicted"]["rel_deviation_from_exact"] == pytest.approx(
        np.linalg.norm(x_fg - xs) / nx, rel=1e-6)


def test_op_factored_oscillator(be):
    rng = np.random.default_rng(3)
    S = rng.standard_normal((3, 10)) / 3
    fs = FactoredSystem.from_arrays(S, 0.05, rng.standard_normal(10))
    c = compile_system(fs, "oscillator", IDEAL)
    assert c.meta["oscillator"]["lambda_min"] == pytest.approx(0.05)
    assert c.meta["oscillator"]["damping_gamma"] == pytest.approx(2 * math.sqrt(0.05))
    assert c.meta["element_counts"]["vcvs"] == 3 * 10 + 2 * 3
    x = solve_op(Deck.from_compiled(c), be)
    xs = np.linalg.solve(fs.A, fs.b)
    assert np.linalg.norm(x - xs) / np.linalg.norm(xs) < 1e-5
    assert np.linalg.norm(x - np.array(c.meta["predicted"]["x_dc"])) / np.linalg.norm(xs) < 1e-9


# ----------------------------------------------------------------------------- transient


@pytest.mark.parametrize("n", [2, 8, 32])
def test_transient_matches_exact_mean(be, n):
    from spu_circuits.backends import Tran
    from validation.checks.oscillator import ic_voltages

    system = _unit_system(n, 100.0, seed=n)
    c = compile_system(system, "oscillator", IDEAL)
    deck = Deck.from_compiled(c)
    rng = np.random.default_rng(n)
    y0 = rng.standard_normal(2 * n)
    gamma = c.meta["oscillator"]["damping_gamma"]
    tau = deck.tau_s
    res = be.run(deck.text, Tran(step_s=0.01 * tau, stop_s=10 * tau, tmax_s=0.005 * tau,
                                 ic=ic_voltages(deck, y0), uic=True))
    u = res.time / tau
    X = res.voltages(deck.outputs) / deck.volts_per_unit
    V = res.voltages(c.meta["oscillator"]["velocity_nodes"]) / deck.volts_per_unit
    times = np.array([0.5, 1.0, 3.0, 10.0])
    want = t2.transient_mean(system.A, system.b, gamma, y0, times)
    got_x = np.stack([np.interp(times, u, X[:, k]) for k in range(n)], axis=1)
    got_v = np.stack([np.interp(times, u, V[:, k]) for k in range(n)], axis=1)
    scale = np.linalg.norm(y0[:n] - system.solution())
    err_x = np.linalg.norm(got_x - want[:, :n], axis=1).max() / scale
    err_v = np.linalg.norm(got_v - want[:, n:], axis=1).max() / scale
    print(f"transient N={n}: max error x {err_x:.2e}, v {err_v:.2e} (of |x0 - x*|)")
    assert err_x < 1e-4
    assert err_v < 1e-4
    # the trajectory really oscillates: x overshoots x* along the fastest mode
    w, Q = np.linalg.eigh(system.A)
    proj = (X - system.solution()) @ Q[:, -1]
    assert np.sum(np.diff(np.sign(proj)) != 0) >= 2


# ----------------------------------------------------------------------------- checks


def _deck(tmp_path: Path, system, kappa0: float, name="osc") -> Path:
    c = compile_system(system, "oscillator", IDEAL, name=name,
                       noise=NoiseSpec("file", kappa0, duration_tau=20.0))
    return c.write(tmp_path, name)


def _validate(path: Path, be, checks, preset="default"):
    from validation.checks import Validation, settings_for

    deck = Deck.load(path, check_digest=False)
    with Validation(deck, settings=settings_for(preset), backend=be) as v:
        return v, {r.name: r for r in v.run(checks)}


@pytest.mark.parametrize("n", [3, pytest.param(8, marks=pytest.mark.slow)])
def test_pathwise_and_deterministic_checks(tmp_path, be, n):
    system = make_system(n, 10.0, seed=n)
    path = _deck(tmp_path, system, 1e-2)
    _, res = _validate(path, be, ["dc", "transient", "pathwise"], preset="quick")
    for name in ("dc", "transient", "pathwise"):
        assert res[name].passed, res[name].details
    rms = res["pathwise"].metrics["rms diff / SD"]
    print(f"pathwise oscillator N={n}: rms {rms:.2e} SD")
    assert rms <= 0.05
    assert res["pathwise"].raw["spice"].shape[1] == 2 * n  # x and v


STAT_CASES = [(3, 0.1, "quick"),
              pytest.param(3, 1e-3, "default", marks=pytest.mark.slow),
              pytest.param(3, 0.1, "default", marks=pytest.mark.slow),
              pytest.param(8, 0.1, "default", marks=pytest.mark.slow),
              pytest.param(8, 1e-3, "default", marks=pytest.mark.slow),
              pytest.param(32, 0.1, "quick", marks=pytest.mark.slow),
              pytest.param(32, 1e-3, "quick", marks=pytest.mark.slow)]


@pytest.mark.parametrize("n,kappa0,preset", STAT_CASES)
def test_statistics_pass_on_sound_decks(tmp_path, be, n, kappa0, preset):
    if n < 32:
        system = make_system(n, 10.0, seed=n)
    else:  # F̃ = SᵀS + λI, r = 4: the factored oscillator (2rN array resistors, sparse)
        rng = np.random.default_rng(n)
        system = FactoredSystem.from_arrays(rng.standard_normal((4, n)) / 2.0, 1.0,
                                            rng.standard_normal(n))
    path = _deck(tmp_path, system, kappa0)
    _, res = _validate(path, be, ["statistical", "surrogate"], preset=preset)
    for name in ("statistical", "surrogate"):
        r = res[name]
        print(f"{name} oscillator N={n} κ0={kappa0:g}: " + ", ".join(
            f"{k} {v:.2f}/{r.thresholds[k]:.2f}" for k, v in r.metrics.items()
            if k in r.thresholds))
        assert r.passed, r.details
    st = res["statistical"].raw["stats"]
    assert st["x_star"].shape == (2 * n,)
    assert 0.6 < st["se_ratio_mean"] < 1.8


def test_statistics_reproducible(tmp_path, be):
    """Seeded file noise: two validations of the same deck give identical statistics."""
    system = make_system(2, 4.0, seed=5)
    path = _deck(tmp_path, system, 0.1)
    from validation.checks import settings_for

    s = settings_for("quick", batch=10.0, batches_per_chain=4, chains=2)
    from validation.checks import Validation

    out = []
    for _ in range(2):
        with Validation(Deck.load(path), settings=s, backend=be) as v:
            out.append(v.run(["statistical"])[0].metrics)
    assert out[0] == out[1]


def test_coupling_fault_is_detected(tmp_path, be):
    system = make_system(3, 10.0, seed=2)
    A, b = np.array(system.A), np.array(system.b)
    path = _deck(tmp_path, system, 1e-3)
    i, j = visible_coupling(A, b)
    edit_coupling(path, "dense", i, j)  # R0/|A_ij| × 1.2: A_ij / 1.2
    v, res = _validate(path, be, ["dc", "transient", "statistical", "surrogate"],
                       preset="quick")
    st = res["statistical"]
    print(f"fault oscillator coupling ({i},{j}): max|z| residual "
          f"{st.metrics['max|z| residual']:.1f}, mean {st.metrics['max|z| mean']:.1f} "
          f"(threshold {st.thresholds['max|z| residual']:.2f})")
    assert v.edited
    assert not res["dc"].passed
    assert not res["transient"].passed
    assert not st.passed
    assert st.metrics["max|z| residual"] > st.thresholds["max|z| residual"]
    assert res["surrogate"].passed


# ----------------------------------------------------------------------------- sidecar, CLI


def test_sidecar_cell_map_and_determinism(tmp_path):
    system = _unit_system(4, 50.0, seed=1)
    a = compile_system(system, "oscillator", IDEAL, noise=NoiseSpec("file", 0.01,
                                                                     duration_tau=5.0))
    b = compile_system(system, "oscillator", IDEAL, noise=NoiseSpec("file", 0.01,
                                                                     duration_tau=5.0))
    assert a.deck_text() == b.deck_text() and a.extra_files == b.extra_files
    osc = a.meta["oscillator"]
    lam_min = float(np.linalg.eigvalsh(system.A)[0])
    assert osc["damping_gamma"] == pytest.approx(2 * math.sqrt(lam_min), rel=1e-12)
    assert osc["velocity_nodes"] == [f"w{i}" for i in range(4)]
    assert osc["expected_settling_tau"] == pytest.approx(
        t2.settling_time(system.A, system.b, osc["damping_gamma"]), rel=1e-9)
    assert a.meta["noise_nodes"] == [f"sv{i}" for i in range(4)]
    assert a.meta["noise"]["kappa0"] == 0.01
    m = a.meta  # the velocity integrators' current carries 2γκ₀: σ_I = αv₀/R₀·sqrt(2γκ₀τ)
    assert m["noise"]["sigma_I"] == pytest.approx(
        m["matrix_scale"] * m["volts_per_unit"] / m["R0_ohm"]
        * math.sqrt(2 * osc["damping_gamma"] * 0.01 * m["tau_s"]), rel=1e-12)
    assert m["noise"]["spec"]["kappa0"] == 0.01
    text = a.deck_text()
    for i in range(4):
        assert f"rg{i} w{i} sv{i} " in text  # the damping resistor R0/γ
        assert f"rx{i} w{i} sx{i} " in text  # v into x's integrator
    c2 = compile_system(system, "oscillator", IDEAL, gamma=0.5)
    assert c2.meta["oscillator"]["gamma_rule"] == "given"
    assert "rg0 w0 sv0 2000.0" in c2.deck_text()


def test_parser_extracts_second_order_drift():
    """The independent extractor sees the 2N-state drift [[0, I], [−A, −γI]] (ideal gain)."""
    from spu_circuits.parser import extract_system

    system = _unit_system(3, 20.0, seed=4)
    c = compile_system(system, "oscillator", IDEAL)
    outs = c.outputs + c.meta["oscillator"]["velocity_nodes"]
    ex = extract_system(parse_deck(c.deck_text()), outputs=outs, volts_per_unit=1.0)
    eff = ex.as_system(c.meta["tau_s"])
    M = -eff.A  # dy/du = M y + c
    np.testing.assert_allclose(M, t2.drift_matrix(system.A, c.meta["oscillator"]
                                                  ["damping_gamma"]), atol=1e-7)


def test_cli_compile_and_validate_oscillator(tmp_path):
    from spu_tngd.cli import main

    np.save(tmp_path / "A.npy", np.array(_unit_system(3, 10.0, seed=0).A))
    r = CliRunner().invoke(main, ["compile", "--matrix", str(tmp_path / "A.npy"), "--topology",
                                  "oscillator", "--damping-gamma", "0.8", "--gain", "1e9",
                                  "--out", str(tmp_path / "d"), "--name", "osc"])
    assert r.exit_code == 0, r.output
    assert "oscillator: gamma = 0.8 (given)" in r.output
    meta = json.loads((tmp_path / "d" / "osc.json").read_text())
    assert meta["topology"] == "oscillator"
    r = CliRunner().invoke(main, ["validate", str(tmp_path / "d" / "osc.cir"), "--checks",
                                  "dc,transient", "--report", str(tmp_path / "rep")])
    assert r.exit_code == 0, r.output
    rep = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert all(c["passed"] for c in rep["checks"])
    assert (tmp_path / "rep" / "transient.png").exists()
    r = CliRunner().invoke(main, ["compile", "--matrix", str(tmp_path / "A.npy"), "--topology",
                                  "oscillator", "--damping-gamma", "-2", "--out",
                                  str(tmp_path / "e")])
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert not (tmp_path / "e").exists()


@pytest.mark.parametrize("kind", ["dense", "factored"])
def test_tiled_oscillator_validates_like_the_untiled_deck(tmp_path, kind):
    """`spu compile --topology oscillator --tiles 4`: the same circuit regrouped into tile
    subcircuits and a backplane; ngspice's .op, and the dc, transient and pathwise checks
    (same seeded noise) give the untiled deck's numbers; per-tile BOMs are written."""
    from spu_tngd.cli import main

    if kind == "dense":
        np.save(tmp_path / "A.npy", np.array(_unit_system(8, 10.0, seed=4).A))
        src = ["--matrix", str(tmp_path / "A.npy")]
    else:
        S = np.random.default_rng(5).standard_normal((3, 10)) / 3
        np.save(tmp_path / "S.npy", S)
        src = ["--factor", str(tmp_path / "S.npy"), "--damping", "0.2"]
    metrics = {}
    for name, extra in (("flat", []), ("tiled", ["--tiles", "4", "--bom"])):
        r = CliRunner().invoke(main, ["compile", *src, "--topology", "oscillator", "--out",
                                      str(tmp_path / name), "--name", "o", *extra])
        assert r.exit_code == 0, r.output
        r = CliRunner().invoke(main, ["validate", str(tmp_path / name / "o.cir"), "--quick",
                                      "--checks", "dc,transient,pathwise", "--backend", "cli",
                                      "--report", str(tmp_path / name / "rep")])
        assert r.exit_code == 0, r.output
        rep = json.loads((tmp_path / name / "rep" / "report.json").read_text())
        metrics[name] = {c["name"]: c["metrics"] for c in rep["checks"]}
    side = json.loads((tmp_path / "tiled" / "o.json").read_text())
    assert side["tiles"]["n_tiles"] >= 2 and ".subckt tile0" in (
        tmp_path / "tiled" / "o.cir").read_text().lower()
    assert (tmp_path / "tiled" / "o_tile0_bom.csv").exists()
    for check in ("dc", "transient"):
        for key, v in metrics["flat"][check].items():
            assert metrics["tiled"][check][key] == pytest.approx(v, rel=1e-6, abs=1e-12), \
                (check, key)
    # pathwise: ngspice vs the surrogate on the same noise differ by ngspice's integration
    # error (~1e-4 SD); regrouping the elements changes that error by less than its size
    for key, v in metrics["flat"]["pathwise"].items():
        assert abs(metrics["tiled"]["pathwise"][key] - v) <= v, key
    r = CliRunner().invoke(main, ["compile", *src, "--topology", "oscillator", "--realize",
                                  "e96", "--out", str(tmp_path / "rz")])
    assert r.exit_code == 2 and "--realize (and the part options) is not available" in r.output
    assert not (tmp_path / "rz").exists()


@pytest.mark.parametrize("noise", ["none", "file"])
def test_cell_map_roles_and_couplings(noise):
    from spu_circuits.compiler.cellmap import OPAMP_ROLES, CellMap, Role
    from spu_circuits.compiler.topology import coupling_matrix
    from spu_circuits.graphcheck import check_cell_map
    from validation.checks import strip_noise

    system = _unit_system(5, 30.0, seed=2)
    ns = NoiseSpec("none") if noise == "none" else NoiseSpec("file", 0.01, duration_tau=2.0)
    c = compile_system(system, "oscillator", IDEAL, noise=ns)
    cm = c.cell_map
    assert cm.topology == "oscillator"
    assert sorted(cm.roles) == sorted(el.name for el in c.netlist.elements)
    check_cell_map(c.netlist, cm)
    assert CellMap.from_json(cm.to_json()) == cm
    assert cm.summing_nodes == c.meta["noise_nodes"] == [f"sv{i}" for i in range(5)]
    assert [cell.velocity for cell in cm.cells] == c.meta["oscillator"]["velocity_nodes"]
    for cell in cm.cells:
        assert cm.role_of(cell.capacitor) == Role.INTEGRATOR_CAP
        assert cm.role_of(cell.velocity_capacitor) == Role.INTEGRATOR_CAP
    assert len([n for n, r in cm.roles.items() if r in OPAMP_ROLES]) == 3 * 5
    A_read = coupling_matrix(c.netlist, cm, c.meta["matrix_scale"], c.meta["R0_ohm"])
    np.testing.assert_allclose(A_read, system.A, rtol=1e-12, atol=0)
    if noise == "file":
        text, removed = strip_noise(c.deck_text(), cm.elements_with(Role.NOISE))
        assert removed == 2  # one filesource instance and its model
