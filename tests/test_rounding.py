"""Round-off is stored as a bound that no machine's rounding moves (`widthlab.stats`).

On another x86 CPU the committed files changed where a value is round-off: a training MSE
of an interpolating fit (4.76e-26 became 4.28e-26), KKT residuals whose decade flipped
(1e-12 became 1e-11), a standard deviation over seeds of a value every seed shares. Each is
now stored as ROUND_OFF_BOUND (read "≤ 1e-10"); a value above it keeps its decade (a
residual) or its five digits (anything else).
"""

import math

import pytest

from widthlab.runtime.aggregate import summarize
from widthlab.runtime.study import Results, Study
from widthlab.stats import ROUND_OFF_BOUND, round_decade, round_off_floor, round_tree


@pytest.mark.parametrize(
    ("one_machine", "another"),
    [(1e-12, 1e-11), (3.2e-13, 8.9e-12), (9.9e-11, 1.0e-10), (7.7e-16, 2.1e-14)],
)
def test_residuals_that_flip_their_decade_between_machines_are_stored_alike(one_machine,
                                                                            another):  # fmt: skip
    assert round_decade(one_machine) == round_decade(another) == ROUND_OFF_BOUND


def test_a_residual_above_the_bound_keeps_its_decade_and_a_number_its_digits():
    assert round_decade(3e-9) == pytest.approx(1e-8)
    assert round_decade(0.0) == 0.0 and math.isnan(round_decade(math.nan))
    assert round_off_floor(4.76e-26) == round_off_floor(4.28e-26) == ROUND_OFF_BOUND
    assert round_off_floor(0.310214987) == 0.31021
    assert round_off_floor(0.0) == 0.0 and round_off_floor(-3e-20) == -3e-20


class Residuals(Study):
    residual_keys = ("kkt_",)
    round_off_keys = ("train_mse",)

    def summarize(self, records, settings):
        return Results(summary={}, tables={}, metrics={})


def record(seed: int, kkt: float, train_mse: float, test_mse: float) -> dict:
    metrics = {"kkt_feasibility": kkt, "train_mse": train_mse, "test_mse": test_mse}
    return {"key": f"seed={seed}", "status": "ok", "job": {"seed": seed}, "metrics": metrics}


def test_the_aggregate_stores_the_same_round_off_from_two_machines():
    """The records of one sweep as two CPUs computed them: every stored number the same."""
    one = [record(0, 1e-12, 4.76e-26, 0.41234567), record(1, 3e-13, 1.3e-28, 0.40000001)]
    two = [record(0, 1.2e-11, 4.28e-26, 0.41234567), record(1, 9e-14, 7.1e-28, 0.40000001)]
    rows = [summarize(Residuals(), {"main": r}, {}).tables["records.csv"] for r in (one, two)]
    assert rows[0] == rows[1]
    assert {row["kkt_feasibility"] for row in rows[0]} == {ROUND_OFF_BOUND}
    assert {row["train_mse"] for row in rows[0]} == {ROUND_OFF_BOUND}
    assert [row["test_mse"] for row in rows[0]] == [0.41235, 0.4]


def test_a_spread_over_seeds_of_a_shared_value_is_stored_as_the_bound():
    table = {"width": 64, "theory_excess_risk_std": 1.2413e-16, "test_error_se": 0.0175}
    out = round_tree(table, round_off=lambda key: key.endswith(("_std", "_se")))
    assert out == {"width": 64, "theory_excess_risk_std": ROUND_OFF_BOUND, "test_error_se": 0.0175}
