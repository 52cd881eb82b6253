import numpy as np

from widthlab.data import sphere_linear
from widthlab.models.random_features import draw_features
from widthlab.seeding import rng_for


def test_streams_are_reproducible_and_independent_across_purposes():
    a = rng_for(3, "features").standard_normal(1000)
    np.testing.assert_array_equal(a, rng_for(3, "features").standard_normal(1000))
    b = rng_for(3, "data:sphere_linear").standard_normal(1000)
    # Independent N(0,1) samples: the correlation is ~N(0, 1/1000); 5 sd is 0.16.
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.16


def test_features_of_seed_s_are_not_aligned_with_the_signal_of_data_seed_s():
    # Regression test: with one shared stream, feature 1 of seed s was exactly β₁/‖β₁‖ of
    # the data set with seed s. For independent directions in D = 100, |cos| ~ 0.1.
    for seed in range(4):
        beta1 = sphere_linear(10, 10, 100, seed=seed).extras["beta1"]
        alpha = draw_features(100, 5, "sphere", seed)
        assert np.max(np.abs(alpha.T @ beta1)) < 0.5
