"""Data sets of the study: pure generators (files are `widthlab.runtime.datafiles`).

Every generator is a pure function of its settings and its seed and returns a `Dataset`:
train/test arrays plus the arrays that define the target (so the noiseless target can be
evaluated on test points) and a JSON-able `settings` dict. Conventions:

- Regression targets `y_*` are 1-D `[n]`; classification targets are one-hot `[n, C]`
  (for squared-loss training) with the integer classes in `labels_*`.
- Inputs are *not* normalized to unit norm: every data set is scaled so that
  E‖x‖² ≈ D (D the input dimension). The kernels and networks of this package see x·x'/D
  in their first layer, so this keeps first-layer pre-activations of order one.

Argument errors raise `widthlab.checks.InvalidValue` naming the argument (`n_train`); the
data stage reports them under their config key (`data.n_train`).

The same bytes on every x86 machine: float64 results that depend on the CPU's vector width
are computed otherwise. A product with a matrix goes through BLAS, whose kernels (chosen by
the CPU: SkylakeX, Haswell, Sandybridge, ...) sum in different orders, so targets are
computed by `fixed_order_products` (numpy's pairwise sum along a row, the same on every
CPU). NumPy computes `exp` with AVX-512 code where the CPU has it and with the C library's
elsewhere, and the two differ in the last bit: MNIST-1D's Gaussian filter weights are
computed exactly (`gaussian_weights`). tests/test_data_bytes.py checks every data file
against stored checksums with NumPy's and OpenBLAS's CPU dispatch narrowed to older CPUs.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np

from widthlab.checks import InvalidValue, check_choice, check_fraction, check_int, check_nonnegative
from widthlab.dataset import Dataset, classification_dataset
from widthlab.openml import OPENML_NAMES, openml_images
from widthlab.seeding import rng_for, uniform_sphere


def sphere_linear(
    n_train: int,
    n_test: int,
    dim: int,
    signal: float = 1.0,
    nonlinear: float = 0.0,
    noise: float = 0.5,
    seed: int = 0,
) -> Dataset:
    """The setting of Mei & Montanari (2019): a linear target plus a degree-2 part on the sphere.

    x ~ Unif(S^{D−1}(√D)), i.e. uniform on the sphere of radius √D in R^D, and

        y = ⟨β₁, x⟩ + F★ · (⟨w, x⟩² − 1) / √(2(D−1)/(D+2)) + ε,   ε ~ N(0, τ²),

    with β₁ uniform on the sphere of radius F₁ = `signal`, w a uniform unit vector,
    F★ = `nonlinear` and τ = `noise`. Since ⟨w, x⟩ = √D·u₁ with u uniform on the unit
    sphere, E⟨w,x⟩² = 1 and Var⟨w,x⟩² = 3D/(D+2) − 1 = 2(D−1)/(D+2): the degree-2 part has
    mean 0 and variance exactly F★², and the linear part has variance ‖β₁‖²·E[x₁²] = F₁²
    (E[x_i²] = 1 on this sphere). Test targets carry noise too; the noiseless target f★ of
    both splits is stored as `f_train`/`f_test`, with β₁ (`beta1`) and w (`w`), so the excess risk
    E(f̂ − f★)² can be measured exactly.
    """
    check_int("n_train", n_train)
    check_int("n_test", n_test)
    check_int("dim", dim, minimum=2)
    check_nonnegative("signal", signal)
    check_nonnegative("nonlinear", nonlinear)
    check_nonnegative("noise", noise)
    rng = rng_for(seed, "data:sphere_linear")
    beta1 = uniform_sphere(rng, 1, dim, signal)[0]
    w = uniform_sphere(rng, 1, dim, 1.0)[0]
    x = uniform_sphere(rng, n_train + n_test, dim, np.sqrt(dim))
    quad_scale = np.sqrt(2.0 * (dim - 1) / (dim + 2))
    linear, projected = fixed_order_products(x, np.stack([beta1, w])).T
    f = linear + nonlinear * (projected**2 - 1.0) / quad_scale
    y = f + noise * rng.standard_normal(n_train + n_test)
    return Dataset(
        name="sphere_linear",
        task="regression",
        x_train=x[:n_train],
        y_train=y[:n_train],
        x_test=x[n_train:],
        y_test=y[n_train:],
        extras={"f_train": f[:n_train], "f_test": f[n_train:], "beta1": beta1, "w": w},
        settings=dict(
            n_train=n_train,
            n_test=n_test,
            dim=dim,
            signal=float(signal),
            nonlinear=float(nonlinear),
            noise=float(noise),
            seed=seed,
        ),
    )


def teacher(
    n_train: int,
    n_test: int,
    dim: int,
    teacher_width: int = 64,
    noise: float = 0.1,
    seed: int = 0,
) -> Dataset:
    """Gaussian inputs labelled by a random one-hidden-layer ReLU teacher, plus noise.

    x ~ N(0, I_D) and y = f★(x) + ε with ε ~ N(0, τ²), τ = `noise`, and

        f★(x) = (1/√m) Σ_{j=1}^{m} a_j · relu(⟨v_j, x⟩/√D),   a_j ~ N(0, 1), v_j ~ N(0, I_D),

    m = `teacher_width` (the NTK scaling: each pre-activation and f★ itself are O(1)).
    The teacher's weights (`teacher_v` [m, D], `teacher_a` [m]) and the noiseless targets
    (`f_train`, `f_test`) are stored with the data.
    """
    check_int("n_train", n_train)
    check_int("n_test", n_test)
    check_int("dim", dim)
    check_int("teacher_width", teacher_width)
    check_nonnegative("noise", noise)
    rng = rng_for(seed, "data:teacher")
    v = rng.standard_normal((teacher_width, dim))
    a = rng.standard_normal(teacher_width)
    x = rng.standard_normal((n_train + n_test, dim))
    hidden = np.maximum(fixed_order_products(x, v) / np.sqrt(dim), 0.0)
    f = fixed_order_products(hidden, a[None, :])[:, 0] / np.sqrt(teacher_width)
    y = f + noise * rng.standard_normal(n_train + n_test)
    return Dataset(
        name="teacher",
        task="regression",
        x_train=x[:n_train],
        y_train=y[:n_train],
        x_test=x[n_train:],
        y_test=y[n_train:],
        extras={"f_train": f[:n_train], "f_test": f[n_train:], "teacher_v": v, "teacher_a": a},
        settings=dict(
            n_train=n_train,
            n_test=n_test,
            dim=dim,
            teacher_width=teacher_width,
            noise=float(noise),
            seed=seed,
        ),
    )


def fixed_order_products(x: np.ndarray, w: np.ndarray, rows: int = 256) -> np.ndarray:
    """x @ w.T for x [n, D] and w [m, D], each entry Σ_k x_ik w_jk summed by numpy's pairwise
    summation along k: the same bits on every CPU, which BLAS does not promise (module
    docstring). Computed `rows` rows of x at a time (memory rows·m·D floats)."""
    out = np.empty((x.shape[0], w.shape[0]), dtype=np.float64)
    for start in range(0, x.shape[0], rows):
        block = x[start : start + rows, None, :] * w[None, :, :]
        out[start : start + rows] = np.add.reduce(block, axis=2)
    return out


def digits(
    n_train: int = 1000, label_noise: float = 0.0, seed: int = 0, n_test: int | None = None
) -> Dataset:
    """scikit-learn's bundled 8×8 digits (1797 images, 10 classes, D = 64), no download.

    A seeded random permutation picks `n_train` training images and `n_test` test images
    (default: all the others). Pixels are standardized per pixel with the training split's
    mean and standard deviation (pixels constant on the training split are set to 0), so
    E‖x‖² = the number of non-constant pixels (60 of the 64 on the full set). A fraction
    `label_noise` of the *training* labels is replaced by a different class (`flip_labels`);
    which ones is saved as `flipped_train`, the clean labels as `clean_labels_train`.
    Targets are one-hot rows for squared-loss training.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x_all, labels_all = bunch.data.astype(np.float64), bunch.target.astype(np.int64)
    n_total = x_all.shape[0]
    check_int("n_train", n_train, maximum=n_total - 1)
    if n_test is None:
        n_test = n_total - n_train
    check_int("n_test", n_test, maximum=n_total - n_train)
    check_fraction("label_noise", label_noise)
    rng = rng_for(seed, "data:digits")
    order = rng.permutation(n_total)
    train, test = order[:n_train], order[n_train : n_train + n_test]
    x_train, x_test = standardize_per_feature(x_all[train], x_all[test])
    return classification_dataset(
        "digits",
        x_train,
        labels_all[train],
        x_test,
        labels_all[test],
        10,
        label_noise,
        rng,
        dict(n_train=n_train, n_test=n_test, dim=64, seed=seed),
    )


def digits_noisy(
    n_train: int = 1000, label_noise: float = 0.2, seed: int = 0, n_test: int | None = None
) -> Dataset:
    """`digits` with label noise, written under its own name (`data/digits_noisy.*`), so the
    clean and the noisy training sets are separate files of separate DVC stages."""
    from dataclasses import replace

    return replace(digits(n_train, label_noise, seed, n_test), name="digits_noisy")


def standardize_per_feature(
    x_train: np.ndarray, x_test: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(x − mean)/std per feature with the training split's statistics; constant features → 0."""
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    scale = np.where(std > 0, std, np.inf)
    return (x_train - mean) / scale, (x_test - mean) / scale


MNIST1D_TRAIN, MNIST1D_TEST, MNIST1D_DIM = 4000, 1000, 40  # the package's default split


def mnist1d_arrays() -> dict[str, np.ndarray]:
    """The arrays of `mnist1d.data.make_dataset` at the package's documented defaults
    (`get_dataset_args()`: 5000 signals of length 40 from the 10 templates bundled in the
    package, its seed 42, the first 80% the training split), generated offline.

    Never `mnist1d.data.get_dataset`, which downloads. The generator reseeds Python's and
    NumPy's global random state (`mnist1d.utils.set_seed`); both are restored afterwards, so
    calling it changes no other draw of the process. Returns fresh copies of x_train
    [4000, 40], x_test [1000, 40] (float64), labels_train and labels_test (int64).
    """
    return {k: v.copy() for k, v in _mnist1d_generated().items()}


@lru_cache(maxsize=1)
def _mnist1d_generated() -> dict[str, np.ndarray]:
    # Cached: the generator is deterministic and takes seconds (mnist1d and mnist1d_noisy
    # both start from it).
    import random
    from importlib import import_module

    from mnist1d.data import get_dataset_args
    from mnist1d.data import make_dataset as mnist1d_make_dataset

    # (`mnist1d.transform` names the function its package re-exports, not the module.)
    transform = import_module("mnist1d.transform")

    # The package draws from the legacy global generator; save and restore it. Its noise is
    # smoothed by scipy's gaussian_filter, whose weights come from np.exp: swapped for the
    # same filter with exact weights (module docstring) while it runs.
    numpy_state, python_state = np.random.get_state(), random.getstate()  # noqa: NPY002
    scipy_filter = transform.gaussian_filter
    transform.gaussian_filter = gaussian_filter_exact
    try:
        raw = mnist1d_make_dataset(get_dataset_args())
    finally:
        transform.gaussian_filter = scipy_filter
        np.random.set_state(numpy_state)  # noqa: NPY002
        random.setstate(python_state)
    return {
        "x_train": np.asarray(raw["x"], dtype=np.float64),
        "x_test": np.asarray(raw["x_test"], dtype=np.float64),
        "labels_train": np.asarray(raw["y"], dtype=np.int64),
        "labels_test": np.asarray(raw["y_test"], dtype=np.int64),
    }


def gaussian_weights(sigma: float, truncate: float = 4.0) -> np.ndarray:
    """scipy.ndimage's Gaussian kernel, w_k = exp(−k²/(2σ²)) / Σ_j exp(−j²/(2σ²)) for
    |k| ≤ r = ⌊truncate·σ + ½⌋, with each exponential correctly rounded (computed in
    decimal at 40 digits, then rounded once to float64) rather than by np.exp, whose last
    bit depends on the CPU (module docstring). Same exponent, same normalization as scipy's
    `_gaussian_kernel1d`: where np.exp rounds correctly the weights are scipy's, bit for bit."""
    from decimal import Decimal, localcontext

    radius = int(truncate * float(sigma) + 0.5)
    k = np.arange(-radius, radius + 1)
    exponents = -0.5 / (float(sigma) * float(sigma)) * k**2
    with localcontext() as context:
        context.prec = 40
        phi = np.array([float(Decimal(float(e)).exp()) for e in exponents])
    return phi / phi.sum()


def gaussian_filter_exact(x: np.ndarray, sigma: float) -> np.ndarray:
    """`scipy.ndimage.gaussian_filter(x, sigma)` of a 1-D signal (mode 'reflect', truncate
    4), with the weights of `gaussian_weights`."""
    from scipy.ndimage import correlate1d

    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError("gaussian_filter_exact filters 1-D signals")
    return correlate1d(x, gaussian_weights(sigma)[::-1], mode="reflect")


def mnist1d(
    n_train: int = MNIST1D_TRAIN,
    n_test: int = MNIST1D_TEST,
    label_noise: float = 0.0,
    seed: int = 0,
) -> Dataset:
    """MNIST-1D (Greydanus & Kobak, arXiv:2011.14439): 10 classes of 1-D signals, D = 40,
    made offline by the `mnist1d` package's generator at its default arguments
    (`mnist1d_arrays`).

    The first `n_train` of the package's 4000 training signals and the first `n_test` of its
    1000 test signals (the package has already shuffled them with its seed 42, so smaller
    sets are nested in larger ones). The inputs are the package's arrays unchanged: it
    centres all 5000 × 40 numbers with one global mean and divides them by one global
    standard deviation, so E‖x‖² ≈ D = 40 (39.8 on the 4000 training signals), the
    convention of this module. Label noise and one-hot targets as in `digits`, the flips
    drawn from `seed`.
    """
    check_int("n_train", n_train, maximum=MNIST1D_TRAIN)
    check_int("n_test", n_test, maximum=MNIST1D_TEST)
    check_fraction("label_noise", label_noise)
    from importlib.metadata import version

    arrays = mnist1d_arrays()
    rng = rng_for(seed, "data:mnist1d")
    return classification_dataset(
        "mnist1d",
        arrays["x_train"][:n_train],
        arrays["labels_train"][:n_train],
        arrays["x_test"][:n_test],
        arrays["labels_test"][:n_test],
        10,
        label_noise,
        rng,
        dict(
            n_train=n_train,
            n_test=n_test,
            dim=MNIST1D_DIM,
            seed=seed,
            generator="mnist1d.data.make_dataset(get_dataset_args())",
            mnist1d_version=version("mnist1d"),
        ),
    )


def mnist1d_noisy(
    n_train: int = MNIST1D_TRAIN,
    n_test: int = MNIST1D_TEST,
    label_noise: float = 0.135,
    seed: int = 0,
) -> Dataset:
    """`mnist1d` with label noise, written under its own name (`data/mnist1d_noisy.*`), as
    `digits_noisy` is to `digits`."""
    from dataclasses import replace

    return replace(mnist1d(n_train, n_test, label_noise, seed), name="mnist1d_noisy")


GENERATORS: dict[str, Callable[..., Dataset]] = {
    "sphere_linear": sphere_linear,
    "teacher": teacher,
    "digits": digits,
    "digits_noisy": digits_noisy,
    "mnist1d": mnist1d,
    "mnist1d_noisy": mnist1d_noisy,
    "mnist": lambda **kw: openml_images("mnist", **kw),
    "fashion_mnist": lambda **kw: openml_images("fashion_mnist", **kw),
}


def make_dataset(name: str, **settings: Any) -> Dataset:
    """The data set `name` built from `settings` (the keys of its config, less `name`)."""
    import inspect

    check_choice("name", name, GENERATORS)
    generator = GENERATORS[name]
    if name in OPENML_NAMES:
        allowed = set(inspect.signature(openml_images).parameters) - {"name", "fetch"}
    else:
        allowed = set(inspect.signature(generator).parameters)
    unknown = sorted(set(settings) - allowed)
    if unknown:
        raise InvalidValue(
            unknown[0], settings[unknown[0]], f"a key of data={name}: {sorted(allowed)}"
        )
    return generator(**settings)
