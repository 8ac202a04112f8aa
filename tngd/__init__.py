"""TNGD: thermodynamic natural gradient descent for torch (``from tngd import TNGD``).

The names below are imported on first use, so ``import tngd.data`` stays light.
"""

from __future__ import annotations

from typing import Any

__all__ = ["NGD", "TNGD", "SizeLimits", "TNGDPreconditioner"]

_HOME = {"NGD": "tngd.optimizer", "TNGD": "tngd.optimizer",
         "TNGDPreconditioner": "tngd.preconditioner", "SizeLimits": "tngd.limits"}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        import importlib

        return getattr(importlib.import_module(_HOME[name]), name)
    raise AttributeError(f"module 'tngd' has no attribute {name!r}")
