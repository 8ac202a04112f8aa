"""The topology protocol, the registry and the cell map of every built-in topology."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from spu_circuits.compiler import TOPOLOGIES, compile_system, get_topology, register
from spu_circuits.compiler.cellmap import OPAMP_ROLES, CellMap, Role
from spu_circuits.compiler.noise import NoiseSpec
from spu_circuits.compiler.realize import RealizeOptions, realize
from spu_circuits.compiler.tiles import tile_circuit
from spu_circuits.compiler.topology import Topology, coupling_matrix
from spu_circuits.compiler.topology_ideal import IdealTopology
from spu_circuits.errors import GraphCheckError, InputError
from spu_circuits.graphcheck import check_cell_map
from spu_circuits.spec import HardwareSpec
from spu_circuits.system import FactoredSystem, LinearSystem
from validation.checks import strip_noise

from .conftest import make_system

WIDE = HardwareSpec(r_max_ohm=1e13)


def factored_system(seed: int = 1, r: int = 3, n: int = 7) -> FactoredSystem:
    rng = np.random.default_rng(seed)
    S = rng.standard_normal((r, n))
    S[0, 2] = 0.0                                    # one zero entry: no resistor for it
    return FactoredSystem.from_arrays(S, 0.3, rng.standard_normal(n))


def compiled(topology: str, noise: NoiseSpec | None = None):
    if topology == "factored":
        return compile_system(factored_system(), "factored", WIDE, noise=noise)
    return compile_system(make_system(6, 20.0, seed=4), topology, WIDE, noise=noise)


def test_registry_holds_protocol_objects():
    assert {"dense", "ideal", "factored"} <= set(TOPOLOGIES)
    for name, topo in TOPOLOGIES.items():
        assert isinstance(topo, Topology) and topo.name == name
        assert topo.noise_sign in (-1.0, 1.0)
        assert topo.NOISE_SIGN == topo.noise_sign     # the former module constant
    with pytest.raises(InputError, match="unknown topology 'nope'"):
        get_topology("nope")
    with pytest.raises(TypeError):
        register(object())


@pytest.mark.parametrize("topology", ["dense", "ideal", "factored"])
def test_every_element_has_a_role(topology):
    c = compiled(topology)
    cm = c.cell_map
    assert isinstance(cm, CellMap) and cm.topology == topology
    names = [el.name for el in c.netlist.elements]
    assert sorted(cm.roles) == sorted(names)
    check_cell_map(c.netlist, cm)
    assert cm.outputs == c.outputs and cm.summing_nodes == c.meta["noise_nodes"]
    assert [cell.index for cell in cm.cells] == list(range(cm.n))
    nodes = set(c.netlist.nodes())
    for cell in cm.cells:
        assert set(cell.nodes) <= nodes
        assert cm.role_of(cell.capacitor) == Role.INTEGRATOR_CAP
        assert cm.role_of(cell.bias) == Role.BIAS_SOURCE
    opamps = [n for n, r in cm.roles.items() if r in OPAMP_ROLES]
    assert bool(opamps) == TOPOLOGIES[topology].uses_opamps
    # the JSON form round-trips
    assert CellMap.from_json(cm.to_json()) == cm


@pytest.mark.parametrize("topology", ["dense", "ideal"])
def test_couplings_realise_the_matrix(topology):
    c = compiled(topology)
    cm = c.cell_map
    A = np.array(c.meta["system"]["A"])
    assert len(cm.couplings_of("A")) == np.count_nonzero(A)
    A_read = coupling_matrix(c.netlist, cm, c.meta["matrix_scale"], c.meta["R0_ohm"])
    np.testing.assert_allclose(A_read, A, rtol=1e-12, atol=0)


def test_factored_couplings_and_stages():
    fs = factored_system()
    c = compile_system(fs, "factored", WIDE)
    cm = c.cell_map
    nnz = int(np.count_nonzero(fs.S))
    assert len(cm.couplings_of("S_in")) == len(cm.couplings_of("S_out")) == nnz
    assert len(cm.couplings_of("damping")) == fs.n
    assert len(cm.stages) == fs.S.shape[0]
    for cp in cm.couplings_of("S_in") + cm.couplings_of("S_out"):
        assert cp.sign == np.sign(fs.S[cp.row, cp.col])
        assert cm.role_of(cp.elements[0]) == Role.COUPLING
    for st in cm.stages:
        assert cm.role_of(st.feedback) == Role.STAGE_R_FB
        assert cm.role_of(st.opamp) == Role.STAGE_OPAMP


@pytest.mark.parametrize("kind", ["trnoise", "file"])
@pytest.mark.parametrize("topology", ["dense", "ideal"])
def test_noise_elements_have_the_noise_role(kind, topology):
    c = compiled(topology, NoiseSpec(kind=kind, kappa0=0.01, duration_tau=2.0))
    cm = c.cell_map
    noise = cm.elements_with(Role.NOISE)
    assert noise and all(c.netlist.elements[[e.name for e in c.netlist.elements].index(n)]
                         .kind in "ia" for n in noise)
    check_cell_map(c.netlist, cm)
    # validation's noise stripping removes exactly these elements (and the models)
    text, removed = strip_noise(c.deck_text(), noise)
    assert removed == len(noise) + (len(noise) if kind == "file" else 0)
    quiet = compiled(topology)
    assert text == quiet.deck_text().replace(quiet.netlist.title, c.netlist.title)


def test_realised_cell_map_names_trims_and_macromodels():
    c = compile_system(make_system(5, 10.0, seed=2), "dense", HardwareSpec())
    r = realize(c, RealizeOptions(series="e96", compensate=True, gbw_hz=1e7))
    cm = r.cell_map
    check_cell_map(r.netlist, cm)
    trims = cm.elements_with(Role.TRIM)
    assert trims and len(trims) == r.meta["realization"]["parts"]["trims"]
    ops = cm.elements_with(Role.INTEGRATOR_OPAMP)
    assert ops and all(n.startswith("x") for n in ops)
    assert any(len(cp.elements) == 2 for cp in cm.couplings)


def test_tiled_cell_map():
    c = compiled("dense")
    t = tile_circuit(c, 3)
    cm = t.cell_map
    assert len(cm.elements_with(Role.TILE)) == t.meta["tiles"]["n_tiles"]
    internal = [nd for cell in cm.cells for nd in cell.internal_nodes]
    assert internal and all(nd.startswith("xtile") for nd in internal)
    assert cm.outputs == c.outputs


def test_check_cell_map_finds_defects():
    c = compiled("dense")
    cm = c.cell_map
    roles = dict(cm.roles)
    del roles["rb0"]
    with pytest.raises(GraphCheckError, match="'rb0' has no role"):
        check_cell_map(c.netlist, replace(cm, roles=roles))
    with pytest.raises(GraphCheckError, match="'ghost'"):
        check_cell_map(c.netlist, cm.with_roles({"ghost": Role.OTHER}))
    bad = replace(cm, cells=(replace(cm.cells[0], output="nowhere"), *cm.cells[1:]))
    with pytest.raises(GraphCheckError, match="nowhere"):
        check_cell_map(c.netlist, bad)


class MirroredIdeal(IdealTopology):
    """A new topology in a few lines: the ideal one under another name (registry test)."""

    name = "mirrored_ideal"


def test_a_registered_topology_compiles_end_to_end():
    topo = register(MirroredIdeal())
    try:
        system = LinearSystem.from_arrays(np.array([[2.0, 0.5], [0.5, 1.0]]),
                                          np.array([1.0, -1.0]))
        c = compile_system(system, "mirrored_ideal", WIDE)
        assert c.meta["topology"] == "mirrored_ideal" == c.cell_map.topology
        np.testing.assert_allclose(c.meta["predicted"]["x_dc"], system.solution(),
                                   rtol=1e-12)
        assert c.meta["opamp_gain"] is None and topo.noise_sign == 1.0
    finally:
        TOPOLOGIES.pop("mirrored_ideal")


def test_noise_step_from_the_known_spectrum_matches_eigvalsh():
    """The default noise step uses λ_max the compile already knows (no second eigvalsh)."""
    from spu_circuits.compiler.noise import DEFAULT_STEP_FRAC

    system = make_system(6, 20.0, seed=4)
    c = compile_system(system, "dense", WIDE, noise=NoiseSpec("trnoise", 0.01))
    lam = float(np.linalg.eigvalsh(np.array(c.meta["system"]["A"]))[-1])
    assert c.meta["noise"]["step_tau"] == DEFAULT_STEP_FRAC / lam
    fs = factored_system()
    cf = compile_system(fs, "factored", WIDE, noise=NoiseSpec("trnoise", 0.01))
    lam_f = float(np.linalg.eigvalsh(fs.A)[-1])
    assert cf.meta["noise"]["step_tau"] == pytest.approx(DEFAULT_STEP_FRAC / lam_f, rel=1e-12)
    assert fs.lambda_max == pytest.approx(lam_f, rel=1e-12)


def test_system_spectrum_and_solution_are_computed_once():
    system = make_system(5, 10.0, seed=1)
    x = system.solution()
    x[0] = 123.0                                     # the caller's copy, not the cache
    np.testing.assert_allclose(system.A @ system.solution(), system.b, rtol=1e-12)
    assert system.eigenvalues is system.eigenvalues
    assert system.condition_number() == pytest.approx(
        np.linalg.cond(system.A), rel=1e-10)
