"""Back-end running the ngspice command line in batch mode (`ngspice -b -r out.raw`)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..errors import NgspiceNotFound, SimulationError, SimulationTimeout
from .base import (
    Analysis,
    Backend,
    SimResult,
    analysis_kind,
    check_model_files,
    isolated_env,
    log_excerpt,
    prepare_deck,
)
from .rawfile import dedupe_time, read_raw

FATAL_PATTERNS = ("timestep too small", "singular matrix", "simulation(s) aborted",
                  "fatal", "error:", "run simulation(s) aborted", "cannot open",
                  "doanalyses: ")


def find_ngspice() -> str:
    exe = shutil.which(os.environ.get("SPU_NGSPICE", "ngspice"))
    if exe is None:
        raise NgspiceNotFound(
            "ngspice is not installed (no 'ngspice' on PATH); install it with: "
            "sudo apt-get install ngspice libngspice0 libngspice0-dev")
    return exe


def log_failure(log: str) -> str | None:
    """The first line of an ngspice log that signals a failed run, or None."""
    for line in log.splitlines():
        low = line.lower()
        if "can't find init file" in low:
            continue
        if any(p in low for p in FATAL_PATTERNS):
            return line.strip()
    return None


class CliBackend(Backend):
    """`ngspice -b` in a subprocess with a timeout; results read from the binary raw file."""

    name = "cli"

    def run(self, deck_text: str, analysis: Analysis, *, cwd: str | None = None,
            deck_name: str | None = None) -> SimResult:
        exe = find_ngspice()
        text = prepare_deck(deck_text, analysis)
        check_model_files(text, cwd)
        with tempfile.TemporaryDirectory(prefix="spu-cli-") as tmp:
            deck = Path(tmp) / "deck.cir"
            raw, logf = Path(tmp) / "out.raw", Path(tmp) / "ngspice.log"
            deck.write_text(text)
            env = isolated_env(tmp)
            try:
                proc = subprocess.run(
                    [exe, "-b", "-r", str(raw), "-o", str(logf), str(deck)],
                    cwd=cwd or tmp, env=env, stdin=subprocess.DEVNULL,
                    capture_output=True, timeout=self.timeout_s)
            except subprocess.TimeoutExpired:
                log = logf.read_text(errors="replace") if logf.exists() else ""
                raise SimulationTimeout(
                    f"ngspice exceeded its {self.timeout_s:g} s timeout and was stopped",
                    log_excerpt(log), deck=deck_name) from None
            log = (logf.read_text(errors="replace") if logf.exists() else "")
            log += proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")
            bad = log_failure(log)
            if proc.returncode != 0 or bad or not raw.exists() or raw.stat().st_size == 0:
                why = bad or (f"exit status {proc.returncode}" if proc.returncode
                              else "no results written")
                if proc.returncode < 0:
                    why = f"ngspice crashed (signal {-proc.returncode})"
                raise SimulationError(f"ngspice failed: {why}", log_excerpt(log),
                                      deck=deck_name)
            plots = read_raw(raw.read_bytes())
        if not plots:
            raise SimulationError("ngspice wrote no results", log_excerpt(log), deck=deck_name)
        return SimResult(analysis_kind(analysis), dedupe_time(plots[-1][1]), log)
