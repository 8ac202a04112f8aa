"""Reader for ngspice raw files (binary or ASCII, real data), as written by `ngspice -b -r`."""

from __future__ import annotations

import numpy as np

from ..errors import SimulationError
from .base import normalise_name


def read_raw(data: bytes) -> list[tuple[str, dict[str, np.ndarray]]]:
    """Parse every plot in a raw file: [(plotname, {vector name: array})]."""
    plots = []
    pos = 0
    while pos < len(data):
        header: dict[str, str] = {}
        names: list[str] = []
        while True:
            end = data.find(b"\n", pos)
            if end < 0:
                raise SimulationError("ngspice raw file is truncated (header)")
            line = data[pos:end].decode("latin-1")
            pos = end + 1
            if line.startswith("Variables:"):
                nvar = int(header["No. Variables"])
                for _ in range(nvar):
                    end = data.find(b"\n", pos)
                    parts = data[pos:end].decode("latin-1").split()
                    pos = end + 1
                    names.append(normalise_name(parts[1]))
                continue
            if line.startswith(("Binary:", "Values:")):
                break
            key, _, val = line.partition(":")
            header[key.strip()] = val.strip()
        if "complex" in header.get("Flags", "").lower():
            raise SimulationError("complex raw data is not supported")
        nvar, npts = int(header["No. Variables"]), int(header["No. Points"])
        if line.startswith("Binary:"):
            nbytes = 8 * nvar * npts
            if len(data) - pos < nbytes:
                raise SimulationError("ngspice raw file is truncated (data)")
            arr = np.frombuffer(data, dtype="<f8", count=nvar * npts, offset=pos)
            arr = arr.reshape(npts, nvar)
            pos += nbytes
        else:
            vals = []
            for _ in range(npts):
                for _k in range(nvar):
                    end = data.find(b"\n", pos)
                    tok = data[pos:end].decode().split()
                    pos = end + 1
                    vals.append(float(tok[-1]))
            arr = np.array(vals).reshape(npts, nvar)
            while pos < len(data) and data[pos:pos + 1] in (b"\n", b"\r"):
                pos += 1
        plots.append((header.get("Plotname", ""), {n: arr[:, k].copy()
                                                    for k, n in enumerate(names)}))
    return plots


def dedupe_time(vectors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Drop repeated time points (batch mode repeats rows with `.options interp`)."""
    t = vectors.get("time")
    if t is None or len(t) < 2:
        return vectors
    keep = np.concatenate([[True], np.diff(t) > 0])
    if keep.all():
        return vectors
    return {k: v[keep] for k, v in vectors.items()}
