"""Validation suite acceptance: surrogate ⇄ SPICE ⇄ exact target, fault detection, reports, CLI.

TRNOISE cannot be seeded (ngspice 39 seeds it from the process), so the statistical checks
see fresh noise on every run; their thresholds are Bonferroni t-quantiles at a family-wise
false-alarm probability of 1e-3 per check (calibrated on the surrogate: default plan 0 false
alarms in 200 checks at N = 8; the quick plan is used here only at N = 32, 0 in 80). Everything
else is seeded.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from spu_circuits.compiler import compile_system
from spu_circuits.compiler.noise import NoiseSpec
from spu_circuits.simulate import Deck
from spu_circuits.spec import HardwareSpec
from spu_circuits.system import LinearSystem

from ..conftest import HAVE_NGSPICE, make_system, needs_ngspice

pytestmark = needs_ngspice

#: noise step the tests compile with (the validator's own default: 0.2/λ_max)
STEP_FRAC = 0.2
#: a resistor range wide enough that no coupling is pruned: the deck realises A exactly
WIDE = HardwareSpec(r_max_ohm=1e13)


@pytest.fixture(scope="module")
def be():
    if not HAVE_NGSPICE:
        pytest.skip("ngspice is not installed")
    from spu_circuits.backends import get_backend

    backend = get_backend("shared", timeout_s=300)
    yield backend
    backend.close()


def write_deck(tmp_path: Path, system: LinearSystem, topology: str, kappa0: float,
               name: str = "spu") -> Path:
    lam_max = float(np.linalg.eigvalsh(system.A)[-1])
    compiled = compile_system(system, topology, WIDE, name=name,
                              noise=NoiseSpec("trnoise", kappa0, step_tau=STEP_FRAC / lam_max))
    assert compiled.meta["pruning"]["pairs_dropped"] == 0
    return compiled.write(tmp_path, name)


def visible_coupling(A: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    """The off-diagonal coupling (i, j) whose change moves the force balance most:
    a change ΔA_ij shifts the residual A x̄ − b by ΔA_ij·x_j in row i."""
    x = np.linalg.solve(A, b)
    W = np.abs(A * x[None, :])
    np.fill_diagonal(W, 0.0)
    i, j = np.unravel_index(np.argmax(W), W.shape)
    return int(i), int(j)


def fault_factor(topology: str) -> float:
    """×1.2 on a dense resistor R0/|A_ij| divides A_ij by 1.2; on an ideal VCCS (siemens)
    it multiplies A_ij by 1.2."""
    return 1 / 1.2 if topology == "dense" else 1.2


def edit_coupling(deck: Path, topology: str, i: int, j: int, factor: float = 1.2) -> None:
    """Multiply the value of element ra{i}_{j} (dense) / g{i}_{j} (ideal) in the deck text."""
    name = f"ra{i}_{j}" if topology == "dense" else f"g{i}_{j}"
    lines = deck.read_text().splitlines()
    hits = 0
    for k, line in enumerate(lines):
        tok = line.split()
        if tok and tok[0].lower() == name:
            tok[-1] = repr(float(tok[-1]) * factor)
            lines[k] = " ".join(tok)
            hits += 1
    assert hits == 1, f"element {name} not found once in {deck}"
    deck.write_text("\n".join(lines) + "\n")


def expected_fault_z(A, b, i, j, topology, kappa0, t_total) -> float:
    """Expected residual z-score of the fault: |ΔA_ij x'_j| / sqrt(2κ₀/T)."""
    Ap = A.copy()
    Ap[i, j] *= fault_factor(topology)
    xp = np.linalg.solve(Ap, b)
    return abs((A[i, j] - Ap[i, j]) * xp[j]) / np.sqrt(2 * kappa0 / t_total)


def validate(path: Path, be, checks, preset="default", **kw):
    from validation.checks import Validation, settings_for

    deck = Deck.load(path, check_digest=False)
    with Validation(deck, settings=settings_for(preset), backend=be, **kw) as v:
        results = {r.name: r for r in v.run(checks)}
        return v, results


# ----------------------------------------------------------------------------- pathwise


@pytest.mark.parametrize("n,cond,topology", [(8, 10.0, "dense"), (32, 4.0, "dense")])
def test_pathwise_rms_within_5_percent(tmp_path, be, n, cond, topology):
    system = make_system(n, cond, seed=n)
    path = write_deck(tmp_path, system, topology, 1e-2)
    _, res = validate(path, be, ["pathwise"])
    r = res["pathwise"]
    print(f"pathwise N={n} {topology}: rms {r.metrics['rms diff / SD']:.3e} SD")
    assert r.thresholds["rms diff / SD"] == 0.05
    assert r.passed, r.details


# ----------------------------------------------------------------------------- statistics

STAT_CASES = [(3, 10.0, "dense", "default"), (8, 10.0, "dense", "default"),
              pytest.param(32, 4.0, "ideal", "quick", marks=pytest.mark.slow)]


@pytest.mark.parametrize("kappa0", [1e-3, 1e-1])
@pytest.mark.parametrize("n,cond,topology,preset", STAT_CASES)
def test_statistics_pass(tmp_path, be, n, cond, topology, preset, kappa0):
    system = make_system(n, cond, seed=n)
    path = write_deck(tmp_path, system, topology, kappa0)
    _, res = validate(path, be, ["statistical", "surrogate"], preset=preset)
    for name in ("statistical", "surrogate"):
        r = res[name]
        print(f"{name} N={n} κ0={kappa0:g}: " + ", ".join(
            f"{k} {v:.2f}/{r.thresholds[k]:.2f}" for k, v in r.metrics.items()
            if k in r.thresholds))
        assert r.passed, r.details
    st = res["statistical"].raw["stats"]
    # the batch-means SE agrees with the long-run theory SE of the mean (batches ≈ independent)
    assert 0.6 < st["se_ratio_mean"] < 1.6


FAULT_CASES = [(8, 10.0, "dense", 1e-3, 8, "default"),
               (8, 10.0, "dense", 1e-1, 2, "default"),
               pytest.param(32, 4.0, "ideal", 1e-3, 32, "quick", marks=pytest.mark.slow)]


@pytest.mark.parametrize("n,cond,topology,kappa0,seed,preset", FAULT_CASES)
def test_changed_coupling_is_detected(tmp_path, be, n, cond, topology, kappa0, seed, preset):
    system = make_system(n, cond, seed=seed)
    A, b = np.array(system.A), np.array(system.b)
    path = write_deck(tmp_path, system, topology, kappa0)
    i, j = visible_coupling(A, b)
    edit_coupling(path, topology, i, j)
    v, res = validate(path, be, ["dc", "transient", "statistical", "surrogate"], preset=preset)
    assert v.edited
    t_total = v.plan.chains * v.plan.chain_duration
    z_exp = expected_fault_z(A, b, i, j, topology, kappa0, t_total)
    st = res["statistical"]
    crit = st.thresholds["max|z| residual"]
    # the case is meaningful: the expected signal is well above the detection threshold
    assert z_exp > 1.8 * crit
    print(f"fault N={n} {topology} κ0={kappa0:g} coupling ({i},{j}): expected residual z "
          f"{z_exp:.1f}, measured max|z| residual {st.metrics['max|z| residual']:.1f}, mean "
          f"{st.metrics['max|z| mean']:.1f} (threshold {crit:.2f}); dc error "
          f"{res['dc'].metrics['rel. error vs A^-1 b']:.3g} (threshold "
          f"{res['dc'].thresholds['rel. error vs A^-1 b']:.3g})")
    assert not res["dc"].passed
    assert not res["transient"].passed
    assert not st.passed
    assert st.metrics["max|z| residual"] > crit
    assert res["surrogate"].passed  # the surrogate follows the sidecar's system, unchanged


# ----------------------------------------------------------------------------- report


def test_report_files(tmp_path, be):
    from validation.report import write_report

    system = make_system(3, 10.0, seed=3)
    path = write_deck(tmp_path / "deck", system, "dense", 1e-2)
    v, res = validate(path, be, None)
    info = v.describe() | {"deck": str(path)}
    paths = write_report(tmp_path / "rep", list(res.values()), info)
    doc = json.loads(paths["json"].read_text())
    assert doc["passed"] is True, [c["details"] for c in doc["checks"] if not c["passed"]]
    assert [c["name"] for c in doc["checks"]] == ["dc", "transient", "pathwise", "statistical",
                                                  "surrogate"]
    assert len(doc["checks"][3]["arrays"]["z_mean"]) == 3
    md = paths["md"].read_text()
    assert "| check | result | metric | value | threshold |" in md
    for fig in ("pathwise.png", "transient.png", "histograms.png", "covariance.png",
                "autocov.png"):
        f = tmp_path / "rep" / fig
        assert f.exists() and 5_000 < f.stat().st_size < 150_000, fig
        assert f"]({fig})" in md


# ----------------------------------------------------------------------------- CLI


def _cli(args):
    from spu_tngd.cli import main

    return CliRunner().invoke(main, args, catch_exceptions=False)


def test_cli_compile_and_validate(tmp_path):
    system = make_system(3, 10.0, seed=3)
    np.save(tmp_path / "A.npy", np.array(system.A))
    np.save(tmp_path / "b.npy", np.array(system.b))
    res = _cli(["validate", "--matrix", str(tmp_path / "A.npy"), "--rhs",
                str(tmp_path / "b.npy"), "--topology", "ideal", "--kappa0", "0.01",
                "--report", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output
    assert "PASS: 5/5" in res.output
    assert (tmp_path / "rep" / "report.md").exists()
    assert (tmp_path / "rep" / "A.cir").exists()


def test_cli_fault_exits_1(tmp_path):
    system = make_system(3, 10.0, seed=5)
    path = write_deck(tmp_path, system, "dense", 1e-3)
    i, j = visible_coupling(np.array(system.A), np.array(system.b))
    edit_coupling(path, "dense", i, j)
    res = _cli(["validate", str(path), "--report", str(tmp_path / "rep"), "--quick",
                "--checks", "dc,statistical", "--backend", "cli"])
    assert res.exit_code == 1, res.output
    assert "differs from what was compiled" in res.output
    assert "FAIL" in res.output
    doc = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert doc["passed"] is False
    assert doc["info"]["deck_edited"] is True


def test_cli_bad_input_exits_2(tmp_path):
    system = make_system(3, 10.0, seed=3)
    path = write_deck(tmp_path, system, "dense", 1e-3)
    rep = str(tmp_path / "rep")
    cases = [
        ["validate", "--report", rep],                                      # nothing to check
        ["validate", "--matrix", str(tmp_path / "missing.npy"), "--report", rep],
        ["validate", str(tmp_path / "missing.cir"), "--report", rep],
        ["validate", str(path), "--report", rep, "--quick", "--thorough"],
        ["validate", str(path), "--report", rep, "--rhs", str(tmp_path / "b.npy")],
        ["validate", str(path), "--report", rep, "--checks", "dc,nonsense"],
        ["validate", str(path), "--report", rep, "--r0", "2000"],
        ["validate", str(path), "--report", rep, "--kappa0", "-1"],
    ]
    for args in cases:
        res = _cli(args)
        assert res.exit_code == 2, (args, res.output)
        assert "Traceback" not in res.output
    np.save(tmp_path / "A4.npy", np.eye(4))
    res = _cli(["validate", str(path), "--report", rep, "--matrix", str(tmp_path / "A4.npy")])
    assert res.exit_code == 2 and "N = 4" in res.output
    (tmp_path / "nosidecar.cir").write_text("t\nr1 a 0 1\n.end\n")
    res = _cli(["validate", str(tmp_path / "nosidecar.cir"), "--report", rep])
    assert res.exit_code == 2 and "sidecar" in res.output
