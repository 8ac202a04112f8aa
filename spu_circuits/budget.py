"""The error budget of a realised deck: what each non-ideality alone costs in accuracy.

`error_budget(deck)` answers "which part of this board limits its accuracy?". Each term is
the relative error ‖x − x_ideal‖/‖A⁻¹b‖ that one non-ideality causes *alone* (everything
else ideal: exact values, op-amp gain `IDEAL_GAIN`, no pole, no offsets), at DC and at the
run time t (from x₀ = 0, against the ideal circuit's x(t) at the same t):

- finite gain, GBW (at t only; the single-pole model, beside the finite-gain variant),
  resistor rounding (E series, with the deck's trims and compensation), resistor tolerance
  and capacitor tolerance (the deck's Monte-Carlo draw; for a nominal deck the RMS over
  `NOMINAL_DRAWS` draws), V_os and I_b (the deck's own values, read from its `vos_*` and
  `iib_*` elements), bias-DAC bits (the settings rounded to the DAC grid), bias-DAC INL
  (an endpoint-fit bow of up to ±INL LSB per DAC, drawn; not in the deck) — each a variant
  deck, measured by the independent extractor (state space for x(t)) and, unless
  `spice=False`, by ngspice `.op`;
- readout-ADC bits: x* rounded to the ADC grid (2^bits codes over ±v_sat);
- noise: Johnson noise of every resistor (the realisation's `kappa0_full`) plus op-amp
  voltage and current noise (white e_n across the summing node's conductance G_i and i_n
  into it: κ₀,i = (e_n²G_i² + i_n²)/2 · R₀²/(α²v₀²τ), 1/f noise ignored) as an effective
  κ₀; its term is one sample's RMS error sqrt(tr Σ)/‖x*‖, Σ the OU covariance at t;
- rails: the largest probability that an op-amp output leaves its swing at the sized κ₀
  (its error term is 0 while the ERC passes: the linear model holds).

The total is the deck as built, all non-idealities on, by the extractor, compared with the
full ngspice run (`.op`, and a transient to t from x₀ = 0).
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import scipy.linalg

from .errors import InputError
from .figures import png_bytes
from .netlist import GROUND, Element, Netlist

#: op-amp gain of the "ideal" reference (the extraction is exact to ~1/gain)
IDEAL_GAIN = 1e10
#: tolerance draws averaged (RMS) when the deck itself is a nominal design
NOMINAL_DRAWS = 8
_DC_RUN_TIME = math.inf


@dataclass(frozen=True)
class BudgetTerm:
    """One non-ideality alone. dc / at_t: relative error (extractor); spice_dc: the same
    variant's error by ngspice .op (None when not run or not applicable); note: how."""

    name: str
    dc: float
    at_t: float
    spice_dc: float | None
    note: str


@dataclass(frozen=True)
class Budget:
    """The error budget of one deck (see the module docstring); times in units of τ."""

    deck: str
    t_tau: float
    terms: tuple[BudgetTerm, ...]
    total_dc: float
    total_at_t: float
    rss_dc: float
    rss_at_t: float
    spice_total_dc: float | None
    spice_total_at_t: float | None
    kappa0_physical: float
    adc_bits: int | None
    dac_bits: int | None
    #: the bias DACs' INL bound of the INL term (LSB; None: no such term)
    dac_inl_lsb: float | None = None

    @property
    def dominant(self) -> str:
        """The term with the largest DC error."""
        return max(self.terms, key=lambda t: t.dc).name

    def to_json(self) -> dict:
        d = asdict(self)
        d["terms"] = [asdict(t) for t in self.terms]
        d["dominant"] = self.dominant
        return d

    def table(self) -> str:
        """A Markdown table of the terms and totals."""
        def f(v):
            return "–" if v is None else f"{v:.3g}"
        rows = ["| non-ideality (alone) | DC error | error at t | ngspice DC | how |",
                "|---|---|---|---|---|"]
        for t in sorted(self.terms, key=lambda t: -t.dc):
            rows.append(f"| {t.name} | {f(t.dc)} | {f(t.at_t)} | {f(t.spice_dc)} | {t.note} |")
        rows.append(f"| **all on (extractor)** | {f(self.total_dc)} | {f(self.total_at_t)} | "
                    f"{f(self.spice_total_dc)} | ngspice transient at t: "
                    f"{f(self.spice_total_at_t)} |")
        rows.append(f"| root sum of squares of the terms | {f(self.rss_dc)} | "
                    f"{f(self.rss_at_t)} | | |")
        return "\n".join(rows)


# ------------------------------------------------------------------------------ responses


@dataclass(frozen=True)
class _Response:
    x_dc: np.ndarray
    x_t: np.ndarray


#: the budget term of the deck's own (requested) noise source: listed, not in the RSS (it is
#: the sampling noise asked for, and the ngspice totals are noiseless .op / transients)
INJECTED = "noise source (injected)"

def _response(text: str, outputs: list[str], v0: float, t_s: float) -> _Response:
    """DC solution and x(t) from x₀ = 0 (every capacitor uncharged) of a deck's text."""
    from .parser import parse_deck, state_space

    ss, _, _ = state_space(parse_deck(text))
    idx = [ss.nodes.index(o) for o in outputs]
    w_inf = -np.linalg.solve(ss.F, ss.f)
    x_dc = (ss.Pz[idx] @ w_inf + ss.rz[idx]) / v0
    if math.isfinite(t_s):
        w_t = w_inf + scipy.linalg.expm(ss.F * t_s) @ (-w_inf)
        x_t = (ss.Pz[idx] @ w_t + ss.rz[idx]) / v0
    else:
        x_t = x_dc
    return _Response(x_dc, x_t)


def _rel(a: np.ndarray, b: np.ndarray, ref: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / max(float(np.linalg.norm(ref)), 1e-300))


# ------------------------------------------------------------------------------ variants


def _copy(net: Netlist, elements: list[Element]) -> Netlist:
    out = net.copy(elements=False)
    for el in elements:
        out.add(el.name, el.nodes, el.value, el.spec)
    return out


def with_values(net: Netlist, values: dict[str, float], kinds: str) -> Netlist:
    """`net` with the values of its elements of `kinds` taken from `values` where named."""
    return _copy(net, [Element(e.name, e.nodes, values.get(e.name, e.value), e.spec)
                       if e.kind in kinds else e for e in net.elements])


def with_offsets(net: Netlist, vos: dict[str, float], ib: dict[str, float]) -> Netlist:
    """`net` (ideal VCVS op-amps `e<name> out 0 inp inn`) with V_os in series with each
    named op-amp's + input and I_b out of its − input (see `compiler.opamps`)."""
    els: list[Element] = []
    for e in net.elements:
        if e.kind == "e" and e.nodes[1] == GROUND and (e.name in vos or e.name in ib):
            out, _, cp, cm = e.nodes
            if e.name in vos:
                node = f"nos_{e.name}"
                els.append(Element(f"vos_{e.name}", (node, cp), vos[e.name]))
                cp = node
            if e.name in ib:
                els.append(Element(f"iib_{e.name}", (cm, GROUND), ib[e.name]))
            els.append(Element(e.name, (out, GROUND, cp, cm), e.value, e.spec))
        else:
            els.append(e)
    return _copy(net, els)


def _deck_sources(text: str) -> tuple[dict[str, float], dict[str, float]]:
    """The V_os and I_b values of a deck (`vos_<op>` / `iib_<op>` elements), by op-amp."""
    from .parser import parse_deck

    vos, ib = {}, {}
    for el in parse_deck(text).elements:
        if "." in el.name:
            continue
        if el.name.startswith("vos_"):
            vos[el.name[4:]] = float(el.value)
        elif el.name.startswith("iib_"):
            ib[el.name[4:]] = float(el.value)
    return vos, ib


def _quantise(v: float, lsb: float) -> float:
    return float(round(v / lsb) * lsb)


def dac_inl(net: Netlist, v_sat: float, lsb: float, inl_lsb: float, seed: int, draw: int
            ) -> dict[str, float]:
    """Bias source (vb*) → its voltage (V) with the DAC's INL: the endpoint-fit bow
    ε·INL·LSB·4c(1 − c) at the code fraction c = (V + v_sat)/(2 v_sat), ε ~ U(−1, 1) per
    DAC from default_rng([seed, draw, 1]) in deck order (the MDAC parts' model)."""
    biases = [e for e in net.elements if e.kind == "v" and e.name.startswith("vb")]
    eps = np.random.default_rng([seed, draw, 1]).uniform(-1.0, 1.0, len(biases))
    out = {}
    for e, ep in zip(biases, eps, strict=True):
        c = min(max((e.value + v_sat) / (2.0 * v_sat), 0.0), 1.0)
        out[e.name] = e.value + ep * inl_lsb * lsb * 4.0 * c * (1.0 - c)
    return out


# ------------------------------------------------------------------------------ the budget


def error_budget(deck, *, system=None, t_tau: float | None = None, adc_bits: int | None = 16,
                 dac_bits: int | None = None, dac_inl_lsb: float = 1.0,
                 spice: bool = True, spice_terms: bool = True,
                 backend: str = "shared",
                 timeout_s: float = 120.0) -> Budget:
    """The error budget of a realised deck (`simulate.Deck` with its sidecar).

    system: the target (default: the sidecar's); t_tau: the run time in units of τ (default
    3/λ_min(A), the validator's transient horizon); adc_bits: readout ADC (None: none);
    dac_bits: bias DAC (default: the deck's, if it has one); dac_inl_lsb: the bias DACs' INL
    bound in LSB (0: no INL term; needs the DAC bits); spice: check the total with
    ngspice (.op and a transient to t); spice_terms: also each variant's .op.
    """
    from .compiler import compile_system
    from .compiler.noise import NoiseSpec
    from .compiler.realize import RealizeOptions, realize

    side = deck.need_sidecar()
    rec = side.realization
    if rec is None:
        raise InputError(f"{deck.path}: not a realised deck (compile it with --realize or "
                         "--opamp): the budget compares each realised non-ideality")
    target = system if system is not None else deck.system()
    if hasattr(target, "as_linear_system"):
        target = target.as_linear_system()
    A, b = np.asarray(target.A, float), np.asarray(target.b, float)
    x_star = np.linalg.solve(A, b)
    lam = np.linalg.eigvalsh(0.5 * (A + A.T))
    t_tau = float(t_tau if t_tau is not None else 3.0 / lam[0])
    if not t_tau > 0:
        raise InputError(f"--time must be positive, got {t_tau!r}")
    if not (math.isfinite(dac_inl_lsb) and dac_inl_lsb >= 0):
        raise InputError(f"--dac-inl must be a number of LSB ≥ 0, got {dac_inl_lsb!r}")
    outputs, v0 = list(side.outputs), float(side.volts_per_unit)
    tau = float(side.tau_s)
    t_s = t_tau * tau
    x_star_t = x_star - scipy.linalg.expm(-A * t_tau) @ x_star

    opts = dict(rec.options)
    base = RealizeOptions(**{k: v for k, v in opts.items()
                             if k in RealizeOptions.__dataclass_fields__})
    side.require("spec", why="cannot rebuild the design")
    compiled = compile_system(side.to_system(), side.topology, side.spec, name=side.name,
                              noise=NoiseSpec(), predict=False)
    ideal_opt = replace(base, series="exact", tolerance=0.0, mc_seed=None, opamp=None,
                        opamp_model=None, opamp_gain=IDEAL_GAIN, gbw_hz=None, dac_bits=None,
                        auto_cap=False, erc="warn")

    def build(opt) -> Netlist:
        rz = realize(compiled, opt)
        return _strip_noise(rz.netlist)

    def resp(net: Netlist) -> _Response:
        return _response(net.to_text(), outputs, v0, t_s)

    ideal_net = build(ideal_opt)
    ideal = resp(ideal_net)
    spice_runs: list[tuple[str, Netlist]] = []
    terms: list[tuple[str, _Response | None, float, float, str]] = []

    def add(name: str, net: Netlist | None, note: str, reference: _Response | None = None,
            dc_only_t: bool = False) -> None:
        r = resp(net)
        ref = reference or ideal
        dc = _rel(r.x_dc, ref.x_dc, x_star)
        at_t = _rel(r.x_t, ref.x_t, x_star)
        terms.append((name, r, dc, at_t, note))
        if spice and spice_terms and reference is None:
            spice_runs.append((name, net))

    def add_draws(name: str, nets: list[Netlist], how: str) -> None:
        """One variant per Monte-Carlo draw: the draw itself, or the RMS over draws."""
        if len(nets) == 1:
            add(name, nets[0], how)
            return
        rr = [resp(n) for n in nets]
        dc = float(np.sqrt(np.mean([_rel(r.x_dc, ideal.x_dc, x_star) ** 2 for r in rr])))
        at = float(np.sqrt(np.mean([_rel(r.x_t, ideal.x_t, x_star) ** 2 for r in rr])))
        terms.append((name, None, dc, at, how))

    # a nominal deck: RMS over NOMINAL_DRAWS draws; a drawn deck (--mc-seed): its own draw
    draws = ([(base.mc_seed, base.mc_draw)] if base.mc_seed is not None
             else [(0, d) for d in range(NOMINAL_DRAWS)])
    gain = float(base.opamp_gain or side.opamp_gain or IDEAL_GAIN)
    topo = side.topology
    if topo != "ideal":
        gain_net = build(replace(ideal_opt, opamp_gain=gain))
        add("finite gain", gain_net, f"A0 = {gain:g}" + (", compensated" if base.compensate
                                                          else ""))
        if base.gbw_hz:
            gnet = build(replace(ideal_opt, opamp_gain=gain, gbw_hz=base.gbw_hz))
            add("GBW", gnet, f"single pole at GBW {base.gbw_hz:.3g} Hz, vs the finite-gain "
                             "variant", reference=terms[-1][1])
    if base.series != "exact":
        add("resistor rounding", build(replace(ideal_opt, series=base.series)),
            f"{base.series.upper()}" + (f", trims ({base.trim})" if base.compensate else ""))
    if base.tolerance > 0:
        seeds = draws
        rs, cs = [], []
        for seed, draw in seeds:
            tnet = build(replace(ideal_opt, tolerance=base.tolerance, mc_seed=seed,
                                 mc_draw=draw))
            vals = {e.name: e.value for e in tnet.elements}
            rs.append(with_values(ideal_net, vals, "rg"))
            cs.append(with_values(ideal_net, vals, "c"))
        how = (f"{base.tolerance * 100:g}% parts, MC seed {base.mc_seed} draw {base.mc_draw}"
               if base.mc_seed is not None else
               f"{base.tolerance * 100:g}% parts, RMS of {len(seeds)} draws (nominal deck)")
        for name, nets in (("resistor tolerance", rs), ("capacitor tolerance", cs)):
            add_draws(name, nets, how)
    vos, ib = _deck_sources(deck.text)
    part = rec.opamp.part
    if vos:
        add("V_os", with_offsets(ideal_net, vos, {}),
            f"{part or 'op-amp'} offsets as in the deck (max |V_os| "
            f"{max(abs(v) for v in vos.values()):.3g} V)")
    if ib:
        add("I_b", with_offsets(ideal_net, {}, ib),
            f"{part or 'op-amp'} bias currents as in the deck (max {max(ib.values()):.3g} A)")
    v_sat = base.v_sat or (rec.opamp.figures or {}).get("supply_V")
    dac_bits = dac_bits if dac_bits is not None else rec.opamp.bias_dac_bits
    if dac_bits:
        if not v_sat:
            raise InputError("the DAC budget term needs the deck's swing (--vsat or --opamp)")
        lsb = 2.0 * v_sat / 2 ** int(dac_bits)
        vals = {e.name: _quantise(e.value, lsb) for e in ideal_net.elements
                if e.kind == "v" and e.name.startswith("vb")}
        add("bias-DAC bits", with_values(ideal_net, vals, "v"),
            f"{dac_bits} bits over ±{v_sat:g} V (LSB {lsb:.3g} V)")
        if dac_inl_lsb:
            nets = [with_values(ideal_net, dac_inl(ideal_net, v_sat, lsb, dac_inl_lsb,
                                                   seed, draw), "v")
                    for seed, draw in draws]
            add_draws("bias-DAC INL", nets,
                      f"endpoint-fit bow of up to ±{dac_inl_lsb:g} LSB per DAC, size and sign "
                      "drawn per DAC (uniform), "
                      + (f"MC seed {base.mc_seed} draw {base.mc_draw}"
                         if base.mc_seed is not None else f"RMS of {len(draws)} draws")
                      + "; not part of the deck (its total excludes it)")
    if adc_bits:
        fs = v_sat or float(np.max(np.abs(x_star))) * v0
        lsb = 2.0 * fs / 2 ** int(adc_bits)
        q = np.round(x_star * v0 / lsb) * lsb / v0
        qt = np.round(x_star_t * v0 / lsb) * lsb / v0
        terms.append(("readout-ADC bits", None, _rel(q, x_star, x_star),
                      _rel(qt, x_star_t, x_star), f"{adc_bits} bits over ±{fs:.3g} V "
                      f"(LSB {lsb:.3g} V)"))
    k_phys, noise_note = _physical_kappa0(rec, side, deck.text)
    cov_inf = _ou_cov(A, k_phys, None)
    cov_t = _ou_cov(A, k_phys, t_tau)
    nx = float(np.linalg.norm(x_star))
    terms.append(("noise (Johnson + op-amp)", None,
                  float(math.sqrt(max(np.trace(cov_inf), 0.0)) / nx),
                  float(math.sqrt(max(np.trace(cov_t), 0.0)) / nx),
                  f"effective kappa0 {float(np.mean(k_phys)):.3g} ({noise_note}); one "
                  "sample's RMS error"))
    nz = side.noise
    if nz.kind != "none" and nz.kappa0:
        # the deck's injected noise source (the sampling noise TNGD asks for, not an error of
        # the board; one sample's RMS deviation from A^-1 b at that kappa0)
        k_src = np.full(len(x_star), float(nz.kappa0))
        src = side.extra.get("noise_source") or {}
        how = (f"{src['density_A_rtHz']:.3g} A/rtHz to {src['bandwidth_Hz']:.4g} Hz"
               if src else f"{nz.kind}")
        terms.append((INJECTED, None,
                      float(math.sqrt(max(np.trace(_ou_cov(A, k_src, None)), 0.0)) / nx),
                      float(math.sqrt(max(np.trace(_ou_cov(A, k_src, t_tau)), 0.0)) / nx),
                      f"{how}: kappa0 {float(nz.kappa0):.3g}; one sample's RMS deviation"))
    p_clip, rail_note = _rails(rec, side, A, x_star)
    terms.append(("rails", None, 0.0, 0.0, rail_note))
    # all on: the deck itself
    full = _response(_strip_noise_text(deck.text), outputs, v0, t_s)
    total_dc = _rel(full.x_dc, x_star, x_star)
    total_t = _rel(full.x_t, x_star_t, x_star)
    spice_terms: dict[str, float] = {}
    spice_dc = spice_t = None
    if spice:
        spice_terms, spice_dc, spice_t = _spice_checks(
            deck, spice_runs, ideal_net, outputs, v0, x_star, x_star_t, t_tau, backend,
            timeout_s)
    out_terms = tuple(BudgetTerm(n, dc, at, spice_terms.get(n), note)
                      for n, _, dc, at, note in terms)
    return Budget(
        deck=str(deck.path), t_tau=t_tau, terms=out_terms, total_dc=total_dc,
        total_at_t=total_t,
        rss_dc=float(math.sqrt(sum(t.dc ** 2 for t in out_terms if t.name != INJECTED))),
        rss_at_t=float(math.sqrt(sum(t.at_t ** 2 for t in out_terms
                                     if t.name != INJECTED))),
        spice_total_dc=spice_dc, spice_total_at_t=spice_t,
        kappa0_physical=float(np.mean(k_phys)), adc_bits=adc_bits,
        dac_bits=int(dac_bits) if dac_bits else None,
        dac_inl_lsb=float(dac_inl_lsb) if (dac_bits and dac_inl_lsb) else None)


def _strip_noise_text(text: str) -> str:
    """The deck without its noise sources (TRNOISE sources, filesource instances and models),
    read as ngspice reads it (spice.edit.strip_noise)."""
    from .spice.edit import strip_noise

    return strip_noise(text)[0]


def _strip_noise(net: Netlist) -> Netlist:
    from .compiler.realize import _strip_noise as strip

    return strip(net)


def _ou_cov(A: np.ndarray, k: np.ndarray, t_tau: float | None) -> np.ndarray:
    """OU covariance Σ(t) from a fixed start (t None: stationary) with noise K = diag(k):
    AΣ + ΣAᵀ = 2K (stationary); Σ(t) = Σ − e^{−At} Σ e^{−Aᵀt}."""
    K = np.diag(np.asarray(k, dtype=float))
    S = scipy.linalg.solve_continuous_lyapunov(A, 2.0 * K)
    if t_tau is None:
        return S
    E = scipy.linalg.expm(-A * t_tau)
    return S - E @ S @ E.T


def _physical_kappa0(rec, side, text: str) -> tuple[np.ndarray, str]:
    """κ₀ per variable of the board's own noise: Johnson (the realisation's full figure) plus
    op-amp e_n and i_n at each integrator (see the module docstring). rec: the sidecar's
    Realization; side: the Sidecar."""
    n = int(side.n)
    john = np.asarray(rec.kappa0_johnson_full or np.zeros(n), float)
    fig = rec.opamp.figures
    if not fig or side.topology == "ideal":
        return john, "Johnson noise of every resistor"
    from .parser import parse_deck

    alpha, v0 = float(side.matrix_scale), float(side.volts_per_unit)
    r0, tau = float(side.R0_ohm), float(side.tau_s)
    parsed = parse_deck(text)
    nodes = list(side.noise_nodes)
    g = np.zeros(n)
    for el in parsed.elements:
        if el.kind == "r" and "." not in el.name:
            for i, nd in enumerate(nodes):
                if nd in el.nodes:
                    g[i] += 1.0 / el.value
    s_two = 0.5 * (fig["en_V_rtHz"] ** 2 * g ** 2 + fig["in_A_rtHz"] ** 2)
    k_op = 0.5 * s_two * r0 ** 2 / (alpha ** 2 * v0 ** 2 * tau)
    return john + k_op, (f"Johnson + {fig['name']} e_n {fig['en_V_rtHz']:.3g} V/√Hz, i_n "
                         f"{fig['in_A_rtHz']:.3g} A/√Hz, white")


def _rails(rec, side, A: np.ndarray, x_star: np.ndarray) -> tuple[float, str]:
    swing = rec.swing or {}
    if not swing:
        return 0.0, "no rails given (--vsat / --opamp): not checked"
    k0 = float(swing.get("kappa0", 0.0))
    v0, vs = float(side.volts_per_unit), float(swing["v_sat"])
    sd = np.sqrt(np.clip(np.diag(k0 * np.linalg.inv(A)), 0, None)) if k0 > 0 else \
        np.zeros(len(x_star))
    with np.errstate(divide="ignore"):
        z = np.where(sd > 0, (vs / v0 - np.abs(x_star)) / np.where(sd > 0, sd, 1.0), np.inf)
    p = float(np.max(0.5 * np.vectorize(math.erfc)(z / math.sqrt(2.0)))) if k0 > 0 else 0.0
    return p, (f"outputs within ±{vs:g} V for |x*| + {swing.get('n_sigma', 4):g}σ at kappa0 "
               f"{k0:g} (ERC); largest clipping probability of an integrator output {p:.2g}")


def _spice_checks(deck, runs, ideal_net, outputs, v0, x_star, x_star_t, t_tau, backend,
                  timeout_s):
    """ngspice .op of each variant (against the ideal variant's .op) and of the deck, and a
    transient of the deck to t from x₀ = 0."""
    from .backends import Op, get_backend
    from .simulate import Deck, transient

    with tempfile.TemporaryDirectory(prefix="spu-budget-") as tmp, \
            get_backend(backend, timeout_s) as be:
        def op(text: str) -> np.ndarray:
            res = be.run(text, Op(), cwd=tmp, deck_name="budget variant")
            return res.voltages(outputs) / v0

        x_ideal = op(ideal_net.to_text())
        got = {name: _rel(op(net.to_text()), x_ideal, x_star) for name, net in runs}
        text = _strip_noise_text(deck.text)
        dc = _rel(op(text), x_star, x_star)
        quiet = Deck(text, deck.sidecar, Path(tmp) / "deck.cir")
        u, X = transient(quiet, np.zeros(len(outputs)), t_tau, t_tau / 200.0, backend=be,
                         timeout_s=timeout_s)
        xt = X[-1] if abs(u[-1] - t_tau) < 1e-6 * t_tau else np.array(
            [np.interp(t_tau, u, X[:, i]) for i in range(X.shape[1])])
        return got, dc, _rel(xt, x_star_t, x_star)


def bar_chart(budget: Budget, path: str | Path) -> Path:
    """A horizontal bar chart (log scale) of the DC and at-t terms, with the totals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .netlist import atomic_write

    terms = sorted(budget.terms, key=lambda t: t.dc)
    names = [t.name for t in terms] + ["all on (extractor)"]
    dc = [t.dc for t in terms] + [budget.total_dc]
    at = [t.at_t for t in terms] + [budget.total_at_t]
    floor = 1e-12
    fig, ax = plt.subplots(figsize=(7, 0.4 * len(names) + 1.5))
    y = np.arange(len(names))
    ax.barh(y - 0.2, np.maximum(dc, floor), 0.4, label="DC")
    ax.barh(y + 0.2, np.maximum(at, floor), 0.4, label=f"at t = {budget.t_tau:.3g} τ")
    if budget.spice_total_dc is not None:
        ax.axvline(budget.spice_total_dc, color="k", ls="--", lw=1, label="ngspice, all on (DC)")
    ax.set_xscale("log")
    ax.set_yticks(y, names)
    ax.set_xlabel("relative error ‖x − A⁻¹b‖/‖A⁻¹b‖ (each non-ideality alone)")
    ax.set_title(Path(budget.deck).name + ": error budget")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path = Path(path)
    atomic_write({path: png_bytes(fig)})
    return path
