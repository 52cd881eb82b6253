"""The report page: every number comes from a summary, at the precision its uncertainty
supports, with a verdict beside every comparison and a caption under every figure."""

import json
import math
import re

from test_study_double_descent_rf import SETTINGS as RF_SETTINGS
from test_study_double_descent_rf import peaked, rf_records
from test_study_ntk_convergence import SETTINGS as NTK_SETTINGS
from test_study_ntk_convergence import circle_records, kernel_records

from widthlab.runtime.aggregate import summarize
from widthlab.runtime.report import num, pm, render_report, slope_text
from widthlab.studies.double_descent_rf import DoubleDescentRF
from widthlab.studies.ntk_convergence import NTKConvergence


def test_number_formats():
    assert num(0.123456) == "0.123" and num(-2.0) == "−2" and num(5) == "5"
    assert num(float("inf")) == "∞" and num(None) == "–"
    assert pm(0.35934, 0.0331) == "0.359 ± 0.033"  # the SE's two significant digits
    assert pm(0.5, None) == "0.5"
    assert pm(1.234e-5, 3.1e-7) == "(1.234 ± 0.031)e-5"
    assert slope_text({"slope": -0.02483, "ci_low": -0.0548, "ci_high": 0.0051}) == (
        "−0.025 [−0.055, 0.005]"
    )  # an interval ±0.03 wide: two decimals of its half-width, not five


def write_summary(results, study, name, records, settings):
    out = summarize(study, records, settings)
    summary = {
        **out.summary,
        "study": name,
        "study_class": f"{type(study).__module__}.{type(study).__name__}",
        "settings": settings,
        "stale_records_ignored": [],
        "missing_jobs": [],
        "figures": {"fig": "A caption that says what is plotted."},
    }
    (results / name).mkdir(parents=True)
    (results / name / "summary.json").write_text(json.dumps(summary))
    return summary


def decimals(token: str) -> float:
    mantissa, _, exponent = token.partition("e")
    places = len(mantissa.partition(".")[2])
    return 10.0 ** (-places + (int(exponent) if exponent else 0))


def test_every_number_on_the_page_comes_from_a_summary(tmp_path):
    results = tmp_path / "results"
    ntk_records = {"kernels": kernel_records(-0.5), "circle": circle_records(0.2, 0.05)}
    ntk = write_summary(
        results,
        NTKConvergence(),
        "ntk_convergence",
        ntk_records,
        {**NTK_SETTINGS, "sweeps": ["ntk_convergence"]},
    )
    rf = write_summary(
        results,
        DoubleDescentRF(),
        "double_descent_rf",
        {"rf": rf_records(peaked, peaked)},
        {**RF_SETTINGS, "sweeps": ["double_descent_rf"]},
    )
    page = render_report(results, tmp_path / "reports" / "report.md", "smoke")

    assert "profile `smoke`" in page.splitlines()[2] and "Results of commit" in page
    assert page.count("**Runs.** MLflow experiment") == 2
    assert page.count("*A caption that says what is plotted.*") == 0  # no figure files...
    assert "*(figure fig missing: run `dvc repro`)*" not in page  # ...and none asked for
    # A verdict beside every slope and theory comparison.
    for line in page.splitlines():
        if line.startswith("| ntk |") or line.startswith("| nngp |"):
            assert line.rstrip().endswith(("| agrees |", "| **differs** |")), line
    assert "| sphere_linear | 0 | 6 | 0 |" in page  # 6 points, none differ
    # How the verdicts were judged: each family with its size and the level its smallest p
    # must beat, and the checks that are not verdicts.
    assert "*kernel slopes*: 2 tests, smallest p below 0.025 (α/2), 0 differ" in page
    assert "*theory, sphere_linear λ = 0*: 6 tests" in page
    # Every decimal number on the page is a summary value shown at some precision.
    values = [v for v in _numbers(ntk) | _numbers(rf) if math.isfinite(v)]
    for token in re.findall(r"(?<![\w.])[−-]?\d+\.\d+(?:e[+-]?\d+)?", page):
        x = float(token.replace("−", "-"))
        tolerance = 0.51 * decimals(token.lstrip("−-"))
        assert any(abs(abs(v) - abs(x)) <= tolerance for v in values), token


def test_checks_and_explanations_are_printed_apart_from_the_verdicts():
    from widthlab.runtime.report import family_lines

    lines = family_lines(
        {
            "families": [
                {
                    "family": "bounds",
                    "method": "holm",
                    "alpha": 0.05,
                    "size": 3,
                    "first_level": 0.05 / 3,
                    "differ": 1,
                },
            ],
            "checks": [
                {"check": "SVM's KKT residuals", "detail": "largest 1e-09 ≤ 1e-08", "passed": True},
                {"check": "GD's margin", "detail": "largest excess 2e-06", "passed": False},
            ],
            "explanations": [
                {"test": "gap slope, depth 3", "verdict": "pre-asymptotic", "reason": "-0.3 … -0.5"}
            ],
        }
    )
    text = "\n".join(lines)
    assert "*bounds*: 3 tests, smallest p below 0.017 (α/3), 1 differ" in text
    assert "1 of 2 passed" in text and "GD's margin: largest excess 2e-06 — **failed**" in text
    assert "- gap slope, depth 3: **pre-asymptotic** — −0.3 … −0.5." in text


def test_a_figure_is_shown_with_its_caption(tmp_path):
    results = tmp_path / "results"
    ntk = write_summary(
        results,
        NTKConvergence(),
        "ntk_convergence",
        {"kernels": kernel_records(-0.5)},
        {**NTK_SETTINGS, "sweeps": ["ntk_convergence"]},
    )
    ntk["figures"] = {"kernel_convergence": "Distances against width; band = ± 1 sd."}
    (results / "ntk_convergence" / "summary.json").write_text(json.dumps(ntk))
    (results / "ntk_convergence" / "figures").mkdir()
    (results / "ntk_convergence" / "figures" / "kernel_convergence.png").write_bytes(b"png")
    page = render_report(results, tmp_path / "reports" / "report.md", "smoke")
    assert (
        "![kernel_convergence](../results/ntk_convergence/figures/kernel_convergence.png)\n\n"
        "*Distances against width; band = ± 1 sd.*"
    ) in page


def _numbers(obj) -> set:
    if isinstance(obj, dict):
        return set().union(*(_numbers(v) for v in obj.values())) if obj else set()
    if isinstance(obj, list):
        return set().union(*(_numbers(v) for v in obj)) if obj else set()
    if isinstance(obj, bool):
        return set()
    return {float(obj)} if isinstance(obj, int | float) else set()
