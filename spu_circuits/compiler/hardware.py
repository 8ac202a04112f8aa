"""Real op-amps in the realisation pass: which model the deck uses, each op-amp's input errors
(V_os, I_b) and the bias DAC's resolution.

`resolve_options(opt)` fills the op-amp figures a part implies (gain, GBW, swing) into the
`RealizeOptions` left at None; `OpAmpHardware` is what `realize` asks while it assembles a
deck: the subcircuit lines, the offsets of each op-amp (nominal or Monte-Carlo drawn, see
`opamps`), and the bias-DAC quantisation of the source settings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from ..errors import InputError
from ..netlist import GROUND, Netlist
from .opamps import (
    GENERIC,
    Offsets,
    OpAmpPart,
    UserModel,
    draw_offsets,
    get_part,
    load_user_model,
    macromodel,
    nominal_offsets,
    subckt_name,
)

#: stream of the Monte-Carlo rng used for op-amp offsets: default_rng([seed, draw, OFFSET_STREAM])
#: (the resistor and capacitor draws use default_rng([seed, draw]), unchanged)
OFFSET_STREAM = 1


def resolve_options(opt):
    """`opt` with gain, GBW and v_sat taken from its op-amp part where they are None."""
    name = opt.opamp
    if name is None or name == GENERIC or name == "auto":
        return opt
    part = get_part(name)
    changes = {"opamp": part.name}
    if opt.opamp_gain is None:
        changes["opamp_gain"] = part.gain
    if opt.gbw_hz is None:
        changes["gbw_hz"] = part.gbw_hz
    if opt.v_sat is None:
        changes["v_sat"] = part.v_sat
    return replace(opt, **changes)


@dataclass
class OpAmpHardware:
    """The op-amps of one realisation: part (None: generic), user model, offsets on/off,
    bias-DAC bits and full scale (V)."""

    part: OpAmpPart | None = None
    user: UserModel | None = None
    with_offsets: bool = True
    dac_bits: int | None = None
    dac_full_scale_V: float | None = None

    @classmethod
    def from_options(cls, opt, swing: dict | None) -> OpAmpHardware:
        part = get_part(opt.opamp) if opt.opamp not in (None, GENERIC) else None
        user = None
        if opt.opamp_model:
            if part is None:
                raise InputError("--opamp-model needs --opamp PART: the catalogue part whose "
                                 "figures stand for the vendor model in the extractor, the "
                                 "ERC and the budget")
            user = load_user_model(opt.opamp_model, part)
        fs = (swing or {}).get("v_sat") or opt.v_sat or (part.v_sat if part else None)
        if opt.dac_bits is not None and not fs:
            raise InputError("--dac-bits needs a DAC full scale: give --vsat or --opamp")
        return cls(part, user, bool(opt.offsets), opt.dac_bits, fs)

    @property
    def subckt(self) -> str | None:
        if self.user is not None:
            return self.user.wrapper
        return subckt_name(self.part) if self.part is not None else None

    def add_model(self, net: Netlist, gain: float, gbw_hz: float) -> None:
        """Add the op-amp model to `net` (the vendor file's lines as raw model lines and its
        3-pin wrapper; or the catalogue macromodel)."""
        if self.user is not None:
            body, wrapper = self.user.parts()
            net.models += body
            net.subcircuits.append(wrapper)
            return
        sub, models = macromodel(self.part, gain=gain, gbw_hz=gbw_hz)
        net.models += models
        net.subcircuits.append(sub)

    def offsets(self, names: list[str], draw: bool, opt) -> dict[str, tuple[float, float]]:
        """op-amp element name → (V_os, I_b) (empty without a part or with offsets off)."""
        if self.part is None or not self.with_offsets or not names:
            return {}
        if draw and opt.mc_seed is not None:
            rng = np.random.default_rng([opt.mc_seed, opt.mc_draw, OFFSET_STREAM])
            off: Offsets = draw_offsets(self.part, len(names), rng)
        else:
            off = nominal_offsets(self.part, len(names))
        return {n: (off.vos_V[k], off.ib_A[k]) for k, n in enumerate(names)}

    @staticmethod
    def add_offsets(net: Netlist, name: str, inp: str, inn: str, vals: tuple[float, float]
                    ) -> str:
        """Add V_os (in series with the non-inverting input) and I_b (out of the inverting
        input's node) for op-amp `name`; returns the node the op-amp's + input now sees."""
        vos, ib = vals
        node = f"nos_{name}"
        net.add(f"vos_{name}", (node, inp), vos)
        net.add(f"iib_{name}", (inn, GROUND), ib)
        return node

    def dac(self, volts: float) -> float:
        """A bias-DAC setting rounded to the DAC's grid (2^bits codes over ±full scale)."""
        if self.dac_bits is None or not self.dac_full_scale_V:
            return volts
        lsb = 2.0 * self.dac_full_scale_V / 2 ** self.dac_bits
        return float(round(volts / lsb) * lsb)

    def record(self, names: list[str], draw: bool, opt) -> dict:
        """The sidecar's op-amp record (part figures, per-op-amp offsets)."""
        if self.part is None:
            return {}
        off = self.offsets(names, draw, opt)
        rec = {"part": self.part.name, "figures": self.part.to_dict(),
               "offsets": ({"drawn": bool(draw and opt.mc_seed is not None),
                            "vos_V": {n: v[0] for n, v in off.items()},
                            "ib_A": {n: v[1] for n, v in off.items()},
                            "elements": "vos_<op-amp> in series with its + input, "
                                        "iib_<op-amp> from its - input to ground"}
                           if off else None),
               "swing_V": list(self.part.swing_V), "i_out_max_A": self.part.i_out_A}
        if self.user is not None:
            rec["user_model"] = {"file": self.user.path, "subckt": self.user.subckt,
                                 "pins": "inp inn vcc vee out",
                                 "supply_V": self.user.supply_V}
        if self.dac_bits is not None:
            rec["bias_dac"] = {"bits": self.dac_bits, "full_scale_V": self.dac_full_scale_V,
                               "lsb_V": 2.0 * (self.dac_full_scale_V or math.nan)
                               / 2 ** self.dac_bits}
        return rec


#: `--opamp auto` tries the parts in this order (roughly cheapest first) and keeps the first
#: whose own errors do not matter (see `pick_opamp`)
AUTO_ORDER = ("TL072", "OPA192", "ADA4077", "OPA189", "LT1028")
#: an op-amp "does not matter" when its V_os/I_b error is at most this fraction of the
#: passive parts' error (rounding, and one tolerance draw)
AUTO_FRACTION = 0.1


@dataclass(frozen=True)
class OpAmpChoice:
    """What `--opamp auto` tried: per part (offset error, passive error, ERC result)."""

    part: str
    tried: tuple[tuple[str, float, float, str], ...]

    def describe(self) -> str:
        rows = "; ".join(f"{p}: offsets {o:.2g} vs passives {q:.2g}{' ' + e if e else ''}"
                         for p, o, q, e in self.tried)
        return f"--opamp auto chose {self.part} ({rows})"


def pick_opamp(compiled, opt) -> OpAmpChoice:
    """The first part of AUTO_ORDER whose op-amp errors (V_os, I_b: the extractor's x with
    offsets vs without) are ≤ AUTO_FRACTION × the passive error (rounding and compensation,
    plus one tolerance draw, seed 0) and that passes the ERC; the last part if none does."""
    import numpy as np

    from .erc import ErcError
    from .realize import realize

    tried = []
    for name in AUTO_ORDER:
        base = replace(opt, opamp=name, opamp_model=None, erc="error")
        try:
            with_off = realize(compiled, base)
        except ErcError as exc:
            tried.append((name, float("nan"), float("nan"), f"(ERC: {str(exc)[:60]}...)"))
            continue
        no_off = realize(compiled, replace(base, offsets=False))
        x1 = np.array(with_off.sidecar.predicted.x_dc)
        x0 = np.array(no_off.sidecar.predicted.x_dc)
        xs = np.asarray(no_off.sidecar.realization.x_eff, dtype=float)
        ref = max(float(np.linalg.norm(xs)), 1e-300)
        off_err = float(np.linalg.norm(x1 - x0) / ref)
        passive = float(no_off.report["rel_error_x"])
        if opt.tolerance > 0:
            drawn = realize(compiled, replace(base, offsets=False, mc_seed=0, mc_draw=0))
            passive = max(passive, float(drawn.report["rel_error_x"]))
        tried.append((name, off_err, passive, ""))
        if off_err <= AUTO_FRACTION * passive:
            return OpAmpChoice(name, tuple(tried))
    ok = [t for t in tried if not t[3]]
    return OpAmpChoice(ok[-1][0] if ok else AUTO_ORDER[-1], tuple(tried))
