"""The checks by name (``spu validate --checks``), in the report's order."""

from __future__ import annotations

from collections.abc import Callable

from validation.checks.context import Validation
from validation.checks.dc import check_dc
from validation.checks.pathwise import check_pathwise
from validation.checks.results import CheckResult
from validation.checks.statistical import check_statistical
from validation.checks.surrogate import check_surrogate
from validation.checks.transient import check_transient

#: the name each check is run by, in the report's order
CHECKS: dict[str, Callable[[Validation], CheckResult]] = {
    "dc": check_dc,
    "transient": check_transient,
    "pathwise": check_pathwise,
    "statistical": check_statistical,
    "surrogate": check_surrogate,
}


def checks_for(topology: str | None) -> dict[str, Callable[[Validation], CheckResult]]:
    """The checks that apply to a deck of `topology` (second-order decks have their own)."""
    if topology == "oscillator":
        from validation.checks.oscillator import OSCILLATOR_CHECKS

        return OSCILLATOR_CHECKS
    return CHECKS
