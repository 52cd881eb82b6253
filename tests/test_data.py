"""Generators: exact geometry, statistics within sampling error, determinism, bad values."""

import hashlib
import json
import zipfile

import numpy as np
import pytest

from widthlab.checks import InvalidValue
from widthlab.data import make_dataset, sphere_linear, teacher
from widthlab.dataset import flip_labels
from widthlab.openml import openml_images
from widthlab.runtime.datafiles import load_dataset, save_dataset
from widthlab.runtime.errors import DataFileError


def test_sphere_points_lie_on_the_sphere_of_radius_sqrt_dim():
    ds = sphere_linear(n_train=500, n_test=300, dim=37, seed=3)
    for x in (ds.x_train, ds.x_test):
        np.testing.assert_allclose(np.linalg.norm(x, axis=1), np.sqrt(37), rtol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(ds.extras["beta1"]), 1.0, rtol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(ds.extras["w"]), 1.0, rtol=1e-12)


def test_sphere_points_are_uniform_first_and_second_moments():
    # Uniform on S^{D-1}(√D): E[x] = 0 and E[x xᵀ] = I. With n points each entry of the
    # empirical second moment has sd ≈ √(2/n) off the diagonal; 6 sd is a safe bound.
    n, dim = 40_000, 10
    x = sphere_linear(n_train=n, n_test=1, dim=dim, seed=0).x_train
    assert np.abs(x.mean(axis=0)).max() < 6 / np.sqrt(n)
    assert np.abs(x.T @ x / n - np.eye(dim)).max() < 6 * np.sqrt(2 / n)


def test_sphere_linear_target_decomposition_and_variances():
    # Linear part variance F1², degree-2 part mean 0 and variance F★² (the normalization),
    # noise variance τ²: each checked within 5 standard errors of its Monte-Carlo estimate.
    n, dim, f1, fstar, tau = 200_000, 30, 1.5, 0.8, 0.5
    ds = sphere_linear(n, 1, dim, signal=f1, nonlinear=fstar, noise=tau, seed=1)
    x, y, f = ds.x_train, ds.y_train, ds.extras["f_train"]
    linear = x @ ds.extras["beta1"]
    quad = f - linear
    np.testing.assert_allclose(
        quad,
        fstar * ((x @ ds.extras["w"]) ** 2 - 1) / np.sqrt(2 * (dim - 1) / (dim + 2)),
        atol=1e-12,
    )
    se_var = lambda v: np.sqrt(np.var((v - v.mean()) ** 2) / n)  # noqa: E731
    assert abs(np.var(linear) - f1**2) < 5 * se_var(linear)
    assert abs(quad.mean()) < 5 * quad.std() / np.sqrt(n)
    assert abs(np.var(quad) - fstar**2) < 5 * se_var(quad)
    eps = y - f
    assert abs(np.var(eps) - tau**2) < 5 * se_var(eps)


def test_teacher_reproducible_by_seed_and_matches_its_formula():
    a = teacher(50, 20, 7, teacher_width=11, noise=0.0, seed=5)
    b = teacher(50, 20, 7, teacher_width=11, noise=0.0, seed=5)
    c = teacher(50, 20, 7, teacher_width=11, noise=0.0, seed=6)
    np.testing.assert_array_equal(a.y_train, b.y_train)
    assert not np.allclose(a.y_train, c.y_train)
    v, w = a.extras["teacher_v"], a.extras["teacher_a"]
    manual = [
        sum(w[j] * max(v[j] @ x / np.sqrt(7), 0) for j in range(11)) / np.sqrt(11) for x in a.x_test
    ]
    np.testing.assert_allclose(a.y_test, manual, rtol=1e-12)


def test_label_noise_flips_exactly_the_fraction_to_another_class():
    ds = make_dataset("digits", n_train=1000, label_noise=0.25, seed=2)
    flipped = ds.extras["flipped_train"]
    assert flipped.sum() == 250
    noisy, clean = ds.extras["labels_train"], ds.extras["clean_labels_train"]
    np.testing.assert_array_equal(noisy != clean, flipped)
    np.testing.assert_array_equal(ds.y_train.argmax(1), noisy)
    assert ds.y_test.shape == (797, 10) and ds.x_train.shape == (1000, 64)


def test_flipped_labels_are_uniform_over_the_other_classes():
    # Each wrong class has probability 1/(C−1); chi-square with C−1 dof, 99.9% quantile.
    rng = np.random.default_rng(0)
    labels = np.zeros(90_000, dtype=np.int64)
    noisy, flipped = flip_labels(labels, 10, 0.5, rng)
    counts = np.bincount(noisy[flipped], minlength=10)[1:]
    expected = flipped.sum() / 9
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert counts.sum() == 45_000 and chi2 < 27.9


def test_digits_standardized_on_the_training_split():
    ds = make_dataset("digits", n_train=800, seed=0)
    std = ds.x_train.std(axis=0)
    np.testing.assert_allclose(ds.x_train.mean(axis=0), 0, atol=1e-12)
    assert np.all((np.abs(std - 1) < 1e-12) | (std == 0))


def test_same_settings_give_identical_bytes(tmp_path):
    for i in range(2):
        save_dataset(sphere_linear(40, 10, 5, seed=9), tmp_path / str(i))
    for suffix in ("npz", "json"):
        digests = {
            hashlib.sha256((tmp_path / str(i) / f"sphere_linear.{suffix}").read_bytes()).hexdigest()
            for i in range(2)
        }
        assert len(digests) == 1
    meta = json.loads((tmp_path / "0" / "sphere_linear.json").read_text())
    assert meta["n_train"] == 40 and meta["dim"] == 5 and meta["settings"]["seed"] == 9


def test_data_file_headers_do_not_depend_on_the_python_version(tmp_path):
    """Streamed zip64 members get a "version needed to extract" that Python 3.11.2 and 3.11.7
    write differently (the bytes then differ across machines); whole members below 4 GiB
    get the plain header every version writes: version 2.0, no extra field, sizes known."""
    npz, _ = save_dataset(sphere_linear(40, 10, 5, seed=9), tmp_path)
    blob = npz.read_bytes()
    with zipfile.ZipFile(npz) as zf:
        infos = zf.infolist()
    assert infos and [i.filename for i in infos] == sorted(i.filename for i in infos)
    for info in infos:
        assert (info.extract_version, info.extra, info.flag_bits & 0x08) == (20, b"", 0)
        header = blob[info.header_offset : info.header_offset + 30]
        assert header[:4] == b"PK\x03\x04" and int.from_bytes(header[4:6], "little") == 20
        assert int.from_bytes(header[28:30], "little") == 0  # no extra field (no zip64)
    with np.load(npz) as arrays:
        assert arrays["x_train"].shape == (40, 5)


def test_round_trip_and_corruption_names_the_stage(tmp_path):
    ds = teacher(30, 10, 4, seed=0)
    npz, _ = save_dataset(ds, tmp_path)
    back = load_dataset("teacher", tmp_path)
    np.testing.assert_array_equal(back.x_test, ds.x_test)
    np.testing.assert_array_equal(back.extras["teacher_v"], ds.extras["teacher_v"])
    arrays = dict(np.load(npz))
    arrays["x_test"] = arrays["x_test"] + 1e-12  # a changed array, the same card
    np.savez(npz, **arrays)
    with pytest.raises(
        DataFileError,
        match=r"'x_test' does not match its sha256\): regenerate "
        r"it with `python pipelines/data.py data=teacher`",
    ):
        load_dataset("teacher", tmp_path)
    raw = bytearray(npz.read_bytes())
    raw[-200] ^= 0xFF  # a damaged zip
    npz.write_bytes(bytes(raw))
    with pytest.raises(DataFileError, match=r"is unusable .*regenerate it with"):
        load_dataset("teacher", tmp_path)
    with pytest.raises(
        DataFileError,
        match=r"not found.*`python pipelines/data.py data=digits "
        r"profile=smoke`",
    ):
        load_dataset("digits", tmp_path, profile="smoke")


def test_a_file_made_with_other_settings_is_refused_naming_key_and_both_values(tmp_path):
    save_dataset(teacher(30, 10, 4, noise=0.1, seed=0), tmp_path)
    expected = {
        "name": "teacher",
        "n_train": 30,
        "n_test": 10,
        "dim": 4,
        "teacher_width": 64,
        "noise": 0.1,
        "seed": 0,
    }
    assert load_dataset("teacher", tmp_path, expected=expected).x_train.shape == (30, 4)
    with pytest.raises(DataFileError) as info:
        load_dataset("teacher", tmp_path, expected={**expected, "dim": 50}, profile="smoke")
    message = str(info.value)
    assert "was made with dim=4, but data.dim=50 here" in message
    assert "`python pipelines/data.py data=teacher profile=smoke data.dim=50`" in message


@pytest.mark.parametrize(
    ("card", "problem"),
    [
        ([], "the card is a list, not a mapping"),
        ({"name": "teacher"}, "the card's 'task' is missing"),
        ("drop one sha256", "has no sha256"),
    ],
)
def test_a_malformed_card_is_refused_with_what_is_wrong(tmp_path, card, problem):
    _, card_path = save_dataset(teacher(30, 10, 4, seed=0), tmp_path)
    if card == "drop one sha256":
        card = json.loads(card_path.read_text())
        del card["arrays"]["x_train"]["sha256"]
    card_path.write_text(json.dumps(card))
    with pytest.raises(DataFileError, match=problem):
        load_dataset("teacher", tmp_path)


@pytest.mark.parametrize(
    ("name", "settings", "key"),
    [
        ("sphere_linear", dict(n_train=0, n_test=5, dim=3), "n_train"),
        ("sphere_linear", dict(n_train=5, n_test=5, dim=3, noise=-0.1), "noise"),
        ("sphere_linear", dict(n_train=5, n_test=5, dim=3.5), "dim"),
        ("teacher", dict(n_train=5, n_test=-1, dim=3), "n_test"),
        ("teacher", dict(n_train=5, n_test=5, dim=3, teacher_width=0), "teacher_width"),
        ("digits", dict(n_train=100, label_noise=1.0), "label_noise"),
        ("digits", dict(n_train=100, label_noise=-0.1), "label_noise"),
        ("digits", dict(n_train=5000), "n_train"),
        ("digits", dict(n_train=100, bogus=1), "bogus"),
        ("cifar", dict(), "name"),
    ],
)
def test_bad_values_name_the_key_the_value_and_what_is_allowed(name, settings, key):
    with pytest.raises(InvalidValue) as info:
        make_dataset(name, **settings)
    message = str(info.value)
    assert message.startswith(f"{key}=") and "expected" in message and "\n" not in message


def fake_openml(n_total=70_000, dim=784):
    """A stand-in for fetch_openml: small random images in the canonical 60k/10k order."""
    calls = []

    def fetch(name, version, as_frame, data_home):
        calls.append((name, version, as_frame, data_home))
        rng = np.random.default_rng(0)
        data = rng.integers(0, 256, size=(n_total, dim)).astype(np.float64)
        # Labels 0–4 on the canonical training rows, 5–9 on the test rows: shows which
        # rows each split was drawn from.
        target = np.asarray([str(i % 5 + 5 * (i >= n_total - 10_000)) for i in range(n_total)])
        return type("Bunch", (), {"data": data, "target": target})()

    return fetch, calls


def test_openml_loader_without_network(tmp_path):
    fetch, calls = fake_openml()
    ds = openml_images(
        "fashion_mnist",
        n_train=300,
        n_test=100,
        label_noise=0.1,
        seed=4,
        cache_dir=tmp_path,
        fetch=fetch,
    )
    assert calls == [("Fashion-MNIST", 1, False, str(tmp_path))]
    assert ds.x_train.shape == (300, 784) and ds.y_test.shape == (100, 10)
    np.testing.assert_allclose(np.mean(np.sum(ds.x_train**2, axis=1)), 784, rtol=1e-12)
    assert ds.extras["flipped_train"].sum() == 30
    assert ds.extras["clean_labels_train"].max() < 5 and ds.extras["labels_test"].min() >= 5
    again = openml_images(
        "fashion_mnist",
        n_train=300,
        n_test=100,
        label_noise=0.1,
        seed=4,
        cache_dir=tmp_path,
        fetch=fetch,
    )
    np.testing.assert_array_equal(ds.x_test, again.x_test)
    with pytest.raises(InvalidValue, match=r"^n_train=70000 is not allowed"):
        openml_images("mnist", n_train=70_000, n_test=10, fetch=fetch)
