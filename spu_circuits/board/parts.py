"""Programmable coupling parts of a board: their circuit models and their code → conductance law.

Every coupling of a board is a sign switch followed by a programmable conductance:

    o_j ──┐
          ├─ switch (SPDT, `sel` = +1: o_j, −1: p_j, 0: open) ── ref ── part ── summing node
    p_j ──┘

`MDAC` — a current-output multiplying DAC (AD5443-like: R-2R ladder, 12 bits, 10 MHz multiplying
bandwidth, INL ±1 LSB). The ladder's input resistance R_ladder loads `ref`; the current into the
summing node is G_full·c_eff/2^B·V(ref − iout) through a first-order lag at the multiplying
bandwidth, with c_eff = c + ε·4(c/2^B)(1 − c/2^B): an endpoint-fit INL bow of ε LSB (ε drawn
once per part from the board seed, |ε| ≤ INL). At DC: g(c) = G_full·c_eff/2^B.

`Digipot` — a rheostat-mode digital potentiometer (AD5293-like: 2^B = 1,024 positions, R_AB of
20/50/100 kΩ with ±1 % end-to-end tolerance drawn per part, wiper resistance R_W, 520 kHz
bandwidth): R(c) = R_W + (c/2^B)·R_AB·(1 + δ); the current g(c)·V(ref − iout) leaves `ref` and
enters the summing node through the same kind of lag. Its conductance is not linear in c: the
board's full scale sits at c = 2^B/32 (`DIGIPOT_FS_DIV`), weaker entries use larger c, entries
below 1/(R_W + R_AB) are realised by opening the switch.

`Switch` — an SPDT analog switch (ADG1419-like) modelled as two resistors R_on + (1 − on)·R_off.

The pole capacitors are named `cpole` inside the subcircuits; DC analyses and the extractor's
OU model drop them (they add fast states, not dynamics on the time scale τ).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..netlist import fmt

SWITCH_SUBCKT = "spdt"
#: the digipot's full-scale conductance is reached at code 2^B / DIGIPOT_FS_DIV
DIGIPOT_FS_DIV = 32


@dataclass(frozen=True)
class SwitchModel:
    """SPDT analog switch: on resistance R_on, off resistance R_off (leakage) in Ω."""

    R_on_ohm: float = 2.1
    R_off_ohm: float = 1e9
    mpn: str = "ADG1419BRMZ"
    footprint: str = "Package_SO:MSOP-8_3x3mm_P0.65mm"

    def subckt(self) -> list[str]:
        on, off = fmt(self.R_on_ohm), fmt(self.R_off_ohm)
        return [f".subckt {SWITCH_SUBCKT} a b com params: sel=0",
                f"rsa a com {{{on}+{off}*(1-sel*(sel+1)/2)}}",
                f"rsb b com {{{on}+{off}*(1-sel*(sel-1)/2)}}",
                f".ends {SWITCH_SUBCKT}"]

    def on_ratio(self, R_load_ohm: float) -> float:
        """V(ref)/V(source) of a closed switch driving R_load (Ω) (off branch neglected)."""
        return R_load_ohm / (R_load_ohm + self.R_on_ohm)


@dataclass(frozen=True)
class PartModel:
    """A programmable conductance with B bits (codes 0 … 2^B − 1).

    kind: 'mdac' or 'digipot'; bits: B; bandwidth_hz: the lag's −3 dB frequency;
    R_ladder_ohm: MDAC ladder input resistance (MDAC: G_full = 1/R_ladder); R_ab_ohm,
    R_w_ohm, tolerance: digipot end-to-end resistance, wiper resistance, end-to-end tolerance
    (3σ); inl_lsb: MDAC INL bound (LSB); mpn, footprint: for the BOM and KiCad.
    """

    kind: str
    bits: int
    bandwidth_hz: float
    R_ladder_ohm: float = 10e3
    R_ab_ohm: float = 20e3
    R_w_ohm: float = 60.0
    tolerance: float = 0.01
    inl_lsb: float = 1.0
    mpn: str = ""
    footprint: str = ""

    @property
    def positions(self) -> int:
        return 2 ** self.bits

    @property
    def max_code(self) -> int:
        return self.positions - 1

    @property
    def subckt_name(self) -> str:
        return f"{self.kind}{self.bits}"

    @property
    def G_full_S(self) -> float:
        """Nominal conductance (S) that realises the board's range (|A| = range)."""
        if self.kind == "mdac":
            return self.max_code / self.positions / self.R_ladder_ohm
        return 1.0 / (self.R_w_ohm + self.R_ab_ohm / DIGIPOT_FS_DIV)

    @property
    def R_load_ohm(self) -> float:
        """Load the part puts on its switch (the ladder resistance; digipot: its rheostat)."""
        return self.R_ladder_ohm if self.kind == "mdac" else self.R_ab_ohm

    def draw_errors(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Per-part fixed errors: MDAC INL ε (LSB, uniform in ±INL); digipot δ (relative,
        Normal(0, (tol/3)²) clipped to ±tol). Rounded to 6 digits (written in the deck)."""
        if self.kind == "mdac":
            e = rng.uniform(-self.inl_lsb, self.inl_lsb, n)
        else:
            e = np.clip(rng.normal(0.0, self.tolerance / 3, n), -self.tolerance, self.tolerance)
        return np.round(e, 6)

    def conductance(self, code, err) -> np.ndarray:
        """DC conductance (S) of code(s) with per-part error(s) `err` (arrays broadcast)."""
        c = np.asarray(code, dtype=float)
        P = self.positions
        if self.kind == "mdac":
            x = c / P
            return (c + np.asarray(err) * 4 * x * (1 - x)) / P / self.R_ladder_ohm
        return 1.0 / (self.R_w_ohm + c / P * self.R_ab_ohm * (1 + np.asarray(err)))

    def subckt(self) -> list[str]:
        """`.subckt NAME ref iout params: code=0 err=0` (see the module docstring)."""
        P, name = fmt(float(self.positions)), self.subckt_name
        c_pole = fmt(1.0 / (2 * math.pi * self.bandwidth_hz))
        if self.kind == "mdac":
            g = (f"{{(code+err*4*(code/{P})*(1-code/{P}))/{P}/"
                 f"{fmt(self.R_ladder_ohm)}}}")
            load = [f"rladder ref 0 {fmt(self.R_ladder_ohm)}"]
        else:
            g = (f"{{1/({fmt(self.R_w_ohm)}+code/{P}*{fmt(self.R_ab_ohm)}*(1+err))}}")
            load = [f"gdraw ref 0 nf 0 {g}"]
        return [f".subckt {name} ref iout params: code=0 err=0",
                *load,
                "gin 0 nf ref iout 1.0",
                "rpole nf 0 1.0",
                f"cpole nf 0 {c_pole}",
                f"gout 0 iout nf 0 {g}",
                f".ends {name}"]


def make_part(kind: str, bits: int | None = None, *, R_ab_ohm: float = 20e3) -> PartModel:
    """The board's coupling part: 'mdac' (AD5443-like, default 12 bits) or 'digipot'
    (AD5293-like, 10 bits, R_AB 20/50/100 kΩ)."""
    from ..errors import InputError

    if kind == "mdac":
        b = 12 if bits is None else int(bits)
        if not 4 <= b <= 20:
            raise InputError(f"--bits must lie in 4…20 for an MDAC, got {b}")
        return PartModel("mdac", b, 10e6, R_ladder_ohm=10e3, inl_lsb=1.0,
                         mpn="AD5443YRMZ" if b == 12 else f"AD5443-like {b}-bit MDAC",
                         footprint="Package_SO:MSOP-10_3x3mm_P0.5mm")
    if kind == "digipot":
        b = 10 if bits is None else int(bits)
        if not 6 <= b <= 12:
            raise InputError(f"--bits must lie in 6…12 for a digipot, got {b}")
        if R_ab_ohm not in (20e3, 50e3, 100e3):
            raise InputError(f"digipot R_AB must be 20k, 50k or 100k ohm, got {R_ab_ohm:g}")
        return PartModel("digipot", b, 520e3, R_ab_ohm=R_ab_ohm, R_w_ohm=60.0,
                         tolerance=0.01,
                         mpn=(f"AD5293BRUZ-{int(R_ab_ohm / 1e3)}" if b == 10
                              else f"AD5293-like {b}-bit digipot"),
                         footprint="Package_SO:TSSOP-14_4.4x5mm_P0.65mm")
    raise InputError(f"unknown coupling part {kind!r}; choose mdac or digipot")
