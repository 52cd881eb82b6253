import numpy as np
import pytest

from widthlab.stats import loglog_slope


def test_slope_of_an_exact_power_law():
    x = np.array([64, 128, 256, 512, 1024.0])
    fit = loglog_slope(x, 3.0 * x**-0.5)
    assert fit.slope == pytest.approx(-0.5, abs=1e-12)
    assert fit.intercept == pytest.approx(np.log(3.0), abs=1e-12)
    assert fit.ci_high - fit.ci_low == pytest.approx(0, abs=1e-9)


def test_interval_covers_the_true_slope_at_its_nominal_rate():
    # Monte Carlo over noisy data sets: a 95% interval should cover the truth ~95% of the
    # time; with 2000 repetitions the binomial sd is 0.5%, so [0.93, 0.97] is a 4-sd band.
    rng = np.random.default_rng(0)
    x = np.repeat(2.0 ** np.arange(6, 13), 3)
    covered = 0
    for _ in range(2000):
        y = np.exp(0.3 - 0.5 * np.log(x) + 0.2 * rng.standard_normal(x.size))
        fit = loglog_slope(x, y)
        covered += fit.ci_low <= -0.5 <= fit.ci_high
    assert 0.93 <= covered / 2000 <= 0.97


def test_nonpositive_values_are_dropped_and_too_few_points_give_nan():
    fit = loglog_slope(np.array([1, 2, 4, 8.0]), np.array([1, 0.5, 0.0, 0.125]))
    assert fit.n == 3 and fit.slope == pytest.approx(-1.0)
    assert np.isnan(loglog_slope(np.array([1.0, 2.0]), np.array([1.0, 2.0])).slope)
