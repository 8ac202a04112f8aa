"""Example boards under netlists/boards/ (`python -m spu_circuits.board.examples`).

- `spu8_mdac`: 8-cell dense MDAC board (12 bits, range 12), programmed with `optimal` codes
  for the 8×8 example system (`spu_circuits.demo.example_system`);
- `digits40_f4`: factored MDAC board N = 40, r = 4 (12 bits, range 1), programmed for the
  digits Fisher F̃ = SᵀS + λI of `netlists/factored_digits.*` (S, λ, b read from its sidecar's
  system record).

Each: NAME.cir (board deck), NAME.json (sidecar), NAME_codes.json + NAME_codes.inc (program),
NAME_bom.csv (parts with manufacturer part numbers) and NAME.net (KiCad netlist).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..netlist import atomic_write
from ..sidecar import Sidecar
from ..simulate import Deck
from ..system import FactoredSystem
from . import BoardLayout, BoardSpec, board_circuit, build_board, program

ROOT = Path(__file__).resolve().parents[2]


def examples() -> list[tuple[str, BoardSpec, object]]:
    from ..demo import example_system

    path = ROOT / "netlists" / "factored_digits.json"
    rec = Sidecar.loads(path.read_text(), f"sidecar {path}").system
    digits = FactoredSystem.from_arrays(np.array(rec.S), float(rec.damping), np.array(rec.b),
                                        name="factored_digits")
    return [("spu8_mdac", BoardSpec(n=8, range=12.0), example_system()),
            ("digits40_f4", BoardSpec(n=40, r=4, range=1.0), digits)]


def write_example(out: Path, name: str, spec: BoardSpec, system) -> dict:
    from ..kicad import parts_bom_csv, to_kicad

    cc = board_circuit(build_board(spec), name)
    deck_path = cc.write(out, name)
    deck = Deck.load(deck_path)
    prog = program(system, BoardLayout.from_sidecar(deck.sidecar), "optimal")
    net = to_kicad(deck.text, deck.sidecar, deck_path.name)
    atomic_write({out / f"{name}_codes.json": prog.dumps(),
                  out / f"{name}_codes.inc": prog.include_text(),
                  out / f"{name}_bom.csv": parts_bom_csv(deck.text, deck.sidecar),
                  out / f"{name}.net": net})
    for suffix in (".cir", ".json", "_codes.json", "_codes.inc", "_bom.csv", ".net"):
        (out / f"{name}{suffix}").chmod(0o644)
    return {"name": name, "parts": cc.sidecar.board.n_programmable_parts,
            "predicted_rel_error_x": prog.rel_error}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "netlists" / "boards")
    a = ap.parse_args(argv)
    for name, spec, system in examples():
        info = write_example(a.out, name, spec, system)
        print(f"{a.out / name}.cir: {info['parts']} programmable parts; predicted solution "
              f"error {info['predicted_rel_error_x']:.3e}")


if __name__ == "__main__":
    main()
