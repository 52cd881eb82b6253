"""MNIST and Fashion-MNIST through OpenML (needs the internet once; cached afterwards).

Registered in `widthlab.data.GENERATORS` as `mnist` and `fashion_mnist`; conventions as in
`widthlab.data` (E‖x‖² ≈ D, one-hot targets with the integer classes kept).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from widthlab.checks import InvalidValue, check_choice, check_fraction, check_int
from widthlab.dataset import Dataset, classification_dataset
from widthlab.seeding import rng_for

OPENML_NAMES = {"mnist": "mnist_784", "fashion_mnist": "Fashion-MNIST"}


def openml_images(
    name: str,
    n_train: int,
    n_test: int,
    label_noise: float = 0.0,
    seed: int = 0,
    cache_dir: str | os.PathLike[str] = "data/cache",
    fetch: Callable[..., Any] | None = None,
) -> Dataset:
    """MNIST or Fashion-MNIST through OpenML, cached in `cache_dir`, subsampled.

    The OpenML copies keep the canonical order: the first 60 000 rows are the training set,
    the last 10 000 the test set. A seeded draw without replacement takes `n_train` of the
    former and `n_test` of the latter. Pixels are divided by 255, centred per pixel with the
    training mean, then divided by one global scale so that the mean squared norm of a
    training image is D = 784 (a per-pixel scale would blow up the nearly constant border
    pixels). Label noise and one-hot targets as in `digits`. `fetch` defaults to
    `sklearn.datasets.fetch_openml` (tests pass a stand-in; nothing else touches the network).
    """
    if name not in OPENML_NAMES:
        check_choice("name", name, OPENML_NAMES)
    check_int("n_train", n_train, maximum=60_000)
    check_int("n_test", n_test, maximum=10_000)
    check_fraction("label_noise", label_noise)
    if fetch is None:
        from sklearn.datasets import fetch_openml as fetch
    bunch = fetch(OPENML_NAMES[name], version=1, as_frame=False, data_home=str(cache_dir))
    x_all = np.asarray(bunch.data, dtype=np.float64) / 255.0
    labels_all = np.asarray(bunch.target).astype(np.int64)
    n_total = x_all.shape[0]
    n_canonical_train = n_total - 10_000 if n_total > 10_000 else n_total // 2
    if n_train > n_canonical_train or n_test > n_total - n_canonical_train:
        raise InvalidValue(
            "n_train/n_test",
            f"{n_train}/{n_test}",
            f"at most {n_canonical_train}/{n_total - n_canonical_train} for {name}",
        )
    rng = rng_for(seed, "data:openml")
    train = rng.choice(n_canonical_train, size=n_train, replace=False)
    test = n_canonical_train + rng.choice(n_total - n_canonical_train, size=n_test, replace=False)
    mean = x_all[train].mean(axis=0)
    x_train, x_test = x_all[train] - mean, x_all[test] - mean
    scale = np.sqrt(np.mean(np.sum(x_train**2, axis=1)) / x_train.shape[1])
    return classification_dataset(
        name,
        x_train / scale,
        labels_all[train],
        x_test / scale,
        labels_all[test],
        10,
        label_noise,
        rng,
        dict(n_train=n_train, n_test=n_test, dim=int(x_all.shape[1]), seed=seed),
    )
