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
from spu_circuits.spice.lexer import lex


def strip_noise(text: str, noise_elements=()) -> tuple[str, int]:
    """The deck without noise sources, and how many physical lines were removed.

    Read as ngspice reads it (spu_circuits.spice.lexer), removed with all their physical
    lines (`+` continuations): the elements `noise_elements` (the cell map's Role.NOISE
    elements), element cards with a ``trnoise(`` function, XSPICE instances of a
    ``filesource`` model and the ``.model`` cards of ``filesource`` models.
    """
    names = {str(n).lower() for n in noise_elements}
    cards = [(c, c.text.lower().replace("(", " ( ").split()) for c in lex(text).cards
             if not c.control and all(src is None for src, _ in c.spans)]

    def is_filesource_model(w: list[str]) -> bool:
        return w[0] == ".model" and w[2:3] == ["filesource"]

    files = {w[1] for _, w in cards if is_filesource_model(w)}
    drop: set[int] = set()
    for c, w in cards:
        element = not w[0].startswith(".")
        if is_filesource_model(w) or element and (
                w[0] in names or "trnoise(" in c.text.lower().replace(" ", "")
                or (w[0][0] == "a" and w[-1] in files)):
            drop.update(no for _, no in c.spans)
    drop.discard(1)
    lines = [ln[:-1] if ln.endswith("\r") else ln for ln in text.split("\n")]
    if lines and lines[-1] == "":
        lines.pop()
    out = [ln for no, ln in enumerate(lines, 1) if no not in drop]
    return "\n".join(out) + "\n", len(lines) - len(out)


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
