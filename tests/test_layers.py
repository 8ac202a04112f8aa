"""The layers (#10): spu_circuits imports neither torch, nor tngd, nor validation; the command
lines import without cycles. (`make test` also runs the import-linter contracts of
pyproject.toml: `lint-imports`.)"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_BLOCKER = """
import importlib.abc, sys

class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ImportError(f"blocked for this test: {{name}}")
        return None

sys.meta_path.insert(0, Blocker())
"""


def _run(code: str) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def test_every_spu_circuits_module_imports_without_torch_tngd_validation():
    code = _BLOCKER.format(blocked=["torch", "tngd", "validation"]) + """
import importlib, pkgutil
import spu_circuits
names = sorted(m.name for m in pkgutil.walk_packages(spu_circuits.__path__, "spu_circuits."))
for name in names:
    importlib.import_module(name)
print(len(names))
"""
    res = _run(code)
    assert res.returncode == 0, res.stderr
    assert int(res.stdout.split()[-1]) >= 30  # the walk found the package's modules


def test_the_blocker_blocks():
    """The meta-path blocker above does stop a torch import (so the test above can fail)."""
    res = _run(_BLOCKER.format(blocked=["torch"]) + "import torch\n")
    assert res.returncode != 0 and "blocked for this test: torch" in res.stderr


def test_validation_cli_imports_in_a_fresh_interpreter():
    res = _run("import validation.cli\nimport spu_tngd.cli\nimport tngd.cli\nprint('ok')\n")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "ok"


def test_spu_command_line_has_every_command():
    res = _run("from spu_tngd.cli import main\nprint(sorted(main.commands))\n")
    assert res.returncode == 0, res.stderr
    assert {'compile', 'simulate', 'validate'} <= set(eval(res.stdout))  # noqa: S307


def test_moved_example_builder_still_imports_from_its_old_path():
    """spu_circuits.examples.digits_fisher_system moved to tngd.examples (torch); the old path
    resolves it lazily, with a DeprecationWarning, and importing the module stays torch-free
    (the first test above)."""
    res = _run("""
import warnings
warnings.simplefilter("error", DeprecationWarning)
import spu_circuits.examples as ex
import sys
assert "torch" not in sys.modules
try:
    from spu_circuits.examples import digits_fisher_system
except DeprecationWarning as w:
    print("warned:", w)
warnings.simplefilter("ignore", DeprecationWarning)
from spu_circuits.examples import digits_fisher_system
import tngd.examples
print(digits_fisher_system is tngd.examples.digits_fisher_system)
""")
    assert res.returncode == 0, res.stderr
    assert "warned: spu_circuits.examples.digits_fisher_system moved to tngd.examples" in res.stdout
    assert res.stdout.strip().endswith("True")
