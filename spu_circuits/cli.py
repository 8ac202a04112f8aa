"""The `spu` commands of this package: compile systems into decks and simulate decks.

`spu validate` lives in the validation package; the full `spu` command line (these commands
plus validate) is assembled on top of both, in :mod:`spu_tngd.cli`. `python -m
spu_circuits.cli` runs the commands of this package alone.

Every expected failure prints one line (`error: ...`, plus ngspice's log lines for simulator
failures) and exits non-zero; set SPU_DEBUG=1 to see tracebacks.
"""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from .cli_common import (
    check_writable,
    friendly,
    noise_from_options,
    noise_options,
    spec_from_options,
    spec_options,
)
from .compiler.topology import TOPOLOGIES
from .errors import InputError

_spec = spec_from_options  # former private names
_noise = noise_from_options


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="spu-tngd")
def main() -> None:
    """Compile linear systems A x = b into SPU netlists and check them in ngspice."""


@main.command("compile")
@click.option("--matrix", "matrix", type=click.Path(dir_okay=False),
              help="A as .npy (or .npz with arrays A and b).")
@click.option("--factor", "factor", type=click.Path(dir_okay=False),
              help="S as .npy (r×N), for F = S^T S + damping*I (instead of --matrix).")
@click.option("--damping", type=float, default=None, help="Damping lambda > 0 with --factor.")
@click.option("--rhs", type=click.Path(dir_okay=False), help="b as .npy (default: ones).")
@click.option("--topology", type=click.Choice(sorted(TOPOLOGIES)),
              default=None, help="Circuit topology [default: factored with --factor, "
              "else dense].")
@click.option("--damping-gamma", "damping_gamma", type=float, default=None,
              help="Oscillator topology: velocity damping gamma > 0 [default: "
                   "2*sqrt(lambda_min(A)), the slowest mode critically damped].")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True,
              help="Output folder.")
@click.option("--name", default=None, help="Deck name (default: the matrix file's stem).")
@spec_options
@noise_options
@click.option("--realize", "series", type=click.Choice(["exact", "e24", "e96", "e192"]),
              default=None, help="Realise with real parts: resistor series (caps E12).")
@click.option("--tolerance", default=None, help="Tolerance class with --realize, e.g. 1%.")
@click.option("--mc-seed", type=int, default=None,
              help="Draw part values within tolerance (Monte Carlo) from this seed.")
@click.option("--mc-draw", type=int, default=0, show_default=True,
              help="Which Monte-Carlo draw of the seed.")
@click.option("--gbw", default=None, help="Op-amp gain-bandwidth with its unit, e.g. 10MHz "
              "(single pole; default: the --opamp part's).")
@click.option("--vsat", default=None,
              help="Op-amp output swing +-V (e.g. 10V): choose v0 so outputs stay inside "
                   "(|x*| + 4 sigma at the sizing kappa0; default: the --opamp part's swing).")
@click.option("--opamp", "opamp", default=None,
              help="Catalogue op-amp: LT1028, ADA4077, OPA189, OPA192, TL072, generic, or auto "
                   "(the cheapest whose V_os/I_b error is <= 0.1x the passive parts') "
                   "(gain, GBW, slew, swing, current limit, V_os, I_b from its datasheet).")
@click.option("--opamp-model", "opamp_model", default=None,
              help="Vendor op-amp macromodel FILE:SUBCKT (pins: inp inn vcc vee out), "
                   "inlined into the deck; needs --opamp for the figures the checks use.")
@click.option("--size-kappa0", "size_kappa0", type=float, default=None,
              help="The kappa0 the deck will be run with (v0 and the ERC are sized for it; "
                   "default: --kappa0 with noise sources, else 0.01, the validator's).")
@click.option("--dac-bits", "dac_bits", type=int, default=None,
              help="Bias-DAC resolution in bits over +-vsat (quantises the b settings).")
@click.option("--package", "package", default="0603", show_default=True,
              help="Resistor package (sets the power rating the ERC checks).")
@click.option("--allow-erc", is_flag=True,
              help="Electrical rule violations (swing, current, power, GBW) become warnings.")
@click.option("--compensate", is_flag=True,
              help="Pre-compensate finite gain and E-series rounding with trim resistors.")
@click.option("--bom", "write_bom", is_flag=True,
              help="Write NAME_bom.csv (always written with --realize).")
@click.option("--tiles", "tiles", type=int, default=None,
              help="Partition onto tiles of this many cells (subcircuit per tile).")
@click.option("--block-jacobi", is_flag=True,
              help="With --tiles: drop the couplings between tiles.")
@click.option("--noise-density", "noise_density", default=None,
              help="Noise source as a current noise density, e.g. 1.2pA/rtHz (one-sided), "
                   "with --noise-bandwidth: sets kappa0 and the noise step (instead of "
                   "--kappa0/--noise-step; --noise file unless --noise trnoise).")
@click.option("--noise-bandwidth", "noise_bandwidth", default=None,
              help="Bandwidth of the --noise-density source with its unit, e.g. 1MHz.")
@friendly
def compile_cmd(matrix, factor, damping, rhs, topology, damping_gamma, out_dir, name, series,
                tolerance, mc_seed, mc_draw, gbw, vsat, opamp, opamp_model, size_kappa0,
                dac_bits, package, allow_erc, compensate, write_bom, tiles, block_jacobi,
                noise_density, noise_bandwidth, **kw):
    """Compile A x = b (or (S^T S + damping I) x = b) into OUT/NAME.cir and OUT/NAME.json."""
    from .units import parse_quantity

    check_writable(Path(out_dir), "--out", folder=True)  # before any work
    cap_given = click.get_current_context().get_parameter_source("C_F") == \
        click.core.ParameterSource.COMMANDLINE
    spec = spec_from_options(kw)
    density = None
    if noise_density is not None or noise_bandwidth is not None:
        from .compiler.noise_density import parse_density

        if noise_density is None or noise_bandwidth is None:
            raise InputError("--noise-density and --noise-bandwidth go together")
        if kw["kappa0"] or kw["noise_step"] is not None:
            raise InputError("--noise-density sets kappa0 and the noise step: drop --kappa0 "
                             "and --noise-step")
        density = (parse_density(noise_density),
                   parse_quantity(noise_bandwidth, "Hz", what="--noise-bandwidth",
                                  require_unit=True))
        kw["noise_kind"] = "file" if kw["noise_kind"] == "none" else kw["noise_kind"]
        kw["kappa0"] = 1.0          # placeholder until the deck's tau, alpha, v0 are known
    noise = noise_from_options(kw)
    realizing = bool(series or tolerance or gbw or vsat or compensate or mc_seed is not None
                     or opamp or opamp_model or dac_bits is not None)
    if tiles is not None and tiles < 1:
        raise InputError(f"--tiles must be ≥ 1, got {tiles}")
    if block_jacobi and not tiles:
        raise InputError("--block-jacobi needs --tiles K")
    if realizing and topology:
        from .compiler.realize import check_realizable

        check_realizable(topology)  # before reading the input
    if damping_gamma is not None and topology != "oscillator":
        raise InputError("--damping-gamma applies to --topology oscillator only")
    system = _load_input(matrix, factor, damping, rhs, name)
    topology = topology or ("factored" if factor else "dense")
    name = name or system.name
    ropts = None
    if realizing:
        from .compiler.realize import RealizeOptions, parse_tolerance

        ropts = RealizeOptions(series=series or "exact",
                               tolerance=parse_tolerance(tolerance) if tolerance else 0.0,
                               mc_seed=mc_seed, mc_draw=mc_draw,
                               gbw_hz=parse_quantity(gbw, "Hz", what="--gbw",
                                                     require_unit=True) if gbw else None,
                               v_sat=parse_quantity(vsat, "V", what="--vsat") if vsat else None,
                               compensate=compensate, opamp=opamp, opamp_model=opamp_model,
                               dac_bits=dac_bits, package=package, auto_cap=not cap_given,
                               erc="warn" if allow_erc else "error")
    source = None
    if density is not None:  # the deck's own tau, alpha, v0 (realised) give kappa0
        from dataclasses import replace as _replace

        from .compiler.noise import NoiseSpec
        from .compiler.noise_density import noise_source

        if size_kappa0 is None:
            size_kappa0 = 0.01  # the same sizing in the probe and the deck
        probe = _build(system, topology, spec, name, NoiseSpec(), damping_gamma, None, ropts,
                       size_kappa0)
        ps = probe.sidecar
        A_sys = ps.system.matrix()[0]
        source = noise_source(density[0], density[1], tau_s=ps.tau_s,
                              alpha=ps.matrix_scale, v0_V=ps.volts_per_unit,
                              R0_ohm=ps.R0_ohm,
                              lambda_max=float(np.linalg.eigvalsh(0.5 * (A_sys + A_sys.T))[-1]))
        noise = _replace(noise, kappa0=source.kappa0, step_tau=source.step_tau)
    compiled = _build(system, topology, spec, name, noise, damping_gamma, source, ropts,
                      size_kappa0)
    if realizing:
        write_bom = True
    if tiles:  # after realising: each tile holds its cells' realised parts
        from .compiler.tiles import tile_circuit

        compiled = tile_circuit(compiled, K=tiles, drop_inter_tile=block_jacobi)
    _report_compiled(compiled, out_dir, name, topology, write_bom, source)


def _build(system, topology, spec, name, noise, damping_gamma, source, ropts,
           size_kappa0):
    """Compile (+ realise with `ropts`, a RealizeOptions whose swing κ₀ is `size_kappa0`,
    default the noise's κ₀ or 0.01) and record the density-given noise `source`."""
    from dataclasses import replace

    from .compiler import compile_system

    compiled = compile_system(system, topology, spec, name=name, noise=noise,
                              gamma=damping_gamma)
    if ropts is not None:
        from .compiler.realize import realize

        k0 = size_kappa0 if size_kappa0 is not None else (
            noise.kappa0 if noise.kind != "none" else 0.01)
        compiled = realize(compiled, replace(ropts, kappa0_swing=k0))
    if source is not None:
        compiled.sidecar = compiled.sidecar.with_(
            extra={**compiled.sidecar.extra, "noise_source": source.to_json()})
    return compiled


def _report_compiled(compiled, out_dir, name, topology, write_bom, source):
    """Write the deck (+ BOM files) and print its summary."""
    deck = compiled.write(out_dir, name)
    m = compiled.sidecar
    counts = ", ".join(f"{v} {k}" for k, v in m.element_counts.items())
    click.echo(f"wrote {deck} and {deck.with_suffix('.json').name}: {topology}, N = {m.n}, "
               f"{counts}")
    click.echo(f"  tau = {m.tau_s:.4g} s, scale alpha = {m.matrix_scale:.4g}, "
               f"cond(A) = {m.condition_number:.3g}, predicted DC deviation "
               f"{m.predicted.rel_deviation_from_exact:.2e} ({m.predicted.cause})")
    osc = m.extra.get("oscillator")
    if osc:
        ts = osc["expected_settling_tau"]
        click.echo(f"  oscillator: gamma = {osc['damping_gamma']:.4g} ({osc['gamma_rule']}), "
                   "expected settling to 1e-3 from 0: "
                   + (f"{ts:.4g} tau = {osc['expected_settling_s']:.3g} s" if ts else "n/a"))
    rep = getattr(compiled, "report", None)
    if rep:
        click.echo(f"  realised ({rep['description']}): |A_eff - A|/|A| = "
                   f"{rep['rel_error_A']:.3g}, error of A_eff^-1 b_eff vs A^-1 b = "
                   f"{rep['rel_error_x']:.3g}, Johnson-noise kappa0 floor = "
                   f"{rep['kappa0_johnson']:.3g}")
        for w in rep.get("erc_warnings", []):
            click.echo(f"  warning: {w}", err=True)
        if "rel_error_A_before" in rep:
            click.echo(f"  compensation: |A_eff - A|/|A| {rep['rel_error_A_before']:.3g} -> "
                       f"{rep['rel_error_A_after']:.3g}; x error {rep['rel_error_x_before']:.3g}"
                       f" -> {rep['rel_error_x_after']:.3g}")
    tl = m.tiles
    if tl:
        bj = tl.block_jacobi_rel_error
        click.echo(f"  tiles: {tl.n_tiles} of <= {tl.K} cells, "
                   f"{tl.inter_tile_wires} inter-tile wires, coupling weight cut "
                   f"{tl.cut_fraction:.3g} (contiguous split: {tl.naive_cut_fraction:.3g})"
                   + (f"; block-Jacobi costs a relative error of {bj:.3g}"
                      if bj is not None else ""))
    if write_bom:
        from .bom import write_bom_files

        paths = write_bom_files(out_dir, name, compiled)
        click.echo(f"  bill of materials: {paths[0]} (designator map {paths[1].name}"
                   + (f", {len(paths) - 2} per-tile/backplane BOMs" if len(paths) > 2 else "")
                   + ")")
    nz = m.noise
    if nz.kind != "none":
        if source is not None:
            click.echo(f"  noise source: {source.density_A_rtHz:.4g} A/rtHz to "
                       f"{source.bandwidth_Hz:.4g} Hz (>= {source.min_bandwidth_Hz:.4g} Hz "
                       f"needed) means kappa0 = {source.kappa0:.4g}")
        click.echo(f"  noise: {nz.kind}, kappa0 = {nz.kappa0:g}, step NT = "
                   f"{nz.step_tau:.4g} tau ({nz.step_rule})"
                   + (f", seed {nz.seed}, files {', '.join(nz.files)}"
                      if nz.kind == "file" else ""))
    if m.pruning.pairs_dropped:
        click.echo(f"  pruned {m.pruning.pairs_dropped} coupling pairs (relative mass "
                   f"{m.pruning.dropped_rel_mass:.3g})")


@main.command("simulate")
@click.argument("deck_path", metavar="DECK.cir", type=click.Path(dir_okay=False))
@click.option("--analysis", type=click.Choice(["op", "tran"]), default="op", show_default=True)
@click.option("--backend", type=click.Choice(["shared", "cli"]), default="shared",
              show_default=True)
@click.option("--timeout", "timeout_s", type=float, default=120.0, show_default=True,
              help="Seconds before ngspice is stopped.")
@click.option("--x0", "x0_path", type=click.Path(dir_okay=False),
              help="Initial state for tran (.npy; default zeros).")
@click.option("--t-stop", type=float, default=None,
              help="tran: duration, in units of tau with a sidecar (default 5), in seconds "
                   "without one (default: the deck's .tran card).")
@click.option("--dt", type=float, default=None,
              help="tran: output step, in units of tau with a sidecar (default 0.05), in "
                   "seconds without one (default: the deck's .tran card).")
@click.option("--save", "save_path", type=click.Path(dir_okay=False),
              help="Save the results to this .npz.")
@click.option("--allow-unsafe", is_flag=True,
              help="Run decks with .control blocks, shell/file commands or outside includes.")
@click.option("--codes", "codes_path", type=click.Path(dir_okay=False),
              help="Programmable board: run it with these codes (spu program).")
@friendly
def simulate_cmd(deck_path, analysis, backend, timeout_s, x0_path, t_stop, dt, save_path,
                 allow_unsafe, codes_path):
    """Run DECK.cir in ngspice and print x (through the sidecar) or the node voltages."""
    from .netlist import atomic_write
    from .simulate import Deck, solve_op, transient

    deck = Deck.load(deck_path)
    if codes_path or (deck.sidecar is not None and deck.sidecar.board is not None):
        from .cli_board import load_programmed

        deck = load_programmed(deck, codes_path)
    from .backends import Op, Tran
    from .safety import check_untrusted_deck

    if save_path:
        check_writable(Path(save_path), "--save")
    foreign = deck.sidecar is None
    if analysis == "tran":
        if foreign:
            t_stop, dt = _deck_tran(deck.text, t_stop, dt)
        else:
            t_stop, dt = 5.0 if t_stop is None else t_stop, 0.05 if dt is None else dt
        if not (t_stop > 0 and dt > 0):
            raise InputError(f"--t-stop and --dt must be positive, got {t_stop:g} and {dt:g}")
    an = Op() if analysis == "op" else Tran(step_s=dt, stop_s=t_stop)
    check_untrusted_deck(deck, [an], allow_unsafe=allow_unsafe)
    results: dict[str, np.ndarray] = {}
    if foreign:
        from .backends import get_backend

        with get_backend(backend, timeout_s) as be:
            res = be.run(deck.text, an, cwd=deck.cwd, deck_name=str(deck.path))
        results = {k: np.asarray(v) for k, v in res.vectors.items()}
        if analysis == "op":
            click.echo(f"{deck.path}: no sidecar; node voltages (V):")
            for k, v in results.items():
                click.echo(f"  {k:>12s} = {float(v[0]): .10g}")
        else:
            _report_waveforms(deck.path, results, t_stop, dt, save_path)
    elif analysis == "op":
        x = solve_op(deck, backend, timeout_s)
        results["x"] = x
        _report_op(deck, x)
    else:
        n = len(deck.outputs)
        x0 = np.zeros(n) if x0_path is None else _load_vec(x0_path, n, "x0")
        u, X = transient(deck, x0, t_stop, dt, backend=backend, timeout_s=timeout_s)
        results.update(t_tau=u, x=X, x0=x0)
        click.echo(f"transient: {len(u)} points over {t_stop:g} tau; x(t_end) =")
        click.echo("  " + np.array2string(X[-1], precision=6, max_line_width=96))
    if save_path:
        import io

        buf = io.BytesIO()
        np.savez(buf, **results)
        atomic_write({Path(save_path): buf.getvalue()})
        click.echo(f"saved {save_path}")


#: rows and node columns of the waveform table `spu simulate --analysis tran` prints
WAVE_ROWS, WAVE_COLS = 11, 8


def _deck_tran(text: str, t_stop: float | None, dt: float | None) -> tuple[float, float]:
    """(stop, step) in seconds for a deck without a sidecar: the options, else the deck's own
    `.tran tstep tstop` card; InputError when neither gives them."""
    if t_stop is not None and dt is not None:
        return t_stop, dt
    from .spice.lexer import lex
    from .spice.numbers import parse_number

    for card in lex(text).cards:
        toks = card.text.split()
        if not card.control and card.word == ".tran" and len(toks) >= 3:
            step = parse_number(toks[1], f"line {card.line}: .tran step: ")
            stop = parse_number(toks[2], f"line {card.line}: .tran stop: ")
            return (stop if t_stop is None else t_stop), (step if dt is None else dt)
    raise InputError("this deck has no sidecar and no .tran card: give --t-stop and --dt in "
                     "seconds")


def _report_waveforms(path, vectors: dict[str, np.ndarray], t_stop: float, dt: float,
                      save_path) -> None:
    """Print the node waveforms of a deck without a sidecar (seconds, volts), subsampled."""
    t = vectors.get("time")
    nodes = [k for k in vectors if k != "time"]
    click.echo(f"{path}: no sidecar, so --t-stop {t_stop:g} and --dt {dt:g} are seconds; "
               f"{0 if t is None else len(t)} time points, {len(nodes)} vectors (V; A for "
               "branch currents):")
    if t is None or len(t) == 0:
        return
    shown = nodes[:WAVE_COLS]
    rows = np.unique(np.linspace(0, len(t) - 1, min(WAVE_ROWS, len(t))).round().astype(int))
    click.echo("  " + f"{'time (s)':>12s}" + "".join(f" {k[:12]:>12s}" for k in shown))
    for r in rows:
        click.echo("  " + f"{t[r]:12.5g}" + "".join(f" {vectors[k][r]:12.5g}" for k in shown))
    if len(nodes) > len(shown) or len(rows) < len(t):
        click.echo("  (every point of every vector: " + (f"saved to {save_path})" if save_path
                                                         else "--save FILE.npz)"))


def _load_input(matrix, factor, damping, rhs, name):
    """LinearSystem from --matrix, or FactoredSystem from --factor/--damping."""
    from .system import FactoredSystem, load_array, load_system

    if bool(matrix) == bool(factor):
        raise InputError("give exactly one of --matrix A.npy or --factor S.npy")
    if matrix:
        if damping is not None:
            raise InputError("--damping goes with --factor, not --matrix")
        return load_system(matrix, rhs, name=name)
    if damping is None:
        raise InputError("--factor needs --damping (lambda > 0)")
    S = load_array(factor, "factor")
    b = load_array(rhs, "rhs") if rhs else None
    return FactoredSystem.from_arrays(S, damping, b, name=name or Path(factor).stem)


def _load_vec(path: str, n: int, what: str) -> np.ndarray:
    from .system import load_array

    v = np.asarray(load_array(path, what), dtype=float).reshape(-1)
    if v.shape[0] != n or not np.all(np.isfinite(v)):
        raise InputError(f"{what} must be a finite vector of length {n}, got shape {v.shape}")
    return v


def _report_op(deck, x: np.ndarray) -> None:
    click.echo(f"DC solution x = V(outputs)/{deck.volts_per_unit:g} ({len(x)} variables):")
    system = deck.system()
    if system is None:
        click.echo("  " + np.array2string(x, precision=8, max_line_width=96))
        return
    ref = system.solution()
    click.echo(f"  {'i':>3s} {'circuit':>14s} {'A^-1 b':>14s} {'difference':>11s}")
    for i, (a, r) in enumerate(zip(x, ref, strict=True)):
        click.echo(f"  {i:3d} {a:14.8g} {r:14.8g} {a - r:11.2e}")
    rel = float(np.linalg.norm(x - ref) / max(np.linalg.norm(ref), 1e-300))
    pred = deck.sidecar.predicted
    dev = pred.rel_deviation_from_exact if pred is not None else None
    click.echo(f"relative error vs A^-1 b: {rel:.3e}"
               + (f" (predicted from {pred.cause}: {dev:.3e})" if dev is not None else ""))


def _register_plugins() -> None:
    """The commands of this package that live in their own modules (hardware budget,
    calibration and yield, boards). `spu validate` is added on top, in spu_tngd.cli."""
    from .cli_hardware import budget_cmd, calibrate_cmd, yield_cmd

    main.add_command(budget_cmd, "budget")
    main.add_command(calibrate_cmd, "calibrate")
    main.add_command(yield_cmd, "yield")

    from . import cli_board

    main.add_command(cli_board.board_cmd, "board")
    main.add_command(cli_board.program_cmd, "program")
    main.add_command(cli_board.kicad_cmd, "kicad")


_register_plugins()

if __name__ == "__main__":  # pragma: no cover
    main()
