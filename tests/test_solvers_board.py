"""TNGD on a programmable board (#12 item 4): one deck per run, only the codes change, and the
quantised surrogate tracks ngspice."""

from __future__ import annotations

import pytest
import torch

import tngd.solvers_board as sb
from tngd.train import train


@pytest.mark.slow
def test_board_mode_tracks_quantised_surrogate():
    common = dict(task="digits", model="logreg", steps=2, seed=0, batch_size=2, damping=0.05,
                  t=20.0, n_pca=2, dtype=torch.float64, eval_every=2, quiet=True,
                  fisher="empirical", lr=0.1)
    runs = {}
    for solver in ("spice-board", "board-surrogate"):
        m = train(optimizer_name="tngd", solver=solver, solver_kwargs={"bits": 10}, **common)
        inst = sb.INSTANCES[-1]
        runs[solver] = ([s["loss"] for s in m["steps"]], inst)
    loss_s, spice = runs["spice-board"]
    loss_q, _ = runs["board-surrogate"]
    assert max(abs(a - b) for a, b in zip(loss_s, loss_q, strict=True)) < 1e-6
    # one board deck for the whole run, unchanged by programming
    assert {t["deck_sha256"] for t in spice.timings} == {spice.board_sha256}
    assert len(spice.timings) == 2 and all(t["spice_s"] > 0 for t in spice.timings)
    float_run = train(optimizer_name="tngd", solver="ou-exact", **common)
    # 10-bit codes move the loss a little but not nothing
    d = max(abs(a - s["loss"]) for a, s in zip(loss_q, float_run["steps"], strict=True))
    assert d < 1e-2
    for _, inst in runs.values():
        inst.close()
