"""Back-end running libngspice in shared mode through PySpice, in a persistent worker process.

The worker keeps one ngspice instance alive (3 ms per-run overhead instead of the CLI's
~16 ms process start). A timeout, crash or protocol fault kills the worker and raises
SimulationError with ngspice's log; the next run starts a fresh worker.
"""

from __future__ import annotations

import ctypes.util
import os
import pickle
import select
import subprocess
import sys
import tempfile
import time

from ..errors import NgspiceNotFound, SimulationError, SimulationTimeout
from .base import (
    Analysis,
    Backend,
    SimResult,
    analysis_kind,
    check_model_files,
    isolated_env,
    log_excerpt,
    normalise_name,
    prepare_deck,
)
from .cli import log_failure
from .rawfile import dedupe_time

_LIB_DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib",
             "/usr/local/lib")


def find_libngspice() -> None:
    if any(os.path.exists(os.path.join(d, "libngspice.so")) for d in _LIB_DIRS):
        return
    if ctypes.util.find_library("ngspice"):
        return
    raise NgspiceNotFound(
        "the ngspice shared library (libngspice.so) is not installed; install it with: "
        "sudo apt-get install libngspice0 libngspice0-dev (or use --backend cli)")


class SharedBackend(Backend):
    """PySpice/libngspice in a worker subprocess, with a per-run timeout."""

    name = "shared"

    def __init__(self, timeout_s: float = 60.0):
        super().__init__(timeout_s)
        self._proc: subprocess.Popen | None = None
        self._errlog = None

    def _start(self) -> None:
        find_libngspice()
        self._errlog = tempfile.TemporaryFile()
        self._initdir = tempfile.TemporaryDirectory(prefix="spu-shared-")
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "spu_circuits.backends._shared_worker"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._errlog,
            cwd=self._initdir.name, env=isolated_env(self._initdir.name))
        self._recv(max(self.timeout_s, 30.0), what="start")

    def _worker_stderr(self, tail_lines: int = 400) -> str:
        """The worker's streamed ngspice output (its last lines)."""
        if self._errlog is None:
            return ""
        self._errlog.seek(0)
        text = self._errlog.read().decode(errors="replace")
        return "\n".join(text.splitlines()[-tail_lines:])

    def _recv(self, timeout: float, what: str, deck_name: str | None = None):
        assert self._proc is not None and self._proc.stdout is not None
        fd = self._proc.stdout
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            self._kill()
            raise SimulationTimeout(
                f"ngspice (shared mode) exceeded its {timeout:g} s timeout during {what} and "
                "was stopped", deck=deck_name)
        try:
            return pickle.load(fd)
        except (EOFError, pickle.UnpicklingError):
            err = self._worker_stderr()
            code = self._proc.wait(timeout=5)
            self._kill()
            raise SimulationError(
                f"the ngspice shared library crashed during {what} (worker exit status {code})",
                log_excerpt(err), deck=deck_name) from None

    def _kill(self) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
                self._proc.wait()
            for f in (self._proc.stdin, self._proc.stdout):
                try:
                    f.close()
                except Exception:  # noqa: BLE001,S110
                    pass
        self._proc = None

    def run(self, deck_text: str, analysis: Analysis, *, cwd: str | None = None,
            deck_name: str | None = None) -> SimResult:
        if self._proc is None or self._proc.poll() is not None:
            self._start()
        assert self._proc is not None and self._proc.stdin is not None
        text = prepare_deck(deck_text, analysis)
        check_model_files(text, cwd)
        if self._errlog is not None:  # keep only this run's streamed log
            self._errlog.seek(0)
            self._errlog.truncate()
        t0 = time.monotonic()
        try:
            pickle.dump({"deck": text, "cwd": os.path.abspath(cwd) if cwd else None},
                        self._proc.stdin)
            self._proc.stdin.flush()
        except BrokenPipeError:
            self._kill()
            raise SimulationError("the ngspice worker died before the run",
                                  log_excerpt(self._worker_stderr()), deck=deck_name) from None
        reply = self._recv(self.timeout_s - (time.monotonic() - t0), "simulation", deck_name)
        log = reply["log"]
        bad = log_failure(log)
        if not reply["ok"] or bad or not reply["vectors"]:
            why = bad or reply["error"] or "no results returned"
            raise SimulationError(f"ngspice failed: {why}", log_excerpt(log), deck=deck_name)
        vectors = {normalise_name(k): v for k, v in reply["vectors"].items()}
        return SimResult(analysis_kind(analysis), dedupe_time(vectors), log)

    def close(self) -> None:
        self._kill()

    def __del__(self):
        try:
            self._kill()
        except Exception:  # noqa: BLE001,S110
            pass
