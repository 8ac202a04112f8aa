"""`spu compile` hardware options: --realize/--tolerance/--compensate/--bom and --tiles."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from click.testing import CliRunner

from spu_circuits.cli import main

from ..conftest import make_system, needs_ngspice


@pytest.fixture
def files(tmp_path):
    system = make_system(12, 20.0, seed=3)
    np.save(tmp_path / "A.npy", system.A)
    np.save(tmp_path / "b.npy", system.b)
    return tmp_path, system


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@needs_ngspice
def test_realize_writes_bom_and_reports(files):
    tmp, system = files
    r = run("compile", "--matrix", tmp / "A.npy", "--rhs", tmp / "b.npy", "--out", tmp / "hw",
            "--name", "r", "--realize", "e96", "--tolerance", "1%", "--compensate")
    assert r.exit_code == 0, r.output
    assert "compensation: |A_eff - A|/|A|" in r.output
    meta = json.loads((tmp / "hw" / "r.json").read_text())
    rep = meta["realization"]
    assert rep["compensation"]["rel_error_A_after"] < rep["compensation"]["rel_error_A_before"]
    rows = list(csv.DictReader((tmp / "hw" / "r_bom.csv").open()))
    assert any(row["series"] == "E96" for row in rows)
    r = run("simulate", tmp / "hw" / "r.cir", "--backend", "cli")
    assert r.exit_code == 0, r.output
    assert "relative error vs A^-1 b" in r.output


@needs_ngspice
def test_tiles_reproduce_untiled_solution(files):
    tmp, system = files
    assert run("compile", "--matrix", tmp / "A.npy", "--rhs", tmp / "b.npy", "--out",
               tmp / "u", "--name", "u").exit_code == 0
    r = run("compile", "--matrix", tmp / "A.npy", "--rhs", tmp / "b.npy", "--out", tmp / "t",
            "--name", "t", "--tiles", "4")
    assert r.exit_code == 0, r.output
    assert "tiles: 3 of <= 4 cells" in r.output
    xs = {}
    for name in ("u", "t"):
        r = run("simulate", tmp / name / f"{name}.cir", "--save", tmp / f"{name}.npz")
        assert r.exit_code == 0, r.output
        xs[name] = np.load(tmp / f"{name}.npz")["x"]
    assert np.linalg.norm(xs["t"] - xs["u"]) / np.linalg.norm(xs["u"]) < 1e-12


def test_bad_hardware_option_combinations(files):
    tmp, _ = files
    base = ["compile", "--matrix", tmp / "A.npy", "--out", tmp / "x"]
    r = run(*base, "--block-jacobi")
    assert r.exit_code == 2 and "--block-jacobi needs --tiles K" in r.output
    r = run(*base[:-1], tmp / "rt", "--tiles", "4", "--realize", "e96")  # combined now
    assert r.exit_code == 0, r.output
    r = run(*base, "--tiles", "0")
    assert r.exit_code == 2 and "--tiles must be ≥ 1" in r.output
    assert not (tmp / "x").exists()
