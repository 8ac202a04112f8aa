"""The error-budget section of `spu validate`'s report (realised decks).

`budget_section(deck, ...)` runs `spu_circuits.budget.error_budget` on the deck being
validated: each non-ideality alone by the extractor, the total (all on) by the extractor and
by ngspice (.op and a noiseless transient to t = 3/λ_min τ, the transient check's horizon;
each term alone is also checked by an ngspice .op, as in `spu budget`). It never changes a check's
verdict; with `--max-error E` it says whether the budget's totals are within E. A deck that
is not realised (ideal elements, no parts) has no budget: the section says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from spu_circuits.budget import Budget, bar_chart, error_budget
from spu_circuits.errors import InputError
from spu_circuits.simulate import Deck
from spu_circuits.system import LinearSystem

FIGURE = "budget.png"


@dataclass(frozen=True)
class BudgetSection:
    """budget: the deck's error budget (None: not computed, `note` says why); max_error:
    the spec given to validate (None: none)."""

    budget: Budget | None
    note: str
    max_error: float | None = None

    def totals(self) -> tuple[float, float] | None:
        """(DC, at t) relative error of the deck as built: ngspice's where it ran, else the
        extractor's; None without a budget."""
        if self.budget is None:
            return None
        b = self.budget
        return (b.spice_total_dc if b.spice_total_dc is not None else b.total_dc,
                b.spice_total_at_t if b.spice_total_at_t is not None else b.total_at_t)

    @property
    def within_spec(self) -> dict[str, bool] | None:
        """{"dc": …, "at_t": …}: whether each total is within max_error; None without a spec
        or a budget."""
        tot = self.totals()
        if tot is None or self.max_error is None:
            return None
        return {"dc": tot[0] <= self.max_error, "at_t": tot[1] <= self.max_error}

    def verdict(self) -> str:
        """One line: the totals, the dominant term and the spec (empty without a budget)."""
        tot = self.totals()
        if tot is None:
            return ""
        line = (f"error budget: all on {tot[0]:.3g} at DC, {tot[1]:.3g} at t = "
                f"{self.budget.t_tau:.3g} τ; dominant term {self.budget.dominant}")
        ok = self.within_spec
        if ok is not None:
            line += (f"; spec {self.max_error:g}: DC {'within' if ok['dc'] else 'ABOVE'}, "
                     f"at t {'within' if ok['at_t'] else 'ABOVE'}")
        return line

    def to_json(self) -> dict:
        return {"computed": self.budget is not None, "note": self.note,
                "max_error": self.max_error, "within_spec": self.within_spec,
                **({"budget": self.budget.to_json()} if self.budget is not None else {})}

    def markdown(self, figure: str | None) -> list[str]:
        out = ["## Error budget", ""]
        if self.budget is None:
            return out + [f"Not computed: {self.note}", ""]
        b = self.budget
        out += [self.note, "", b.table(), "",
                f"Dominant term: **{b.dominant}** (run time t = {b.t_tau:.3g} τ; effective "
                f"physical κ₀ = {b.kappa0_physical:.3g})."]
        ok = self.within_spec
        if ok is not None:
            dc, at_t = self.totals()
            out.append(f"Against the spec --max-error {self.max_error:g}, the deck as built "
                       f"(ngspice, all on): {dc:.3g} at DC ("
                       f"{'within' if ok['dc'] else '**above**'}), {at_t:.3g} at t ("
                       f"{'within' if ok['at_t'] else '**above**'}; against the ideal "
                       "circuit's x(t)).")
        out.append("")
        if figure:
            out += [f"![{figure}]({figure})", ""]
        return out

    def write_figure(self, out_dir: Path) -> str | None:
        """budget.png in out_dir (None without a budget)."""
        if self.budget is None:
            return None
        bar_chart(self.budget, Path(out_dir) / FIGURE)
        return FIGURE


def budget_section(deck: Deck, target: LinearSystem | None, *, backend: str,
                   timeout_s: float, max_error: float | None,
                   log: Callable[[str], None] = lambda _msg: None) -> BudgetSection:
    """The section for `deck` against `target` (None: the sidecar's system)."""
    side = deck.need_sidecar()
    if side.realization is None:
        return BudgetSection(None, "the deck is not realised (ideal elements): compile it "
                                   "with --realize or --opamp for a budget of its parts",
                             max_error)
    log("error budget: each non-ideality alone (extractor, checked by ngspice .op), the "
        "total in ngspice")
    try:
        b = error_budget(deck, system=target, spice=True, spice_terms=True,
                         backend=backend, timeout_s=timeout_s)
    except InputError as exc:
        return BudgetSection(None, str(exc), max_error)
    note = ("Each non-ideality alone, everything else ideal, by the independent extractor and "
            "by an ngspice .op of the same variant; the total with all of them on, by the "
            "extractor and by ngspice (.op, and a noiseless transient from x₀ = 0 to t). "
            "Informational: it does not change any check's verdict.")
    return BudgetSection(b, note, max_error)
