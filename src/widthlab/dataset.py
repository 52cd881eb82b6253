"""The `Dataset` record every generator of `widthlab.data` returns, and label noise.

Conventions: regression targets `y_*` are 1-D `[n]`; classification targets are one-hot
`[n, C]` (for squared-loss training) with the integer classes in `labels_*`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Dataset:
    """One data set: train/test arrays, the arrays that define its target, its settings."""

    name: str
    task: str  # "regression" or "classification"
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    def arrays(self) -> dict[str, np.ndarray]:
        """Every array by the name it is stored under."""
        return {
            "x_train": self.x_train,
            "y_train": self.y_train,
            "x_test": self.x_test,
            "y_test": self.y_test,
            **self.extras,
        }

    @property
    def n_outputs(self) -> int:
        """The number of targets per example: 1 for a vector of targets, else their columns."""
        return 1 if self.y_train.ndim == 1 else int(self.y_train.shape[1])


def flip_labels(
    labels: np.ndarray, n_classes: int, fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Replace round(fraction·n) labels, chosen without replacement, by a different class.

    The new class is uniform over the n_classes − 1 other classes, so exactly that many
    labels end up wrong. Returns (noisy labels, boolean mask of the flipped ones).
    """
    n = labels.shape[0]
    flipped = np.zeros(n, dtype=bool)
    flipped[rng.choice(n, size=round(fraction * n), replace=False)] = True
    shift = rng.integers(1, n_classes, size=n)  # 1..C-1: never back to the same class
    noisy = np.where(flipped, (labels + shift) % n_classes, labels)
    return noisy, flipped


def classification_dataset(
    name: str,
    x_train: np.ndarray,
    labels_train: np.ndarray,
    x_test: np.ndarray,
    labels_test: np.ndarray,
    n_classes: int,
    label_noise: float,
    rng: np.random.Generator,
    settings: dict[str, Any],
) -> Dataset:
    """A classification `Dataset`: one-hot targets `[n, C]` of the labels after flipping
    `label_noise` of the training labels (`flip_labels`, drawn from `rng`); the clean labels
    and the flip mask are kept as extras."""
    noisy, flipped = flip_labels(labels_train, n_classes, label_noise, rng)
    eye = np.eye(n_classes)
    return Dataset(
        name=name,
        task="classification",
        x_train=x_train,
        y_train=eye[noisy],
        x_test=x_test,
        y_test=eye[labels_test],
        extras={
            "labels_train": noisy,
            "labels_test": labels_test,
            "clean_labels_train": labels_train,
            "flipped_train": flipped,
        },
        settings={**settings, "n_classes": n_classes, "label_noise": float(label_noise)},
    )
