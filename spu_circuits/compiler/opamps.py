"""The op-amp catalogue and the macromodel that realised decks use for real parts.

`CATALOGUE` maps a part name (`--opamp TL072`) to an `OpAmpPart` with datasheet typical and
maximum figures at 25 °C and ±15 V supplies (the sources are recorded per part; check the
current datasheet before ordering: these figures were transcribed once and are not updated
automatically). `GENERIC` is the single-pole model of the earlier realisation pass (gain and
GBW from the command line, no offsets, no rails unless `--vsat`).

Macromodel (`macromodel_lines`), pins `inp inn out` (non-inverting input, inverting input,
output), supplies internal:

    ein ndi 0 inp inn 1          the differential input
    ain ndi nd IN                XSPICE limit: unity gain, |v| clipped to SR/(2π·GBW) (slew)
    gop 0 nop nd 0 gm            gm = A0/r_int into r_int ‖ c_int: A(s) = A0/(1 + s/ω_p)
    arail nop v1 RAIL            XSPICE limit: unity buffer clipped to the swing
                                 [V− + headroom, V+ − headroom]
    eout dv 0 v1 out 1; ailim dv di ILIM
                                 XSPICE limit: di = V(v1) − V(out) clipped to ±I_out,max·r_out
    gout 0 out di 0 1/r_out      the output: a current (V(v1) − V(out))/r_out into `out`,
                                 at most I_out,max (a Thevenin source v1, r_out, current-limited)

(XSPICE `ilimit` models such an output stage too, but its rails are inputs that ngspice's
source stepping ramps through zero, and its .op failed to converge here: three `limit`s do.)

The slew limit follows from the gain node: dV/dt = gm·v_nd/c_int ≤ gm·v_clip/c_int = SR.
In its linear region the model is the single-pole amplifier; the extractor reads `limit` and
`ilimit` as their linear gains, so A_eff and b_eff of a realised deck are those of the circuit
away from the rails (the ERC checks that the deck stays there).

Offsets and bias currents are top-level elements beside each op-amp instance, so that each
op-amp carries its own drawn values and the extractor sees them as DC sources (b_eff):
`vos_<op> nos_<op> <non-inverting input> dc V_os` in series with the non-inverting input and
`iib_<op> <inverting input> 0 dc I_b` (a current drawn out of the summing node into the pin;
the non-inverting input is driven by V_os, so its bias current changes nothing here).
Monte Carlo (`draw_offsets`): V_os ~ Normal(0, V_os,typ²) clipped to ±V_os,max (the
datasheet typical read as one standard deviation); I_b = I_b,typ·(1 + δ), δ ~ Normal(0, 1/9)
clipped to [−1, 1] (within [0, 2·I_b,typ] ⊂ [−I_b,max, I_b,max]) plus ±I_os/2 with
I_os ~ Normal(0, I_os,typ²) clipped to ±I_os,max. The nominal deck (no `--mc-seed`) carries
V_os = +V_os,typ and I_b = +I_b,typ at every op-amp: a systematic, worst-sign board.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..netlist import fmt
from ..spice.lexer import lex

#: internal resistance of the macromodel's gain node (sets gm = A0/r and c = A0/(2π GBW r))
R_INT_OHM = 1e3
#: output resistance (Ω, divided by the loop gain in closed loop)
R_OUT_OHM = 1.0


@dataclass(frozen=True)
class OpAmpPart:
    """One op-amp type: datasheet figures (typical, max) at 25 °C, ±`supply_V`.

    gain: open-loop DC gain A0 (V/V, typical); gbw_hz: gain-bandwidth product (Hz);
    slew_V_per_s: slew rate; headroom_V: (to V+, to V−) output swing headroom at the rated
    load; i_out_A: output current limit (short-circuit, typical); vos_V/vos_max_V: input
    offset voltage; ib_A/ib_max_A: input bias current; ios_A/ios_max_A: offset current;
    en_V_rtHz / in_A_rtHz: input voltage / current noise density at 1 kHz;
    package: the footprint the BOM lists; source: where the figures come from.
    """

    name: str
    description: str
    gain: float
    gbw_hz: float
    slew_V_per_s: float
    supply_V: float
    headroom_V: tuple[float, float]
    i_out_A: float
    vos_V: float
    vos_max_V: float
    ib_A: float
    ib_max_A: float
    ios_A: float
    ios_max_A: float
    en_V_rtHz: float
    in_A_rtHz: float
    package: str
    source: str

    @property
    def swing_V(self) -> tuple[float, float]:
        """(lowest, highest) output voltage at ±supply_V."""
        return (-self.supply_V + self.headroom_V[1], self.supply_V - self.headroom_V[0])

    @property
    def v_sat(self) -> float:
        """Symmetric usable swing ±v_sat (V)."""
        lo, hi = self.swing_V
        return min(-lo, hi)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["headroom_V"] = list(self.headroom_V)
        return d


_C = "Output swing and current at RL = 2 kΩ; figures transcribed from the datasheet named"
CATALOGUE: dict[str, OpAmpPart] = {p.name: p for p in (
    OpAmpPart("LT1028", "ultra-low-noise bipolar precision op-amp (A grade)", gain=3e7,
              gbw_hz=75e6, slew_V_per_s=15e6, supply_V=15.0, headroom_V=(2.0, 2.0),
              i_out_A=0.03, vos_V=10e-6, vos_max_V=40e-6, ib_A=25e-9, ib_max_A=90e-9,
              ios_A=12e-9, ios_max_A=50e-9, en_V_rtHz=0.85e-9, in_A_rtHz=1.0e-12,
              package="SOIC-8", source=f"Linear Technology LT1028/LT1128 datasheet. {_C}"),
    OpAmpPart("ADA4077", "precision bipolar op-amp (B grade)", gain=2e6, gbw_hz=3.9e6,
              slew_V_per_s=1.2e6, supply_V=15.0, headroom_V=(1.2, 1.2), i_out_A=0.022,
              vos_V=10e-6, vos_max_V=25e-6, ib_A=0.4e-9, ib_max_A=1e-9, ios_A=0.1e-9,
              ios_max_A=0.5e-9, en_V_rtHz=6.9e-9, in_A_rtHz=0.4e-12, package="SOIC-8",
              source=f"Analog Devices ADA4077-1/-2/-4 datasheet. {_C}"),
    OpAmpPart("OPA189", "zero-drift (chopper) precision op-amp", gain=1e7, gbw_hz=14e6,
              slew_V_per_s=20e6, supply_V=15.0, headroom_V=(0.25, 0.25), i_out_A=0.065,
              vos_V=0.4e-6, vos_max_V=3e-6, ib_A=70e-12, ib_max_A=300e-12, ios_A=140e-12,
              ios_max_A=600e-12, en_V_rtHz=5.2e-9, in_A_rtHz=0.165e-12, package="SOIC-8",
              source=f"Texas Instruments OPA189 datasheet (SBOS830). {_C}"),
    OpAmpPart("OPA192", "e-trim CMOS precision op-amp, rail to rail", gain=3e6, gbw_hz=10e6,
              slew_V_per_s=20e6, supply_V=15.0, headroom_V=(0.2, 0.2), i_out_A=0.065,
              vos_V=5e-6, vos_max_V=25e-6, ib_A=5e-12, ib_max_A=20e-12, ios_A=2e-12,
              ios_max_A=10e-12, en_V_rtHz=5.5e-9, in_A_rtHz=1.5e-15, package="SOIC-8",
              source=f"Texas Instruments OPA192 datasheet (SBOS620). {_C}"),
    OpAmpPart("TL072", "general-purpose JFET-input op-amp", gain=2e5, gbw_hz=4e6,
              slew_V_per_s=16e6, supply_V=15.0, headroom_V=(1.5, 1.5), i_out_A=0.04,
              vos_V=3e-3, vos_max_V=10e-3, ib_A=20e-12, ib_max_A=200e-12, ios_A=5e-12,
              ios_max_A=100e-12, en_V_rtHz=15e-9, in_A_rtHz=0.01e-12, package="SOIC-8",
              source="STMicroelectronics TL072 datasheet (Doc ID 2298): swing ±13.5 V at "
                     "RL = 10 kΩ, Isc 40 mA typ"),
)}
GENERIC = "generic"


def get_part(name: str) -> OpAmpPart:
    """The catalogue part `name` (case-insensitive); InputError listing the parts."""
    for key, part in CATALOGUE.items():
        if key.lower() == str(name).strip().lower():
            return part
    raise InputError(f"unknown op-amp {name!r}; the catalogue has "
                     f"{', '.join([*CATALOGUE, GENERIC])} (or give --opamp-model FILE:SUBCKT)")


def subckt_name(part: OpAmpPart) -> str:
    return f"spu_{part.name.lower()}"


def macromodel(part: OpAmpPart, *, gain: float | None = None, gbw_hz: float | None = None,
               swing_V: tuple[float, float] | None = None):
    """(`.subckt spu_<part> inp inn out` as a `Subcircuit`, its `.model` lines); see the
    module docstring. gain / gbw_hz / swing_V override the part's figures."""
    from ..netlist import Element, Subcircuit

    a0 = float(gain or part.gain)
    gbw = float(gbw_hz or part.gbw_hz)
    lo, hi = swing_V or part.swing_V
    name = subckt_name(part)
    gm = a0 / R_INT_OHM
    c_int = a0 / (2.0 * math.pi * gbw * R_INT_OHM)
    v_clip = part.slew_V_per_s / (2.0 * math.pi * gbw)
    di = part.i_out_A * R_OUT_OHM
    els = (Element("ein", ("ndi", "0", "inp", "inn"), 1.0),
           Element("ain", ("ndi", "nd"), None, f"{name}_in"),
           Element("gop", ("0", "nop", "nd", "0"), gm),
           Element("rop", ("nop", "0"), R_INT_OHM),
           Element("cop", ("nop", "0"), c_int),
           Element("arail", ("nop", "v1"), None, f"{name}_rail"),
           Element("eout", ("dv", "0", "v1", "out"), 1.0),
           Element("ailim", ("dv", "di"), None, f"{name}_ilim"),
           Element("gout", ("0", "out", "di", "0"), 1.0 / R_OUT_OHM))
    sub = Subcircuit(name, ("inp", "inn", "out"), els, (
        f"{part.name} macromodel: A0 = {a0:g}, GBW = {gbw:g} Hz, slew {part.slew_V_per_s:g} "
        f"V/s, swing [{lo:g}, {hi:g}] V, output current limit {part.i_out_A:g} A; internal "
        "model elements (not parts)",))
    models = [
        f".model {name}_in limit(gain=1.0 out_lower_limit={fmt(-v_clip)} "
        f"out_upper_limit={fmt(v_clip)} limit_range={fmt(v_clip * 1e-3)})",
        f".model {name}_rail limit(gain=1.0 out_lower_limit={fmt(lo)} "
        f"out_upper_limit={fmt(hi)} limit_range={fmt((hi - lo) * 5e-4)})",
        f".model {name}_ilim limit(gain=1.0 out_lower_limit={fmt(-di)} "
        f"out_upper_limit={fmt(di)} limit_range={fmt(di * 1e-3)})"]
    return sub, models


def macromodel_lines(part: OpAmpPart, **kw) -> list[str]:
    """The macromodel as deck lines (models, then the `.subckt`)."""
    sub, models = macromodel(part, **kw)
    return [*models, *sub.lines()]


@dataclass(frozen=True)
class Offsets:
    """Per-op-amp input errors (V, A), one entry per op-amp in deck order."""

    vos_V: tuple[float, ...]
    ib_A: tuple[float, ...]


def nominal_offsets(part: OpAmpPart, n: int) -> Offsets:
    """Every op-amp at its typical V_os and I_b (positive sign)."""
    return Offsets((part.vos_V,) * n, (part.ib_A,) * n)


def draw_offsets(part: OpAmpPart, n: int, rng: np.random.Generator) -> Offsets:
    """A Monte-Carlo draw of n op-amps' V_os and I_b (see the module docstring)."""
    vos = np.clip(rng.normal(0.0, part.vos_V, n), -part.vos_max_V, part.vos_max_V)
    d = np.clip(rng.normal(0.0, 1.0 / 3.0, n), -1.0, 1.0)
    ios = np.clip(rng.normal(0.0, part.ios_A, n), -part.ios_max_A, part.ios_max_A)
    ib = np.clip(part.ib_A * (1.0 + d) + 0.5 * ios, -part.ib_max_A, part.ib_max_A)
    return Offsets(tuple(float(v) for v in vos), tuple(float(v) for v in ib))


# ------------------------------------------------------------------------------ user models

#: documented pin order of a user's vendor macromodel
USER_PINS = ("inp", "inn", "vcc", "vee", "out")


@dataclass(frozen=True)
class UserModel:
    """A vendor macromodel given as `--opamp-model FILE:SUBCKT`.

    Pin order (documented, checked by count): non-inverting input, inverting input, positive
    supply, negative supply, output (the usual 5-pin order of TI and ADI models).
    `text`: the file's text, inlined into the deck (decks stay self-contained); `part`: the
    catalogue part whose figures the extractor, the ERC and the budget use (the vendor
    model is nonlinear and opaque to them), `supply_V`: ± supply the deck feeds it.
    """

    path: str
    subckt: str
    text: str
    part: OpAmpPart
    supply_V: float

    @property
    def wrapper(self) -> str:
        return f"spu_user_{self.subckt}"

    def parts(self):
        """(the vendor file's lines, the 3-pin wrapper `spu_user_<name> inp inn out` as a
        `Subcircuit` feeding it ±supply_V)."""
        from ..netlist import Element, Subcircuit

        body = [ln for ln in self.text.splitlines() if ln.strip()
                and ln.strip().lower() != ".end"]
        head = [f"* vendor op-amp model {self.subckt} from {Path(self.path).name} "
                f"(pins {' '.join(USER_PINS)})"]
        wrapper = Subcircuit(self.wrapper, ("inp", "inn", "out"), (
            Element("xu", ("inp", "inn", "vcc", "vee", "out"), None, self.subckt),
            Element("vcc", ("vcc", "0"), self.supply_V),
            Element("vee", ("vee", "0"), -self.supply_V)),
            (f"wrapper: {self.subckt} at ±{self.supply_V:g} V",))
        return head + body, wrapper


def load_user_model(spec: str, part: OpAmpPart, supply_V: float | None = None) -> UserModel:
    """Read `FILE:SUBCKT`: the file must define `.subckt SUBCKT` with 5 pins and pass the
    deck safety rules (no .control, no shell or file commands, no includes)."""
    from ..safety import check_deck_safety

    if ":" not in spec:
        raise InputError(f"--opamp-model {spec!r}: give FILE:SUBCKT (e.g. opa189.lib:OPA189)")
    path, name = spec.rsplit(":", 1)
    p = Path(path)
    if not p.is_file():
        raise InputError(f"--opamp-model: no file {path!r}")
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"--opamp-model: cannot read {path!r}: {exc}") from None
    refs = check_deck_safety("* vendor model " + p.name + "\n" + text, p.parent)
    if refs:
        raise InputError(f"--opamp-model: {p.name} reads other files ({refs[0].name}); the "
                         "model is inlined into the deck, so give one self-contained file")
    pins = None
    for card in lex("* vendor model\n" + text).cards:   # `+` continued pin lists included
        words = card.text.lower().split()
        if card.word == ".subckt" and words[1:2] == [name.lower()]:
            pins = [t for t in words[2:] if "=" not in t and t not in ("params:", "optional:")]
            break
    if pins is None:
        raise InputError(f"--opamp-model: {p.name} defines no .subckt {name}")
    if len(pins) != len(USER_PINS):
        raise InputError(f"--opamp-model: .subckt {name} has {len(pins)} pins; the pin order "
                         f"is {' '.join(USER_PINS)} (5 pins)")
    return UserModel(str(p), name.lower(), text, part, float(supply_V or part.supply_V))
