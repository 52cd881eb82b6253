"""Random-features model: nesting across widths, feature distributions, scaling, errors."""

import numpy as np
import pytest
from conftest import sphere_points as sample_sphere
from scipy.special import erf

from widthlab.models.random_features import (
    FEATURE_DISTRIBUTIONS,
    RandomFeaturesConfig,
    RandomFeaturesModel,
    draw_features,
    feature_activations,
    feature_map,
)


@pytest.mark.parametrize("distribution", FEATURE_DISTRIBUTIONS)
def test_features_are_nested_across_widths(distribution):
    small = draw_features(7, 20, distribution, seed=3)
    large = draw_features(7, 500, distribution, seed=3)
    np.testing.assert_array_equal(large[:, :20], small)
    assert not np.array_equal(draw_features(7, 20, distribution, seed=4), small)
    x = sample_sphere(11, 7, seed=0)
    # The unscaled columns are shared; h itself carries 1/√d and therefore differs.
    s_small = feature_activations(x, small, "tanh")
    np.testing.assert_array_equal(feature_activations(x, large, "tanh")[:, :20], s_small)
    np.testing.assert_allclose(feature_map(x, small, "tanh") * np.sqrt(20), s_small, rtol=1e-15)


def test_sphere_features_have_unit_norm_and_give_mei_montanari_features():
    dim = 30
    a = draw_features(dim, 1000, "sphere", seed=1)
    np.testing.assert_allclose(np.linalg.norm(a, axis=0), 1.0, rtol=0, atol=1e-14)
    x = sample_sphere(5, dim, seed=2)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), np.sqrt(dim), rtol=1e-14)
    theta = np.sqrt(dim) * a  # uniform on the sphere of radius √D
    mm = np.maximum(x @ theta / np.sqrt(dim), 0.0)
    np.testing.assert_allclose(feature_map(x, a, "relu") * np.sqrt(1000), mm, atol=1e-13)


def test_gaussian_features_have_covariance_identity_over_dim():
    dim, width = 10, 40_000
    a = draw_features(dim, width, "gaussian", seed=5)
    cov = a @ a.T / width
    # Entry (i, j) of the sample covariance has standard error (1/D)·√((1 + δ_ij)/width);
    # allow 5 standard errors on every entry.
    se = (1.0 / dim) * np.sqrt((1.0 + np.eye(dim)) / width)
    assert np.all(np.abs(cov - np.eye(dim) / dim) <= 5 * se)
    assert np.all(np.abs(a.mean(axis=1)) <= 5 * np.sqrt(1.0 / dim / width))


@pytest.mark.parametrize(
    ("activation", "fn"),
    [("relu", lambda z: np.maximum(z, 0.0)), ("erf", erf), ("tanh", np.tanh)],
)
def test_feature_map_values(activation, fn):
    x = np.random.default_rng(0).standard_normal((6, 4))
    a = draw_features(4, 9, "gaussian", seed=0)
    np.testing.assert_allclose(feature_map(x, a, activation), fn(x @ a) / 3.0, rtol=1e-14)


def test_bad_arguments_raise_naming_them():
    with pytest.raises(
        ValueError,
        match=r"^distribution='uniform' is not allowed: expected one of \['gaussian', 'sphere'\]$",
    ):
        draw_features(3, 4, "uniform")
    with pytest.raises(
        ValueError,
        match=r"^activation='gelu' is not allowed: expected one of \['erf', 'relu', 'tanh'\]$",
    ):
        feature_map(np.ones((2, 3)), draw_features(3, 4), "gelu")
    with pytest.raises(ValueError, match="max_width"):
        draw_features(3, 0)
    with pytest.raises(ValueError, match="dim"):
        draw_features(2.5, 3)
    with pytest.raises(ValueError, match="matching D"):
        feature_map(np.ones((2, 5)), draw_features(3, 4), "relu")
    with pytest.raises(ValueError, match="feature_distribution"):
        RandomFeaturesConfig(dim=3, width=4, feature_distribution="normal")
    with pytest.raises(ValueError, match="width"):
        RandomFeaturesConfig(dim=3, width=-1)


def test_model_interpolates_when_overparameterized_and_needs_fit():
    rng = np.random.default_rng(0)
    x, y = sample_sphere(40, 5, seed=rng), rng.standard_normal(40)
    model = RandomFeaturesModel(RandomFeaturesConfig(dim=5, width=400, activation="erf"))
    with pytest.raises(ValueError, match="not fitted"):
        model.predict(x)
    np.testing.assert_allclose(model.fit(x, y).predict(x), y, rtol=0, atol=1e-8)
    ridge_fit = model.fit(x, y, ridge=1.0).predict(x)
    assert np.linalg.norm(ridge_fit - y) > 0.1 * np.linalg.norm(y)
