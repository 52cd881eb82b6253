"""max_margin: each job against independent computations on the smoke data, a training set
that is not separable reported as such, and the summary's verdicts on hand-made records (a
run that agrees with the theory and runs that differ in each way the checks look at)."""

import copy
import itertools
import math

import numpy as np
import pytest
from test_margin import least_distance

from widthlab.margin import cover_fraction
from widthlab.models.random_features import draw_features
from widthlab.runtime.datafiles import load_dataset
from widthlab.runtime.errors import ConfigError
from widthlab.runtime.jobs import run_job
from widthlab.studies.max_margin.summary import summarize

SETTINGS = {
    "kkt_tolerance": 1e-8,
    "decades_checked": 3,
    "peak_effect": 0.05,
}


def job(compose_cfg, smoke_data, tmp_path, study, *overrides):
    cfg = compose_cfg(
        f"study={study}",
        f"paths.data_dir={smoke_data}",
        f"paths.results_dir={tmp_path}",
        *overrides,
    )
    record = run_job(cfg)
    assert record["status"] == "ok", record.get("reason")
    return cfg, record


def test_binary_job_matches_an_independent_svm(compose_cfg, smoke_data, tmp_path):
    cfg, record = job(compose_cfg, smoke_data, tmp_path, "max_margin", "seed=1")
    m = record["metrics"]
    ds = load_dataset("sphere_linear", smoke_data)
    n = cfg.study.n_train
    x, y = ds.x_train[n : 2 * n], np.sign(ds.y_train[n : 2 * n])  # seed 1: block 1
    d = round(cfg.study.width_ratio * n)
    h = np.maximum(x @ draw_features(x.shape[1], d, "gaussian", 1), 0) / math.sqrt(d)
    w, alpha = least_distance(y[:, None] * h)
    assert m["separable"] == 1 and m["width"] == d
    assert m["svm_norm"] == pytest.approx(np.linalg.norm(w), rel=1e-8)
    assert m["support_vectors"] == int((alpha > 1e-6 * alpha.max()).sum())
    # Issue 16's acceptance, in the record: KKT at round-off, GD's margin never above the
    # SVM's, the direction gap falling over the last three decades.
    assert m["svm_kkt_largest"] <= 1e-8
    assert m["margin_excess"] <= 1e-8 and max(m["margin_ratio"]) <= 1 + 1e-8
    assert m["gap_decreasing"] == 1 and m["steps"][-1] == cfg.study.steps
    assert m["final_direction_gap"] == m["direction_gap"][-1] < m["direction_gap"][0]
    assert m["gd_lr"] == pytest.approx(4 * n / np.linalg.norm(h, 2) ** 2, rel=1e-10)
    assert sum(m["gd_shares_support"]) + sum(m["gd_shares_other"]) == pytest.approx(1.0)


def test_a_training_set_that_is_not_separable_is_reported_as_such(
    compose_cfg, smoke_data, tmp_path
):
    _, record = job(
        compose_cfg, smoke_data, tmp_path, "max_margin", "study.width_ratio=0.1", "seed=0"
    )
    m = record["metrics"]
    assert m["separable"] == 0 and "svm_kkt_largest" not in m and "direction_gap" not in m
    # Not a failed convergence: GD approaches the logistic loss's finite minimizer.
    assert m["final_loss"] == pytest.approx(m["minimizer_loss"], rel=1e-3)
    assert m["gd_distance_to_minimizer"] < 0.05 and m["final_min_margin"] < 0
    _, good = job(compose_cfg, smoke_data, tmp_path, "max_margin", "seed=1")
    results = summarize({"binary": [record, good]}, SETTINGS)
    entry = results.summary["implicit_bias"]["binary_sphere_linear"]
    assert entry["separable_jobs"] == 1 and entry["not_separable"][0]["key"] == record["key"]
    assert entry["kkt"]["passed"] and entry["margin"]["passed"]
    assert entry["gap_decreasing"]["verdict"] == "agrees" and entry["gap_decreasing"]["jobs"] == 1
    only_bad = summarize({"binary": [record]}, SETTINGS)
    assert "kkt" not in only_bad.summary["implicit_bias"]["binary_sphere_linear"]
    assert only_bad.metrics["comparisons"] == 0  # no verdict, and no "differs"


def test_multiclass_job_approaches_the_multiclass_svm(compose_cfg, smoke_data, tmp_path):
    _, record = job(compose_cfg, smoke_data, tmp_path, "max_margin/multiclass")
    m = record["metrics"]
    assert m["separable"] == 1 and m["n_classes"] == 10
    assert m["svm_kkt_largest"] <= 1e-8 and m["margin_excess"] <= 1e-8
    assert m["gap_decreasing"] == 1 and m["support_share_increasing"] == 1
    assert m["support_points"] <= m["n_train"] <= m["support_vectors"] + m["n_train"]


def test_separability_job_counts_nested_draws(compose_cfg, smoke_data, tmp_path):
    cfg, record = job(compose_cfg, smoke_data, tmp_path, "max_margin/separability")
    m = record["metrics"]
    n, draws = cfg.study.separability.n_points, cfg.study.separability.draws
    cells = sorted((v["d_over_n"], v) for k, v in m.items() if k.startswith("width="))
    counts = [v["separable_count"] for _, v in cells]
    # Widths are nested within a draw, so separability only grows with d.
    assert counts == sorted(counts) and 0 <= counts[0] and counts[-1] <= draws
    for key, v in m.items():
        if key.startswith("width="):
            assert v["cover_fraction"] == cover_fraction(n, int(key.split("=")[1]))


def test_classification_job_against_least_squares_by_hand(compose_cfg, smoke_data, tmp_path):
    cfg, record = job(compose_cfg, smoke_data, tmp_path, "max_margin/classification")
    m = record["metrics"]
    ds = load_dataset("sphere_linear", smoke_data)
    n = cfg.study.classification.n_train
    x, y = ds.x_train[:n], np.sign(ds.y_train[:n])
    rows = sorted((v["d_over_n"], v) for k, v in m.items() if k.startswith("width="))
    separable = [v["separable"] for _, v in rows]
    assert separable == sorted(separable) and separable[0] == 0 and separable[-1] == 1
    d = 2 * n  # the width ratio 2 of the grid
    h = np.maximum(x @ draw_features(x.shape[1], d, "gaussian", 0), 0)
    h_test = np.maximum(ds.x_test @ draw_features(x.shape[1], d, "gaussian", 0), 0)
    beta = np.linalg.lstsq(h, y, rcond=None)[0]  # min-norm; the 1/√d scale changes no sign
    error = np.mean(np.sign(h_test @ beta) != np.sign(ds.extras["f_test"]))
    assert m[f"width={d}"]["least_squares_test_error"] == pytest.approx(error, abs=1e-12)
    assert m[f"width={d}"]["logistic_limit_test_error"] == m[f"width={d}"]["max_margin_test_error"]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("study.lr_fraction=2.0", r"^study\.lr_fraction=2\.0 is not allowed"),
        ("study.steps=500", r"^study\.steps=500 is not allowed"),
        ("seed=5", r"^study\.n_train=40 is not allowed"),
        ("data=teacher", r"^data='teacher' is not allowed"),
    ],
)
def test_bad_settings_stop_before_work(compose_cfg, smoke_data, override, message):
    cfg = compose_cfg("study=max_margin", f"paths.data_dir={smoke_data}", override)
    with pytest.raises(ConfigError, match=message):
        run_job(cfg)


# ---------------------------------------------------------------- verdicts on hand-made records
def implicit_record(seed, gap=None, margin_excess=-0.2, kkt=1e-14, share=None, problem="binary"):
    steps = [1, 10, 100, 1000, 10000]
    gap = gap or [0.5, 0.3, 0.1, 0.05, 0.03]
    share = share or [0.5, 0.6, 0.8, 0.9, 0.95]
    # The flags the job would write for the last three decades, t ≥ 10 (the summary
    # recomputes them from the lists).
    decreasing = int(all(b < a for a, b in itertools.pairwise(gap[1:])))
    rising = int(all(b > a for a, b in itertools.pairwise(share[1:])))
    metrics = {
        "n_train": 20,
        "width": 20,
        "d_over_n": 1.0,
        "gd_lr": 1.0,
        "separable": 1,
        **{f"svm_kkt_{k}": kkt for k in ("primal_feasibility", "dual_feasibility")},
        **{f"svm_kkt_{k}": kkt for k in ("stationarity", "complementary_slackness")},
        "svm_kkt_largest": kkt,
        "svm_norm": 5.0,
        "support_vectors": 6,
        "support_points": 6,
        "steps": steps,
        "loss": [0.6, 0.3, 0.05, 0.005, 0.0005],
        "weight_norm": [0.1, 2.0, 6.0, 12.0, 20.0],
        "norm_ratio": [0.02, 0.4, 1.2, 2.4, 4.0],
        "direction_gap": gap,
        "margin_ratio": [-1.0, -0.2, 0.4, 0.7, 0.8 + margin_excess + 0.2],
        "support_share": share,
        "final_direction_gap": gap[-1],
        "final_margin_ratio": 1.0 + margin_excess,
        "margin_excess": margin_excess,
        "gap_decreasing": decreasing,
        "support_share_increasing": rising,
        "final_support_share": share[-1],
        "share_distance": 0.1,
        "norm_growth_ratio": 0.8,
        "fit_slope": 0.4,
        "fit_t0": 2.0,
        "fit_max_relative_deviation": 0.05,
        "svm_dual_shares": [0.5, 0.3, 0.2],
        "gd_shares_support": [0.45, 0.3, 0.2],
        "gd_shares_other": [0.05],
    }
    return {
        "key": f"seed={seed}",
        "job_kind": problem,
        "status": "ok",
        "job": {"data.name": "digits", "seed": seed},
        "config": {"data": {"name": "digits"}},
        "metrics": metrics,
    }


def outcomes(records):
    """The solver's checks (passed or not) and the claims' verdicts of one problem."""
    results = summarize({"binary": records}, SETTINGS)
    entry = results.summary["implicit_bias"]["binary_digits"]
    out = {c: "passed" if entry[c]["passed"] else "failed" for c in ("kkt", "margin")}
    out |= {c: entry[c]["verdict"] for c in ("gap_decreasing", "support_share_increasing")}
    return out, results


def test_runs_that_agree_with_the_theory_pass_every_check():
    out, results = outcomes([implicit_record(0), implicit_record(1)])
    assert out == {
        "kkt": "passed",
        "margin": "passed",
        "gap_decreasing": "agrees",
        "support_share_increasing": "agrees",
    }
    # The solver's checks are listed as checks, not counted among the verdicts.
    assert [c["passed"] for c in results.summary["checks"]] == [True, True]
    assert results.metrics["comparisons"] == 2 and results.metrics["checks_failed"] == 0


@pytest.mark.parametrize(
    ("change", "failing", "word"),
    [
        ({"kkt": 1e-6}, "kkt", "failed"),
        ({"margin_excess": 1e-6}, "margin", "failed"),  # GD above the "maximum": a wrong SVM
        ({"gap": [0.5, 0.3, 0.1, 0.12, 0.03]}, "gap_decreasing", "differs"),  # rose late
        ({"share": [0.5, 0.6, 0.8, 0.7, 0.95]}, "support_share_increasing", "differs"),
    ],
)
def test_each_check_and_claim_can_fail(change, failing, word):
    out, results = outcomes([implicit_record(0), implicit_record(1, **change)])
    assert out[failing] == word
    assert {v for k, v in out.items() if k != failing} <= {"agrees", "passed"}
    assert results.metrics["checks_failed"] == (word == "failed")


def cover_records(n=24, draws=200, shift=None):
    """Two seeds whose pooled separable counts are Cover's expectation (rounded), with the
    count at one width moved by `shift` standard errors."""
    out = []
    for seed in range(2):
        metrics = {"n_points": n, "draws": draws}
        for d in (6, 9, 12, 15, 18):
            p = cover_fraction(n, d)
            count = p * draws
            if shift and d == 12:
                count += shift * math.sqrt(p * (1 - p) * draws)
            metrics[f"width={d}"] = {
                "d_over_n": d / n,
                "separable_count": round(count),
                "separable_fraction": round(count) / draws,
                "cover_fraction": p,
            }
        out.append(
            {"key": f"seed={seed}", "status": "ok", "job": {"seed": seed}, "metrics": metrics}
        )
    return out


def test_cover_verdict_agrees_with_its_own_expectation_and_flags_a_shift():
    sep = summarize({"separability": cover_records()}, SETTINGS).summary["separability"]
    assert sep["differ"] == 0 and sep["draws"] == 400
    assert {p["verdict"] for p in sep["by_point"]} == {"agrees"}
    assert sep["family"]["size"] == 5 and sep["family"]["first_level"] == pytest.approx(0.01)
    assert sep["half_crossing_d_over_n"] == pytest.approx(0.5, abs=0.02)
    shifted = summarize({"separability": cover_records(shift=3.5)}, SETTINGS).summary
    point = next(p for p in shifted["separability"]["by_point"] if p["width"] == 12)
    assert point["verdict"] == "differs" and point["z"] > 2 and point["holm_p"] < 0.05
    # At d = n/2 Cover's p is ½: the exact two-sided p-value is twice the upper tail,
    # summed here with exact integers.
    count = round(point["separable_fraction"] * 400)
    tail = sum(math.comb(400, k) for k in range(count, 401)) / 2**400
    assert point["p"] == pytest.approx(2 * tail, rel=1e-9)
    assert shifted["separability"]["differ"] == 1


def classification_records(bump: float, seeds=4):
    """Logistic-limit error curves per seed: falling, with a bump of `bump` at d/n = 0.45
    (where the training sets turn separable) plus seed noise shared across widths."""
    ratios = [0.2, 0.3, 0.4, 0.45, 0.5, 0.8, 1.0, 1.25, 2.0]
    rng = np.random.default_rng(0)
    out = []
    for seed in range(seeds):
        offset = 0.02 * rng.standard_normal()
        metrics = {"n_train": 100, "n_test": 500}
        for r in ratios:
            base = 0.4 - 0.05 * math.log(r) * (r > 0.45)
            error = base + offset + 0.002 * rng.standard_normal()
            least_squares = 0.35 + 0.1 * (r == 1.0) + offset + 0.002 * rng.standard_normal()
            metrics[f"width={round(100 * r)}"] = {
                "d_over_n": r,
                "separable": int(r >= 0.45),
                "logistic_limit_test_error": error + bump * (r == 0.45),
                "least_squares_test_error": least_squares,
                "least_squares_train_error": 0.0,
            }
        out.append(
            {"key": f"seed={seed}", "status": "ok", "job": {"seed": seed}, "metrics": metrics}
        )
    return out


def test_a_peak_at_the_separability_threshold_shows_and_a_flat_curve_does_not():
    c = summarize({"classification": classification_records(0.03)}, SETTINGS).summary
    c = c["classification"]
    assert c["separability_bracket"] == [0.4, 0.45]
    assert c["logistic_limit"]["verdict"] == "agrees"
    assert c["logistic_limit"]["peak"]["d_over_n"] == 0.45
    assert c["least_squares"]["verdict"] == "agrees"
    assert c["least_squares"]["peak"]["d_over_n"] == 1.0
    flat = summarize({"classification": classification_records(0.0)}, SETTINGS).summary
    assert flat["classification"]["logistic_limit"]["verdict"] == "differs"


def test_summary_tables_and_metrics_are_small():
    records = {
        "binary": [implicit_record(0), implicit_record(1)],
        "separability": cover_records(),
        "classification": classification_records(0.03),
    }
    results = summarize(copy.deepcopy(records), SETTINGS)
    assert set(results.tables) == {
        "trajectories.csv",
        "shares.csv",
        "separability.csv",
        "classification.csv",
    }
    assert len(results.metrics) <= 8
    # Two claims per problem (the checks are not counted), five Cover points, two peaks.
    assert results.metrics["comparisons"] == results.metrics["agree"] == 2 + 5 + 2


def test_figures_plot_the_tables_and_the_report_reads_the_summary(tmp_path):
    from widthlab.runtime.report import Page
    from widthlab.runtime.study import Results
    from widthlab.studies.max_margin import MaxMargin

    records = {
        "binary": [implicit_record(0), implicit_record(1)],
        "separability": cover_records(),
        "classification": classification_records(0.03),
    }
    results = summarize(records, {**SETTINGS, "fit_decades": 2})
    figures = MaxMargin().figures(Results(results.summary, results.tables))
    assert set(figures) == {"implicit_bias", "gradient_shares", "separability", "classification"}
    lines = {
        line.get_gid(): line for ax in figures["implicit_bias"].figure.axes for line in ax.lines
    }
    gap = lines["gap:binary_digits"]
    table = results.tables["trajectories.csv"]
    np.testing.assert_allclose(gap.get_ydata(), [r["direction_gap_mean"] for r in table])
    assert "fit:binary_digits" in lines  # the 1/log t fit over the last two decades
    measured = next(
        line for ax in figures["separability"].figure.axes for line in ax.lines
        if line.get_gid() == "measured"
    )  # fmt: skip
    np.testing.assert_allclose(
        measured.get_ydata(), [p["separable_fraction"] for p in results.tables["separability.csv"]]
    )
    summary = {
        **results.summary,
        "study": "max_margin",
        "settings": {**SETTINGS, "digit_classes": [3, 8]},
    }
    text = "\n".join(MaxMargin.report(summary, Page(tmp_path, tmp_path / "report.md", "smoke")))
    assert "class 3 against 8" in text and "0 of 5 points differ" in text
    assert text.count("| agrees |") >= 3 and "**differs**" not in text
