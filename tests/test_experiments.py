"""Smoke test of ``tngd experiments`` (tiny preset) and of the benchmark's ratio arithmetic."""

from __future__ import annotations

import json

import pytest

from tngd.experiments import (
    run_benchmark,
    run_mnist,
    smooth,
    step_ratios,
    summarise_mnist,
    time_interleaved,
)


def test_smoke_preset_writes_results(tmp_path):
    res = run_mnist("smoke", tmp_path, jobs=1)
    data = json.loads((tmp_path / "mnist_smoke.json").read_text())
    timing = json.loads((tmp_path / "mnist_smoke_timing.json").read_text())
    assert timing["scheduler"] == "serial (this process)"
    assert data["preset"] == "smoke"
    methods = data["config"]["methods"]
    assert set(data["summary"]["methods"]) == set(methods)
    for m in methods:
        row = data["summary"]["methods"][m]
        assert row["errors"] == {}
        assert 0.0 <= row["final_accuracy"]["mean"] <= 1.0
        assert "iters_to_adam_final_loss" in row
        # measured times live in the timing file (the results file depends on seeds only)
        assert "seconds_to_adam_final_loss" in timing["methods"][m]
    assert len(data["runs"]) == len(methods)
    assert all(len(r["loss"]) == data["config"]["steps"] for r in data["runs"])
    assert data["summary"]["tsweep_vs_ngd"]["rows"][0]["t"] == 5
    for f in res["figures"]:
        assert (tmp_path / f).stat().st_size > 1000

    bench = run_benchmark(tmp_path, "smoke")
    step = json.loads((tmp_path / "bench_step.json").read_text())
    main = step["main"]
    assert main["methods"]["adam"]["ratio_to_adam"] == pytest.approx(1.0)
    assert main["methods"]["tngd-ou-euler"]["matvecs"] == 500
    assert "ou_exact_over_adam" in main["acceptance"]
    scaling = json.loads((tmp_path / "bench_scaling.json").read_text())
    assert scaling["width"] and scaling["d_z"]
    assert bench["scaling"]["d_z"][0]["d_z"] == 2
    for f in ("bench_step.png", "bench_scaling.png"):
        assert (tmp_path / f).stat().st_size > 1000


def test_step_ratios_on_synthetic_timings():
    timings = {"adam": [1.0, 3.0, 2.0], "slow": [10.0, 50.0, 30.0, 20.0], "fast": [0.5]}
    r = step_ratios(timings)
    assert r["adam"]["median_s"] == 2.0 and r["adam"]["ratio_to_adam"] == 1.0
    assert r["slow"]["median_s"] == 25.0 and r["slow"]["ratio_to_adam"] == 12.5
    assert r["fast"]["ratio_to_adam"] == 0.25
    assert r["slow"]["min_s"] == 10.0 and r["slow"]["max_s"] == 50.0 and r["slow"]["n"] == 4
    with pytest.raises(ValueError):
        step_ratios({"sgd": [1.0]})


def test_time_interleaved_calls_every_method_each_round():
    calls = []
    steppers = {n: (lambda k, n=n: calls.append((k, n))) for n in ("a", "b", "c")}
    times = time_interleaved(steppers, repeats=3, warmup=1)
    assert {n: len(v) for n, v in times.items()} == {"a": 3, "b": 3, "c": 3}
    for k in range(4):
        assert sorted(n for kk, n in calls if kk == k) == ["a", "b", "c"]


def test_smooth_and_summary_targets():
    assert smooth([1, 2, 3, 4], window=2) == [1, 1.5, 2.5, 3.5]

    def run(method, losses, seed=0):
        steps = [
            {"step": i + 1, "loss": v, "accuracy": 0.5, "time_s": 0.1 * (i + 1)}
            for i, v in enumerate(losses)
        ]
        return {
            "method": method,
            "seed": seed,
            "steps": steps,
            "final": {"accuracy": 0.5, "time_s": 0.1 * len(losses)},
            "error": None,
        }

    runs = [run("adam", [1.0] * 30), run("ngd", [2.0] * 5 + [0.5] * 25), run("sgd", [3.0] * 30)]
    s = summarise_mnist(runs, ["adam", "ngd", "sgd"])
    assert s["adam_final_smoothed_loss"] == pytest.approx(1.0)
    # the running mean over 20 of ngd first falls to ≤ 1 at step 15: (5·2 + 9·0.5)/14 > 1,
    # (5·2 + 10·0.5)/15 = 1
    assert s["methods"]["ngd"]["iters_to_adam_final_loss_per_seed"] == [15]
    assert s["methods"]["ngd"]["seconds_to_adam_final_loss"]["mean"] == pytest.approx(1.5)
    assert s["methods"]["sgd"]["reached_adam_final_loss"] == 0


def test_experiment_grid_identical_serial_and_local_cluster(tmp_path):
    """The results file depends on the seeds only: serial and a 2-worker LocalCluster agree
    byte for byte (the timing file differs, as it should)."""
    kw = dict(steps=3, seeds=[0, 1], methods=["adam", "tngd-t5"], plots=False)
    run_mnist("smoke", tmp_path / "serial", scheduler="serial", **kw)
    run_mnist("smoke", tmp_path / "local", scheduler="local:2", **kw)
    a = (tmp_path / "serial" / "mnist_smoke.json").read_bytes()
    b = (tmp_path / "local" / "mnist_smoke.json").read_bytes()
    assert a == b
    t = json.loads((tmp_path / "local" / "mnist_smoke_timing.json").read_text())
    assert t["scheduler"].startswith("Dask LocalCluster, 2 worker")


def test_oscillator_experiment_results_are_seed_only_and_times_apart(tmp_path):
    """tngd.experiments.oscillator: the results file holds no measured time (it depends on
    the seeds only); the timing file names where the runs went."""
    from tngd.experiments import oscillator

    argv = ["--out", str(tmp_path), "--steps", "2", "--seeds", "0", "--methods", "ngd",
            "tngd2-t2", "--scheduler", "serial"]
    oscillator.main(argv)
    text = (tmp_path / "mnist_second_order.json").read_text()
    for field in ("time_per_step_s", "wall_s", "time_s"):
        assert f'"{field}"' not in text
    res = json.loads(text)
    assert res["summary"]["methods"]["tngd2-t2"]["mean_abs_loss_diff_vs_ngd"]["n"] == 1
    timing = json.loads((tmp_path / "mnist_second_order_timing.json").read_text())
    assert timing["scheduler"].startswith("serial")
    assert timing["methods"]["ngd"]["time_per_step_s"]["mean"] > 0
    oscillator.main(argv[:1] + [str(tmp_path / "again")] + argv[2:])
    assert (tmp_path / "again" / "mnist_second_order.json").read_text() == text


@pytest.mark.parametrize("args, fragment", [
    (["--scheduler", "foo"], "--scheduler 'foo': use serial, local, local:N or tcp://HOST:PORT"),
    (["--scheduler", "local:0"], "local:N needs a worker count N ≥ 1"),
    (["--seeds", "x"], "--seeds 'x': give seeds as 0,1,2 or a range 0-9"),
])
def test_experiments_cli_bad_input_is_one_line_exit_2(tmp_path, args, fragment):
    from click.testing import CliRunner

    from tngd.cli import main

    res = CliRunner().invoke(main, ["experiments", "--preset", "smoke", "--only", "mnist",
                                    "--out", str(tmp_path / "out"), *args])
    assert res.exit_code == 2, res.output
    assert fragment in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_experiments_cli_unwritable_out_is_refused_before_any_run(tmp_path):
    from click.testing import CliRunner

    from tngd.cli import main

    (tmp_path / "f").write_text("a file")
    res = CliRunner().invoke(main, ["experiments", "--preset", "smoke", "--only", "mnist",
                                    "--out", str(tmp_path / "f" / "out")])
    assert res.exit_code == 2 and "is a file, not a folder" in res.output, res.output


def test_experiments_cli_runs_the_oscillator_comparison(tmp_path):
    from click.testing import CliRunner

    from tngd.cli import main

    res = CliRunner().invoke(main, ["experiments", "--preset", "smoke", "--only",
                                    "oscillator", "--scheduler", "serial", "--steps", "2",
                                    "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "oscillator:" in res.output and "serial" in res.output
    doc = json.loads((tmp_path / "mnist_second_order.json").read_text())
    assert doc["config"]["steps"] == 2 and doc["config"]["methods"] == ["ngd", "tngd-t5",
                                                                        "tngd2-t2"]
    assert (tmp_path / "mnist_second_order.png").exists()
    assert not (tmp_path / "mnist_smoke.json").exists()  # only the part asked for
