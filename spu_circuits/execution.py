"""One execution layer for embarrassingly parallel sweeps (Monte-Carlo boards, validation
grids, experiment grids), on Dask distributed.

`run_sweep(fn, tasks, scheduler=...)` applies a picklable top-level function `fn` to each
task and returns the results **in task order**, whatever the order of completion, so a sweep
whose tasks carry their own seeds gives the same results serially, on a local cluster or on a
remote one. Tasks are pure functions of their inputs (deck text, seeds, settings) returning
plain data; nothing travels through a shared file system.

Schedulers (`--scheduler`):
- `serial`: in this process, one task after the other (no Dask);
- `local` or `local:N`: a Dask `LocalCluster` of N single-threaded worker processes (default:
  the machine's cores), started for the sweep and closed after it;
- `tcp://HOST:PORT`: an existing Dask scheduler (`dask scheduler`; workers started with
  `dask worker tcp://HOST:PORT` on each machine, each with this package and ngspice
  installed).

A task that raises is reported (its error message, with the ngspice log lines of a
`SimulationError`) while the others finish; a worker that dies is replaced and its tasks are
retried by Dask. With `cache_dir`, each finished result is stored under a key derived from
(fn, task), so a sweep that crashed resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import re
import shutil
import socket
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import InputError, NgspiceNotFound, SimulationError, SpuError
from .netlist import atomic_write

#: how often Dask retries a task whose worker died (on top of the scheduler's own
#: `allowed-failures` for tasks that kill workers)
TASK_RETRIES = 2
#: how long a sweep on a remote scheduler waits for its first worker (s)
WORKER_WAIT_S = 60.0
#: how long connecting to a remote scheduler may take (s)
CONNECT_TIMEOUT_S = 10.0

#: thread-count variables set to 1 in local workers (one single-threaded process per core)
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

_TCP = re.compile(r"^tcp://[A-Za-z0-9_.\-\[\]:]+:\d{1,5}$")


@dataclass(frozen=True)
class Scheduler:
    """Where a sweep runs. kind: 'serial' | 'local' | 'remote'; workers: local worker count
    (None: all cores); address: the remote scheduler's tcp:// address."""

    kind: str
    workers: int | None = None
    address: str | None = None

    def describe(self) -> str:
        if self.kind == "serial":
            return "serial (this process)"
        if self.kind == "local":
            return f"Dask LocalCluster, {self.workers or os.cpu_count()} worker processes"
        return f"Dask scheduler at {self.address}"


def parse_scheduler(text: str | Scheduler | None) -> Scheduler:
    """Parse `serial`, `local`, `local:N` or `tcp://HOST:PORT` (None: `local`)."""
    if isinstance(text, Scheduler):
        return text
    text = (text or "local").strip()
    if text == "serial":
        return Scheduler("serial")
    if text == "local":
        return Scheduler("local")
    if text.startswith("local:"):
        n = text.split(":", 1)[1]
        if not n.isdigit() or int(n) < 1:
            raise InputError(f"--scheduler {text!r}: local:N needs a worker count N ≥ 1")
        return Scheduler("local", workers=int(n))
    if _TCP.match(text):
        return Scheduler("remote", address=text)
    raise InputError(f"--scheduler {text!r}: use serial, local, local:N or tcp://HOST:PORT")


def parse_seeds(text: str) -> tuple[int, ...]:
    """'0,1,5' or '0-9' (inclusive) or a mix: the seeds of a sweep."""
    seeds: list[int] = []
    for part in (p.strip() for p in str(text).split(",")):
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        try:
            if sep:
                a, b = int(lo), int(hi)
                if b < a:
                    raise ValueError
                seeds.extend(range(a, b + 1))
            else:
                seeds.append(int(part))
        except ValueError:
            raise InputError(f"--seeds {text!r}: give seeds as 0,1,2 or a range 0-9") from None
    if not seeds:
        raise InputError(f"--seeds {text!r}: no seed given")
    if any(s < 0 for s in seeds):
        raise InputError(f"--seeds {text!r}: seeds must be ≥ 0")
    return tuple(dict.fromkeys(seeds))


@dataclass(frozen=True)
class TaskFailure:
    """A task that raised: its index in the sweep, the one-line error and its details."""

    index: int
    error: str
    details: str = ""

    def describe(self) -> str:
        return f"task {self.index}: {self.details or self.error}"


@dataclass
class SweepOutcome:
    """Results in task order (None where a task failed) and the failures."""

    results: list[Any]
    failures: list[TaskFailure] = field(default_factory=list)
    scheduler: str = ""
    cached: int = 0

    @property
    def ok(self) -> bool:
        return not self.failures

    def values(self) -> list[Any]:
        """All results; raises a SimulationError naming every failed task if any failed."""
        if self.failures:
            lines = [f.describe() for f in self.failures]
            raise SimulationError(f"{len(self.failures)} of {len(self.results)} sweep tasks "
                                  f"failed; first: {self.failures[0].error}",
                                  "\n".join(lines))
        return list(self.results)


@dataclass(frozen=True)
class _Captured:
    """What a worker sends back: a result, or the error it raised (as text)."""

    value: Any = None
    error: str | None = None
    details: str = ""


def task_key(fn: Callable, task: Any) -> str:
    """sha256 of the function's import path and the pickled task: the cache key."""
    h = hashlib.sha256(f"{fn.__module__}.{fn.__qualname__}".encode())
    h.update(pickle.dumps(task, protocol=4))
    return h.hexdigest()


def require_ngspice() -> None:
    """Raise a clear error on a worker that has no ngspice CLI."""
    if shutil.which("ngspice") is None:
        raise NgspiceNotFound(f"ngspice is not installed on worker {socket.gethostname()} "
                              "(install ngspice libngspice0 libngspice0-dev there)")


def _call(fn: Callable, task: Any) -> _Captured:
    """Run one task, turning an expected failure into data (the sweep goes on)."""
    try:
        return _Captured(value=fn(task))
    except SimulationError as exc:
        return _Captured(error=str(exc), details=exc.details())
    except SpuError as exc:
        return _Captured(error=str(exc))
    except Exception as exc:  # noqa: BLE001 - a failing task must not end the sweep
        return _Captured(error=f"{type(exc).__name__}: {exc}")


#: without a terminal, a progress line at most this often (s), and one at the end
LOG_EVERY_S = 30.0


class _LogProgress:
    """Progress for a log file (stderr not a terminal): 'desc: k/N tasks done (t s)' lines,
    at most every LOG_EVERY_S seconds, and the last one when the sweep ends."""

    def __init__(self, total: int, desc: str):
        self.total, self.desc, self.done = total, desc, 0
        self.t0 = self.last = time.monotonic()

    def __enter__(self):
        return self

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.last >= LOG_EVERY_S:
            self.last = now
            self._line(now)

    def _line(self, now: float) -> None:
        print(f"{self.desc}: {self.done}/{self.total} tasks done ({now - self.t0:.0f} s)",
              file=sys.stderr, flush=True)

    def __exit__(self, *exc) -> None:
        if self.last != self.t0 or time.monotonic() - self.t0 >= LOG_EVERY_S:
            self._line(time.monotonic())


def _progress(total: int, desc: str, enabled: bool | None):
    """A tqdm bar (enabled True), nothing (False), or for None a bar on a terminal and
    progress lines in a log."""
    if enabled is None and not sys.stderr.isatty():
        return _LogProgress(total, desc)
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="task", disable=not enabled, file=sys.stderr,
                leave=False, dynamic_ncols=True)


def run_sweep(fn: Callable[[Any], Any], tasks: Sequence[Any], *,
              scheduler: str | Scheduler | None = "local", desc: str = "sweep",
              cache_dir: str | Path | None = None, progress: bool | None = None
              ) -> SweepOutcome:
    """Apply `fn` to every task; results in task order (see the module docstring).

    fn: a top-level (importable) function of one task; tasks: picklable inputs;
    cache_dir: keep each result as `<key>.pkl` there and reuse it on a rerun;
    progress: a tqdm bar on stderr (True), none (False); default: the bar on a terminal,
    else a progress line every LOG_EVERY_S seconds (long sweeps writing to a log).
    """
    sched = parse_scheduler(scheduler)
    tasks = list(tasks)
    if progress is None and sys.stderr.isatty():
        progress = True
    cache = Path(cache_dir) if cache_dir is not None else None
    keys = [task_key(fn, t) for t in tasks]
    captured: list[_Captured | None] = [None] * len(tasks)
    n_cached = 0
    if cache is not None:
        for i, k in enumerate(keys):
            path = cache / f"{k}.pkl"
            if path.exists():
                try:
                    captured[i] = pickle.loads(path.read_bytes())
                    n_cached += 1
                except Exception:  # noqa: BLE001 - a torn cache entry is recomputed
                    captured[i] = None
    todo = [i for i in range(len(tasks)) if captured[i] is None]

    def store(i: int, c: _Captured) -> None:
        captured[i] = c
        if cache is not None and c.error is None:
            atomic_write({cache / f"{keys[i]}.pkl": pickle.dumps(c, protocol=4)})

    if todo:
        with _progress(len(todo), desc, progress) as bar:
            if sched.kind == "serial":
                for i in todo:
                    store(i, _call(fn, tasks[i]))
                    bar.update()
            else:
                _run_dask(sched, fn, tasks, keys, todo, store, bar)
    results, failures = [], []
    for i, c in enumerate(captured):
        assert c is not None
        if c.error is not None:
            failures.append(TaskFailure(i, c.error, c.details))
            results.append(None)
        else:
            results.append(c.value)
    return SweepOutcome(results, failures, sched.describe(), n_cached)


def _need_workers(client, address: str) -> None:
    """Wait up to WORKER_WAIT_S for a worker of a remote scheduler (tasks would wait forever
    without one); InputError naming the command that starts one otherwise."""
    if client.scheduler_info().get("workers"):
        return
    print(f"waiting up to {WORKER_WAIT_S:g} s for a Dask worker at {address} …",
          file=sys.stderr, flush=True)
    try:
        client.wait_for_workers(1, timeout=WORKER_WAIT_S)
    except (TimeoutError, OSError):
        client.close()
        raise InputError(f"no Dask worker is connected to the scheduler at {address}: start "
                         f"one with `dask worker {address} --nthreads 1`") from None


def _run_dask(sched: Scheduler, fn, tasks, keys, todo, store, bar) -> None:
    import dask
    from distributed import Client, LocalCluster, as_completed

    cluster = None
    with dask.config.set({"distributed.worker.daemon": False,
                          "distributed.logging.distributed": "error"}):
        try:
            if sched.kind == "local":
                # one process per core, each single-threaded (BLAS, torch): no
                # oversubscription
                cluster = LocalCluster(n_workers=sched.workers or os.cpu_count() or 1,
                                       threads_per_worker=1, processes=True,
                                       dashboard_address=None,
                                       # a task's failure comes back as data; what the
                                       # workers log is noise (e.g. a heartbeat that races
                                       # the scheduler's shutdown, logged as an ERROR)
                                       silence_logs=logging.CRITICAL,
                                       env=dict.fromkeys(_THREAD_VARS, "1"))
                client = Client(cluster)
            else:
                try:
                    client = Client(sched.address, timeout=f"{CONNECT_TIMEOUT_S}s")
                except OSError as exc:
                    raise InputError(f"cannot reach the Dask scheduler at {sched.address}: "
                                     f"{exc}") from None
                _need_workers(client, sched.address)
            with client:
                futures = {}
                for i in todo:
                    fut = client.submit(_call, fn, tasks[i], key=f"spu-{keys[i][:32]}-{i}",
                                        pure=False, retries=TASK_RETRIES)
                    futures[fut] = i
                for fut in as_completed(list(futures)):
                    i = futures[fut]
                    try:
                        store(i, fut.result())
                    except Exception as exc:  # noqa: BLE001 - e.g. KilledWorker after retries
                        store(i, _Captured(error=f"{type(exc).__name__}: {exc}"))
                    bar.update()
        finally:
            if cluster is not None:
                cluster.close()
