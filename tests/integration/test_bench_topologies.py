"""The factored-vs-dense benchmark runs and reports consistent numbers (tiny case)."""

from __future__ import annotations

from ..conftest import needs_ngspice


@needs_ngspice
def test_bench_case_tiny(shared_backend):
    from validation.bench_topologies import bench_case

    out = bench_case(12, 2, steps=300, budget=3600.0, be=shared_backend)
    for topo in ("factored", "dense"):
        rec = out[topo]
        assert rec["noise_steps_run"] == 300 and not rec["truncated"]
        assert rec["seconds_per_noise_step"] == rec["seconds"] / 300
    assert out["factored"]["resistors"] == 2 * 2 * 12 + 4 * 12 + 3 * 2
    assert out["resistor_ratio"] == out["dense"]["resistors"] / out["factored"]["resistors"]
    assert out["speedup_per_step"] > 0
