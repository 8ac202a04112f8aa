"""What a new user meets first (#10 item 9): the README's commands, a foreign deck on the
default back-end, its waveforms, file modes, unwritable outputs, CSV input."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from spu_circuits.backends._shared_worker import harmless
from spu_circuits.netlist import atomic_write
from spu_circuits.system import load_system
from spu_tngd.cli import main
from tests.conftest import HAVE_NGSPICE

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()

#: the deck of the issue: a PULSE source whose DC value (1 V) differs from its t = 0 value
FOREIGN_RC = ("foreign rc\nV1 in 0 DC 1 PULSE(0 1 0 1u 1u 1m 2m)\nR1 in out 1k\nC1 out 0 1u\n"
              ".tran 1u 5m\n.end\n")
needs_ngspice = pytest.mark.skipif(not HAVE_NGSPICE, reason="ngspice is not installed")


def _spu(args, cwd: Path):
    old = os.getcwd()
    os.chdir(cwd)
    try:
        return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    finally:
        os.chdir(old)


# ------------------------------------------------------------------------- the README


def _readme_commands() -> list[list[str]]:
    """Every spu/tngd/python command line of the README's ```sh blocks (continuations
    joined)."""
    out = []
    for block in re.findall(r"```sh\n(.*?)```", README, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("#")[0].strip()
            for part in line.split("&&"):
                toks = shlex.split(part.strip()) if part.strip() else []
                if toks and toks[0] in ("spu", "tngd", "python"):
                    out.append(toks)
    return out


def test_readme_says_how_to_run_the_commands_after_make_demo():
    assert ". .venv/bin/activate" in README and ".venv/bin/spu" in README


def test_readme_examples_write_under_out():
    cmds = _readme_commands()
    assert len(cmds) >= 8
    for toks in cmds:
        for opt in ("--out", "--save", "--report"):
            if opt in toks:
                dest = toks[toks.index(opt) + 1]
                # regenerating committed results writes where they are committed
                assert dest == "out" or dest.startswith(("out/", "netlists", "validation/")), toks
        for path in re.findall(r"np\.save\('([^']+)'", " ".join(toks)):
            assert path.startswith("out/"), toks


def test_readme_spice_training_uses_the_demo_settings():
    from tngd import demo

    spice = [t for t in _readme_commands() if t[:2] == ["tngd", "train"] and "spice" in t]
    assert len(spice) == 1
    t = spice[0]
    opt = {t[k]: t[k + 1] for k in range(len(t) - 1) if t[k].startswith("--")}
    lr = {solver: lr for _, _, solver, lr in demo.RUNS}["spice"]
    assert float(opt["--lr"]) == lr and opt["--optimizer"] == "tngd"
    assert float(opt["--damping"]) == 0.01 and float(opt["--t"]) == 50.0
    assert int(opt["--batch-size"]) == 32 and int(opt["--n-pca"]) == 4


# ------------------------------------------------------------------------- a foreign deck


def test_ngspice_notes_are_harmless_errors_are_not():
    note = "Note: v1: dc value used for op instead of transient time=0 value."
    assert harmless([note], ["No. of Data Rows : 5039"])
    assert harmless(["Warning: something", ""], [])
    assert not harmless([note, "Error: unknown subckt: x1"], [])
    assert not harmless([note], ["Error on line 3"])


@needs_ngspice
@pytest.mark.parametrize("backend", ["shared", "cli"])
def test_foreign_deck_tran_prints_and_saves_waveforms(tmp_path, backend):
    (tmp_path / "rc.cir").write_text(FOREIGN_RC)
    res = _spu(["simulate", "rc.cir", "--analysis", "tran", "--backend", backend,
                "--save", "out/w.npz"], tmp_path)
    assert res.exit_code == 0, res.output
    assert "no sidecar, so --t-stop 0.005 and --dt 1e-06 are seconds" in res.output
    rows = [ln.split() for ln in res.output.splitlines() if re.match(r"^\s+[0-9.e-]+\s", ln)]
    assert len(rows) == 11 and float(rows[-1][0]) == pytest.approx(5e-3)
    with np.load(tmp_path / "out" / "w.npz") as z:
        t, v_out, v_in = z["time"], z["out"], z["in"]
    assert t[-1] == pytest.approx(5e-3) and len(t) > 1000
    # RC = 1 ms driven by a 1 V pulse, period 2 ms: out rises towards 1 V while in = 1 V
    k = np.searchsorted(t, 0.999e-3)
    assert v_in[k] == pytest.approx(1.0) and v_out[k] == pytest.approx(1 - np.exp(-1), abs=2e-3)
    assert (tmp_path / "out" / "w.npz").stat().st_mode & 0o777 == 0o666 & ~_umask()


@needs_ngspice
def test_foreign_deck_op_on_the_shared_backend(tmp_path):
    (tmp_path / "rc.cir").write_text(FOREIGN_RC)
    res = _spu(["simulate", "rc.cir"], tmp_path)
    assert res.exit_code == 0, res.output
    assert re.search(r"out = +1\b", res.output)


def test_foreign_deck_without_tran_needs_times(tmp_path):
    (tmp_path / "r.cir").write_text("t\nv1 a 0 1\nr1 a 0 1k\n.op\n.end\n")
    res = _spu(["simulate", "r.cir", "--analysis", "tran"], tmp_path)
    assert res.exit_code == 2
    assert "no sidecar and no .tran card: give --t-stop and --dt in seconds" in res.output


# ------------------------------------------------------------------------- files


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_atomic_write_keeps_the_umask_mode(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write({tmp_path / "a.txt": "x", tmp_path / "b.bin": b"y"})
        assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644
        assert (tmp_path / "b.bin").stat().st_mode & 0o777 == 0o644
        os.chmod(tmp_path / "a.txt", 0o600)  # an existing file keeps its own mode
        atomic_write({tmp_path / "a.txt": "z"})
        assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o600
        os.umask(0o077)
        atomic_write({tmp_path / "c.txt": "x"})
        assert (tmp_path / "c.txt").stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(old)


def test_compiled_files_are_0644_under_umask_022(tmp_path):
    np.save(tmp_path / "A.npy", np.array([[2.0, -0.5], [-0.5, 1.0]]))
    old = os.umask(0o022)
    try:
        res = _spu(["compile", "--matrix", "A.npy", "--out", "out", "--realize", "e96"],
                   tmp_path)
    finally:
        os.umask(old)
    assert res.exit_code == 0, res.output
    files = sorted((tmp_path / "out").iterdir())
    assert [f.name for f in files] == ["A.cir", "A.json", "A_bom.csv", "A_designators.csv"]
    assert all(f.stat().st_mode & 0o777 == 0o644 for f in files)


def _blocker(tmp_path: Path) -> Path:
    (tmp_path / "afile").write_text("not a folder")
    return tmp_path / "afile" / "sub"


def test_unwritable_out_is_exit_2_before_any_work(tmp_path):
    np.save(tmp_path / "A.npy", np.eye(2))
    res = _spu(["compile", "--matrix", "missing.npy", "--out", _blocker(tmp_path)], tmp_path)
    assert res.exit_code == 2  # the output is checked first: before the missing matrix
    assert "--out" in res.output and "is a file, not a folder" in res.output


def test_unwritable_report_is_exit_2_before_any_check(tmp_path):
    np.save(tmp_path / "A.npy", np.eye(2))
    res = _spu(["validate", "--matrix", "A.npy", "--report", _blocker(tmp_path)], tmp_path)
    assert res.exit_code == 2, res.output
    assert "--report" in res.output and "is a file, not a folder" in res.output
    assert "compiled" not in res.output and "validating" not in res.output
    assert not list(tmp_path.glob("**/*.cir"))


def test_unwritable_save_is_exit_2_before_simulating(tmp_path):
    (tmp_path / "rc.cir").write_text(FOREIGN_RC)
    res = _spu(["simulate", "rc.cir", "--save", _blocker(tmp_path) / "w.npz"], tmp_path)
    assert res.exit_code == 2 and "--save" in res.output


# ------------------------------------------------------------------------- input formats


def test_matrix_loads_from_csv_and_txt(tmp_path):
    A = np.array([[2.0, -0.5], [-0.5, 1.0]])
    np.savetxt(tmp_path / "A.csv", A, delimiter=",")
    np.savetxt(tmp_path / "A.txt", A)
    np.savetxt(tmp_path / "b.csv", [1.0, 0.25], delimiter=",")
    s1 = load_system(tmp_path / "A.csv", tmp_path / "b.csv")
    s2 = load_system(tmp_path / "A.txt")
    assert np.array_equal(s1.A, A) and np.array_equal(s2.A, A)
    assert np.array_equal(s1.b, [1.0, 0.25])
    res = _spu(["compile", "--matrix", "A.csv", "--rhs", "b.csv", "--out", "out"], tmp_path)
    assert res.exit_code == 0, res.output
