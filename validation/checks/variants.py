"""Deck variants the checks run: the given deck with its noise sources stripped, or replaced
by sources the compiler's noise pass generates from the sidecar."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spu_circuits.compiler import TOPOLOGIES
from spu_circuits.compiler.cellmap import CellMap, Role
from spu_circuits.compiler.noise import NoiseSpec, add_noise
from spu_circuits.errors import InputError
from spu_circuits.netlist import Netlist
from spu_circuits.simulate import Deck


def strip_noise(text: str, noise_elements=()) -> tuple[str, int]:
    """The deck without noise sources, and how many lines were removed.

    Removed: the elements `noise_elements` (the cell map's Role.NOISE elements), any element
    line containing ``trnoise(``, ``.model`` lines of ``filesource`` models and the XSPICE
    instances of those models, and the ``+`` continuation lines of removed lines.
    """
    names = {str(n).lower() for n in noise_elements}
    lines = text.splitlines()
    fmodels = {ln.split()[1].lower() for ln in lines[1:] if ln.strip().lower().startswith(
        ".model") and "filesource" in ln.lower() and len(ln.split()) > 1}
    out, removed, dropping = [], 0, False
    for k, line in enumerate(lines):
        s = line.strip()
        low = s.lower()
        if k > 0 and low.startswith("+") and dropping:
            removed += 1
            continue
        toks = low.split()
        first = toks[0] if toks else ""
        drop = k > 0 and bool(first) and (
            (not first.startswith(("*", ".", "+")) and (
                first in names or "trnoise(" in low.replace(" ", "")
                or (first.startswith("a") and toks[-1] in fmodels)))
            or (first == ".model" and "filesource" in low))
        dropping = drop
        if drop:
            removed += 1
        else:
            out.append(line)
    return "\n".join(out) + "\n", removed


def with_noise(deck: Deck, noise: NoiseSpec, A: np.ndarray, workdir: Path | None = None,
               name: str = "vnoise") -> Deck:
    """A copy of `deck` whose noise sources are replaced by `noise` (kind none/trnoise/file).

    The new sources come from the compiler's noise pass, driven by the sidecar (noise_nodes,
    matrix_scale, volts_per_unit, R0, τ and the topology's sign). File noise is written to
    `workdir` (which then is the deck's working folder). The returned deck's sidecar records
    the new noise and drops the digest.
    """
    meta = dict(deck._need_meta())
    cm = CellMap.from_json(meta["cell_map"]) if meta.get("cell_map") else None
    text, _ = strip_noise(deck.text, cm.elements_with(Role.NOISE) if cm else ())
    lines = [ln for ln in text.splitlines() if ln.strip().lower() != ".end"]
    path = deck.path
    if noise.kind == "none":
        meta["noise"] = {"kind": "none"}
    else:
        need = ("n", "tau_s", "matrix_scale", "volts_per_unit", "R0_ohm", "noise_nodes",
                "topology")
        missing = [k for k in need if k not in meta]
        if missing:
            raise InputError(f"the sidecar lacks {', '.join(missing)}: cannot add noise sources")
        if meta["topology"] not in TOPOLOGIES:
            raise InputError(f"unknown topology {meta['topology']!r} in the sidecar")
        sign = TOPOLOGIES[meta["topology"]].NOISE_SIGN
        net = Netlist(title="noise")
        topo = TOPOLOGIES[meta["topology"]]
        if hasattr(topo, "add_noise"):  # its own noise scaling (oscillator: sqrt(2γκ₀) into v)
            files = topo.add_noise(net, meta, noise, np.asarray(A, dtype=float), name)
        else:
            files = add_noise(net, meta, noise, np.asarray(A, dtype=float), name, sign)
        lines += net.models + [el.line() for el in net.elements]
        if files:
            if workdir is None:
                raise InputError("file noise needs a working folder")
            workdir = Path(workdir)
            workdir.mkdir(parents=True, exist_ok=True)
            for fname, content in files.items():
                (workdir / fname).write_bytes(content)
            path = workdir / f"{name}.cir"
    meta.pop("deck_sha256", None)
    lines.append(".end")
    return Deck("\n".join(lines) + "\n", meta, path)
