"""The realisation pass: E series, tolerances (Monte Carlo), op-amp macromodel, output swing,
pre-compensation, Johnson-noise floor; the bill of materials; the committed hardware decks."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from spu_circuits import examples
from spu_circuits.backends import Tran
from spu_circuits.bom import (
    bom_csv_text,
    bom_rows,
    component_totals,
    format_value,
    group_refs,
    write_bom_csv,
)
from spu_circuits.compiler import compile_system, topology_dense
from spu_circuits.compiler.realize import (
    E12,
    E24,
    E96,
    E192,
    K_BOLTZMANN,
    RealizeOptions,
    choose_v0,
    in_series,
    johnson_kappa0,
    monte_carlo,
    opamp_subckt,
    parse_frequency,
    parse_tolerance,
    realise_resistor,
    realize,
    snap,
)
from spu_circuits.demo import example_system
from spu_circuits.parser import extract_system, parse_deck
from spu_circuits.simulate import Deck, interp_at, solve_op, transient
from spu_circuits.spec import HardwareSpec
from spu_circuits.system import FactoredSystem, LinearSystem

from .conftest import make_system, needs_ngspice

ROOT = Path(__file__).resolve().parents[1]


def _one_thread():
    """BLAS threads cost more than they give on these tiny matrices."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        import contextlib
        return contextlib.nullcontext()
    return threadpool_limits(1)


# ------------------------------------------------------------------------------ E series


def test_series_tables_and_snapping():
    assert len(E12) == 12 and len(E24) == 24 and len(E96) == 96 and len(E192) == 192
    assert 9.20 in E192 and 9.19 not in E192          # IEC 60063 exception
    assert set(E12) <= set(E24) and set(E96) <= set(E192)
    assert snap(1234.0, "e96") == 1240.0 and snap(1234.0, "e24") == 1200.0
    assert snap(4.75e-9, "e12") == 4.7e-9
    assert snap(99.0, "e96", lo=100.0) == 100.0        # kept inside the range
    assert in_series(10200.0, "e96") and not in_series(10300.0, "e96")
    # two E96 parts (series or parallel trim) land within 3e-4 of any target
    rng = np.random.default_rng(0)
    errs = [abs(realise_resistor(t, "e96", 100.0, 1e7, True).value / t - 1)
            for t in 10 ** rng.uniform(2.2, 6.5, 300)]
    assert max(errs) < 3e-4 and np.median(errs) < 1e-4
    assert parse_tolerance("1%") == 0.01 and parse_tolerance("0.1 %") == 0.001
    assert parse_frequency("10MHz") == 1e7 and parse_frequency("10meg") == 1e7


# ------------------------------------------------------------------------------ .op vs A_eff


@needs_ngspice
def test_e96_1pct_op_matches_extractor(cli_backend):
    system = make_system(6, 20.0, seed=3)
    rc = realize(compile_system(system, "dense"),
                 RealizeOptions(series="e96", tolerance=0.01, mc_seed=11, mc_draw=2,
                                opamp_gain=1e5))
    rec = rc.meta["realization"]
    A_eff, b_eff = np.array(rec["A_eff"]), np.array(rec["b_eff"])
    x_eff = np.linalg.solve(A_eff, b_eff)
    x_op = solve_op(Deck.from_compiled(rc), cli_backend)
    assert np.linalg.norm(x_op - x_eff) / np.linalg.norm(x_eff) < 1e-6
    # the report states the error against the ideal A⁻¹b (and it is the realisation's)
    x_star = system.solution()
    err = np.linalg.norm(x_eff - x_star) / np.linalg.norm(x_star)
    assert rec["rel_error_x"] == pytest.approx(err, rel=1e-9)
    assert rc.report["rel_error_x"] == pytest.approx(err, rel=1e-9)
    assert 1e-3 < err < 0.2
    assert rec["rel_error_A"] == pytest.approx(
        np.linalg.norm(A_eff - system.A) / np.linalg.norm(system.A), rel=1e-9)
    assert any("A_eff" in h for h in rc.netlist.header)
    # the deck holds the drawn values; the sidecar the nominal (E96) ones
    nominal = rec["nominal_values"]
    drawn = {e.name: e.value for e in rc.netlist.elements if e.kind == "r"}
    assert all(in_series(nominal[n], "e96") for n in drawn)
    dev = [abs(drawn[n] / nominal[n] - 1) for n in drawn]
    assert 0 < max(dev) <= 0.01 + 1e-12


# ------------------------------------------------------------------------------ Monte Carlo


def test_monte_carlo_median_scales_with_tolerance():
    """Criterion: with common random numbers (the same seed for every class) the draws are
    δ = tol·z with the same z, and to first order the error is linear in δ, so
    median/tol is the same for every class; second-order terms are O(κ(A)·tol) relative
    (κ = 10, tol ≤ 5 %: a few %), so the three ratios must agree within ±20 % and the
    medians increase monotonically. Errors from the extractor (no ngspice)."""
    compiled = compile_system(make_system(4, 10.0, seed=1), "dense")
    med = {}
    with _one_thread():
        for tol in (0.001, 0.01, 0.05):
            mc = monte_carlo(compiled, RealizeOptions(tolerance=tol), 100, seed=7)
            assert mc["rel_error_x"].shape == (100,)
            med[tol] = mc["median_rel_error_x"]
    print("MC medians of |x_eff - x*|/|x*| per tolerance class:", med)
    tols = sorted(med)
    assert all(med[a] < med[b] for a, b in zip(tols, tols[1:], strict=False))
    ratios = np.array([med[t] / t for t in tols])
    assert ratios.max() / ratios.min() < 1.2 ** 2
    assert np.all(np.abs(ratios / ratios[1] - 1) < 0.2)
    # the finite-gain floor (1e-6·κ) is far below the smallest class
    assert med[0.001] > 50 * compiled.meta["predicted"]["rel_deviation_from_exact"]


# ---------------------------------------------------------------- snapping, compensation


def test_compensation_dense8_finite_gain_e96():
    compiled = compile_system(example_system(), "dense")
    opts = dict(series="e96", opamp_gain=1e4)
    plain = realize(compiled, RealizeOptions(**opts))
    comp = realize(compiled, RealizeOptions(**opts, compensate=True))
    diag = realize(compiled, RealizeOptions(**opts, compensate=True, trim="diagonal"))
    before, after = comp.report["rel_error_A_before"], comp.report["rel_error_A_after"]
    print(f"dense 8x8, A0 = 1e4, E96: |A_eff-A|/|A| {before:.3e} -> {after:.3e} "
          f"(trim all), -> {diag.report['rel_error_A_after']:.3e} (trim diagonal); x error "
          f"{comp.report['rel_error_x_before']:.3e} -> {comp.report['rel_error_x_after']:.3e}")
    assert before == pytest.approx(plain.report["rel_error_A"], rel=1e-12)
    assert after < before / 20
    assert comp.report["rel_error_x_after"] < comp.report["rel_error_x_before"] / 20
    assert diag.report["rel_error_A_after"] < before
    # every resistor (trims included) is an E96 value inside the spec range; caps E12
    spec = HardwareSpec()
    for rc in (plain, comp, diag):
        for el in rc.netlist.elements:
            if el.kind == "r":
                assert in_series(el.value, "e96"), el
                assert spec.r_min_ohm <= el.value <= spec.r_max_ohm
            if el.kind == "c":
                assert in_series(el.value, "e12")
    assert comp.report["parts"]["trims"] > 0
    n_r = sum(1 for e in comp.netlist.elements if e.kind == "r")
    assert n_r == 88 + comp.report["parts"]["trims"]


def test_compensation_factored_small():
    rng = np.random.default_rng(5)
    fs = FactoredSystem.from_arrays(rng.standard_normal((2, 6)) * 0.5, 0.2,
                                    rng.standard_normal(6), name="fs6")
    rc = realize(compile_system(fs, "factored"),
                 RealizeOptions(series="e96", opamp_gain=1e4, compensate=True))
    assert rc.report["rel_error_A_after"] < rc.report["rel_error_A_before"] / 10
    assert rc.report["rel_error_x_after"] < rc.report["rel_error_x_before"] / 10


# ------------------------------------------------------------------------------ op-amp model


@needs_ngspice
def test_opamp_macromodel_step_response(cli_backend):
    """A unity follower of the macromodel has the closed-loop pole ω = 2π·GBW·(1 + 1/A0)."""
    a0, gbw = 1e4, 1e6
    deck = "\n".join(["macromodel follower", *opamp_subckt(a0, gbw).lines(),
                      "vin in 0 dc 1", "xf in out out opamp_sp", "rl out 0 1k", ".op", ".end"])
    tau_cl = 1.0 / (2 * math.pi * gbw * (1 + 1 / a0))
    res = cli_backend.run(deck, Tran(step_s=tau_cl / 50, stop_s=5 * tau_cl,
                                     tmax_s=tau_cl / 200, ic={"out": 0.0, "xf.nop": 0.0},
                                     uic=True))
    t, v = res.time, res.voltages(["out"])[:, 0]
    final = a0 / (1 + a0)
    for k in (0.5, 1.0, 2.0):
        assert np.interp(k * tau_cl, t, v) == pytest.approx(final * (1 - math.exp(-k)),
                                                            rel=2e-3)


@needs_ngspice
def test_opamp_gbw_op_and_transient(cli_backend):
    system = make_system(3, 5.0, seed=2)
    compiled = compile_system(system, "dense")
    a0 = 1e4
    vcvs = realize(compiled, RealizeOptions(opamp_gain=a0))
    x_fg = topology_dense.finite_gain_dc(system.A, system.b, vcvs.meta["matrix_scale"],
                                         HardwareSpec(opamp_gain=a0))
    x_vcvs = solve_op(Deck.from_compiled(vcvs), cli_backend)
    assert np.allclose(x_vcvs, x_fg, rtol=1e-8, atol=1e-12)
    devs = []
    grid = np.linspace(0.0, 4.0, 81)
    u, xr = transient(Deck.from_compiled(vcvs), np.zeros(3), 4.0, 0.05, tmax_tau=0.005,
                      backend=cli_backend)
    ref = interp_at(u, xr, grid)
    for gbw in (1e6, 1e7, 1e8):
        rc = realize(compiled, RealizeOptions(opamp_gain=a0, gbw_hz=gbw))
        assert rc.meta["realization"]["stability"]["stable"]
        assert any(e.kind == "x" for e in rc.netlist.elements)
        deck = Deck.from_compiled(rc)
        # DC: the macromodel's gain is A0, so .op is the finite-gain solution
        x_op = solve_op(deck, cli_backend)
        assert np.allclose(x_op, x_fg, rtol=1e-8, atol=1e-12)
        u, xs = transient(deck, np.zeros(3), 4.0, 0.05, tmax_tau=0.005, backend=cli_backend)
        xs = interp_at(u, xs, grid)
        devs.append(float(np.max(np.abs(xs - ref)) / np.max(np.abs(ref))))
    print("max transient deviation from the A0-only circuit, GBW 1, 10, 100 MHz:", devs)
    assert devs[0] > devs[1] > devs[2]
    assert devs[0] > 5 * devs[2]


# ------------------------------------------------------------------------------ noise floor


def test_johnson_kappa0_hand_computation():
    kT = K_BOLTZMANN * 300.0
    C = 1e-9
    # 1×1, A = [[2]]: into s0 a coupling R0/2 and the bias R0 → Σ1/R = 3/R0, κ₀ = 3kT/(v₀²C)
    assert johnson_kappa0([500.0, 1000.0], temperature_K=300.0, R0_ohm=1e3, alpha=1.0,
                          v0=1.0, tau_s=1e-6) == pytest.approx(3 * kT / C, rel=1e-12)
    rc = realize(compile_system(LinearSystem.from_arrays([[2.0]], [1.0]), "dense"))
    j = rc.meta["realization"]["johnson"]
    assert j["kappa0_summing_node"][0] == pytest.approx(3 * kT / C, rel=1e-12)
    assert j["kappa0_full"][0] == pytest.approx(3 * kT / C, rel=1e-4)
    # 2×2, A = [[2, −0.5], [−0.5, 1]], α = 1: the negative couplings come from inverters,
    # whose two R0 resistors put 4kT·R0 (V²/Hz, two-sided: 2 × 2kT/R0 × R0²) on p_j, which
    # drives R_ij = 2 kΩ into s_i: 4kT·R0/R_ij² more. Var 0: 2kT(1/500 + 1/2000 + 1/1000)
    # + 4kT·1000/2000² = 8e-3·kT → κ₀ = τσ²/(2C²v₀²) = 4kT/C; var 1: 6e-3·kT → 3kT/C.
    # The summing-node formula alone: 3.5kT/C and 2.5kT/C.
    rc = realize(compile_system(LinearSystem.from_arrays([[2.0, -0.5], [-0.5, 1.0]],
                                                         [1.0, 1.0]), "dense"))
    assert rc.meta["matrix_scale"] == 1.0
    j = rc.meta["realization"]["johnson"]
    assert j["kappa0_summing_node"] == pytest.approx([3.5 * kT / C, 2.5 * kT / C], rel=1e-12)
    assert j["kappa0_full"] == pytest.approx([4 * kT / C, 3 * kT / C], rel=1e-4)
    assert j["kappa0_eff"] == pytest.approx(3.5 * kT / C, rel=1e-4)
    # κ₀ ∝ 1/v₀²: fill ±10 V rails and the floor drops
    rc10 = realize(compile_system(LinearSystem.from_arrays([[2.0, -0.5], [-0.5, 1.0]],
                                                           [1.0, 1.0]), "dense"),
                   RealizeOptions(v_sat=10.0, kappa0_swing=0.0))
    v0 = rc10.meta["volts_per_unit"]
    assert rc10.meta["realization"]["johnson"]["kappa0_full"] == pytest.approx(
        [4 * kT / C / v0 ** 2, 3 * kT / C / v0 ** 2], rel=1e-4)


# ------------------------------------------------------------------------------ output swing


def _peaks(rc, kappa0: float, n_sigma: float = 4.0) -> dict[str, float]:
    """Peak |V| of every driven node by the independent extractor on the realised deck."""
    meta = rc.meta
    ex = extract_system(parse_deck(rc.deck_text()), outputs=meta["outputs"],
                        volts_per_unit=meta["volts_per_unit"])
    es = ex.as_system(meta["tau_s"])
    cov = kappa0 * np.linalg.inv(es.A)
    out = {}
    for k, node in enumerate(ex.nodes):
        g = ex.node_gain[k]
        out[node] = abs(g @ es.x_dc + ex.node_offset[k]) + n_sigma * math.sqrt(
            max(g @ cov @ g, 0.0))
    return out


@pytest.mark.parametrize("topology", ["dense", "factored"])
def test_choose_v0_fills_the_rails(topology):
    rng = np.random.default_rng(3)
    if topology == "dense":
        system = make_system(5, 10.0, seed=4)
        driven = ("o", "p", "u")
    else:
        system = FactoredSystem.from_arrays(rng.standard_normal((3, 6)), 0.3,
                                            rng.standard_normal(6) * 0.2)
        driven = ("o", "p", "y", "q", "u")
    kappa0, v_sat = 0.05, 10.0
    v0 = choose_v0(system, kappa0, v_sat, topology)
    rc = realize(compile_system(system, topology),
                 RealizeOptions(v_sat=v_sat, kappa0_swing=kappa0))
    assert rc.meta["volts_per_unit"] == v0
    peaks = {n: p for n, p in _peaks(rc, kappa0).items() if n.rstrip("0123456789") in driven}
    worst = max(peaks.values())
    assert worst <= v_sat * (1 + 1e-6)
    assert worst >= v_sat * 0.99       # v₀ rounded down to 3 significant digits
    with pytest.raises(Exception, match="positive"):
        choose_v0(system, kappa0, -1.0, topology)


# ------------------------------------------------------------------------------ BOM


def test_bom_counts_and_determinism(tmp_path):
    compiled = compile_system(example_system(), "dense")
    rc = realize(compiled, RealizeOptions(series="e96", tolerance=0.01, opamp_gain=1e5,
                                          gbw_hz=1e7, compensate=True))
    rows = bom_rows(rc)
    counts = rc.netlist.counts()
    by_part: dict[str, int] = {}
    for r in rows:
        by_part[r["part"]] = by_part.get(r["part"], 0) + r["count"]
    assert by_part["resistor"] == counts["resistor"]
    assert by_part["capacitor"] == counts["capacitor"] == 8
    assert by_part["op-amp"] == counts["subcircuit"] == 16
    assert by_part["voltage source"] == counts["voltage_source"] == 8
    tot = component_totals(rc)
    assert tot == component_totals(rc.meta)
    assert tot["resistors"] == 3 * 8 + 64 + rc.report["parts"]["trims"]
    assert tot["opamps"] == 16
    # deterministic: same rows from a fresh realisation, and from the written deck
    assert bom_rows(realize(compiled, RealizeOptions(series="e96", tolerance=0.01,
                                                      opamp_gain=1e5, gbw_hz=1e7,
                                                      compensate=True))) == rows
    deck = rc.write(tmp_path, "d")
    assert bom_rows(deck) == rows
    p1 = write_bom_csv(tmp_path / "a.csv", rows)
    p2 = write_bom_csv(tmp_path / "b.csv", bom_rows(deck))
    assert p1.read_bytes() == p2.read_bytes()
    text = p1.read_text()
    assert text.splitlines()[0] == "refs,part,value,value_si,series,tolerance,count"
    assert "C1-C8,capacitor,1 nF" in text and "total op-amps,,,,,16" in text
    refs = [r["refs"] for r in rows]
    assert len(refs) == len(set(refs))
    # factored topology totals: 4N + 3r + 2·nnz(S) resistors, 2N + 2r op-amps
    rng = np.random.default_rng(1)
    fs = FactoredSystem.from_arrays(rng.standard_normal((2, 5)), 0.5, rng.standard_normal(5))
    fc = compile_system(fs, "factored")
    t = component_totals(fc)
    assert t == {"topology": "factored", "resistors": 4 * 5 + 3 * 2 + 2 * 10,
                 "capacitors": 5, "opamps": 2 * 5 + 2 * 2, "transconductors": 0,
                 "sources": 5, "noise_sources": 0}
    assert component_totals(fc.meta) == t


def test_bom_formatting():
    assert format_value(1000.0, "Ω", 3) == "1.00 kΩ"
    assert format_value(10200.0, "Ω", 3) == "10.2 kΩ"
    assert format_value(102.0, "Ω", 3) == "102 Ω"
    assert format_value(1e-9, "F", 2, strip=True) == "1 nF"
    assert format_value(4.7e-9, "F", 2, strip=True) == "4.7 nF"
    assert format_value(999.7, "Ω", 3) == "1.00 kΩ"
    assert group_refs("R", [1, 2, 3, 4, 5, 6, 7, 8, 12]) == "R1-R8,R12"
    assert group_refs("U", [2, 1, 5]) == "U1,U2,U5"


# ------------------------------------------------------------------------------ committed decks


@needs_ngspice
@pytest.mark.parametrize("name", ["spu8_dense_e96", "factored_digits"])
def test_committed_hardware_decks(name, cli_backend):
    deck_path = ROOT / "netlists" / f"{name}.cir"
    deck = Deck.load(deck_path)
    rec = deck.meta["realization"]
    x_eff = np.linalg.solve(np.array(rec["A_eff"]), np.array(rec["b_eff"]))
    x_op = solve_op(deck, cli_backend)
    assert np.linalg.norm(x_op - x_eff) / np.linalg.norm(x_eff) < 1e-6
    assert rec["stability"]["stable"]
    bom = deck_path.with_name(f"{name}_bom.csv").read_text()
    assert bom == bom_csv_text(bom_rows(deck_path))
    for el in parse_deck(deck.text).elements:
        if el.kind == "r" and "." not in el.name:
            assert in_series(el.value, "e96")


def test_committed_dense_deck_is_current(tmp_path):
    rc = examples.build("spu8_dense_e96")
    deck = rc.write(tmp_path, "spu8_dense_e96")
    assert (ROOT / "netlists" / "spu8_dense_e96.cir").read_bytes() == deck.read_bytes()
