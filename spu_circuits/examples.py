"""Example hardware decks: realised with E96 parts, op-amp macromodels and chosen v₀, with
their bills of materials.

    python -m tngd.examples --out netlists [--mc 100]

writes, for each example, `NAME.cir` (the ngspice deck), `NAME.json` (its sidecar, with the
`realization` record: A_eff, b_eff, errors, Johnson-noise κ₀, Monte-Carlo summary) and
`NAME_bom.csv`:

- `spu8_dense_e96`: the 8×8 system of `spu_circuits.demo` (random SPD, condition number 20),
  dense topology.
- `factored_digits`: F̃ = SᵀS + λI of a logistic regression on sklearn digits, factored
  topology; its system comes from the optimizer side (`tngd.examples.digits_fisher_system`,
  torch), so this torch-free module takes it as an argument.

Both: C = 100 nF (τ = R₀C = 100 µs), E96 resistors of 0.1 % tolerance (E12 capacitors),
op-amps with A0 = 1e5 and GBW = 10 MHz (single-pole macromodel), v₀ chosen for ±10 V
rails at κ₀ = 0.01 with a 4σ margin, pre-compensated (trim resistors, bias DACs).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from .bom import bom_rows, write_bom_csv
from .compiler import CompiledCircuit, compile_system
from .compiler.realize import RealizedCircuit, RealizeOptions, monte_carlo, realize
from .demo import example_system
from .spec import HardwareSpec
from .system import FactoredSystem

EXAMPLE_OPTIONS = RealizeOptions(series="e96", tolerance=0.001, opamp_gain=1e5, gbw_hz=10e6,
                                 v_sat=10.0, kappa0_swing=0.01, n_sigma=4.0,
                                 temperature_K=300.0, compensate=True, trim="all")
#: τ = 100 µs: with the paper's 1 nF (τ = 1 µs) the fastest mode of the 8×8 example sits
#: only ~4× below a 10 MHz GBW and its transients run 12 % off (measured; the error falls
#: ∝ 1/GBW and ∝ 1/τ), so hardware examples use a slower time constant
EXAMPLE_SPEC = HardwareSpec(C_F=100e-9)
MC_SEED = 2024


EXAMPLES = ("spu8_dense_e96", "factored_digits")


#: names that moved to the optimizer side (they need torch): old name → new module
_MOVED = {"digits_fisher_system": "tngd.examples"}


def __getattr__(name: str):
    """Keep the moved names importable from here (users' scripts import them): resolved
    lazily, so importing this module still never imports torch; a DeprecationWarning names
    the new place."""
    if name in _MOVED:
        import importlib
        import warnings

        warnings.warn(f"spu_circuits.examples.{name} moved to {_MOVED[name]}.{name}",
                      DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def compile_example(name: str, system: FactoredSystem | None = None) -> CompiledCircuit:
    """The ideal-valued compiled deck of one example ('spu8_dense_e96', 'factored_digits');
    'factored_digits' needs its system (`tngd.examples.digits_fisher_system()`)."""
    if name == "spu8_dense_e96":
        return compile_system(example_system(), "dense", EXAMPLE_SPEC, name=name)
    if name == "factored_digits":
        if system is None:
            raise ValueError("factored_digits needs its system: pass "
                             "tngd.examples.digits_fisher_system() (torch)")
        return compile_system(system, "factored", EXAMPLE_SPEC, name=name)
    raise ValueError(f"unknown example {name!r}; choose from {EXAMPLES}")


def build(name: str, options: RealizeOptions = EXAMPLE_OPTIONS,
          system: FactoredSystem | None = None) -> RealizedCircuit:
    """Compile and realise one example."""
    return realize(compile_example(name, system), options)


def add_monte_carlo(realized: RealizedCircuit, compiled: CompiledCircuit, n_draws: int,
                    options: RealizeOptions = EXAMPLE_OPTIONS) -> dict:
    """Tolerance spread of the design (n_draws draws, extractor), stored in the sidecar."""
    mc = monte_carlo(compiled, options, n_draws, seed=MC_SEED)
    summary = {"n_draws": n_draws, "seed": MC_SEED, "tolerance": options.tolerance,
               "median_rel_error_A": mc["median_rel_error_A"],
               "median_rel_error_x": mc["median_rel_error_x"],
               "p90_rel_error_x": mc["p90_rel_error_x"],
               "distribution": "delta ~ Normal(0, (tol/3)^2) clipped to +-tol per part"}
    rec = replace(realized.sidecar.realization, monte_carlo_summary=summary)
    realized.sidecar = realized.sidecar.with_(realization=rec)
    realized.report["monte_carlo"] = summary
    return summary


def write_example(realized: RealizedCircuit, out: Path, name: str) -> Path:
    deck = realized.write(out, name)
    bom = write_bom_csv(out / f"{name}_bom.csv", bom_rows(realized))
    for path in (deck, deck.with_suffix(".json"), bom):
        path.chmod(0o644)
    return deck
