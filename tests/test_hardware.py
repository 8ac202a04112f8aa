"""Real op-amps, electrical rule checks, SI units, the error budget, validation against a spec
(issue 11). ngspice runs are small (.op of 8×8 to 16×16 decks)."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from spu_circuits.compiler import compile_system
from spu_circuits.compiler.erc import ErcError
from spu_circuits.compiler.opamps import CATALOGUE, get_part
from spu_circuits.compiler.realize import RealizeOptions, realize
from spu_circuits.errors import InputError
from spu_circuits.examples import example_system
from spu_circuits.simulate import Deck, solve_op
from spu_circuits.spec import HardwareSpec
from spu_circuits.system import LinearSystem
from spu_circuits.units import parse_quantity
from spu_tngd.cli import main


def spd_system(n: int, cond: float, seed: int) -> LinearSystem:
    """A dense SPD system with eigenvalues geomspace(1, cond) (rounded: BLAS-independent)."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    A = (Q * np.geomspace(1.0, cond, n)) @ Q.T
    return LinearSystem.from_arrays(np.round(0.5 * (A + A.T), 12),
                                    np.round(rng.normal(size=n), 12), name=f"spd{n}")


def test_catalogue_figures_consistent():
    for p in CATALOGUE.values():
        assert 0 < p.vos_V <= p.vos_max_V and 0 < p.ib_A <= p.ib_max_A
        assert p.swing_V[0] < 0 < p.swing_V[1] and p.gbw_hz > 0 and p.i_out_A > 0
    with pytest.raises(InputError, match="unknown op-amp 'NE5532'"):
        get_part("NE5532")


@pytest.mark.parametrize("text,unit,want", [("100nF", "F", 1e-7), ("10k", "ohm", 1e4),
                                            ("4.7kohm", "ohm", 4700.0), ("10MHz", "Hz", 1e7),
                                            ("10meg", "Hz", 1e7), ("1e-9", "F", 1e-9),
                                            ("2.2u", "F", 2.2e-6), ("1mF", "F", 1e-3)])
def test_si_units(text, unit, want):
    assert parse_quantity(text, unit, require_unit=unit == "Hz" and "e" not in text
                          or unit == "Hz") == want


def test_bare_gbw_asks_for_a_unit():
    with pytest.raises(InputError, match="has no unit: write e.g. 10MHz"):
        parse_quantity("10", "Hz", what="--gbw", require_unit=True)


def _realise(system, spec=None, **opt):
    return realize(compile_system(system, "dense", spec or HardwareSpec()),
                   RealizeOptions(**{"erc": "error", **opt}))


def test_macromodel_op_matches_extractor_with_offsets(cli_backend):
    """ngspice .op of a TL072 deck (slew/rail/current-limit macromodel, V_os, I_b) equals the
    extractor's prediction, and the offsets move it away from the offset-free deck."""
    sysm = example_system()
    spec = HardwareSpec(R0_ohm=1e4)
    rz = _realise(sysm, spec, opamp="TL072", auto_cap=True)
    rz0 = _realise(sysm, spec, opamp="TL072", auto_cap=True, offsets=False)
    x = solve_op(Deck.from_compiled(rz), cli_backend)
    x_pred = np.array(rz.meta["predicted"]["x_dc"])
    assert np.linalg.norm(x - x_pred) / np.linalg.norm(x_pred) < 1e-6
    ref = sysm.solution()
    e = np.linalg.norm(x - ref) / np.linalg.norm(ref)
    e0 = rz0.report["rel_error_x"]
    assert e > 3 * e0, (e, e0)
    assert "vos_eint0" in rz.deck_text() and "spu_tl072" in rz.deck_text()


def test_macromodel_clips_at_rails_and_current(cli_backend):
    """An inverting amplifier of gain −3 with 10 V in: the output stops at the part's swing;
    with a 100 Ω load (and the 3 kΩ feedback) it stops at the 40 mA current limit."""
    from spu_circuits.backends import Op
    from spu_circuits.compiler.opamps import macromodel_lines

    part = get_part("TL072")
    i_lim = part.i_out_A
    for load, want in ((1e6, part.swing_V[0]), (100.0, -i_lim / (1 / 100.0 + 1 / 3000.0))):
        deck = "\n".join(["clip test", *macromodel_lines(part), "vin in 0 5",
                          "r1 in s 1000", "r2 s o 3000", f"rl o 0 {load}",
                          "x1 0 s o spu_tl072", ".op", ".end"]) + "\n"
        v = float(cli_backend.run(deck, Op()).vectors["o"][0])
        assert v == pytest.approx(want, rel=0.04), (load, v)


def test_erc_gbw_old_recipe_names_gbw_and_the_cap(tmp_path):
    """The README's old recipe at C = 1 nF: an ERC error naming GBW and the C that passes;
    without --cap the compiler picks that C and says so."""
    sysm = example_system()
    np.save(tmp_path / "A.npy", sysm.A)
    np.save(tmp_path / "b.npy", sysm.b)
    args = ["compile", "--matrix", str(tmp_path / "A.npy"), "--rhs", str(tmp_path / "b.npy"),
            "--name", "spu8", "--realize", "e96", "--tolerance", "1%", "--gbw", "10MHz",
            "--vsat", "10", "--compensate"]
    r = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "a"), "--cap", "1nF"])
    assert r.exit_code == 2
    assert "ERC gbw" in r.output and "GBW 1e+07 Hz" in r.output and "--cap 82nF" in r.output
    r = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "b"), "--r0", "10k"])
    assert r.exit_code == 0, r.output
    assert "C raised from 1e-09 F to" in r.output and "GBW 1e+07 Hz" in r.output
    assert not (tmp_path / "a").exists()


def test_erc_current_and_power():
    sysm = example_system()
    with pytest.raises(ErcError, match=r"ERC current: op-amp eint\d+ must drive .* mA"):
        _realise(sysm, opamp="TL072", auto_cap=True)
    with pytest.raises(ErcError, match=r"ERC power: resistor ra\d+_\d+ .* dissipates .* mW"):
        _realise(sysm, v_sat=10.0, gbw_hz=1e7, opamp_gain=1e5, auto_cap=True)


def test_erc_swing():
    """--vsat above the part's own swing: v0 is sized for rails the part cannot reach."""
    part = get_part("OPA192")
    with pytest.raises(ErcError, match=r"ERC swing: op-amp e\w+ output \w+ reaches .* outside"):
        _realise(example_system(), HardwareSpec(R0_ohm=1e5), opamp="OPA192",
                 v_sat=3 * part.v_sat, auto_cap=True)


def test_large_dense_deck_warns():
    from spu_circuits.compiler.erc import size_warning

    w = size_warning(80, "dense", 100.0)
    assert w is not None and "N = 80 > 64" in w.message and "per τ" in w.message
    assert size_warning(64, "dense") is None and size_warning(200, "factored") is None


@pytest.fixture(scope="module")
def budgets():  # ~1 min: two realisations and budgets with ngspice
    """12×12, cond 200, exact values, compensated: TL072 vs OPA189 (budgets with ngspice)."""
    from spu_circuits.budget import error_budget

    sysm = spd_system(12, 200.0, 3)
    spec = HardwareSpec(R0_ohm=2e4)
    out = {}
    for part in ("TL072", "OPA189"):
        rz = _realise(sysm, spec, opamp=part, auto_cap=True, compensate=True)
        out[part] = error_budget(Deck.from_compiled(rz), spice=True, spice_terms=False,
                                 backend="cli")
    return out


@pytest.mark.slow
def test_budget_offsets_dominate_tl072_and_opa189_cuts_10x(budgets):
    tl, opa = budgets["TL072"], budgets["OPA189"]
    assert tl.dominant == "V_os", tl.table()
    assert opa.total_dc * 10 <= tl.total_dc, (opa.total_dc, tl.total_dc)
    for b in (tl, opa):
        # the budget's total against the full ngspice run (DC and at t)
        assert 0.5 <= b.total_dc / b.spice_total_dc <= 2.0, b.table()
        assert 0.5 <= b.total_at_t / b.spice_total_at_t <= 2.0, b.table()


def test_validate_max_error_fails_mc_deck(tmp_path):
    """16×16, cond 100, 1 % parts, MC seed 1: dc passes the deck's own threshold but fails
    the spec --max-error 1e-3."""
    sysm = spd_system(16, 100.0, 5)
    np.save(tmp_path / "A.npy", sysm.A)
    np.save(tmp_path / "b.npy", sysm.b)
    r = CliRunner().invoke(main, [
        "compile", "--matrix", str(tmp_path / "A.npy"), "--rhs", str(tmp_path / "b.npy"),
        "--out", str(tmp_path), "--name", "s16", "--realize", "e96", "--tolerance", "1%",
        "--mc-seed", "1", "--r0", "10k", "--gbw", "10MHz", "--vsat", "10", "--compensate"])
    assert r.exit_code == 0, r.output
    deck = str(tmp_path / "s16.cir")
    ok = CliRunner().invoke(main, ["validate", deck, "--report", str(tmp_path / "r1"),
                                   "--checks", "dc", "--backend", "cli"])
    assert ok.exit_code == 0, ok.output
    bad = CliRunner().invoke(main, ["validate", deck, "--report", str(tmp_path / "r2"),
                                    "--checks", "dc", "--backend", "cli", "--max-error",
                                    "1e-3"])
    assert bad.exit_code == 1, bad.output
    assert "the spec --max-error 0.001" in (tmp_path / "r2" / "report.md").read_text()


def test_validate_refuses_more_noise_than_sized(tmp_path):
    rz = _realise(example_system(), HardwareSpec(R0_ohm=1e4), opamp="OPA192", auto_cap=True,
                  kappa0_swing=0.001)
    path = rz.write(tmp_path, "d")
    r = CliRunner().invoke(main, ["validate", str(path), "--report", str(tmp_path / "r"),
                                  "--checks", "dc", "--kappa0", "0.01"])
    assert r.exit_code == 2 and "sized (v0, ERC) for kappa0 = 0.001" in r.output, r.output


def test_wilson_interval():
    from spu_circuits.board_yield import wilson

    lo, hi = wilson(180, 200)
    assert lo < 0.9 < hi and hi - lo < 0.1
    assert wilson(0, 10)[0] == 0.0 and wilson(10, 10)[1] == pytest.approx(1.0)


def test_calibration_cancels_offsets(cli_backend):
    """A TL072 board (exact values, nominal offsets +3 mV everywhere): the measured offset
    trims, written into the sidecar and applied by solve_op, cut the error ≥ 10×; the trims
    are what the measurement says (J⁻¹x₀), not read from the deck."""
    from spu_circuits.calibrate import calibrate_deck

    sysm = example_system()
    rz = _realise(sysm, HardwareSpec(R0_ohm=1e4), opamp="TL072", auto_cap=True,
                  compensate=True)
    deck = Deck.from_compiled(rz)
    ref = sysm.solution()
    before = np.linalg.norm(solve_op(deck, cli_backend) - ref) / np.linalg.norm(ref)
    meta = calibrate_deck(deck, backend=cli_backend)
    assert meta["calibration"]["runs"] == sysm.n + 1
    after = np.linalg.norm(solve_op(Deck(deck.text, meta), cli_backend) - ref) / \
        np.linalg.norm(ref)
    assert before > 5e-4 and after * 10 <= before, (before, after)


def test_user_opamp_model_runs_in_ngspice(tmp_path, cli_backend):
    """A vendor-style 5-pin model written for the test (gain 1e6 behind 10 Ω, supplies
    unused): inlined, wrapped, and the deck's .op matches the catalogue-figure prediction
    (OPA192: V_os and I_b sources beside each op-amp; the model itself has no offsets)."""
    lib = tmp_path / "vendor.lib"
    lib.write_text("* test vendor model\n.subckt myamp inp inn vcc vee out\n"
                   "e1 mid 0 inp inn 1e6\nr1 mid out 10\nrq vcc vee 1e6\n.ends myamp\n")
    sysm = example_system()
    rz = _realise(sysm, HardwareSpec(R0_ohm=1e4), opamp="OPA192", auto_cap=True,
                  opamp_model=f"{lib}:myamp")
    text = rz.deck_text()
    assert ".subckt myamp inp inn vcc vee out" in text and "spu_user_myamp" in text
    x = solve_op(Deck.from_compiled(rz), cli_backend)
    ref = sysm.solution()
    assert np.linalg.norm(x - ref) / np.linalg.norm(ref) < 1e-3


@pytest.mark.slow
@pytest.mark.parametrize("tol,want", [(0.001, "OPA192"), (0.01, "TL072")])
def test_opamp_auto_picks_what_the_errors_need(tol, want):
    """12×12, cond 200, E96 + trims: with 1 % parts the TL072's offsets (2.2e-3) are small
    beside the tolerance error, with 0.1 % parts they are not and the choice moves on."""
    rz = _realise(spd_system(12, 200.0, 3), HardwareSpec(R0_ohm=2e4), series="e96",
                  tolerance=tol, opamp="auto", compensate=True, auto_cap=True)
    assert rz.meta["realization"]["opamp"]["part"] == want
    assert rz.meta["realization"]["opamp_choice"].startswith(f"--opamp auto chose {want}")


def test_bom_lists_the_part_and_package_not_the_offset_sources():
    from spu_circuits.bom import bom_rows

    rz = _realise(example_system(), HardwareSpec(R0_ohm=1e4), opamp="OPA192", auto_cap=True)
    rows = bom_rows(rz)
    ops = [r for r in rows if r["part"] == "op-amp"]
    assert len(ops) == 1 and ops[0]["count"] == 16 and ops[0]["value"].startswith("OPA192")
    assert all("0603 0.1 W" in r["value"] for r in rows if r["part"] == "resistor")
    assert sum(r["count"] for r in rows if r["part"] == "voltage source") == 8  # bias DACs
    assert not [r for r in rows if r["part"] == "current source"]


def test_dac_bits_quantise_the_bias_and_enter_the_budget():
    from spu_circuits.budget import error_budget

    rz = _realise(example_system(), HardwareSpec(R0_ohm=1e4), opamp="OPA192", auto_cap=True,
                  dac_bits=8)
    lsb = 2 * get_part("OPA192").v_sat / 2 ** 8
    vb = [e.value for e in rz.netlist.elements if e.name.startswith("vb")]
    assert vb and all(abs(v / lsb - round(v / lsb)) < 1e-9 for v in vb)
    b = error_budget(Deck.from_compiled(rz), spice=False)
    term = {t.name: t for t in b.terms}["bias-DAC bits"]
    assert term.dc > 1e-4 and "8 bits" in term.note


def test_bias_dac_inl_term_is_linear_in_the_bound_and_off_at_zero():
    """The INL term: an endpoint-fit bow per DAC, the same draws for any bound, so its error
    scales exactly with the bound (the circuit is linear); 0 LSB removes it; without DAC bits
    there is none. Checked against the bow computed by hand for one DAC."""
    from spu_circuits.budget import dac_inl, error_budget

    rz = _realise(example_system(), HardwareSpec(R0_ohm=1e4), opamp="OPA192", auto_cap=True,
                  dac_bits=8)
    deck = Deck.from_compiled(rz)
    terms = {k: {t.name: t for t in error_budget(deck, spice=False, dac_inl_lsb=k).terms}
             for k in (0.0, 1.0, 2.0)}
    assert "bias-DAC INL" not in terms[0.0]
    one, two = terms[1.0]["bias-DAC INL"], terms[2.0]["bias-DAC INL"]
    assert one.dc > 0 and two.dc / one.dc == pytest.approx(2.0, rel=1e-6)
    assert "±1 LSB" in one.note and "RMS of 8 draws" in one.note
    v_sat = get_part("OPA192").v_sat
    lsb = 2 * v_sat / 2 ** 8
    got = dac_inl(rz.netlist, v_sat, lsb, 1.0, 0, 0)
    e = next(e for e in rz.netlist.elements if e.name.startswith("vb"))
    eps = np.random.default_rng([0, 0, 1]).uniform(-1.0, 1.0, len(got))[0]
    c = (e.value + v_sat) / (2 * v_sat)
    assert got[e.name] - e.value == pytest.approx(eps * lsb * 4 * c * (1 - c), rel=1e-12)
    rz0 = _realise(example_system(), HardwareSpec(R0_ohm=1e4), opamp="OPA192", auto_cap=True)
    names = {t.name for t in error_budget(Deck.from_compiled(rz0), spice=False).terms}
    assert "bias-DAC INL" not in names and "bias-DAC bits" not in names


def test_budget_cli_dac_inl_needs_dac_bits():
    """spu budget --dac-inl on a deck without DAC bits says why no INL term appears; with
    --dac-bits the term is listed with the bound given."""
    from pathlib import Path

    deck = str(Path(__file__).resolve().parents[1] / "validation" / "hardware" / "spu8_tl072"
               / "spu8.cir")
    r = CliRunner().invoke(main, ["budget", deck, "--dac-inl", "2", "--no-spice"])
    assert r.exit_code == 0, r.output
    assert "no INL term; give --dac-bits B" in r.output and "bias-DAC INL" not in r.output
    r = CliRunner().invoke(main, ["budget", deck, "--dac-inl", "2", "--dac-bits", "12",
                                  "--no-spice"])
    assert r.exit_code == 0, r.output
    assert "| bias-DAC INL |" in r.output and "±2 LSB" in r.output
