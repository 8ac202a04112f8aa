"""Deck variants the checks run: the given deck with its noise sources stripped, or replaced
by sources the compiler's noise pass generates from the sidecar."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spu_circuits.compiler import TOPOLOGIES
from spu_circuits.compiler.cellmap import Role
from spu_circuits.compiler.noise import NoiseSpec, add_noise
from spu_circuits.errors import InputError
from spu_circuits.netlist import Netlist
from spu_circuits.sidecar import NoiseRecord
from spu_circuits.simulate import Deck
from spu_circuits.spice.edit import drop_cards
from spu_circuits.spice.edit import strip_noise as strip_deck_noise
from spu_circuits.spice.lexer import lex


def strip_noise(text: str, noise_elements=()) -> tuple[str, int]:
    """The deck without noise sources, and how many physical lines were removed: the
    elements `noise_elements` (the cell map's Role.NOISE elements), element cards with a
    ``trnoise(`` function, XSPICE instances of ``filesource`` models and those ``.model``
    cards, each with its continuation lines (read as ngspice reads the deck:
    spu_circuits.spice.edit.strip_noise)."""
    return strip_deck_noise(text, noise_elements)


def with_noise(deck: Deck, noise: NoiseSpec, A: np.ndarray, workdir: Path | None = None,
               name: str = "vnoise") -> Deck:
    """A copy of `deck` whose noise sources are replaced by `noise` (kind none/trnoise/file).

    The new sources come from the compiler's noise pass, driven by the sidecar (noise_nodes,
    matrix_scale, volts_per_unit, R0, τ and the topology's sign). File noise is written to
    `workdir` (which then is the deck's working folder). The returned deck's sidecar records
    the new noise and drops the digest.
    """
    side = deck.need_sidecar()
    cm = side.cell_map
    text, _ = strip_noise(deck.text, cm.elements_with(Role.NOISE) if cm else ())
    lines, _ = drop_cards(lex(text), lambda card: False, ends=True)     # no `.end` yet
    path = deck.path
    if noise.kind == "none":
        rec = NoiseRecord(spec=noise)
    else:
        side.require("matrix_scale", "R0_ohm", "noise_nodes", why="cannot add noise sources")
        if side.topology not in TOPOLOGIES:
            raise InputError(f"unknown topology {side.topology!r} in the sidecar")
        sign = TOPOLOGIES[side.topology].NOISE_SIGN
        net = Netlist(title="noise")
        topo = TOPOLOGIES[side.topology]
        if hasattr(topo, "add_noise"):  # its own noise scaling (oscillator: sqrt(2γκ₀) into v)
            rec, files = topo.add_noise(net, side, noise, np.asarray(A, dtype=float), name)
        else:
            rec, files = add_noise(net, side, noise, np.asarray(A, dtype=float), name, sign)
        lines += net.models + [el.line() for el in net.elements]
        if files:
            if workdir is None:
                raise InputError("file noise needs a working folder")
            workdir = Path(workdir)
            workdir.mkdir(parents=True, exist_ok=True)
            for fname, content in files.items():
                (workdir / fname).write_bytes(content)
            path = workdir / f"{name}.cir"
    lines.append(".end")
    return Deck("\n".join(lines) + "\n", side.with_(noise=rec, deck_sha256=None), path)
