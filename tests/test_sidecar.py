"""The typed, versioned sidecar (spu_circuits.sidecar): byte-identical round trips of the
committed sidecars, the noise record's specification, optional records, and the rule that no
other module reads sidecar keys by string."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest

from spu_circuits.compiler import compile_system
from spu_circuits.compiler.cellmap import Cell, CellMap, Coupling
from spu_circuits.compiler.noise import NoiseSpec
from spu_circuits.compiler.tiles import tile_circuit
from spu_circuits.errors import InputError
from spu_circuits.sidecar import FORMAT, Sidecar
from spu_circuits.simulate import Deck
from spu_circuits.system import FactoredSystem, LinearSystem, random_spd

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = sorted([*ROOT.glob("netlists/*.json"), *ROOT.glob("validation/examples/*/spu*.json")])


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: str(p.relative_to(ROOT)))
def test_committed_sidecars_round_trip_byte_identical(path):
    text = path.read_text()
    side = Sidecar.loads(text)
    assert side.format == FORMAT
    assert side.dumps() == text


def _system(n=4, seed=1):
    A = random_spd(n, cond=5.0, seed=seed)
    return LinearSystem.from_arrays(A, np.linspace(-1.0, 1.0, n), name="t")


@pytest.mark.parametrize("topology", ["dense", "ideal"])
@pytest.mark.parametrize("noise", [NoiseSpec(), NoiseSpec("trnoise", 0.01),
                                   NoiseSpec("file", 0.02, step_tau=0.05, seed=3,
                                             duration_tau=7.3)])
def test_written_sidecar_loads_back_equal(tmp_path, topology, noise):
    c = compile_system(_system(), topology, noise=noise)
    deck = Deck.load(c.write(tmp_path, "t"))
    side = deck.sidecar
    assert side.noise.spec == noise  # the specification itself, not values to work back from
    assert side.to_json() == json.loads(deck.path.with_suffix(".json").read_text())
    assert side == c.sidecar.with_(deck_sha256=side.deck_sha256)
    A, b = side.system.matrix()
    assert np.array_equal(A, c.sidecar.system.A) and np.array_equal(b, _system().b)


def test_legacy_noise_record_gives_the_same_spec(tmp_path):
    """A file-noise sidecar written before the spec was recorded: the spec worked back from
    the derived values recompiles to the same deck and noise files."""
    noise = NoiseSpec("file", 0.02, step_tau=0.05, seed=3, duration_tau=7.3)
    c = compile_system(_system(), "dense", noise=noise)
    d = c.meta
    del d["noise"]["spec"]
    legacy = Sidecar.from_json(d).noise.spec
    again = compile_system(_system(), "dense", noise=legacy)
    assert again.deck_text() == c.deck_text() and again.extra_files == c.extra_files


def test_factored_record_and_tiles_round_trip():
    rng = np.random.default_rng(0)
    fs = FactoredSystem.from_arrays(rng.standard_normal((2, 6)), 0.5, rng.standard_normal(6))
    c = compile_system(fs, "factored")
    assert c.sidecar.system.is_factored and c.meta["system"]["damping"] == 0.5
    back = Sidecar.from_json(c.meta)
    assert back.dumps() == c.sidecar.dumps()
    t = tile_circuit(compile_system(_system(6), "dense"), K=3, drop_inter_tile=True)
    tb = Sidecar.from_json(t.meta)
    assert tb.tiles.n_tiles == 2 and tb.tiles.block_jacobi_rel_error is not None
    assert tb.predicted.rel_deviation_from_block_jacobi is not None
    assert tb.dumps() == t.sidecar.dumps()


def test_cell_map_is_an_optional_record():
    c = compile_system(_system(2), "dense")
    assert c.sidecar.cell_map is not None and c.cell_map.n == 2
    bare = c.sidecar.with_(cell_map=None)
    assert "cell_map" not in bare.to_json()  # sidecars written before cell maps
    assert Sidecar.from_json(bare.to_json()).cell_map is None
    cm = CellMap("dense", (Cell(0, "o0", "s0", "c0", "vb0", inverted="p0"),
                           Cell(1, "o1", "s1", "c1", "vb1", inverted="p1")),
                 couplings=(Coupling("A", 0, 1, -1, ("ra0_1",)),), roles={"c0": "integrator_cap"})
    side = bare.with_(cell_map=cm, deck_sha256="x" * 64)
    d = side.to_json()
    assert list(d)[-3:] == ["system", "cell_map", "deck_sha256"]
    assert Sidecar.from_json(json.loads(side.dumps())).cell_map == cm
    assert Sidecar.from_json(c.meta).cell_map == c.cell_map


def test_unknown_keys_are_kept_and_records_are_frozen():
    c = compile_system(_system(2), "ideal")
    d = dict(c.meta, my_note={"by": "hand"})
    side = Sidecar.from_json(d)
    assert side.extra == {"my_note": {"by": "hand"}} and side.to_json() == d
    with pytest.raises(dataclasses.FrozenInstanceError):
        side.tau_s = 1.0  # type: ignore[misc]


def test_unknown_format_is_one_line_error():
    d = compile_system(_system(2), "ideal").meta
    d["format"] = "spu-tngd-deck/2"
    with pytest.raises(InputError, match=r"unknown sidecar format 'spu-tngd-deck/2'"):
        Sidecar.from_json(d)


#: reading a sidecar key by string: meta[...], meta.get(...), sidecar[...], ["realization"]...
_KEY_READ = re.compile(r"\b(meta|sidecar|side)(\[|\.get\()"
                       r"""|\[["'](realization|predicted|noise|tiles|system|outputs|board)["']\]""")


#: the codes file's own (de)serialiser (`Program.to_json/from_json`: its format, not a sidecar)
_OWN_FORMAT = {"spu_circuits/board/program.py"}


def test_no_module_outside_the_sidecar_reads_its_keys_by_string():
    hits = []
    for pkg in ("spu_circuits", "tngd", "validation"):
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = str(path.relative_to(ROOT))
            if rel == "spu_circuits/sidecar.py" or rel in _OWN_FORMAT:
                continue
            for k, line in enumerate(path.read_text().splitlines(), 1):
                if _KEY_READ.search(line):
                    hits.append(f"{path.relative_to(ROOT)}:{k}: {line.strip()}")
    assert not hits, "\n".join(hits)
