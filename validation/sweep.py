"""`spu validate --sweep`: the validation checks over many decks and seeds, as one sweep.

Each task carries its deck's text, its sidecar and the noise files beside it (nothing goes
through a shared file system) and returns plain data, so the sweep runs anywhere the
execution layer (`spu_circuits.execution`) sends it: serially, on a local Dask cluster, or on
a remote Dask scheduler. Results come back in task order; the summary file
(`sweep.json`) is byte-identical for the same decks, checks and seeds wherever it ran, as long
as the checks are seeded (`dc`, `transient`, `pathwise`: file noise; the `statistical` check
uses TRNOISE, which ngspice seeds from its process id, so its numbers differ between runs).
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from spu_circuits.errors import InputError
from spu_circuits.execution import parse_seeds, require_ngspice
from spu_circuits.sidecar import Sidecar

#: checks whose numbers are reproducible from the seed (see the module docstring)
SEEDED_CHECKS = ("dc", "transient", "pathwise")


@dataclass(frozen=True)
class ValidateTask:
    """One (deck, seed) cell of a sweep. files: the deck's companions (name → bytes),
    e.g. its noise files; checks: the check names to run; preset: quick/default/thorough."""

    deck_name: str
    deck_text: str
    sidecar_text: str
    files: tuple[tuple[str, bytes], ...]
    seed: int
    checks: tuple[str, ...]
    preset: str = "quick"
    timeout_s: float = 600.0


@dataclass(frozen=True)
class CheckSummary:
    """A check's verdict and its bounded headline number (NaN when it has none)."""

    name: str
    passed: bool
    metric: str
    value: float
    threshold: float


@dataclass(frozen=True)
class ValidateSummary:
    deck_name: str
    seed: int
    passed: bool
    checks: tuple[CheckSummary, ...]


def task_for_deck(deck_path: str | Path, seed: int, checks: tuple[str, ...],
                  preset: str = "quick", timeout_s: float = 600.0) -> ValidateTask:
    """Read a deck, its sidecar and the files its sidecar names into a task."""
    deck_path = Path(deck_path)
    side = deck_path.with_suffix(".json")
    if not deck_path.is_file():
        raise InputError(f"deck not found: {deck_path}")
    if not side.is_file():
        raise InputError(f"{deck_path} has no sidecar {side.name}: a sweep needs the sidecar")
    side_text = side.read_text()
    noise = Sidecar.loads(side_text, f"sidecar {side}").noise
    files = []
    for name in noise.files or ():  # the noise files the sidecar names, beside the deck
        p = deck_path.parent / name
        if not p.is_file():
            raise InputError(f"noise file {p} named by {side.name} is missing")
        files.append((name, p.read_bytes()))
    return ValidateTask(deck_path.stem, deck_path.read_text(), side_text, tuple(files),
                        seed, tuple(checks), preset, timeout_s)


def _finite(x: float) -> float:
    return float(x) if x is not None and math.isfinite(float(x)) else float("nan")


def validate_task(task: ValidateTask) -> ValidateSummary:
    """Run the checks of one task in a private folder; plain data back."""
    from spu_circuits.simulate import Deck

    from .checks import Validation, settings_for

    require_ngspice()
    with tempfile.TemporaryDirectory(prefix="spu-sweep-") as tmp:
        d = Path(tmp)
        deck_path = d / f"{task.deck_name}.cir"
        deck_path.write_text(task.deck_text)
        deck_path.with_suffix(".json").write_text(task.sidecar_text)
        for name, content in task.files:
            (d / name).write_bytes(content)
        deck = Deck.load(deck_path, require_sidecar=True, check_digest=False)
        settings = settings_for(task.preset, seed=task.seed)
        with Validation(deck, settings=settings, backend="cli",
                        timeout_s=task.timeout_s) as v:
            results = v.run(list(task.checks))
    out = []
    for r in results:
        name, value, thr = r.headline
        out.append(CheckSummary(r.name, bool(r.passed), str(name), _finite(value),
                                _finite(thr if thr is not None else float("nan"))))
    return ValidateSummary(task.deck_name, task.seed, all(c.passed for c in out), tuple(out))


def summaries_json(summaries: list[ValidateSummary | None], tasks: list[ValidateTask],
                   scheduler: str) -> str:
    """The sweep file: one row per task, in task order (deterministic text)."""
    rows = []
    for t, s in zip(tasks, summaries, strict=True):
        rows.append({"deck": t.deck_name, "seed": t.seed,
                     "result": None if s is None else asdict(s)})
    doc = {"format": "spu-tngd-validate-sweep/1", "tasks": len(tasks),
           "passed": sum(1 for s in summaries if s is not None and s.passed),
           "failed_to_run": sum(1 for s in summaries if s is None), "rows": rows}
    del scheduler  # where it ran does not enter the result file (byte-identical anywhere)
    return json.dumps(doc, indent=2, allow_nan=True, sort_keys=False) + "\n"


def sweep_markdown(summaries: list[ValidateSummary | None], tasks: list[ValidateTask],
                   failures_text: list[str]) -> str:
    names = list(dict.fromkeys(c for t in tasks for c in t.checks))
    lines = ["# Validation sweep", "",
             f"{len(tasks)} runs; {sum(1 for s in summaries if s and s.passed)} passed every "
             "check.", "", "| deck | seed | " + " | ".join(names) + " |",
             "|---|---|" + "---|" * len(names)]
    for t, s in zip(tasks, summaries, strict=True):
        cells = []
        for n in names:
            c = next((c for c in (s.checks if s else ()) if c.name == n), None)
            cells.append("not run" if c is None else
                         f"{'pass' if c.passed else 'FAIL'} ({c.metric} {c.value:.3g})")
        lines.append(f"| {t.deck_name} | {t.seed} | " + " | ".join(cells) + " |")
    if failures_text:
        lines += ["", "## Runs that failed", ""] + [f"- {f}" for f in failures_text]
    return "\n".join(lines) + "\n"


def plot_sweep(summaries: list[ValidateSummary | None], tasks: list[ValidateTask],
               path: Path) -> None:
    """Pass/fail grid (rows: deck × seed, columns: checks) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = list(dict.fromkeys(c for t in tasks for c in t.checks))
    grid = np.full((len(tasks), len(names)), np.nan)
    for i, s in enumerate(summaries):
        for c in (s.checks if s else ()):
            grid[i, names.index(c.name)] = 1.0 if c.passed else 0.0
    fig, ax = plt.subplots(figsize=(1.2 + 1.1 * len(names), 0.8 + 0.28 * len(tasks)))
    ax.imshow(grid, cmap="RdYlGn", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(names)), names)
    ax.set_yticks(range(len(tasks)), [f"{t.deck_name} s{t.seed}" for t in tasks], fontsize=7)
    ax.set_title("validation sweep: green pass, red fail, white not run", fontsize=9)
    fig.tight_layout()
    from spu_circuits.figures import png_bytes
    from spu_circuits.netlist import atomic_write

    atomic_write({path: png_bytes(fig, dpi=90)})


def run_validate_sweep(decks: list[str], seeds: str, checks: tuple[str, ...], preset: str,
                       scheduler: str, report_dir: Path, timeout_s: float,
                       cache_dir: Path | None, echo) -> bool:
    """`spu validate --sweep`: every deck × seed; writes sweep.json, sweep.md, sweep.png."""
    from spu_circuits.execution import parse_scheduler, run_sweep
    from spu_circuits.netlist import atomic_write

    sched = parse_scheduler(scheduler)
    seed_list = parse_seeds(seeds)
    if not decks:
        raise InputError("--sweep needs one or more DECK.cir files")
    tasks = [task_for_deck(d, s, checks, preset, timeout_s) for d in decks for s in seed_list]
    echo(f"validation sweep: {len(decks)} deck(s) × {len(seed_list)} seed(s) = {len(tasks)} "
         f"runs of {','.join(checks)} on {sched.describe()}")
    out = run_sweep(validate_task, tasks, scheduler=sched, desc="validate",
                    cache_dir=cache_dir)
    fails = [f.describe() for f in out.failures]
    for f in fails:
        echo(f"run failed: {f}")
    report_dir.mkdir(parents=True, exist_ok=True)
    atomic_write({report_dir / "sweep.json": summaries_json(out.results, tasks, out.scheduler),
                  report_dir / "sweep.md": sweep_markdown(out.results, tasks, fails)})
    plot_sweep(out.results, tasks, report_dir / "sweep.png")
    n_ok = sum(1 for s in out.results if s is not None and s.passed)
    echo(f"{'PASS' if n_ok == len(tasks) else 'FAIL'}: {n_ok}/{len(tasks)} runs passed every "
         f"check; report {report_dir / 'sweep.md'}")
    return n_ok == len(tasks)
