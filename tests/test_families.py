"""Families of tests, dependent points, power and explanations (`widthlab.stats`), checked on
synthetic data whose truth is known."""

import math

import numpy as np
import pytest
from scipy import stats

from widthlab.stats import (
    corrected_power_law,
    explain_slope,
    flat_claim,
    flatness,
    holm,
    judge_family,
    local_slopes,
    mean_test,
    peak_candidate,
    peak_test,
    power_verdict,
    seed_slope,
    slope_test,
    t_power,
)

WIDTHS = np.array([64, 128, 256, 512, 1024, 2048, 4096, 8192], dtype=float)


def seeded_curves(rng, exponent, seeds, tilt=0.0, noise=0.05, widths=WIDTHS):
    """Points (x, y, seed) of `seeds` curves y = w^exponent: each seed's own slope off by a
    draw of sd `tilt` (its points share that draw) and every point by log-normal noise."""
    x, y, s = [], [], []
    centre = np.log(widths).mean()
    for seed in range(seeds):
        slope = exponent + rng.normal(0, tilt)
        ly = slope * (np.log(widths) - centre) + rng.normal(0, noise, widths.size)
        x += list(widths)
        y += list(np.exp(ly))
        s += [seed] * widths.size
    return x, y, s


def test_holm_adjusts_as_the_step_down_procedure_defines():
    # p sorted: 0.01 (×4), 0.02 (×3), 0.03 (×2), 0.5 (×1), made monotone.
    assert holm([0.03, 0.01, 0.5, 0.02]) == pytest.approx([0.06, 0.04, 0.5, 0.06])
    adjusted = holm([0.01, float("nan"), None])
    assert adjusted[0] == 0.01 and math.isnan(adjusted[1]) and math.isnan(adjusted[2])


def test_a_family_of_true_claims_says_differs_at_most_five_percent_of_the_time():
    """12 slopes whose truth is the reference, over 5 seeds each (ntk_convergence's family),
    1000 draws: uncorrected 95% intervals flag one somewhere ~46% of the time (1 − 0.95¹²),
    the Holm-judged family at most 5% (+ 3 binomial SE for the finite number of draws)."""
    rng = np.random.default_rng(0)
    draws, raw, family = 1000, 0, 0
    for _ in range(draws):
        tests = [
            slope_test(seed_slope(*seeded_curves(rng, -0.5, 5, tilt=0.02)), -0.5) for _ in range(12)
        ]
        raw += any(t["verdict"] == "differs" for t in tests)
        judged = judge_family(tests, "slopes")
        family += judged["differ"] > 0
        assert judged["size"] == 12 and judged["first_level"] == pytest.approx(0.05 / 12)
    assert raw / draws > 0.35
    assert family / draws <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / draws)


def test_a_real_effect_still_differs_within_its_family():
    rng = np.random.default_rng(1)
    tests = [slope_test(seed_slope(*seeded_curves(rng, -0.5, 5, 0.02)), -0.5) for _ in range(11)]
    tests.append(slope_test(seed_slope(*seeded_curves(rng, -0.8, 5, 0.02)), -0.5))
    judge_family(tests, "slopes")
    assert tests[-1]["verdict"] == "differs" and tests[-1]["holm_p"] < 0.05


def test_the_seed_interval_covers_where_the_pooled_ols_interval_does_not():
    """Each seed's points share one draw (a tilt of its curve): they are not independent.
    Over 200 data sets of 5 seeds × 8 widths, the pooled OLS interval, which counts 40
    independent points, covers the true slope well under 95% of the time; the t interval
    over the seeds' own slopes about 95%; so does the cluster bootstrap with 10 seeds."""
    rng = np.random.default_rng(2)
    runs, naive, seeds_cover = 200, 0, 0
    for _ in range(runs):
        x, y, s = seeded_curves(rng, -0.5, 5, tilt=0.05, noise=0.01)
        fit = seed_slope(x, y, s)
        naive += fit["ols_ci_low"] <= -0.5 <= fit["ols_ci_high"]
        seeds_cover += fit["ci_low"] <= -0.5 <= fit["ci_high"]
    assert naive / runs < 0.6, naive
    assert 0.9 <= seeds_cover / runs <= 0.99, seeds_cover
    assert fit["seeds"] == 5 and fit["dof"] == 4 and fit["n"] == 40
    # The pooled slope is the mean of the seeds' slopes when every seed has every width.
    assert fit["slope"] == pytest.approx(fit["per_seed_slope_mean"], abs=1e-12)


def test_a_bound_is_contradicted_only_by_a_slope_clearly_above_it():
    rng = np.random.default_rng(3)
    slow = slope_test(seed_slope(*seeded_curves(rng, -0.2, 4, 0.02)), -0.5, "at_most")
    fast = slope_test(seed_slope(*seeded_curves(rng, -1.0, 4, 0.02)), -0.5, "at_most")
    assert slow["verdict"] == "differs" and fast["verdict"] == "agrees" and fast["p"] == 1.0


def test_the_power_of_a_t_rule_matches_a_simulation_of_it():
    """The power of "t above the 95% critical value" at a true effect of 3 SE with 2 degrees
    of freedom, against a direct simulation of t = (Z + 3)/√(χ²₂/2) beyond the critical t."""
    sim = np.random.default_rng(6)
    z, chi2 = sim.standard_normal(200_000), sim.chisquare(2, 200_000)
    rate = np.mean((z + 3.0) / np.sqrt(chi2 / 2) > stats.t.ppf(0.975, 2))
    assert t_power(3.0, 1.0, 2) == pytest.approx(rate, abs=4 * math.sqrt(0.25 / 200_000))
    assert t_power(0.0, 1.0, 1000) == pytest.approx(0.025, abs=1e-3)  # the one-sided level


def test_a_peak_shows_is_inconclusive_or_differs_by_its_power():
    means = [0.30, 0.20, 0.45, 0.25, 0.22]
    shows = peak_test(means, [0.01] * 5, [5] * 5, effect=0.05)
    assert shows["verdict"] == "agrees" and shows["index"] == 2 and shows["shows"]
    flat = [0.25, 0.25, 0.26, 0.25, 0.24]
    few = peak_test(flat, [0.02] * 5, [2] * 5, effect=0.05)
    many = peak_test(flat, [0.005] * 5, [10] * 5, effect=0.05)
    assert few["verdict"] == "inconclusive (2 seeds)" and few["power"] < 0.8
    assert many["verdict"] == "differs" and many["power"] >= 0.8
    assert peak_test([0.5, 0.4, 0.3], [0.01] * 3, [5] * 3, 0.05)["verdict"] == "differs"  # edge
    # The candidate rises most above the lowest error before it; a falling curve has none.
    assert peak_candidate([0.3, 0.2, 0.35, 0.5, 0.25], [1, 2, 3]) == 3
    assert peak_candidate([0.5, 0.4, 0.3, 0.2], [1, 2]) == 1


def test_power_verdict_only_softens_a_differs():
    assert power_verdict("differs", 0.5, 2) == "inconclusive (2 seeds)"
    assert power_verdict("differs", 0.9, 5) == "differs"
    assert power_verdict("agrees", 0.5, 2) == "agrees"


def test_flatness_is_an_equivalence_test_on_the_interval():
    assert flatness({"ci_low": -0.05, "ci_high": 0.04}, 0.1) == "flat"
    assert flatness({"ci_low": -0.118, "ci_high": -0.06}, 0.1) == "undecided"
    assert flatness({"ci_low": 0.5, "ci_high": 0.6}, 0.1) == "not flat"
    assert flat_claim(["flat", "flat"], "flat", 3) == "agrees"
    assert flat_claim(["flat", "undecided"], "flat", 3) == "inconclusive (3 seeds)"
    assert flat_claim(["flat", "not flat"], "flat", 3) == "differs"
    assert flat_claim(["flat", "not flat"], "not flat", 3) == "agrees"
    assert flat_claim(["flat", "flat"], "not flat", 3) == "differs"


def test_mean_test_is_a_t_test_over_seeds():
    out = mean_test(1.0, 0.1, 5, 1.3)
    assert out["t"] == pytest.approx(-3.0)
    assert out["p"] == pytest.approx(2 * stats.t.sf(3.0, 4))
    assert out["verdict"] == "differs"


def test_local_slopes_and_a_finite_width_correction_recover_the_exponent():
    values = 3.0 * WIDTHS**-1.0 * (1 + 200.0 / WIDTHS)  # −1 only for n ≫ 200
    runs = [p["slope"] for p in local_slopes(WIDTHS, [values, values * 1.01])]
    assert runs[0] < -1.5 and runs[-1] > -1.05 and runs == sorted(runs)  # steep, then −1
    fit = corrected_power_law(WIDTHS, values)
    assert fit["exponent"] == pytest.approx(-1.0, abs=0.02)
    assert fit["b"] == pytest.approx(200.0, rel=0.1)


def test_explanations_tell_pre_asymptotic_from_real():
    rng = np.random.default_rng(5)
    widths = WIDTHS[:6]

    def seeds(curve):
        return [curve * np.exp(rng.normal(0, 0.01, curve.size)) for _ in range(5)]

    # −1 asymptotically, steeper at small widths: the plain fit differs, the explanation
    # finds the local slopes moving towards −1.
    pre = seeds(widths**-1.0 * (1 + 300.0 / widths))
    plain = slope_test(
        seed_slope(np.tile(widths, 5), np.concatenate(pre), np.repeat(range(5), 6)), -1
    )
    assert plain["verdict"] == "differs"
    assert explain_slope(widths, pre, -1.0)["verdict"] == "pre-asymptotic"
    # A steady −0.8: every local slope there, nothing moving towards −1.
    real = explain_slope(widths, seeds(widths**-0.8), -1.0)
    assert real["verdict"] == "real", real["reason"]
    # Noise as large as the effect: neither.
    noisy = [widths**-0.9 * np.exp(rng.normal(0, 0.3, widths.size)) for _ in range(3)]
    assert explain_slope(widths, noisy, -1.0)["verdict"] == "unresolved"
