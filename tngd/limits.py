"""Size limits of a TNGD step, checked before the first step (and when the batch shape changes).

What a step holds (N parameters, r = rows of S, s = bytes per float of the parameters' dtype):

* the factor S: r·N floats (every solver with ``curvature="factor"``);
* dense solvers: ``"exact"`` forms F̃ (N × N, N² floats, O(N³) Cholesky per step); ``"ou-exact"``
  with a matrix-free problem (``curvature="matvec"``) or r ≥ N builds the same dense matrix;
* the ``"spice"`` solver compiles a deck per OU segment: the factored topology has ≈ 2·r·N
  resistors (chosen when 2r < N), the dense one ≈ N² (measured here: N = 128 dense, 16,768
  resistors, 0.12 s of ngspice per noise step; N = 128, r = 8 factored, 2,584 resistors,
  5.8 ms per step: validation/bench/bench_topologies.json).

A size over a limit raises :class:`spu_circuits.errors.InputError` with the numbers; a size over
the warning threshold emits a :class:`SizeWarning`. Limits are a :class:`SizeLimits`.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass

import torch

from spu_circuits.errors import InputError

__all__ = ["SizeLimits", "SizeWarning", "check_step_size", "device_memory_bytes"]

GIB = 1024**3


class SizeWarning(UserWarning):
    """A TNGD step will be large (memory or time); the message gives the numbers."""


def device_memory_bytes(device: torch.device) -> int:
    """Total memory of ``device`` (CUDA: the GPU's; else the machine's RAM)."""
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory)
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 16 * GIB


@dataclass(frozen=True)
class SizeLimits:
    """Limits of one TNGD step.

    Attributes:
        max_memory_bytes: largest S (r·N floats) or dense F̃ (N² floats) allowed; None: half
            of the parameters' device memory.
        warn_memory_bytes: warn above this many bytes (default 1 GiB).
        max_dense_n: largest N for the dense solvers (O(N³) per step; default 20,000).
        max_spice_elements: largest deck (resistors) for the spice solver (default 20,000).
    """

    max_memory_bytes: int | None = None
    warn_memory_bytes: int = GIB
    max_dense_n: int = 20_000
    max_spice_elements: int = 20_000


def _gb(n_bytes: float) -> str:
    return f"{n_bytes / GIB:.2f} GiB"


def check_step_size(
    N: int,
    r: int,
    *,
    dtype: torch.dtype,
    device: torch.device,
    solver: str,
    curvature: str = "factor",
    limits: SizeLimits | None = None,
) -> None:
    """Raise :class:`InputError` (or warn) if a step of this size exceeds ``limits``.

    Args:
        N: parameters; r: rows of S (b·P·k, see :mod:`tngd.losses`).
        dtype, device: of the parameters.
        solver: the solver's registered name (``"exact"``, ``"ou-exact"``, ``"spice"``, …).
        curvature: ``"factor"`` (S is built) or ``"matvec"``.
    """
    lim = limits or SizeLimits()
    item = torch.empty((), dtype=dtype).element_size()
    cap = lim.max_memory_bytes or device_memory_bytes(device) // 2
    cap_text = (f"the limit max_memory_bytes = {_gb(cap)}" if lim.max_memory_bytes
                else f"half the {device.type} memory ({_gb(cap)})")
    dtype_name = str(dtype).replace("torch.", "")
    if curvature == "factor":
        s_bytes = r * N * item
        if s_bytes > cap:
            raise InputError(
                f"the curvature factor S would hold r × N = {r:,} × {N:,} = {r * N:,} "
                f"{dtype_name} values ({_gb(s_bytes)}), more than {cap_text}; use a smaller "
                "batch or fewer outputs, train fewer parameters, curvature='matvec' (ou-euler, "
                "cg), or raise SizeLimits(max_memory_bytes=...)"
            )
        if s_bytes > lim.warn_memory_bytes:
            warnings.warn(
                f"the curvature factor S holds r × N = {r:,} × {N:,} {dtype_name} values "
                f"({_gb(s_bytes)}) per step", SizeWarning, stacklevel=3)
    dense = solver == "exact" or (solver == "ou-exact" and (curvature == "matvec" or r >= N))
    if solver == "spice":
        factored = curvature == "factor" and 2 * r < N
        elements = 2 * r * N if factored else N * N
        if elements > lim.max_spice_elements:
            what = (f"the factored deck (2·r·N = 2 × {r:,} × {N:,})" if factored
                    else f"the dense deck (N² = {N:,}²)")
            raise InputError(
                f"the spice solver would compile {what} ≈ {elements:,} resistors per OU segment, "
                f"more than max_spice_elements = {lim.max_spice_elements:,} (ngspice needed "
                "0.12 s per noise step at 16,768 resistors here); use a smaller model or batch, "
                "the ou-exact surrogate, or raise SizeLimits(max_spice_elements=...)"
            )
    if dense:
        d_bytes = N * N * item
        why = "exact" if solver == "exact" else "ou-exact on a dense F̃"
        if d_bytes > cap or N > lim.max_dense_n:
            raise InputError(
                f"the {why} solver forms the dense F̃ of N × N = {N:,}² {dtype_name} values "
                f"({_gb(d_bytes)}) and a Cholesky of ~N³/3 = {N**3 / 3:.2g} flops per step; "
                f"the limits are N ≤ max_dense_n = {lim.max_dense_n:,} and {cap_text}; use "
                "solver='woodbury' or 'ou-exact' with curvature='factor' (O(r²N))"
            )
        if d_bytes > lim.warn_memory_bytes:
            warnings.warn(f"the {why} solver forms a dense {N:,} × {N:,} matrix "
                          f"({_gb(d_bytes)}) per step", SizeWarning, stacklevel=3)
    if not math.isfinite(float(N)) or N < 1:  # pragma: no cover - defensive
        raise InputError(f"no parameters to train (N = {N})")
