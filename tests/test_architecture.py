"""docs/architecture.md's worked example (a new topology in one module) runs as written: it
compiles, the independent extractor reads back the system, tiles and the BOM work through its
cell map, and the dc check passes in ngspice."""

from __future__ import annotations

import re
import types
from pathlib import Path

import numpy as np
import pytest

from spu_circuits.compiler import TOPOLOGIES, compile_system
from spu_circuits.compiler.noise import NoiseSpec
from spu_circuits.compiler.tiles import tile_circuit
from spu_circuits.parser import extract_system, parse_deck
from spu_circuits.simulate import Deck
from spu_circuits.system import LinearSystem, random_spd
from tests.conftest import HAVE_NGSPICE

DOC = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"


@pytest.fixture
def gmr():
    """The example module, executed from the document; unregistered afterwards."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert len(blocks) == 1
    mod = types.ModuleType("topology_gmr_example")
    exec(compile(blocks[0], str(DOC), "exec"), mod.__dict__)  # noqa: S102 - our own document
    try:
        yield mod
    finally:
        TOPOLOGIES.pop("gmr", None)


def _system(n=6):
    return LinearSystem.from_arrays(random_spd(n, 10.0, 3), np.linspace(-1.0, 2.0, n))


def test_example_topology_compiles_to_its_system(gmr):
    system = _system()
    c = compile_system(system, "gmr", noise=NoiseSpec("trnoise", 0.01))
    assert c.cell_map.topology == "gmr" and c.sidecar.element_counts["resistor"] == system.n
    ex = extract_system(parse_deck(c.deck_text()), outputs=c.outputs,
                        volts_per_unit=c.volts_per_unit)
    es = ex.as_system(c.sidecar.tau_s)
    assert np.linalg.norm(es.A - system.A) / np.linalg.norm(system.A) < 1e-14
    assert np.linalg.norm(es.b - system.b) / np.linalg.norm(system.b) < 1e-14
    assert es.kappa0 == pytest.approx(np.full(system.n, 0.01), rel=1e-9)  # noise pass
    assert c.sidecar.predicted.rel_deviation_from_exact < 1e-14


def test_example_topology_tiles_and_bom(gmr):
    from spu_circuits.bom import component_totals

    c = compile_system(_system(), "gmr")
    t = tile_circuit(c, K=3)
    assert t.sidecar.tiles.n_tiles == 2
    tot = component_totals(c)
    assert tot["resistors"] == 6 and tot["capacitors"] == 6 and tot["opamps"] == 0


@pytest.mark.ngspice
@pytest.mark.skipif(not HAVE_NGSPICE, reason="ngspice is not installed")
def test_example_topology_passes_the_dc_check(gmr):
    from validation.checks import Validation

    c = compile_system(_system(), "gmr")
    with Validation(Deck.from_compiled(c), backend="cli") as v:
        (res,) = v.run(["dc"])
    assert res.passed, res.details
    assert res.metrics["rel. error vs A^-1 b"] < 1e-9
