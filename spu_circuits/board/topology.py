"""Board topologies: one fixed netlist per (N, r, part, bits, range), couplings set by codes.

A board deck never depends on a system. Every coupling is a sign switch plus a programmable
conductance (`parts`), whose code and sign are ngspice parameters (`code_*`, `sel_*`) given by
a small `.param` program (`program.py`); the bias b_i is a DAC voltage `vbias_i`.

Units. The board accepts |A_ij| ≤ range and |b_i| ≤ range (dense) or |S_kj| ≤ range,
λ ≤ range², |b_i| ≤ range² (factored). A full-scale code realises |A| = range: the conductance
per unit of A is G_u = g_fs/range (dense) or g_fs/range² (factored; the stages' feedback is
R_f = 1/g_fs so that R_f·(g_fs/range)² = G_u), with g_fs the full-scale entry conductance
(part plus closed switch). The unit resistance is R₀ = 1/G_u (bias resistors), τ = C/G_u,
and the bias DAC spans ±v₀·range (dense) or ±v₀·range² (factored) with u_i = −v₀ b_i.

`dense` (N ≤ 32): cells as in the dense topology (integrator s{i}/o{i}/C, inverter p{i}),
one switch + part per entry (i, j) from o{j}/p{j} into s{i}: N² parts.
`factored`: cells plus r stages (virtual ground t{k}, output y{k}, inverter q{k}); per (k, j)
a part from o{j}/p{j} into t{k} and one from q{k}/y{k} into s{j}; a damping part from o{i}
into s{i}: 2rN + N parts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from ..compiler.cellmap import Cell, CellMap, Coupling, Role, Stage
from ..errors import InputError
from ..netlist import GROUND, Netlist, fmt
from .parts import SWITCH_SUBCKT, PartModel, SwitchModel, make_part

MAX_DENSE_CELLS = 32
#: inverters (cells and stages): equal input and feedback resistors (Ω)
R_INV_OHM = 10e3


@dataclass(frozen=True)
class BoardSpec:
    """What a board is built from (nothing here depends on a system).

    n: cells; r: factored stages (None: dense); coupling: 'mdac' | 'digipot'; bits: coupling
    bits; bias_bits: bias DAC bits (signed, ±(2^(B−1) − 1) codes); range: largest |A_ij|,
    |b_i| (dense) or |S_kj| (factored) accepted; v0: volts per unit of x; C_F: integrating
    capacitor; opamp_gain: op-amp open-loop gain (VCVS model); v_sat: output rails ±V;
    seed: draws the parts' fixed errors (INL, tolerance); R_ab_ohm: digipot end-to-end;
    opamp: a catalogue op-amp (`compiler.opamps`) whose DC gain A0 the board's op-amps take
    (None: `opamp_gain`); its GBW, offsets and rails are not modelled on the board.
    """

    n: int
    r: int | None = None
    coupling: str = "mdac"
    bits: int = 12
    bias_bits: int = 16
    range: float = 1.0
    v0: float = 1.0
    C_F: float = 1e-9
    opamp_gain: float = 1e6
    v_sat: float = 10.0
    seed: int = 0
    R_ab_ohm: float = 20e3
    opamp: str | None = None

    def __post_init__(self):
        if self.opamp is not None:
            from ..compiler.opamps import get_part

            part = get_part(self.opamp)
            object.__setattr__(self, "opamp", part.name)
            object.__setattr__(self, "opamp_gain", float(part.gain))
        if not (isinstance(self.n, int) and self.n >= 1):
            raise InputError(f"--cells must be a positive integer, got {self.n!r}")
        if self.r is None and self.n > MAX_DENSE_CELLS:
            raise InputError(f"a dense board has at most {MAX_DENSE_CELLS} cells (N² parts), "
                             f"got {self.n}; use --factored R")
        if self.r is not None and not (isinstance(self.r, int) and self.r >= 1):
            raise InputError(f"--factored must be a positive integer, got {self.r!r}")
        if not 2 <= self.bias_bits <= 24:
            raise InputError(f"--bias-bits must lie in 2…24, got {self.bias_bits}")
        for k in ("range", "v0", "C_F", "opamp_gain", "v_sat"):
            v = getattr(self, k)
            if not (isinstance(v, int | float) and np.isfinite(v) and v > 0):
                raise InputError(f"board: {k} must be a positive number, got {v!r}")
        make_part(self.coupling, self.bits, R_ab_ohm=self.R_ab_ohm)

    @property
    def factored(self) -> bool:
        return self.r is not None

    @property
    def part(self) -> PartModel:
        return make_part(self.coupling, self.bits, R_ab_ohm=self.R_ab_ohm)

    @property
    def switch(self) -> SwitchModel:
        return SwitchModel()

    @property
    def g_fs_S(self) -> float:
        """Full-scale entry conductance (S): part at its full-scale code behind a switch."""
        p = self.part
        g = p.G_full_S
        if p.kind == "mdac":
            return g * self.switch.on_ratio(p.R_ladder_ohm)
        return g / (1 + g * self.switch.R_on_ohm)

    @property
    def A_range(self) -> float:
        """Largest accepted |A_ij| / λ / |b_i| in the units of the cells (range or range²)."""
        return self.range ** 2 if self.factored else self.range

    @property
    def G_unit_S(self) -> float:
        """Conductance per unit of A (S)."""
        return self.g_fs_S / self.A_range

    @property
    def R0_ohm(self) -> float:
        return 1.0 / self.G_unit_S

    @property
    def tau_s(self) -> float:
        return self.C_F / self.G_unit_S

    @property
    def bias_max_code(self) -> int:
        return 2 ** (self.bias_bits - 1) - 1

    @property
    def bias_fs_V(self) -> float:
        return self.v0 * self.A_range

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> BoardSpec:
        return cls(**d)


@dataclass(frozen=True)
class PartSlot:
    """One programmable coupling: its parameters, what it realises and its fixed error.

    kind: 'A' (dense A[row, col]), 'S_in' (S[row=k, col=j] into stage k), 'S_out'
    (S[row=k, col=i] from stage k into cell i), 'damping' (λ at cell row=col=i);
    code/sel: parameter names (sel None: no switch); part/switch: element names; err: the
    part's fixed error (MDAC INL in LSB, digipot tolerance).
    """

    kind: str
    row: int
    col: int
    code: str
    sel: str | None
    part: str
    switch: str | None
    err: float


@dataclass
class Board:
    """A built board: netlist, cell map, spec and its programmable slots (deck order)."""

    spec: BoardSpec
    netlist: Netlist
    cellmap: CellMap
    slots: list[PartSlot] = field(default_factory=list)

    def bias_param(self, i: int) -> str:
        return f"bias_{i}"


def _cells(net: Netlist, sp: BoardSpec, roles: dict) -> list[Cell]:
    gain, r0, n = sp.opamp_gain, sp.R0_ohm, sp.n
    vfs, m = fmt(sp.bias_fs_V), fmt(float(sp.bias_max_code))
    cells = []
    for i in range(n):
        s, o, p, mi, u = f"s{i}", f"o{i}", f"p{i}", f"n{i}", f"u{i}"
        net.add(f"eint{i}", (o, GROUND, GROUND, s), gain)
        net.add(f"c{i}", (s, o), sp.C_F)
        net.add(f"rinv{i}", (o, mi), R_INV_OHM)
        net.add(f"rfb{i}", (mi, p), R_INV_OHM)
        net.add(f"einv{i}", (p, GROUND, GROUND, mi), gain)
        # bias DAC: u_i = code/max·(−full scale); the program gives code = round(b/range·max)
        net.add(f"vb{i}", (u, GROUND), spec=f"dc {{-{vfs}*bias_{i}/{m}}}")
        net.add(f"rb{i}", (u, s), r0)
        roles.update({f"eint{i}": Role.INTEGRATOR_OPAMP, f"c{i}": Role.INTEGRATOR_CAP,
                      f"rinv{i}": Role.INVERTER_R_IN, f"rfb{i}": Role.INVERTER_R_FB,
                      f"einv{i}": Role.INVERTER_OPAMP, f"vb{i}": Role.BIAS_SOURCE,
                      f"rb{i}": Role.BIAS_RESISTOR})
        cells.append(Cell(index=i, output=o, summing=s, capacitor=f"c{i}", bias=f"vb{i}",
                          inverted=p, integrator=f"eint{i}", inverter=f"einv{i}",
                          bias_resistor=f"rb{i}", inverter_r_in=f"rinv{i}",
                          inverter_r_fb=f"rfb{i}", internal_nodes=(mi, u)))
    return cells


def build_board(sp: BoardSpec) -> Board:
    """The board's netlist (elements, subcircuit models, options) and cell map."""
    from ..compiler import DECK_OPTIONS

    part = sp.part
    rng = np.random.default_rng([int(sp.seed), 12])
    net = Netlist(title=(f"spu-tngd board: {'factored' if sp.factored else 'dense'} "
                         f"N = {sp.n}" + (f", r = {sp.r}" if sp.factored else "")
                         + f", {part.kind} {part.bits}-bit couplings"))
    net.options = dict(DECK_OPTIONS)
    net.models = [*sp.switch.subckt(), *part.subckt()]
    roles: dict[str, str] = {}
    cells = _cells(net, sp, roles)
    board = Board(sp, net, CellMap("board", ()))
    slots = board.slots
    pname = part.subckt_name

    def coupling(kind, row, col, tag, src_pos, src_neg, dst, err):
        w = f"w{tag}"
        sw, pt = f"xw{tag}", f"xp{tag}"
        code, sel = f"code_{tag}", f"sel_{tag}"
        if src_neg is None:
            net.add(pt, (src_pos, dst), spec=f"{pname} code={{{code}}} err={fmt(err)}")
            slots.append(PartSlot(kind, row, col, code, None, pt, None, float(err)))
            roles[pt] = Role.PROGRAMMABLE
            return Coupling(kind, row, col, 1, (pt,))
        net.add(sw, (src_pos, src_neg, w), spec=f"{SWITCH_SUBCKT} sel={{{sel}}}")
        net.add(pt, (w, dst), spec=f"{pname} code={{{code}}} err={fmt(err)}")
        slots.append(PartSlot(kind, row, col, code, sel, pt, sw, float(err)))
        roles[sw] = Role.PROGRAMMABLE
        roles[pt] = Role.PROGRAMMABLE
        return Coupling(kind, row, col, 0, (pt, sw))

    couplings, stages = [], []
    n = sp.n
    if not sp.factored:
        errs = part.draw_errors(rng, n * n)
        for i in range(n):
            for j in range(n):
                couplings.append(coupling("A", i, j, f"a{i}_{j}", f"o{j}", f"p{j}", f"s{i}",
                                          errs[i * n + j]))
    else:
        r = sp.r
        errs = part.draw_errors(rng, 2 * r * n + n)
        r_f = 1.0 / sp.g_fs_S
        for k in range(r):
            t, y, q, mk = f"t{k}", f"y{k}", f"q{k}", f"m{k}"
            net.add(f"etia{k}", (y, GROUND, GROUND, t), sp.opamp_gain)
            net.add(f"rtf{k}", (t, y), r_f)
            net.add(f"rqin{k}", (y, mk), R_INV_OHM)
            net.add(f"rqfb{k}", (mk, q), R_INV_OHM)
            net.add(f"eq{k}", (q, GROUND, GROUND, mk), sp.opamp_gain)
            roles.update({f"etia{k}": Role.STAGE_OPAMP, f"rtf{k}": Role.STAGE_R_FB,
                          f"rqin{k}": Role.INVERTER_R_IN, f"rqfb{k}": Role.INVERTER_R_FB,
                          f"eq{k}": Role.INVERTER_OPAMP})
            stages.append(Stage(k, t, y, q, f"etia{k}", f"eq{k}", f"rtf{k}",
                                inverter_r_in=f"rqin{k}", inverter_r_fb=f"rqfb{k}",
                                internal_nodes=(mk,)))
        e = iter(errs)
        for k in range(r):
            for j in range(n):
                couplings.append(coupling("S_in", k, j, f"si{k}_{j}", f"o{j}", f"p{j}",
                                          f"t{k}", next(e)))
        for k in range(r):
            for i in range(n):
                couplings.append(coupling("S_out", k, i, f"so{k}_{i}", f"q{k}", f"y{k}",
                                          f"s{i}", next(e)))
        for i in range(n):
            couplings.append(coupling("damping", i, i, f"d{i}", f"o{i}", None, f"s{i}",
                                      next(e)))
    board.cellmap = CellMap("board-factored" if sp.factored else "board-dense", tuple(cells),
                            tuple(couplings), tuple(stages),
                            {k: str(v) for k, v in roles.items()})
    return board


def param_names(spec: BoardSpec, slots: list[PartSlot]) -> list[str]:
    """Every parameter a program must set, in deck order."""
    out = [f"bias_{i}" for i in range(spec.n)]
    for s in slots:
        out.append(s.code)
        if s.sel:
            out.append(s.sel)
    return out


def test_params(spec: BoardSpec, slots: list[PartSlot]) -> dict[str, float]:
    """A mid-scale program (every switch to o, codes at half scale, biases 0): for structural
    checks and exports that need numbers, not a system."""
    return {p: (1.0 if p.startswith("sel_") else 0.0 if p.startswith("bias_")
                else float(spec.part.positions // 2)) for p in param_names(spec, slots)}
