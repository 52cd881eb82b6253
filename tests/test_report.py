"""The report page: every number comes from the summaries, formatted by one function."""

import json
import re

from conftest import load_pipeline
from test_jobs import fake_ntk_records

from widthlab.summaries import summarize_ntk_circle, summarize_ntk_convergence

report = load_pipeline("report")


def test_fmt():
    assert report.fmt(0.123456) == "0.1235"
    assert report.fmt(1234567.0) == "1.235e+06"
    assert report.fmt(float("inf")) == "∞" and report.fmt(None) == "–"
    assert report.fmt(5) == "5"


def rf_summary():
    return {
        "n_jobs": 4, "n_failed": 1,
        "failed": [{"key": "data.name=sphere_linear,seed=0,study.width_ratio=1", "reason": "boom"}],
        "curves": {"sphere_linear_ridge0": {
            "metric": "excess_risk", "peak_d_over_n": 1.0, "peak_height": 617.123456,
            "largest_width_error": 0.13798, "kernel_limit_error": 0.118921,
            "theory_max_relative_deviation": 0.0795483, "seeds": 5,
            "max_kkt_feasibility": 1.066e-9, "max_kkt_stationarity": 7.14e-12,
            "max_gd_limit_distance": 4.9e-12, "max_gd_explicit_vs_closed_form": 1.1e-14,
        }},
    }  # fmt: skip


def test_every_number_on_the_page_is_a_formatted_summary_value(tmp_path):
    results = tmp_path / "results"
    (results / "double_descent_rf").mkdir(parents=True)
    (results / "ntk_convergence").mkdir(parents=True)
    rf = rf_summary()
    ntk = summarize_ntk_convergence(fake_ntk_records())
    points = (("inf", "", 1.0), (16, 0, 1.2), (16, 1, 0.8), (64, 0, 1.1), (64, 1, 0.9))
    circle_rows = [
        {"gamma": g, "width": w, "seed": s, "ntk": v} for g in (0.0, 1.0) for (w, s, v) in points
    ]
    ntk["circle"] = summarize_ntk_circle(circle_rows)
    (results / "double_descent_rf" / "summary.json").write_text(json.dumps(rf))
    (results / "ntk_convergence" / "summary.json").write_text(json.dumps(ntk))
    page = report.render_report(results, tmp_path / "reports" / "report.md", "smoke")

    row = next(line for line in page.splitlines() if line.startswith("| sphere_linear | 0 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells == ["sphere_linear", "0", "excess_risk", "1", "617.1", "0.138", "0.1189",
                     "0.07955", "5"]  # fmt: skip
    assert "1.066e-09" in page and "boom" in page and "failed: 1" in page
    fit = ntk["slopes"]["ntk_depth1_relu"]
    row = next(line for line in page.splitlines() if line.startswith("| ntk | 1 | relu |"))
    assert f"| {report.fmt(fit['slope'])} | [{report.fmt(fit['ci_low'])}, " in row
    # Circle: sd over 2 seeds of (1.2, 0.8) is 0.2828, of (1.1, 0.9) 0.1414; limit 1.
    assert "width 16: 0.2828 (2 seeds)" in page and "width 64: 0.1414 (2 seeds)" in page
    assert "ratio 2 against √(width ratio) = 2" in page
    # No figure files: the page says so instead of linking to nothing.
    assert page.count("missing: run `dvc repro`") == 6
    # Nothing numeric that is not in a summary: every decimal on the page is accounted for.
    numbers = set(re.findall(r"(?<![\w.])-?\d+\.\d+(?:e[+-]\d+)?", page))
    allowed = {report.fmt(v) for v in _all_numbers(rf) | _all_numbers(ntk)}
    assert numbers <= allowed | {"0.8", "1.25"}, numbers - allowed


def _all_numbers(obj) -> set:
    if isinstance(obj, dict):
        return set().union(*(_all_numbers(v) for v in obj.values())) if obj else set()
    if isinstance(obj, list):
        return set().union(*(_all_numbers(v) for v in obj)) if obj else set()
    return {obj} if isinstance(obj, float) else set()
