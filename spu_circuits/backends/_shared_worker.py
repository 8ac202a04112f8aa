"""Worker process for the shared-mode back-end: one libngspice instance, fed decks on stdin.

Protocol (pickle frames on stdin/stdout): request {"deck": str, "cwd": str|None} → reply
{"ok": bool, "vectors": {name: ndarray}, "log": str, "error": str}. Running ngspice in a
separate process means a crash or a hang of the shared library cannot take the caller down.
"""

from __future__ import annotations

import logging
import os
import pickle
import sys

#: ngspice stderr lines that are information, not failures (PySpice raises on any stderr
#: line not starting with "Warning:"; e.g. "Note: v1: dc value used for op instead of
#: transient time=0 value." for a PULSE source whose DC value differs from its t = 0 value)
BENIGN_PREFIXES = ("warning:", "note:")


def harmless(stderr_lines: list[str], stdout_lines: list[str]) -> bool:
    """True when PySpice's "Command failed" came only from informational stderr lines (no
    stderr line is an error, no stdout line mentions one)."""
    return (all(ln.strip().lower().startswith(BENIGN_PREFIXES) or not ln.strip()
                or "can't find init file" in ln.lower() for ln in stderr_lines)
            and not any("error" in ln.lower() for ln in stdout_lines))


def _load(ng, text: str) -> None:
    """PySpice's NgSpiceShared.load_circuit, but fed the lines ngspice's own file reader
    starts from (spice.lexer.physical_lines: split at LF only) instead of str.splitlines(),
    which also breaks lines at U+2028, VT, FF and others."""
    from PySpice.Spice.NgSpice.Shared import FFI, NgSpiceCircuitError, ffi

    from spu_circuits.spice.lexer import physical_lines

    keep = [ffi.new("char[]", ln.encode("utf-8", "surrogateescape"))
            for ln in [*physical_lines(text), ""]]       # ngspice 33+ wants an empty last line
    ng.clear_output()
    if ng._ngspice_shared.ngSpice_Circ(ffi.new("char *[]", [*keep, FFI.NULL])):
        raise RuntimeError("ngSpice_Circ refused the circuit")
    if ng._error_in_stdout:
        raise NgSpiceCircuitError("")


def _serve() -> None:
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    # keep the protocol stream clean: anything printed goes to stderr
    sys.stdout = sys.stderr
    logging.disable(logging.CRITICAL)
    from PySpice.Spice.NgSpice import SimulationType
    from PySpice.Spice.NgSpice.Shared import NgSpiceCommandError, NgSpiceShared

    types = SimulationType.SIMULATION_TYPE
    for v in range(35, 46):  # ngspice ≥ 35 kept sim.h's enum: silence "unsupported version"
        types.setdefault(v, types["last"])
    ng = NgSpiceShared.new_instance()

    def stream(message, ngspice_id):  # every ngspice line also goes to our stderr (a file
        sys.stderr.write(message + "\n")  # the parent reads), so a crash keeps its log
        sys.stderr.flush()
        return 0

    ng.send_char = stream
    pickle.dump({"ready": True}, out)
    out.flush()
    while True:
        try:
            req = pickle.load(inp)
        except EOFError:
            return
        reply = {"ok": False, "vectors": {}, "log": "", "error": ""}
        try:
            if req.get("cwd"):
                os.chdir(req["cwd"])
            ng.clear_output()
            try:
                _load(ng, req["deck"])
                ng.run()
            except NgSpiceCommandError as exc:
                if not harmless(ng._stderr, ng._stdout):
                    reply["error"] = f"{type(exc).__name__}: {exc}"
            except Exception as exc:  # noqa: BLE001 - reported with the log
                reply["error"] = f"{type(exc).__name__}: {exc}"
            plot = ng.last_plot
            if plot and plot != "const":
                reply["vectors"] = {name.lower(): vec._data.real.copy()
                                    for name, vec in ng.plot(None, plot).items()}
            reply["ok"] = not reply["error"]
        except Exception as exc:  # noqa: BLE001
            reply["error"] = f"{type(exc).__name__}: {exc}"
        reply["log"] = "\n".join([*ng._stdout, *ng._stderr])
        try:
            ng.destroy()
            ng.remove_circuit()
        except Exception:  # noqa: BLE001,S110 - best-effort cleanup
            pass
        pickle.dump(reply, out)
        out.flush()


if __name__ == "__main__":
    _serve()
