"""The benchmarks' shared rules (benchmarks/harness.py): the order of the alternating runs,
the per-round sums with `pairs`, and the verdict, which must refuse MET on a busy machine or
when the rounds' range straddles the goal. Also the random-features floor's accounting
(benchmarks/bench_rf_solvers.py): the bytes it charges to the feature passes."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import harness


@pytest.mark.parametrize("pairs", [1, 3])
def test_alternate_runs_in_turn_and_sums_pairs(monkeypatch, pairs):
    calls = []
    # A baseline run "takes" 1 s and a candidate run 2 s, so a round's sums are exactly
    # pairs·1 and pairs·2.
    durations = {"B": 1.0, "C": 2.0}

    def fake_timed(fn):
        fn()
        return durations[calls[-1]]

    monkeypatch.setattr(harness, "timed", fake_timed)
    result = harness.alternate(lambda: calls.append("B"), lambda: calls.append("C"), 4, True, pairs)
    assert calls == ["B", "C"] * (1 + 4 * pairs)  # the warm-up pair, then strict alternation
    assert result.baseline == [float(pairs)] * 4
    assert result.candidate == [2.0 * pairs] * 4
    assert result.ratios == [2.0] * 4 and result.speedups == [0.5] * 4


@pytest.mark.parametrize(
    ("values", "goal", "at_least", "expected"),
    [
        ([20.5, 21.0, 22.0], 20.0, True, "MET"),
        ([20.0, 21.0], 20.0, True, "MET"),  # the goal itself is met
        ([16.5, 17.6, 18.4], 20.0, True, "NOT MET"),
        ([19.0, 20.5], 20.0, True, "UNDECIDED (spread"),
        ([0.97, 1.02, 1.08], 1.1, False, "MET"),
        ([1.12, 1.3], 1.1, False, "NOT MET"),
        ([1.01, 1.069, 1.103], 1.1, False, "UNDECIDED (spread"),
    ],
)
def test_verdict(values, goal, at_least, expected):
    assert harness.verdict(values, goal, at_least, busy=False).startswith(expected)


def test_verdict_refuses_on_a_busy_machine():
    assert harness.verdict([30.0, 31.0], 20.0, True, busy=True).startswith("UNDECIDED (busy")
    quiet = harness.Comparison([1.0], [1.0], 0.1, 0.2, others_cores=0.0, startup_load=0.3)
    loaded = harness.Comparison([1.0], [1.0], 0.1, 0.2, others_cores=0.0, startup_load=1.5)
    competed = harness.Comparison([1.0], [1.0], 0.1, 0.2, others_cores=0.5, startup_load=0.3)
    assert not quiet.busy and loaded.busy and competed.busy


def test_rf_floor_charges_the_sweeps_feature_reads():
    """Kernel-route widths (d ≥ n) read S_d three times (β, fit, KKT stationarity) and T_d
    once; primal widths (d < n) read S_d once (the fit) and T_d once: 8 bytes an entry."""
    import bench_rf_solvers

    rng = np.random.default_rng(0)
    n, m, widths = 12, 7, np.array([3, 5, 12, 20, 31])
    s_train = np.abs(rng.standard_normal((n, 31)))
    s_test = np.abs(rng.standard_normal((m, 31)))
    parts = bench_rf_solvers.floor(s_train, rng.standard_normal(n), widths, s_test, repeats=1)
    expected = 8 * ((n + m) * (3 + 5) + (3 * n + m) * (12 + 20 + 31))
    assert parts["bytes"] == expected
    assert all(parts[k] > 0 for k in ("rank updates", "factorisations", "feature passes"))
