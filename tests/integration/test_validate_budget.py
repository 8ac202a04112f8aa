"""The error-budget section of `spu validate`'s report (validation/budget_section.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from spu_circuits.budget import error_budget
from spu_circuits.simulate import Deck
from spu_tngd.cli import main

ROOT = Path(__file__).resolve().parents[2]
REALISED = ROOT / "validation" / "hardware" / "spu8_tl072" / "spu8.cir"
IDEAL = ROOT / "netlists" / "spu8_ideal.cir"


def _validate(deck: Path, out: Path, *extra: str):
    r = CliRunner().invoke(main, ["validate", str(deck), "--report", str(out), "--checks",
                                  "dc", "--quick", "--backend", "cli", *extra])
    return r, (json.loads((out / "report.json").read_text()) if (out / "report.json").exists()
               else None)


def test_realised_deck_report_carries_the_budget_of_spu_budget(tmp_path):
    r, doc = _validate(REALISED, tmp_path / "r", "--max-error", "1e-5")
    # the budget never changes a verdict: dc fails on the spec, not on the budget
    assert r.exit_code == 1, r.output
    sec = doc["budget"]
    assert sec["computed"] and sec["max_error"] == 1e-5
    want = error_budget(Deck.load(REALISED), spice=True, backend="cli")
    got = sec["budget"]
    assert got["dominant"] == want.dominant == "resistor tolerance"
    assert got["total_dc"] == pytest.approx(want.total_dc, rel=1e-9)
    assert got["spice_total_dc"] == pytest.approx(want.spice_total_dc, rel=1e-6)
    assert {t["name"] for t in got["terms"]} == {t.name for t in want.terms}
    # every term alone was checked by ngspice .op where spu budget checks it
    for t, w in zip(got["terms"], want.terms, strict=True):
        assert (t["spice_dc"] is None) == (w.spice_dc is None)
    assert sec["within_spec"] == {"dc": False, "at_t": False}
    md = (tmp_path / "r" / "report.md").read_text()
    assert "## Error budget" in md and "Dominant term: **resistor tolerance**" in md
    assert (tmp_path / "r" / "budget.png").stat().st_size > 1000
    assert "error budget: all on" in r.output and "DC ABOVE" in r.output


def test_ideal_deck_says_why_it_has_no_budget_and_no_budget_skips_it(tmp_path):
    r, doc = _validate(IDEAL, tmp_path / "a")
    assert r.exit_code == 0, r.output
    assert doc["budget"]["computed"] is False and "not realised" in doc["budget"]["note"]
    assert "Not computed: the deck is not realised" in (tmp_path / "a" / "report.md").read_text()
    r, doc = _validate(REALISED, tmp_path / "b", "--no-budget")
    assert r.exit_code == 0, r.output
    assert "budget" not in doc and not (tmp_path / "b" / "budget.png").exists()
