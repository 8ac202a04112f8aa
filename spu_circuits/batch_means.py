"""Batch means: estimates and standard errors from autocorrelated chains (numpy, float64).

Each chain of T samples is cut into ``n_batches`` contiguous batches of ``m = T // n_batches``
samples (the first ``T mod n_batches`` samples are dropped); with B = chains·n_batches batch
averages v_j of a statistic, the estimate is mean(v_j) and its standard error
std(v_j, ddof=1)/sqrt(B). Valid when a batch is much longer than the integrated autocorrelation
time. Used by :mod:`spu_circuits.theory` and the validation suite's statistical checks.
"""

from __future__ import annotations

import math

import numpy as np

from .errors import InputError

__all__ = ["batch_mean_se", "batch_means", "split_batches"]


def split_batches(x: np.ndarray, n_batches: int) -> np.ndarray:
    """(chains, T, ...) → (chains·n_batches, T // n_batches, ...), dropping each chain's first
    T mod n_batches samples. InputError when a batch would be empty."""
    x = np.asarray(x)
    c, t = x.shape[:2]
    m = t // n_batches
    if m < 1:
        raise InputError(f"need at least n_batches={n_batches} samples per chain, got {t}")
    x = x[:, t - m * n_batches :]
    return x.reshape(c * n_batches, m, *x.shape[2:])


def batch_mean_se(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean over the leading (batch) axis and its standard error std(ddof=1)/sqrt(B)."""
    values = np.asarray(values, dtype=np.float64)
    return values.mean(axis=0), values.std(axis=0, ddof=1) / math.sqrt(values.shape[0])


def batch_means(x: np.ndarray, n_batches: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Batch-means estimate of E[x] and its SE; x (chains, T, ...) → (mean, se, B)."""
    bm = split_batches(x, n_batches).mean(axis=1)
    mean, se = batch_mean_se(bm)
    return mean, se, bm.shape[0]
