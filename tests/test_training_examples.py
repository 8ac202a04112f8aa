"""The examples/ scripts run (tiny sizes, few steps) and their loss decreases."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

pytestmark = pytest.mark.filterwarnings(
    "ignore:`torch.jit.script` is deprecated:DeprecationWarning"
)


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"examples_{name}", EXAMPLES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("name, kwargs", [
    ("custom_loss", {}),
    ("dict_batchnorm_dropout", {}),
    ("lora_transformer", {}),
    ("scheduler", {}),
    ("scheduler", {"preconditioned": True}),
])
def test_example_loss_decreases(name, kwargs):
    losses = _load(name).main(steps=12, batch=16, quiet=True, **kwargs)
    assert len(losses) == 12
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < 0.8 * first, (first, last)
