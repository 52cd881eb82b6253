import math

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


def test_parabola_vertex_recovers_the_minimum_of_a_sampled_parabola():
    from widthlab.stats import parabola_vertex

    for vertex in (-0.4, 0.0, 0.3):
        y = [2.0 * (x - vertex) ** 2 + 1.0 for x in (-1, 0, 1)]
        assert parabola_vertex(*y) == pytest.approx(vertex, abs=1e-12)
    assert math.isnan(parabola_vertex(1.0, 2.0, 3.0))  # collinear: no minimum
    assert math.isnan(parabola_vertex(1.0, 2.0, 1.0))  # a maximum


def test_grid_minimum_skips_unusable_points_and_refines_inside_the_grid():
    from widthlab.stats import grid_minimum

    grid = np.arange(8.0)
    curve = (grid - 4.3) ** 2
    scores = np.stack([curve, curve + 0.5])  # two seeds, same shape
    found = grid_minimum(scores)
    assert found.index == 4 and found.interior and found.position == pytest.approx(4.3)
    scores[1, 5] = np.inf  # one seed diverged at 5: the point is unusable for both
    found = grid_minimum(scores)
    assert found.index == 4 and found.position == 4.0  # no right neighbour to refine with
    edge = grid_minimum(np.stack([grid, grid]))
    assert edge.index == 0 and not edge.interior
    assert grid_minimum(np.full((2, 3), np.inf)) is None
