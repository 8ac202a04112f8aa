#!/bin/sh
# Regenerates validation/hardware/: the README's hardware recipe (8x8, OPA192, E96 0.1 %),
# a 16x16 example (cond 100, TL072, E96 1 %), their error budgets (JSON + bar chart), and the
# yield of the 8x8 design with 1 % parts over 200 Monte-Carlo boards (seed 1). ~35 min on 2 cores (the calibration study: 300 boards × 10 ngspice runs).
set -e
cd "$(dirname "$0")/../validation/hardware"
python - <<'PY'
import numpy as np
from spu_circuits.examples import example_system
s = example_system(); np.save("A8.npy", s.A); np.save("b8.npy", s.b)
rng = np.random.default_rng(5)
Q, _ = np.linalg.qr(rng.normal(size=(16, 16)))
A = (Q * np.geomspace(1.0, 100.0, 16)) @ Q.T
np.save("A16.npy", np.round(0.5 * (A + A.T), 12)); np.save("b16.npy", np.round(rng.normal(size=16), 12))
PY
spu compile --matrix A8.npy --rhs b8.npy --out spu8 --name spu8 --realize e96 --tolerance 0.1% \
    --r0 10k --opamp OPA192 --compensate
spu budget spu8/spu8.cir --json budget_spu8.json
spu compile --matrix A16.npy --rhs b16.npy --out spu16 --name spu16 --realize e96 --tolerance 1% \
    --r0 50k --opamp TL072 --compensate
spu budget spu16/spu16.cir --json budget_spu16.json
spu compile --matrix A8.npy --rhs b8.npy --out spu8_1pct --name spu8 --realize e96 --tolerance 1% \
    --r0 10k --opamp OPA192 --compensate
spu yield spu8_1pct/spu8.cir --draws 200 --max-error 1e-2 --seed 1 --report yield_spu8 --scheduler local:2
spu compile --matrix A8.npy --rhs b8.npy --out spu8_tl072 --name spu8 --realize e96 --tolerance 0.1% \
    --r0 10k --opamp TL072 --compensate
spu calibrate spu8_tl072/spu8.cir --study 100 --seed 1 --report calibration_spu8_tl072.json \
    --scheduler local:2
