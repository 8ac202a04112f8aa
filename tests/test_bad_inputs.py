"""Bad inputs: every defect in a system, file, spec, deck or netlist is refused with a message
that names it.

`BAD_INPUT_CASES` is the table (case id, what is wrong, input builder, expected message
fragment, error class); a script can render it as the README's table of refused inputs.
A case with `xfail` set documents a defect that is not caught yet (strict xfail).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from spu_circuits.cli import _deck_tran
from spu_circuits.cli_common import check_writable as _check_writable
from spu_circuits.compiler import compile_system
from spu_circuits.errors import CompileError, GraphCheckError, InputError, SpuError
from spu_circuits.graphcheck import check_netlist
from spu_circuits.netlist import Netlist
from spu_circuits.simulate import Deck
from spu_circuits.spec import HardwareSpec
from spu_circuits.system import LinearSystem, load_system

NAN, INF = float("nan"), float("inf")


@dataclass(frozen=True)
class BadInput:
    id: str                                   # short case id (pytest id, table key)
    what: str                                 # what is wrong, for the README table
    build: Callable[[Path], object]           # runs the failing call (gets a temp folder)
    expect: str                               # fragment the one-line message must contain
    exc: type[SpuError] = InputError          # error class raised
    xfail: str | None = None                  # reason, when the defect is not caught yet


# ---------------------------------------------------------------------------------- builders

def _parse_scheduler(text: str):
    from spu_circuits.execution import parse_scheduler

    return parse_scheduler(text)


def _unreachable_scheduler(tmp: Path):
    from spu_circuits import execution

    old, execution.CONNECT_TIMEOUT_S = execution.CONNECT_TIMEOUT_S, 1.0
    try:
        return execution.run_sweep(abs, [1], scheduler="tcp://127.0.0.1:1")
    finally:
        execution.CONNECT_TIMEOUT_S = old


class _ClientWithoutWorkers:
    """A Dask client's two calls that _need_workers makes, for a scheduler with no worker."""

    def scheduler_info(self):
        return {"workers": {}}

    def wait_for_workers(self, n, timeout):
        raise TimeoutError

    def close(self):
        pass


def _scheduler_without_workers(tmp: Path):
    from spu_circuits import execution

    old, execution.WORKER_WAIT_S = execution.WORKER_WAIT_S, 0.0
    try:
        return execution._need_workers(_ClientWithoutWorkers(), "tcp://10.0.0.5:8786")
    finally:
        execution.WORKER_WAIT_S = old


def _parse_seeds(text: str):
    from validation.sweep import parse_seeds

    return parse_seeds(text)


def _sweep_task_without_sidecar(tmp: Path):
    from validation.sweep import task_for_deck

    (tmp / "d.cir").write_text("t\nr1 a 0 1k\n.end\n")
    return task_for_deck(tmp / "d.cir", 0, ("dc",))


def _sys(A, b=None) -> Callable[[Path], object]:
    return lambda tmp: LinearSystem.from_arrays(A, b)


def _npy(A) -> Callable[[Path], object]:
    def build(tmp: Path):
        np.save(tmp / "A.npy", np.asarray(A), allow_pickle=True)
        return load_system(tmp / "A.npy")
    return build


def _bytes(name: str, content: Callable[[], bytes], rhs: bool = False
           ) -> Callable[[Path], object]:
    def build(tmp: Path):
        (tmp / name).write_bytes(content())
        if rhs:
            np.save(tmp / "A.npy", np.eye(2))
            return load_system(tmp / "A.npy", tmp / name)
        return load_system(tmp / name)
    return build


def _valid_npy_bytes(n: int = 40) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, np.eye(n))
    return buf.getvalue()


def _valid_npz_bytes() -> bytes:
    import io

    buf = io.BytesIO()
    np.savez(buf, A=np.eye(30) * 2, b=np.ones(30))
    return buf.getvalue()


def _rhs_missing(tmp: Path):
    np.save(tmp / "A.npy", np.eye(2))
    return load_system(tmp / "A.npy", tmp / "b.npy")


def _npz(**arrays) -> Callable[[Path], object]:
    def build(tmp: Path):
        np.savez(tmp / "sys.npz", **arrays)
        return load_system(tmp / "sys.npz")
    return build


def _folder(tmp: Path):
    (tmp / "A.npy").mkdir()
    return load_system(tmp / "A.npy")


def _spec(**kw) -> Callable[[Path], object]:
    return lambda tmp: HardwareSpec(**kw)


def _compile(A, b=None, topology: str = "dense", **spec) -> Callable[[Path], object]:
    return lambda tmp: compile_system(
        LinearSystem.from_arrays(np.asarray(A, dtype=float), b), topology, HardwareSpec(**spec))


GOOD_A = np.array([[2.0, -0.5], [-0.5, 1.0]])


def _written(tmp: Path) -> Path:
    """A compiled deck and its sidecar in tmp/out (spu.cir + spu.json)."""
    return compile_system(LinearSystem.from_arrays(GOOD_A, np.array([1.0, 0.0]))).write(
        tmp / "out", "spu")


def _deck_edited(tmp: Path):
    path = _written(tmp)
    path.write_text(path.read_text() + "* edited by hand after compiling\n")
    return Deck.load(path)


def _sidecar_edit(edit: Callable[[dict], object]) -> Callable[[Path], object]:
    def build(tmp: Path):
        path = _written(tmp)
        side = path.with_suffix(".json")
        meta = json.loads(side.read_text())
        out = edit(meta)
        side.write_text(out if isinstance(out, str) else json.dumps(meta))
        return Deck.load(path)
    return build


def _sidecar_text(text: str) -> Callable[[Path], object]:
    def build(tmp: Path):
        path = _written(tmp)
        path.with_suffix(".json").write_text(text)
        return Deck.load(path)
    return build


def _deck_file(content: bytes | None, **kw) -> Callable[[Path], object]:
    def build(tmp: Path):
        path = tmp / "hand.cir"
        if content is not None:
            path.write_bytes(content)
        return Deck.load(path, **kw)
    return build


def _net(*elements, spec: HardwareSpec | None = None) -> Callable[[Path], object]:
    """A hand-built netlist from (name, nodes, value) triples, then check_netlist."""
    def build(tmp: Path):
        net = Netlist("hand-built")
        for name, nodes, value in elements:
            net.add(name, nodes.split(), value)
        return check_netlist(net, spec)
    return build


SPEC = HardwareSpec()
V1 = ("v1", "a 0", 1.0)
R_LOAD = ("r1", "a 0", 1e3)

# ------------------------------------------------------------- TNGD in a training loop (#14)

def _tngd_net():
    import torch
    from torch import nn

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).double()
    return net, torch.randn(8, 4, dtype=torch.float64), torch.randint(0, 3, (8,))


def _tngd(**kw) -> Callable[[Path], object]:
    """TNGD(params, **kw).step(outputs, targets) on a small MLP (8 samples, 3 classes)."""
    def build(tmp: Path):
        from tngd.optimizer import TNGD

        net, x, y = _tngd_net()
        opt = TNGD(net.parameters(), **kw)
        return opt.step(net(x), y)
    return build


def _graph(targets: Callable[[], object], loss: object = "ce", detach: bool = False,
           freed: bool = False) -> Callable[[Path], object]:
    def build(tmp: Path):
        from tngd.curvature_graph import curvature_from_outputs

        net, x, _ = _tngd_net()
        out = net(x)
        if freed:
            out.sum().backward()
        return curvature_from_outputs(out.detach() if detach else out, targets(),
                                      list(net.parameters()), loss)
    return build


def _ids(*shape, high: int = 3):
    import torch

    return lambda: torch.randint(0, high, shape, generator=torch.Generator().manual_seed(0))


def _per_sample(layer: str) -> Callable[[Path], object]:
    def build(tmp: Path):
        import torch
        from torch import nn

        from tngd.optimizer import TNGD

        mid = nn.BatchNorm1d(6) if layer == "bn" else nn.Dropout(0.5)
        net = nn.Sequential(nn.Linear(4, 6), mid, nn.Linear(6, 3)).double().train()
        return TNGD(net).step(torch.randn(8, 4, dtype=torch.float64), torch.zeros(8).long())
    return build


def _size(N: int, r: int, solver: str, **limits) -> Callable[[Path], object]:
    def build(tmp: Path):
        import torch

        from tngd.limits import SizeLimits, check_step_size

        return check_step_size(N, r, dtype=torch.float32, device=torch.device("cpu"),
                               solver=solver, limits=SizeLimits(**limits))
    return build


def _not_mean(z, y):
    return z.pow(2).sum()


def _groups_zero_damping(tmp: Path):
    from tngd.optimizer import NGD

    net, x, y = _tngd_net()
    groups = [{"params": net[0].parameters(), "damping": 0.0},
              {"params": net[2].parameters(), "damping": 0.1}]
    return NGD(groups).step(net(x), y)


# ------------------------------------------------------------------------------------ table

# ---------------------------------------------------------------------- hardware builders

def _erc_error():
    from spu_circuits.compiler.erc import ErcError

    return ErcError


def _unsafe_error():
    from spu_circuits.errors import UnsafeDeckError

    return UnsafeDeckError


def _hw_realise(R0: float = 1e3, **opt):
    from spu_circuits.compiler.realize import RealizeOptions, realize
    from spu_circuits.examples import example_system

    return realize(compile_system(example_system(), "dense", HardwareSpec(R0_ohm=R0)),
                   RealizeOptions(**{"erc": "error", **opt}))


def _quantity(text, unit, req):
    from spu_circuits.units import parse_quantity

    return parse_quantity(text, unit, what="--option", require_unit=req)


def _user_model(tmp: Path, text: str):
    from spu_circuits.compiler.opamps import get_part, load_user_model

    (tmp / "m.lib").write_text(text)
    return load_user_model(f"{tmp / 'm.lib'}:opx" if "bad" not in text else
                           f"{tmp / 'm.lib'}:bad", get_part("TL072"))


def _budget_plain(tmp: Path):
    from spu_circuits.budget import error_budget

    path = compile_system(LinearSystem.from_arrays(GOOD_A, np.ones(2)), "dense").write(tmp, "p")
    return error_budget(Deck.load(path), spice=False)


def _budget_inl(tmp: Path, inl: float):
    from spu_circuits.budget import error_budget
    from spu_circuits.compiler.realize import RealizeOptions, realize

    rz = realize(compile_system(LinearSystem.from_arrays(GOOD_A, np.ones(2)), "dense"),
                 RealizeOptions(v_sat=10.0))
    return error_budget(Deck.load(rz.write(tmp, "q")), spice=False, dac_inl_lsb=inl)


def _yield_bad(tmp: Path, draws: int, max_error: float):
    from spu_circuits.board_yield import run_yield

    path = compile_system(LinearSystem.from_arrays(GOOD_A, np.ones(2)), "dense").write(tmp, "p")
    return run_yield(Deck.load(path), draws=draws, max_error=max_error, seed=0,
                     report_dir=tmp / "y", scheduler="serial")


def _validate_oversized(tmp: Path):
    from spu_circuits.compiler.realize import RealizeOptions, realize
    from validation.checks import Validation

    rz = realize(compile_system(LinearSystem.from_arrays(GOOD_A, np.ones(2)), "dense"),
                 RealizeOptions(v_sat=10.0, kappa0_swing=0.001))
    path = rz.write(tmp, "s")
    return Validation(Deck.load(path), kappa0=0.01)



# --- programmable board helpers (#12)

def _bspec(**kw):
    from spu_circuits.board import BoardSpec

    return BoardSpec(**kw)


def _layout(n, r=None, bits=12, rng=2.0):
    from spu_circuits.board import BoardLayout, board_circuit, build_board

    cc = board_circuit(build_board(_bspec(n=n, r=r, bits=bits, range=rng)), "b")
    return BoardLayout.from_meta(dict(cc.meta))


def _board_sys(n, scale=1.0, b=None):
    A = np.eye(n) * 2.0 * scale
    return LinearSystem.from_arrays(A, np.ones(n) if b is None else np.array(b, float))


def _prog(n, system, bits=12):
    from spu_circuits.board import program

    return program(system, _layout(n, bits=bits), "round")


def _prog_f(S, lam):
    from spu_circuits.board import program
    from spu_circuits.system import FactoredSystem

    lay = _layout(3, r=2, rng=1.0)
    if S is None:
        return program(LinearSystem.from_arrays(np.eye(3) * 0.5, np.ones(3) * 0.1), lay)
    return program(FactoredSystem.from_arrays(S, lam, np.full(3, 0.1)), lay)


def _board_without_codes(tmp):
    from spu_circuits.board import BoardSpec, board_circuit, build_board
    from spu_circuits.board.run import load_programmed

    a = board_circuit(build_board(BoardSpec(n=2, range=2.0)), "a").write(tmp / "a", "a")
    return load_programmed(Deck.load(a), None)


def _codes_for_plain_deck(tmp):
    from spu_circuits.board import BoardSpec, board_circuit, build_board, program
    from spu_circuits.board.program import BoardLayout
    from spu_circuits.board.run import programmed_deck

    a = board_circuit(build_board(BoardSpec(n=2, range=2.0)), "a").write(tmp / "a", "a")
    prog = program(_board_sys(2), BoardLayout.from_meta(Deck.load(a).meta))
    plain = compile_system(_board_sys(2), "dense").write(tmp / "p", "p")
    return programmed_deck(Deck.load(plain), prog)


def _codes_other(tmp):
    from spu_circuits.board import BoardSpec, board_circuit, build_board, program
    from spu_circuits.board.program import BoardLayout
    from spu_circuits.board.run import programmed_deck

    a = board_circuit(build_board(BoardSpec(n=2, range=2.0)), "a").write(tmp / "a", "a")
    b = board_circuit(build_board(BoardSpec(n=2, range=2.0, seed=1)), "b").write(tmp / "b", "b")
    prog = program(_board_sys(2), BoardLayout.from_meta(Deck.load(a).meta))
    return programmed_deck(Deck.load(b), prog)

BAD_INPUT_CASES: list[BadInput] = [
    # --- the matrix A
    BadInput("non-square", "A is 2×3", _sys(np.ones((2, 3))), "A is not square: shape 2×3"),
    BadInput("not-2d", "A is a vector", _sys(np.ones(3)), "A must be a 2-D matrix"),
    BadInput("empty", "A is 0×0", _sys(np.zeros((0, 0))), "A is empty (0×0)"),
    BadInput("non-symmetric", "A ≠ Aᵀ beyond tolerance", _sys(np.array([[2.0, 1.0], [0.0, 2.0]])),
             "max |A−Aᵀ| = 1 at (0,1)"),
    BadInput("indefinite", "A has a negative eigenvalue",
             _sys(np.array([[1.0, 2.0], [2.0, 1.0]])),
             "not positive definite (indefinite)"),
    BadInput("singular", "A has a zero eigenvalue", _sys(np.array([[1.0, 1.0], [1.0, 1.0]])),
             "not positive definite (singular)"),
    BadInput("zero", "A is all zeros", _sys(np.zeros((2, 2))), "A is the zero matrix (singular)"),
    BadInput("nan", "A holds NaN", _sys(np.array([[1.0, NAN], [NAN, 1.0]])),
             "A has 2 non-finite entries (first: A[0,1] = nan)"),
    BadInput("inf", "A holds ∞", _sys(np.array([[1.0, 0.0], [0.0, INF]])),
             "A has 1 non-finite entry (first: A[1,1] = inf)"),
    BadInput("dtype-complex", "A is complex", _sys(np.eye(2) * (1 + 1j)),
             "A must hold real numbers, got dtype complex"),
    BadInput("dtype-string", "A holds strings", _sys(np.array([["1", "0"], ["0", "1"]])),
             "A must hold real numbers, got dtype string"),
    BadInput("dtype-bool", "A is boolean", _sys(np.eye(2, dtype=bool)),
             "A must hold real numbers, got dtype boolean"),
    BadInput("dtype-object", "A is an object array",
             _sys(np.array([[1.0, None], [None, 1.0]], dtype=object)),
             "A must hold real numbers, got dtype object"),
    # --- the right-hand side b
    BadInput("b-length", "b has the wrong length", _sys(np.eye(2), np.ones(3)),
             "b has length 3 but A is 2×2"),
    BadInput("b-2d", "b is a matrix", _sys(np.eye(2), np.ones((2, 2))),
             "b must be a vector, got an array of shape (2, 2)"),
    BadInput("b-nan", "b holds NaN", _sys(np.eye(2), np.array([0.0, NAN])),
             "b has 1 non-finite entries (first: b[1] = nan)"),
    BadInput("b-complex", "b is complex", _sys(np.eye(2), np.ones(2) * 1j),
             "b must hold real numbers, got dtype complex"),
    # --- files
    BadInput("file-missing", "matrix file does not exist",
             lambda tmp: load_system(tmp / "nothere.npy"), "matrix: file not found"),
    BadInput("file-is-folder", "matrix path is a folder", _folder,
             "is a folder, not a .npy/.npz file"),
    BadInput("npy-random-bytes", "matrix file is random bytes",
             _bytes("A.npy", lambda: os.urandom(256)), "cannot read"),
    BadInput("npy-truncated", "valid .npy cut in half",
             _bytes("A.npy", lambda: (d := _valid_npy_bytes())[: len(d) // 2]),
             "could only read"),
    BadInput("npy-header-cut", ".npy cut inside its header",
             _bytes("A.npy", lambda: _valid_npy_bytes()[:60]), "reading array header"),
    BadInput("npy-pickled", ".npy of a pickled object array",
             _npy(np.array([1, None], dtype=object)), "Object arrays cannot be loaded"),
    BadInput("npz-truncated", "valid .npz cut in half",
             _bytes("sys.npz", lambda: (d := _valid_npz_bytes())[: len(d) // 2]),
             "File is not a zip file"),
    BadInput("npz-no-A", ".npz with several arrays and no 'A'",
             _npz(x=np.eye(2), y=np.ones(2)), "holds 2 arrays ['x', 'y']; name one"),
    BadInput("npz-nonsquare", ".npz whose 'A' is not square", _npz(A=np.ones((2, 3))),
             "A is not square"),
    BadInput("rhs-missing", "rhs file does not exist",
             _rhs_missing, "rhs: file not found"),
    BadInput("rhs-random-bytes", "rhs file is random bytes",
             _bytes("b.npy", lambda: os.urandom(64), rhs=True), "rhs: cannot read"),
    # --- hardware spec
    BadInput("spec-negative-R0", "R₀ < 0", _spec(R0_ohm=-1.0),
             "R0_ohm must be a positive finite number, got -1.0"),
    BadInput("spec-nan-C", "C is NaN", _spec(C_F=NAN), "C_F must be a positive finite number"),
    BadInput("spec-zero-v0", "v₀ = 0", _spec(volts_per_unit=0.0),
             "volts_per_unit must be a positive finite number"),
    BadInput("spec-string-gain", "gain is a string", _spec(opamp_gain="big"),
             "opamp_gain must be a positive finite number, got 'big'"),
    BadInput("spec-bool-gain", "gain given as True", _spec(opamp_gain=True),
             "opamp_gain must be a positive finite number"),
    BadInput("spec-range-inverted", "r_min ≥ r_max", _spec(r_min_ohm=1e6, r_max_ohm=1e3),
             "r_min_ohm (1e+06) must be below r_max_ohm (1000)"),
    BadInput("spec-R0-outside", "R₀ outside [r_min, r_max]", _spec(R0_ohm=10.0),
             "R0_ohm = 10 Ω lies outside the resistor range"),
    BadInput("spec-prune", "prune_rel ≥ 1", _spec(prune_rel=1.5),
             "prune_rel must lie in [0, 1)"),
    BadInput("spec-auto-prune", "auto_prune not a bool", _spec(auto_prune="yes"),
             "auto_prune must be true or false"),
    # --- compilation
    BadInput("span-ratio", "entries span more than r_max/r_min (auto-prune off)",
             _compile([[1.0, 1e-7], [1e-7, 1.0]], auto_prune=False),
             "nonzero entries span a ratio of 1e+07", CompileError),
    BadInput("diagonal-span", "diagonal spans more than r_max/r_min",
             _compile([[1.0, 0.0], [0.0, 1e-6]]), "diagonal spans a ratio of 1e+06",
             CompileError),
    BadInput("gain-vs-condition", "κ(A) too large for the op-amp gain",
             _compile([[1.0, 1 - 1e-6], [1 - 1e-6, 1.0]], np.array([1.0, -1.0])),
             "is too large for op-amp gain 1e+06", CompileError),
    BadInput("low-gain", "op-amp gain 10 for κ(A) = 19",
             _compile([[1.0, 0.9], [0.9, 1.0]], opamp_gain=10.0),
             "condition number 19 is too large for op-amp gain 10", CompileError),
    BadInput("prune-breaks-pd", "pruning leaves A indefinite",
             _compile([[2.001, 3.027, 1.253], [3.027, 7.016, 2.216], [1.253, 2.216, 0.942]],
                      prune_rel=0.3),
             "left A not positive definite", CompileError),
    BadInput("unknown-topology", "topology name unknown",
             _compile(GOOD_A, topology="nope"), "unknown topology 'nope'"),
    BadInput("bad-deck-name", "output deck name with a slash",
             lambda tmp: compile_system(LinearSystem.from_arrays(GOOD_A)).write(tmp, "a/b"),
             "invalid deck name 'a/b'"),
    # --- decks and sidecars
    BadInput("deck-edited", "deck changed after compiling", _deck_edited,
             "sidecar does not match its deck: spu.cir was changed after it was compiled"),
    BadInput("sidecar-outputs", "sidecar names nodes the deck lacks",
             _sidecar_edit(lambda m: m.update(outputs=["zz0", "zz1"])),
             "does not match its deck: output node(s) zz0, zz1"),
    BadInput("sidecar-n", "sidecar's n disagrees with its outputs",
             _sidecar_edit(lambda m: m.update(n=3)), "'outputs' must list n = 3 node names"),
    BadInput("sidecar-bad-json", "sidecar is not JSON", _sidecar_text("{not json"),
             "is not valid JSON"),
    BadInput("sidecar-not-object", "sidecar holds a list", _sidecar_text("[1, 2]"),
             "does not hold a JSON object"),
    BadInput("sidecar-missing-keys", "sidecar lacks required keys",
             _sidecar_text('{"outputs": ["o0", "o1"]}'),
             "lacks the key(s) volts_per_unit, tau_s, topology, n"),
    BadInput("deck-missing", "deck file does not exist", _deck_file(None), "deck not found"),
    BadInput("deck-empty", "deck file is empty", _deck_file(b"  \n"), "is empty"),
    BadInput("deck-binary", "deck is not text", _deck_file(b"\xff\xfe\x00garbage\x80"),
             "is not a text file"),
    BadInput("deck-no-sidecar", "sidecar required but absent",
             _deck_file(b"t\nv1 a 0 1\nr1 a 0 1k\n", require_sidecar=True),
             "has no sidecar hand.json beside it"),
    # --- graph checks on hand-built netlists
    BadInput("graph-no-dc-path", "node reached through capacitors only",
             _net(V1, R_LOAD, ("c1", "a b", 1e-9), ("c2", "b 0", 1e-9)),
             "node 'b' has no DC path to ground", GraphCheckError),
    BadInput("graph-floating-group", "resistor pair floating off ground",
             _net(V1, R_LOAD, ("r2", "p q", 1e3), ("r3", "q p", 1e3)),
             "node 'p' has no DC path to ground (floating group: p, q)", GraphCheckError),
    BadInput("graph-dangling", "node with one terminal",
             _net(V1, R_LOAD, ("r2", "a x", 1e3)),
             "node 'x' is dangling: only element 'r2' connects to it", GraphCheckError),
    BadInput("graph-parallel-v", "two voltage sources in parallel",
             _net(V1, ("v2", "a 0", 2.0), R_LOAD),
             "loop of voltage sources: v1, v2", GraphCheckError),
    BadInput("graph-v-e-loop", "voltage source and VCVS output in a loop",
             _net(V1, ("e1", "a 0 b 0", 2.0), ("r2", "a b", 1e3), ("r3", "b 0", 1e3)),
             "loop of voltage sources: v1, e1", GraphCheckError),
    BadInput("graph-v-triangle", "three voltage sources in a ring",
             _net(V1, ("v2", "b a", 1.0), ("v3", "b 0", 2.0), R_LOAD, ("r2", "b 0", 1e3)),
             "loop of voltage sources: v2, v1, v3", GraphCheckError),
    BadInput("graph-nan-value", "element value is NaN",
             _net(V1, ("r1", "a 0", NAN)), "element 'r1' has a non-finite value nan",
             GraphCheckError),
    BadInput("graph-negative-c", "capacitor ≤ 0",
             _net(V1, R_LOAD, ("c1", "a 0", -1e-9)), "element 'c1' has a non-positive value",
             GraphCheckError),
    BadInput("graph-r-range", "resistor beyond the spec's range",
             _net(V1, ("r1", "a 0", 1e9), spec=SPEC),
             "resistor 'r1' = 1e+09 Ω lies outside the spec range [100, 1e+07] Ω",
             GraphCheckError),
    BadInput("graph-g-range", "transconductance beyond the spec's range",
             _net(V1, R_LOAD, ("g1", "a 0 a 0", 1.0), spec=SPEC),
             "transconductance 'g1' = 1 S (1/|g| = 1 Ω) lies outside the spec range",
             GraphCheckError),
    # --- programmable board (spu board / spu program, #12)
    BadInput("board-too-many-vars", "system has more variables than the board has cells",
             lambda tmp: _prog(8, _board_sys(9)), "the system has 9 variables, the board 8 cells"),
    BadInput("board-entry-range", "an entry of A beyond the board's --range",
             lambda tmp: _prog(4, _board_sys(4, scale=3.0)),
             "A[0,0] = 6 lies outside the board's range ±2"),
    BadInput("board-rhs-range", "an entry of b beyond the bias range",
             lambda tmp: _prog(4, _board_sys(4, b=[0, 0, 5.0, 0])),
             "b[2] = 5 lies outside the board's bias range ±2"),
    BadInput("board-factor-range", "an entry of S beyond the factored board's range",
             lambda tmp: _prog_f(np.array([[0.5, 2.5, 0.0]]), 0.1),
             "S[0,1] = 2.5 lies outside the board's range ±1"),
    BadInput("board-factor-rows", "S has more rows than the board has stages",
             lambda tmp: _prog_f(np.full((3, 3), 0.1), 0.1),
             "S has 3 rows, the board 2 stages"),
    BadInput("board-damping-range", "damping λ beyond range²",
             lambda tmp: _prog_f(np.full((1, 3), 0.1), 1.5),
             "damping λ = 1.5 lies outside the board's range 1"),
    BadInput("board-kind", "a dense matrix for a factored board",
             lambda tmp: _prog_f(None, None), "this is a factored board"),
    BadInput("board-aq-not-pd", "quantised A_q not positive definite (too few bits)",
             lambda tmp: _prog(2, LinearSystem.from_arrays(
                 np.array([[2.0, 1.9999], [1.9999, 2.0]]), np.ones(2)), bits=4),
             "the quantised matrix A_q is not positive definite"),
    BadInput("board-swing", "solution beyond the op-amp rails",
             lambda tmp: _prog(2, LinearSystem.from_arrays(np.eye(2) * 0.01,
                                                           np.ones(2))),
             "V, beyond the ±10 V rails; use a board with a smaller v0"),
    BadInput("board-cells", "a dense board beyond 32 cells", lambda tmp: _bspec(n=33),
             "a dense board has at most 32 cells"),
    BadInput("board-bits", "MDAC bits outside 4…20", lambda tmp: _bspec(n=2, bits=30),
             "--bits must lie in 4…20 for an MDAC"),
    BadInput("board-codes-other-board", "codes written for another board",
             lambda tmp: _codes_other(tmp), "the codes were written for another board"),
    BadInput("board-no-codes", "a board simulated without its codes",
             lambda tmp: _board_without_codes(tmp), "is a programmable board: give its codes"),
    BadInput("board-codes-not-board", "codes given for a deck that is not a board",
             lambda tmp: _codes_for_plain_deck(tmp), "is not a programmable board"),
    # --- sweeps (spu_circuits.execution, validation.sweep) -------------------------------
    BadInput("scheduler-unknown", "--scheduler that is none of serial/local/tcp",
             lambda tmp: _parse_scheduler("cluster"), "use serial, local, local:N or tcp://"),
    BadInput("scheduler-unreachable", "--scheduler tcp://HOST:PORT where no scheduler listens",
             _unreachable_scheduler, "cannot reach the Dask scheduler at tcp://127.0.0.1:1"),
    BadInput("scheduler-no-workers", "--scheduler tcp://… whose scheduler has no worker",
             _scheduler_without_workers,
             "no Dask worker is connected to the scheduler at tcp://10.0.0.5:8786: start one "
             "with `dask worker tcp://10.0.0.5:8786 --nthreads 1`"),
    BadInput("scheduler-local-zero", "--scheduler local:0",
             lambda tmp: _parse_scheduler("local:0"), "needs a worker count N ≥ 1"),
    BadInput("sweep-seeds", "--seeds that are not integers or ranges",
             lambda tmp: _parse_seeds("0-x"), "give seeds as 0,1,2 or a range 0-9"),
    BadInput("sweep-no-sidecar", "a deck without sidecar in a validation sweep",
             lambda tmp: _sweep_task_without_sidecar(tmp), "a sweep needs the sidecar"),
    # --- hardware: op-amps, ERC, units, budget, yield (issue 11) --------------------------
    BadInput("erc-gbw", "circuit too fast for the op-amp's GBW (C = 1 nF at 10 MHz)",
             lambda tmp: _hw_realise(gbw_hz=1e7, opamp_gain=1e5, v_sat=10.0, R0=1e4),
             "ERC gbw: the fastest mode", _erc_error()),
    BadInput("erc-current", "an op-amp must drive more than its output current limit",
             lambda tmp: _hw_realise(opamp="TL072", auto_cap=True),
             "ERC current: op-amp eint", _erc_error()),
    BadInput("erc-power", "a resistor dissipates more than its package rating",
             lambda tmp: _hw_realise(gbw_hz=1e7, opamp_gain=1e5, v_sat=10.0, auto_cap=True),
             "ERC power: resistor", _erc_error()),
    BadInput("erc-swing", "--vsat beyond the op-amp's own output swing",
             lambda tmp: _hw_realise(opamp="OPA192", v_sat=44.0, auto_cap=True, R0=1e5),
             "ERC swing: op-amp", _erc_error()),
    BadInput("units-bare-gbw", "--gbw 10 (no unit)",
             lambda tmp: _quantity("10", "Hz", True), "has no unit: write e.g. 10MHz"),
    BadInput("units-bad-suffix", "--cap 100nX (unknown unit)",
             lambda tmp: _quantity("100nX", "F", False), "unknown prefix or unit 'nX'"),
    BadInput("opamp-unknown", "--opamp of a part not in the catalogue",
             lambda tmp: _hw_realise(opamp="NE5532"), "unknown op-amp 'NE5532'"),
    BadInput("opamp-model-pins", "--opamp-model whose .subckt has 3 pins, not 5",
             lambda tmp: _user_model(tmp, ".subckt bad inp inn out\nr1 inp out 1k\n.ends\n"),
             "has 3 pins; the pin order is inp inn vcc vee out"),
    BadInput("opamp-model-missing", "--opamp-model FILE:SUBCKT naming no subcircuit",
             lambda tmp: _user_model(tmp, "* empty\n"), "defines no .subckt opx"),
    BadInput("opamp-model-unsafe", "--opamp-model file with a .control block",
             lambda tmp: _user_model(tmp, ".control\nshell ls\n.endc\n"), ".control",
             _unsafe_error()),
    BadInput("budget-not-realised", "spu budget on a deck that was not realised",
             lambda tmp: _budget_plain(tmp), "not a realised deck"),
    BadInput("budget-dac-inl", "spu budget --dac-inl -1 (a negative INL bound)",
             lambda tmp: _budget_inl(tmp, -1.0), "--dac-inl must be a number of LSB ≥ 0"),
    BadInput("yield-draws", "spu yield --draws 0", lambda tmp: _yield_bad(tmp, 0, 1e-2),
             "--draws must be a positive integer"),
    BadInput("yield-max-error", "spu yield --max-error -1",
             lambda tmp: _yield_bad(tmp, 4, -1.0), "--max-error must be a positive number"),
    BadInput("validate-sized-kappa0", "validating at more noise than the deck was sized for",
             lambda tmp: _validate_oversized(tmp), "the deck was sized (v0, ERC) for kappa0"),
    # --- SPICE reader (spice.lexer, through the deck safety check)
    BadInput("lib-section-cycle", "a .lib section that includes itself (ngspice 39 crashes)",
             lambda tmp: _lib_cycle(tmp), "includes itself", _unsafe_error()),
    BadInput("include-unreadable-deck", "an .include whose file is a NUL-holding binary",
             lambda tmp: _include_binary(tmp), "control character U+0000", _unsafe_error()),
    # --- structure (#10): the typed, versioned sidecar
    BadInput("sidecar-unknown-format", "sidecar of an unknown format version",
             _sidecar_edit(lambda m: m.update(format="spu-tngd-deck/99")),
             "unknown sidecar format 'spu-tngd-deck/99'; this version reads spu-tngd-deck/1"),
    BadInput("sidecar-malformed-record", "sidecar's prediction record is not an object",
             _sidecar_edit(lambda m: m.update(predicted=[1, 2])), "has a malformed record"),
    BadInput("sidecar-malformed-system", "sidecar's system record lacks b",
             _sidecar_edit(lambda m: m["system"].pop("b")),
             "sidecar's 'system' record is malformed"),
    BadInput("sidecar-malformed-noise", "legacy noise record without its step",
             _sidecar_edit(lambda m: m.update(noise={"kind": "trnoise", "kappa0": 0.01})),
             "sidecar's 'noise' record is malformed"),
    # --- structure (#10 item 9): what a new user meets first
    BadInput("matrix-unknown-format", "matrix file of a format that does not load",
             _bytes("A.dat", lambda: b"2 0\n0 1\n"),
             "the formats that load are .npy, .npz, .csv (comma-separated) or .txt"),
    BadInput("matrix-csv-not-numbers", "CSV matrix with a non-number",
             _bytes("A.csv", lambda: b"2,x\n0,1\n"), "cannot read"),
    BadInput("output-under-a-file", "output folder inside a regular file",
             lambda tmp: (tmp / "f").write_text("x") and _check_writable(tmp / "f" / "o",
                                                                          "--out", True),
             "--out"),
    BadInput("output-file-is-a-folder", "--save names an existing folder",
             lambda tmp: _check_writable(tmp, "--save", False), "exists and is a folder"),
    BadInput("tran-without-times", "deck without sidecar or .tran card, no --t-stop/--dt",
             lambda tmp: _deck_tran("t\nv1 a 0 1\nr1 a 0 1k\n.op\n.end\n", None, None),
             "no sidecar and no .tran card: give --t-stop and --dt in seconds"),

    # --- TNGD in a training loop (#14): losses, the outputs graph, size limits
    BadInput("tngd-loss-unknown", "unknown loss name", _tngd(loss="hinge"),
             "unknown loss 'hinge'; expected one of ('ce', 'mse', 'bce', 'nll')"),
    BadInput("tngd-loss-reduction", "a loss module with reduction='none'",
             lambda tmp: __import__("tngd.losses", fromlist=["x"]).resolve_loss(
                 __import__("torch").nn.CrossEntropyLoss(reduction="none")),
             "loss reduction 'none' is not supported"),
    BadInput("tngd-mse-class-ids", "mse with integer class ids as targets",
             _graph(_ids(8), "mse"), "(class ids? use loss='ce')"),
    BadInput("tngd-ce-target-shape", "ce targets of the wrong shape", _graph(_ids(8, 2)),
             "class-id targets must have shape (8,)"),
    BadInput("tngd-ce-class-range", "a class id ≥ the number of classes",
             _graph(lambda: __import__("torch").full((8,), 7)),
             "class id 7 is out of range for 3 classes"),
    BadInput("tngd-loss-not-mean", "a callable loss that is not a mean over samples",
             _graph(lambda: None, _not_mean), "is not the mean of per-sample losses"),
    BadInput("tngd-outputs-detached", "outputs without a graph (detached / no_grad)",
             _graph(_ids(8), detach=True), "outputs have no autograd graph to the parameters"),
    BadInput("tngd-graph-freed", "the outputs' graph freed by an earlier backward",
             _graph(_ids(8), freed=True), "call loss.backward(retain_graph=True)"),
    BadInput("tngd-per-sample-batchnorm", "BatchNorm in train mode with TNGD(model).step",
             _per_sample("bn"), "couples the samples of a batch in train mode"),
    BadInput("tngd-per-sample-dropout", "Dropout in train mode with TNGD(model).step",
             _per_sample("dropout"), "draws random numbers (Dropout in train mode?)"),
    BadInput("tngd-matvec-param-api", "curvature='matvec' with a parameter list",
             _tngd(curvature="matvec", solver="cg"), "curvature='matvec' needs the model-based"),
    BadInput("tngd-empty-params", "an empty parameter list", lambda tmp: __import__(
        "tngd.optimizer", fromlist=["x"]).TNGD([]), "TNGD got an empty parameter list"),
    BadInput("tngd-closure", "a closure that does not return (outputs, targets)",
             lambda tmp: (lambda n: __import__("tngd.optimizer", fromlist=["x"]).TNGD(
                 n[0].parameters()).step(lambda: n[0](n[1])))(_tngd_net()),
             "the closure must return (outputs, targets)"),
    BadInput("tngd-factor-too-large", "S = r·N floats beyond the memory limit (1.07 M params)",
             _size(1_070_000, 640, "ou-exact", max_memory_bytes=2 * 1024**3),
             "S would hold r × N = 640 × 1,070,000 = 684,800,000 float32 values (2.55 GiB)"),
    BadInput("tngd-dense-too-large", "dense solver (exact) for N beyond max_dense_n",
             _size(50_000, 64, "exact", max_memory_bytes=8 * 1024**3),
             "forms the dense F̃ of N × N = 50,000²"),
    BadInput("tngd-spice-too-large", "spice solver deck beyond max_spice_elements",
             _size(5074, 640, "spice"),
             "factored deck (2·r·N = 2 × 640 × 5,074) ≈ 6,494,720 resistors per OU segment"),
    BadInput("tngd-group-damping-zero", "param groups with unequal damping, one of them 0",
             _groups_zero_damping, "different damping need every damping > 0"),
    # --- oscillator topology (#13)
    BadInput("osc-gamma-negative", "oscillator damping γ ≤ 0",
             lambda tmp: compile_system(LinearSystem.from_arrays(GOOD_A), "oscillator",
                                        gamma=-1.0),
             "--damping-gamma must be a positive number, got -1.0"),
    BadInput("osc-gamma-range", "oscillator damping resistor R₀/(αγ) beyond the range",
             lambda tmp: compile_system(LinearSystem.from_arrays(GOOD_A), "oscillator",
                                        gamma=1e-9),
             "velocity damping R0/(alpha*gamma) needs 1e+12 Ω, outside the resistor range",
             CompileError),
    BadInput("osc-realize", "realising an oscillator deck (--realize with --topology "
             "oscillator)",
             lambda tmp: __import__("spu_circuits.compiler.realize", fromlist=["x"]).realize(
                 compile_system(LinearSystem.from_arrays(GOOD_A), "oscillator")),
             "--realize (and the part options) is not available for the oscillator topology"),
    BadInput("osc-gamma-topology", "damping γ given for a first-order topology",
             lambda tmp: compile_system(LinearSystem.from_arrays(GOOD_A), "dense", gamma=1.0),
             "--damping-gamma applies to the oscillator topology only"),
    # --- noise source as a density and a band (#11 item 7)
    BadInput("noise-density-unit", "--noise-density without A/rtHz",
             lambda tmp: __import__("spu_circuits.compiler.noise_density", fromlist=["x"])
             .parse_density("1.2pA"),
             "give a current noise density with its unit, e.g. 1.2pA/rtHz"),
    BadInput("noise-bandwidth-low", "--noise-bandwidth below the circuit's fastest mode",
             lambda tmp: __import__("spu_circuits.compiler.noise_density", fromlist=["x"])
             .noise_source(1e-12, 1e3, tau_s=1e-6, alpha=1.0, v0_V=1.0, R0_ohm=1e3,
                           lambda_max=10.0),
             "--noise-bandwidth 1000 Hz does not cover the circuit"),

]


def _lib_cycle(tmp: Path):
    from spu_circuits.safety import check_deck_safety

    (tmp / "m.lib").write_text("* lib\n.lib a\nr1 a 0 1k\n.lib m.lib a\n.endl\n")
    return check_deck_safety("t\n.lib m.lib a\nv1 a 0 1\n", tmp)


def _include_binary(tmp: Path):
    from spu_circuits.safety import check_deck_safety

    (tmp / "bin.cir").write_bytes(b"r1 a 0 1k\x00\x01\n")
    return check_deck_safety("t\n.include bin.cir\nv1 a 0 1\n", tmp)


def _params() -> list:
    return [pytest.param(case, id=case.id, marks=[pytest.mark.xfail(strict=True,
                                                                     reason=case.xfail)]
                         if case.xfail else [])
            for case in BAD_INPUT_CASES]


def test_case_ids_unique():
    ids = [c.id for c in BAD_INPUT_CASES]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("case", _params())
def test_bad_input(case: BadInput, tmp_path):
    with pytest.raises(case.exc) as ei:
        case.build(tmp_path)
    msg = str(ei.value)
    assert type(ei.value) is case.exc, f"{type(ei.value).__name__}: {msg}"
    assert case.expect in msg, msg
    assert "\n" not in msg, "user-facing errors are one line"


def test_good_inputs_pass(tmp_path):
    """The builders' valid counterparts go through (so the failures above are specific)."""
    sysm = LinearSystem.from_arrays(GOOD_A, np.array([1.0, 0.0]))
    np.savez(tmp_path / "sys.npz", A=GOOD_A, b=np.array([1.0, 0.0]))
    got = load_system(tmp_path / "sys.npz")
    assert np.array_equal(got.A, sysm.A) and np.array_equal(got.b, sysm.b)
    path = _written(tmp_path)
    deck = Deck.load(path, require_sidecar=True)
    assert deck.outputs == ["o0", "o1"]
    net = Netlist("ok")
    net.add("v1", ("a", "0"), 1.0)
    net.add("r1", ("a", "b"), 1e3)
    net.add("r2", ("b", "0"), 1e3)
    check_netlist(net, SPEC)
