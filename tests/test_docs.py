"""Generated documentation is current."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_error_table_is_current():
    spec = importlib.util.spec_from_file_location("gen", ROOT / "scripts" / "gen_error_table.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert (ROOT / "docs" / "errors.md").read_text() == mod.render(), (
        "docs/errors.md is stale: run python scripts/gen_error_table.py")
