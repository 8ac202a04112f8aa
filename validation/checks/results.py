"""The outcome of one check (:class:`CheckResult`) and its JSON form."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


@dataclass
class CheckResult:
    """Outcome of one check.

    metrics: every headline number (floats); thresholds: the limits, keyed like the metrics
    they bound (a check passes when every bounded metric is ≤ its threshold); details: one
    paragraph; figures: PNG file names (filled in by the report); arrays: per-entry numbers
    for report.json (z-scores, estimates, theory); raw: large arrays for the plots only.
    """

    name: str
    passed: bool
    metrics: dict[str, float] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)
    details: str = ""
    figures: list[str] = field(default_factory=list)
    seconds: float = 0.0
    arrays: dict = field(default_factory=dict, repr=False)
    raw: dict = field(default_factory=dict, repr=False)

    @property
    def headline(self) -> tuple[str, float, float | None]:
        """(metric name, value, threshold) of the bounded metric closest to failing."""
        bounded = [(k, self.metrics[k], t) for k, t in self.thresholds.items()
                   if k in self.metrics]
        if not bounded:
            k, v = next(iter(self.metrics.items()), ("-", float("nan")))
            return k, v, None
        return max(bounded, key=lambda r: r[1] / r[2] if r[2] > 0 else math.inf)

    def to_dict(self) -> dict:
        return {"name": self.name, "passed": bool(self.passed),
                "metrics": {k: _num(v) for k, v in self.metrics.items()},
                "thresholds": {k: _num(v) for k, v in self.thresholds.items()},
                "details": self.details, "figures": list(self.figures),
                "seconds": round(self.seconds, 3), "arrays": jsonable(self.arrays)}


def _num(v):
    if isinstance(v, bool | str) or v is None:
        return v
    v = float(v)
    return v if math.isfinite(v) else str(v)


def jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return jsonable(obj.item())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else str(obj)
    return obj


def verdict(name: str, metrics: dict, thresholds: dict, details: str, **kw) -> CheckResult:
    passed = all(metrics[k] <= t for k, t in thresholds.items())
    return CheckResult(name, passed, metrics, thresholds, details, **kw)
