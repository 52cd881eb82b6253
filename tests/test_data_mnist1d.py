"""MNIST-1D from the mnist1d package's offline generator: the data it makes (a stored
checksum catches a package version that changes it), no network, no side effect on the
global random state, and the Dataset conventions."""

import hashlib
import random
import socket

import numpy as np
import pytest

from widthlab.checks import InvalidValue
from widthlab.data import _mnist1d_generated, make_dataset, mnist1d, mnist1d_arrays

# sha256 of x_train, x_test (rounded to 1e-8, so that last-bit differences of scipy's
# interpolation between platforms do not count as new data), labels_train and labels_test,
# as made by mnist1d 0.0.2.post1 (the version pyproject.toml's lower bound names).
CHECKSUM = "0c96e401921e1cbb090c55f142e85a5fb67bed2d4a26248cdd4fa4da5dbc5fdc"


def checksum(arrays: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for key in ("x_train", "x_test", "labels_train", "labels_test"):
        value = arrays[key]
        if value.dtype.kind == "f":
            value = np.round(value, 8)
        digest.update(np.ascontiguousarray(value).tobytes())
    return digest.hexdigest()


def test_the_generator_makes_the_data_of_the_recorded_package_version():
    arrays = mnist1d_arrays()
    assert arrays["x_train"].shape == (4000, 40) and arrays["x_test"].shape == (1000, 40)
    # A mismatch means the installed mnist1d generates different data: check its version and
    # regenerate data/mnist1d*.npz (`dvc repro`) before comparing results with stored ones.
    assert checksum(arrays) == CHECKSUM


def test_generation_touches_no_network_and_restores_the_global_random_state(monkeypatch):
    attempts = []

    def refuse(*args, **kwargs):
        # Recorded as well as raised: the package's get_dataset swallows every exception.
        attempts.append(args)
        raise OSError("network access in a test")

    for name in ("connect", "connect_ex", "sendto"):
        monkeypatch.setattr(socket.socket, name, refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    _mnist1d_generated.cache_clear()  # generate again, with the network impossible
    np.random.seed(123)  # noqa: NPY002
    random.seed(123)
    expected_numpy, expected_python = np.random.random(), random.random()  # noqa: NPY002
    np.random.seed(123)  # noqa: NPY002
    random.seed(123)
    arrays = mnist1d_arrays()
    assert np.random.random() == expected_numpy  # noqa: NPY002
    assert random.random() == expected_python
    assert checksum(arrays) == CHECKSUM
    assert attempts == []


def test_dataset_conventions_nested_subsets_and_exact_label_noise():
    ds = mnist1d(n_train=400, n_test=300, label_noise=0.25, seed=3)
    small = mnist1d(n_train=100, n_test=50, label_noise=0.0, seed=3)
    raw = mnist1d_arrays()
    # The package's arrays unchanged, the first n of each split.
    np.testing.assert_array_equal(ds.x_train, raw["x_train"][:400])
    np.testing.assert_array_equal(small.x_test, raw["x_test"][:50])
    np.testing.assert_array_equal(ds.extras["clean_labels_train"], raw["labels_train"][:400])
    assert ds.y_train.shape == (400, 10) and ds.y_test.shape == (300, 10)
    np.testing.assert_array_equal(ds.y_train.argmax(1), ds.extras["labels_train"])
    np.testing.assert_array_equal(ds.y_test.argmax(1), raw["labels_test"][:300])
    flipped = ds.extras["flipped_train"]
    assert flipped.sum() == 100
    noisy, clean = ds.extras["labels_train"], ds.extras["clean_labels_train"]
    assert np.all(noisy[flipped] != clean[flipped]) and np.all(noisy[~flipped] == clean[~flipped])
    # The package centres and scales all 5000 × 40 numbers: E‖x‖² ≈ D = 40.
    assert abs(np.mean(np.sum(raw["x_train"] ** 2, axis=1)) - 40) < 0.5
    assert ds.settings["dim"] == 40 and ds.settings["n_classes"] == 10
    noisy_set = make_dataset("mnist1d_noisy", n_train=400, n_test=300, label_noise=0.25, seed=3)
    assert noisy_set.name == "mnist1d_noisy"
    np.testing.assert_array_equal(noisy_set.extras["labels_train"], noisy)


@pytest.mark.parametrize(("key", "value"), [("n_train", 4001), ("n_test", 0), ("label_noise", 2)])
def test_bad_settings_name_their_key(key, value):
    settings = {"n_train": 10, "n_test": 10, "label_noise": 0.0, key: value}
    with pytest.raises(InvalidValue, match=key):
        mnist1d(**settings)
