"""The noise source given as a current noise density and a band (issue 11 item 7):
`--noise-density 30nA/rtHz --noise-bandwidth 1MHz` → κ₀ and the noise step, the deck's
source carries that density, the BOM names the reference circuit, the budget lists it."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from spu_circuits.budget import INJECTED, error_budget
from spu_circuits.cli import main
from spu_circuits.compiler.noise_density import noise_source, parse_density
from spu_circuits.errors import InputError
from spu_circuits.parser import extract_system, parse_deck
from spu_circuits.simulate import Deck

from .conftest import make_system


def test_parse_density_units():
    assert parse_density("1.2pA/rtHz") == pytest.approx(1.2e-12, rel=1e-12)
    assert parse_density("30 nA/√Hz") == pytest.approx(3e-8, rel=1e-12)
    assert parse_density("5fA/sqrt(Hz)") == pytest.approx(5e-15, rel=1e-12)
    for bad in ("1.2pA", "1.2/rtHz", "-1pA/rtHz"):
        with pytest.raises(InputError):
            parse_density(bad)


def test_kappa0_by_hand():
    # i_n = 2 pA/rtHz, R0 = 10k, tau = 1 ms, alpha = 0.5, v0 = 2 V:
    # kappa0 = i_n^2 R0^2 / (4 tau alpha^2 v0^2) = 4e-24 * 1e8 / (4e-3 * 0.25 * 4) = 1e-13
    src = noise_source(2e-12, 1e6, tau_s=1e-3, alpha=0.5, v0_V=2.0, R0_ohm=1e4,
                       lambda_max=10.0)
    assert src.kappa0 == pytest.approx(1e-13, rel=1e-12)
    assert src.step_tau == pytest.approx(1.0 / (2e6 * 1e-3), rel=1e-12)
    assert src.min_bandwidth_Hz == pytest.approx(10.0 / (2 * 0.05 * 1e-3), rel=1e-12)


@pytest.fixture
def noisy_deck(tmp_path):
    system = make_system(8, 20.0, seed=3)
    np.save(tmp_path / "A.npy", system.A)
    np.save(tmp_path / "b.npy", system.b)
    r = CliRunner().invoke(main, [str(a) for a in (
        "compile", "--matrix", tmp_path / "A.npy", "--rhs", tmp_path / "b.npy",
        "--noise-density", "30nA/rtHz", "--noise-bandwidth", "1MHz", "--noise-duration", "2",
        "--realize", "e96", "--opamp", "TL072", "--r0", "10k", "--out", tmp_path / "d",
        "--name", "n")])
    assert r.exit_code == 0, r.output
    assert "means kappa0 =" in r.output
    return tmp_path / "d", system


def test_deck_source_has_the_density(noisy_deck):
    out, system = noisy_deck
    side = json.loads((out / "n.json").read_text())
    nz = side["noise"]
    # the deck's samples: amplitude a every NT, one-sided density a*sqrt(2 NT), band 1/(2NT)
    assert nz["amplitude_A"] * math.sqrt(2 * nz["step_s"]) == pytest.approx(3e-8, rel=1e-9)
    assert 1.0 / (2 * nz["step_s"]) == pytest.approx(1e6, rel=1e-9)
    src = side["noise_source"]
    assert nz["kappa0"] == pytest.approx(src["kappa0"], rel=1e-12)
    # BOM: the noise source's row is the reference circuit
    rows = list(csv.DictReader((out / "n_bom.csv").open()))
    noise = [r for r in rows if r["part"] == "noise source"]
    assert noise and "seeded pseudo-random DAC" in noise[0]["value"]


def test_budget_lists_the_injected_source(noisy_deck):
    out, system = noisy_deck
    b = error_budget(Deck.load(out / "n.cir"), spice=False)
    term = next(t for t in b.terms if t.name == INJECTED)
    k0 = json.loads((out / "n.json").read_text())["noise_source"]["kappa0"]
    # stationary covariance of the OU process for a symmetric A: kappa0 A^-1
    x = system.solution()
    want = math.sqrt(k0 * np.trace(np.linalg.inv(system.A))) / np.linalg.norm(x)
    assert term.dc == pytest.approx(want, rel=1e-6)
    assert "3e-08 A/rtHz" in term.note
    others = [t for t in b.terms if t.name != INJECTED]
    assert b.rss_dc == pytest.approx(math.sqrt(sum(t.dc ** 2 for t in others)), rel=1e-12)


def test_cli_noise_density_bad_inputs(tmp_path):
    np.save(tmp_path / "A.npy", make_system(4, 5.0).A)
    base = ["compile", "--matrix", str(tmp_path / "A.npy"), "--out", str(tmp_path / "x")]
    cases = [(["--noise-density", "1pA/rtHz"], "go together"),
             (["--noise-density", "1pA", "--noise-bandwidth", "1GHz"], "with its unit"),
             (["--noise-density", "1pA/rtHz", "--noise-bandwidth", "1"], "has no unit"),
             (["--noise-density", "1pA/rtHz", "--noise-bandwidth", "1kHz"],
              "does not cover the circuit"),
             (["--noise-density", "1pA/rtHz", "--noise-bandwidth", "1GHz", "--kappa0", "0.1"],
              "drop --kappa0")]
    for extra, msg in cases:
        r = CliRunner().invoke(main, base + extra)
        assert r.exit_code == 2 and msg in r.output, (extra, r.output)
    assert not (tmp_path / "x").exists()


def test_extractor_reads_the_kappa0_the_density_means(tmp_path):
    """An unrealised dense deck (the extractor needs one capacitor per output): the
    independent nodal analysis of the deck's noise sources gives the κ₀ the density means."""
    system = make_system(6, 20.0, seed=3)
    np.save(tmp_path / "A.npy", system.A)
    r = CliRunner().invoke(main, [str(a) for a in (
        "compile", "--matrix", tmp_path / "A.npy", "--r0", "10k", "--noise-density",
        "1.2pA/rtHz", "--noise-bandwidth", "20MHz", "--noise-duration", "1",
        "--out", tmp_path / "d", "--name", "n")])
    assert r.exit_code == 0, r.output
    out = tmp_path / "d"
    side = json.loads((out / "n.json").read_text())
    nz, src = side["noise"], side["noise_source"]
    assert nz["amplitude_A"] * math.sqrt(2 * nz["step_s"]) == pytest.approx(1.2e-12, rel=1e-9)
    deck = parse_deck((out / "n.cir").read_text())
    ex = extract_system(deck, outputs=side["outputs"], volts_per_unit=side["volts_per_unit"],
                        deck_dir=out, noise_step_s=nz["step_s"])
    k_ex = ex.as_system(side["tau_s"]).kappa0
    print(f"1.2 pA/rtHz to 20 MHz: kappa0 {src['kappa0']:.6g}, extractor rel. diff "
          f"{np.max(np.abs(k_ex / src['kappa0'] - 1)):.3g}")
    # the finite op-amp gain (A0 = 1e5 default) moves the extracted figure by ~1e-5
    assert np.allclose(k_ex, src["kappa0"], rtol=1e-4)
