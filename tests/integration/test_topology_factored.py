"""Factored topology: F̃ = SᵀS + λI compiled with transimpedance stages and two arrays."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from spu_circuits.compiler import compile_system
from spu_circuits.errors import CompileError, InputError
from spu_circuits.simulate import Deck, interp_at, solve_op, transient
from spu_circuits.spec import HardwareSpec
from spu_circuits.system import FactoredSystem

from ..conftest import needs_ngspice


def make_factored(r: int, n: int, lam: float = 0.1, seed: int = 0) -> FactoredSystem:
    rng = np.random.default_rng(seed)
    return FactoredSystem.from_arrays(rng.standard_normal((r, n)) / np.sqrt(n), lam,
                                      rng.standard_normal(n))


def test_factored_element_counts():
    fs = make_factored(4, 10)
    c = compile_system(fs, "factored")
    counts = c.meta["element_counts"]
    # 2·r·N array resistors + per variable (inverter 2, bias 1, damping 1) + per stage 3
    assert counts["resistor"] == 2 * 4 * 10 + 10 * 4 + 4 * 3
    assert counts["vcvs"] == 2 * 10 + 2 * 4
    assert c.meta["system"]["damping"] == 0.1


@needs_ngspice
@pytest.mark.parametrize("gain", [1e6, 1e9])
def test_factored_op_solves_damped_system(gain, backend):
    fs = make_factored(4, 10, seed=1)
    c = compile_system(fs, "factored", HardwareSpec(opamp_gain=gain))
    x = solve_op(Deck.from_compiled(c), backend)
    xs = fs.solution()
    err = np.linalg.norm(x - xs) / np.linalg.norm(xs)
    # the deviation is finite gain alone: predicted by nodal analysis of the netlist
    assert err == pytest.approx(c.meta["predicted"]["rel_deviation_from_exact"], rel=1e-4)
    assert err < 100 * fs.condition_number() / gain


@needs_ngspice
def test_factored_transient_matches_mean_trajectory(cli_backend):
    fs = make_factored(3, 8, lam=0.2, seed=2)
    c = compile_system(fs, "factored", HardwareSpec(opamp_gain=1e9))
    x0 = np.random.default_rng(3).standard_normal(8)
    u, X = transient(Deck.from_compiled(c), x0, 3.0, 0.05, backend=cli_backend)
    xs, A = fs.solution(), fs.A
    for t, got in zip([0.5, 1.0, 3.0], interp_at(u, X, [0.5, 1.0, 3.0]), strict=True):
        exact = xs + scipy.linalg.expm(-A * t) @ (x0 - xs)
        assert np.linalg.norm(got - exact) / np.linalg.norm(x0 - xs) < 1e-4


def test_factored_same_system_as_dense():
    fs = make_factored(3, 6, seed=4)
    cd = compile_system(fs, "dense", HardwareSpec(r_max_ohm=1e13))
    assert np.allclose(np.array(cd.meta["system"]["A"]), fs.A, rtol=0, atol=1e-14)


def test_factored_input_errors():
    with pytest.raises(InputError, match="damping λ must be a finite number > 0"):
        FactoredSystem.from_arrays(np.ones((2, 3)), 0.0)
    with pytest.raises(InputError, match="S has 1 non-finite"):
        FactoredSystem.from_arrays(np.array([[1.0, np.nan]]), 0.1)
    with pytest.raises(InputError, match="needs F̃ = SᵀS"):
        from spu_circuits.system import LinearSystem

        compile_system(LinearSystem.from_arrays(np.eye(2)), "factored")
    with pytest.raises(CompileError, match="at any scale"):
        compile_system(FactoredSystem.from_arrays(np.array([[1e4, 5e3]]), 1e-4), "factored",
                       HardwareSpec(auto_prune=False, r_max_ohm=1e5))


def test_factored_cli(tmp_path):
    from click.testing import CliRunner

    from spu_circuits.cli import main

    fs = make_factored(2, 5)
    np.save(tmp_path / "S.npy", fs.S)
    np.save(tmp_path / "g.npy", fs.b)
    r = CliRunner().invoke(main, ["compile", "--factor", str(tmp_path / "S.npy"), "--damping",
                                  "0.1", "--rhs", str(tmp_path / "g.npy"), "--out",
                                  str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    assert "factored, N = 5" in r.output
    r = CliRunner().invoke(main, ["compile", "--factor", str(tmp_path / "S.npy"), "--out",
                                  str(tmp_path / "o")])
    assert r.exit_code == 2 and "--factor needs --damping" in r.output
