"""Statistics of sweeps: slopes, standard errors, tests, families, power, explanations.

Every comparison the studies report goes through here, so every number compared with a
theory or a paper carries its uncertainty and a verdict decided by one stated rule:

* a mean over seeds carries its standard error SE = sd/√k (sample sd, ddof = 1, k seeds);
  against a prediction it is a t-test with k − 1 degrees of freedom (`mean_test`);
* a slope of log y on log width (`seed_slope`) is pooled over every point, and its 95%
  interval comes from the independent unit, the seed: each seed's own slope is one
  measurement (its points share the seed's draws), slope ± t(k − 1)·SE. The interval of
  the pooled fit, which counts every point as independent, is kept beside it. Statistics
  that are not means (a ratio of spreads, the width of a peak) get percentile intervals
  from `scipy.stats.bootstrap` over each width's seeds (`bootstrap_interval`). Against a
  paper's exponent a slope is a two-sided t-test, against a bound a one-sided one
  (`slope_test`); a one-sided p is doubled, so "p < 0.05" and "the 95% interval lies
  wholly on one side" say the same thing;
* a peak (`peak_test`) is above the lowest point on each side of it by a one-sided Welch
  t-test each side, both at 5%;
* flatness (`flatness`) is an equivalence test: the whole 95% interval within ±tolerance.

**Families.** The tests of one study that answer one question form a family, judged
together by Holm's step-down procedure (`holm`, `judge_family`) at a family-wise error of
`ALPHA`: "differs" only where the Holm-adjusted p-value is below α, so a family of true
claims says "differs" anywhere with probability ≤ α whatever the dependence between its
tests, not ≈ m·α.

**Power.** A rule that looks for an effect (a peak, a flat curve) and does not see it
says "differs" only where it had the power to see the effect it looks for: the power of
the t rule at the observed SE and degrees of freedom (`t_power`, noncentral t) must be at
least `MIN_POWER`; below, too few seeds to tell, it says "inconclusive (k seeds)".

**Checks are not claims.** A computation's own consistency (a solver's KKT residuals, a
maximum that lies in its bracket by construction) is reported as a check, passed or
failed, and never counted among the verdicts.

**Explanations.** A slope that still differs is explained from the pipeline's own numbers
(`explain_slope`): its local slopes between successive widths and their trend, and the
exponent of a fit with a finite-width correction, give "pre-asymptotic", "real" or
"unresolved" with the reason.
"""

from widthlab.stats.basics import (
    Z_FLAG,
    GridMinimum,
    Peak,
    SlopeFit,
    bootstrap_interval,
    clearly_above,
    find_peak,
    grid_minimum,
    loglog_slope,
    mean_and_se,
    parabola_vertex,
    slope_verdict,
    z_score,
)
from widthlab.stats.explain import (
    corrected_power_law,
    explain_slope,
    local_slopes,
    num,
)
from widthlab.stats.rounding import (
    ROUND_OFF_BOUND,
    STORED_DIGITS,
    digits_for,
    round_decade,
    round_off_floor,
    round_sig,
    round_tree,
    with_uncertainty,
)
from widthlab.stats.verdicts import (
    ALPHA,
    MIN_POWER,
    SEED_LEVEL,
    binomial_p_value,
    count_verdicts,
    flat_claim,
    flatness,
    holm,
    judge_family,
    mean_test,
    peak_candidate,
    peak_test,
    power_verdict,
    seed_slope,
    slope_test,
    t_p_value,
    t_power,
    welch,
    z_p_value,
)

__all__ = [
    "ALPHA",
    "MIN_POWER",
    "ROUND_OFF_BOUND",
    "SEED_LEVEL",
    "STORED_DIGITS",
    "Z_FLAG",
    "GridMinimum",
    "Peak",
    "SlopeFit",
    "binomial_p_value",
    "bootstrap_interval",
    "clearly_above",
    "corrected_power_law",
    "count_verdicts",
    "digits_for",
    "explain_slope",
    "find_peak",
    "flat_claim",
    "flatness",
    "grid_minimum",
    "holm",
    "judge_family",
    "local_slopes",
    "loglog_slope",
    "mean_and_se",
    "mean_test",
    "num",
    "parabola_vertex",
    "peak_candidate",
    "peak_test",
    "power_verdict",
    "round_decade",
    "round_off_floor",
    "round_sig",
    "round_tree",
    "seed_slope",
    "slope_test",
    "slope_verdict",
    "t_p_value",
    "t_power",
    "welch",
    "with_uncertainty",
    "z_p_value",
    "z_score",
]
