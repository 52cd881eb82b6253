"""The MLflow UI in a real browser (Debian's Chromium) over the smoke pipeline's store: the
report's link opens the study's runs with numbers in the columns, its chart view draws the
double descent against width, and a parent run holds the figures."""

import re

import pytest
from browser import dashboard, missing

pytestmark = pytest.mark.slow


def test_a_reviewer_sees_the_study_in_the_mlflow_ui(smoke_pipeline, tmp_path):
    reason = missing()
    if reason:
        pytest.skip(f"no browser here: {reason}")
    store = f"sqlite:///{smoke_pipeline}/mlflow.db"
    pages = dashboard(store, tmp_path / "dashboard", cwd=smoke_pipeline)

    runs = pages["runs"]
    # The runs view, not MLflow 3's GenAI overview; widthlab's review view, its columns.
    assert "18 matching runs" in runs and "Traces\n0" not in runs, runs[:2000]
    assert "double_descent_mlp: review" in runs
    for column in ("model.width", "seed", "train.loss", "test_error", "peak_test_error"):
        assert column in runs, column
    assert "[4, 20, 40, 80, 400]" in runs  # a parent's swept widths
    assert re.search(r"\n0\.\d+\n", runs)  # a number in a metric column

    charts = pages["charts"]
    assert "against width" in charts
    for curve in ("curve/test_error/loss_squared", "curve/test_error/loss_cross_entropy"):
        assert curve in charts, curve

    assert "mlp_double_descent.png" in pages["parent"]
    for name in ("runs", "charts", "parent"):
        assert (tmp_path / "dashboard" / f"{name}.png").stat().st_size > 20_000
