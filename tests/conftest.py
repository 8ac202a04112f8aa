"""Shared fixtures: random SPD systems and a check for ngspice."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from spu_circuits.system import LinearSystem, random_spd

# two pytest workers on a 2-core machine: one torch thread each avoids oversubscription
torch.set_num_threads(1)

HAVE_NGSPICE = shutil.which("ngspice") is not None
needs_ngspice = pytest.mark.skipif(not HAVE_NGSPICE, reason="ngspice is not installed")


def make_system(n: int, cond: float, seed: int = 0) -> LinearSystem:
    """A random SPD system with eigenvalues in [1, cond] and a random right-hand side."""
    A = random_spd(n, cond, seed)
    b = np.random.default_rng(seed + 1000).standard_normal(n)
    return LinearSystem.from_arrays(A, b, name=f"rand{n}")


@pytest.fixture(scope="session")
def shared_backend():
    from spu_circuits.backends import get_backend

    be = get_backend("shared", timeout_s=120)
    yield be
    be.close()


@pytest.fixture(scope="session")
def cli_backend():
    from spu_circuits.backends import get_backend

    return get_backend("cli", timeout_s=120)


@pytest.fixture(params=["cli", "shared"])
def backend(request, shared_backend, cli_backend):
    if not HAVE_NGSPICE:
        pytest.skip("ngspice is not installed")
    return shared_backend if request.param == "shared" else cli_backend


@pytest.fixture(scope="module")
def backends():
    """A fresh cli/shared pair per module, apart from the session's: the fault and safety
    tests kill workers and run hostile decks."""
    from spu_circuits.backends import get_backend

    bes = {"cli": get_backend("cli", timeout_s=30), "shared": get_backend("shared", timeout_s=30)}
    yield bes
    for be in bes.values():
        be.close()


_INTEGRATION = Path(__file__).resolve().parent / "integration"
_BACKEND_FIXTURES = {"backend", "cli_backend", "shared_backend", "backends"}


def _runs_ngspice(item: pytest.Item) -> bool:
    """Under tests/integration/, or asks for a back-end, or is skipped without ngspice."""
    if _INTEGRATION in Path(str(item.path)).resolve().parents:
        return True
    if _BACKEND_FIXTURES & set(getattr(item, "fixturenames", ())):
        return True
    return any(m is needs_ngspice.mark for m in item.iter_markers("skipif"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Auto-mark `ngspice` (declared in pyproject.toml): `pytest -m "not ngspice"` is the unit
    part alone."""
    for item in items:
        if _runs_ngspice(item):
            item.add_marker(pytest.mark.ngspice)
