"""`mnist1d_double_descent`'s results: the test-error curve against width, its peak, and the
comparison with the published curve.

Rules (settings from the study config, recorded in the summary):

* The candidate peak is, among the widths whose parameter count P lies in `peak_band` (a
  band of P/n), the one whose seed-averaged test error rises most above the lowest error at
  a smaller width (`stats.peak_candidate`). It "shows" when it is interior to the sweep and
  above the lowest error on each side of it (`stats.peak_test`: a one-sided Welch t-test
  each side at 5%). The published curve's peak, best smaller width and largest width are
  found by the same candidate rule from `published` (one run: no SE), and the published
  peak's height above its lower side is the effect the rule looks for: where our peak does
  not show, the rule states its power against that height, and below 80% the verdict is
  "inconclusive (k seeds)".
* Where the peak sits: a percentile bootstrap over seeds (each width's seeds resampled,
  `bootstrap` times, `scipy.stats.bootstrap`) gives a 95% interval of the candidate peak's
  width; it agrees when the published peak width lies in it.
* A test error against the published one: z = (ours − published)/σ with
  σ² = SE² + sd² + p(1−p)/n_test + p′(1−p′)/n′_test, i.e. the variance of our mean over seeds,
  that of one more run (the published number is a single run: its seed spread is taken to be
  ours), and the binomial sampling variance of each test set (p, p′ the two error rates). The
  variance from drawing the training signals and which labels are flipped is not in σ: our
  data set is one draw, fixed across seeds. Its two-sided normal p-value; the errors at the
  peak and at the largest width are one family "published test errors" (Holm).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from widthlab.runtime.study import Results
from widthlab.runtime.tables import tidy_rows
from widthlab.stats import (
    bootstrap_interval,
    count_verdicts,
    judge_family,
    peak_candidate,
    peak_test,
    z_p_value,
    z_score,
)
from widthlab.studies.double_descent_mlp.summary import curves


def parameter_count(width: int, depth: int, dim: int, classes: int) -> int:
    """P of a `depth`-hidden-layer MLP with biases: D→w, (depth − 1) × w→w, w→C."""
    return width * (dim + 1) + (depth - 1) * width * (width + 1) + classes * (width + 1)


def peak_of(
    widths: Sequence[int],
    errors: Sequence[float],
    ratios: Sequence[float],
    band: Sequence[float],
) -> tuple[int | None, int | None, int | None, int]:
    """(index of the candidate peak, of the best smaller width, of the best larger width, of
    the largest width) of a curve ordered by width: the peak by `stats.peak_candidate` among
    the widths with P/n in `band` (None if no width is in it), the best smaller and larger
    widths the lowest errors before and after it."""
    inside = [i for i, r in enumerate(ratios) if band[0] <= r <= band[1]]
    last = len(widths) - 1
    peak = peak_candidate(list(errors), inside)
    if peak is None:
        return None, None, None, last
    before = min(range(peak), key=lambda i: errors[i]) if peak > 0 else None
    after = min(range(peak + 1, last + 1), key=lambda i: errors[i]) if peak < last else None
    return peak, before, after, last


def point(c: Mapping[str, Any]) -> dict[str, Any]:
    """A width's curve point for the summary: width, P/n and test error with SE and sd."""
    return {
        "width": c["width"],
        "params_over_samples": c["params_over_samples"],
        "test_error": c["test_error_mean"],
        "test_error_se": c.get("test_error_se"),
        "test_error_sd": c.get("test_error_std"),
        "train_error": c.get("train_error_mean"),
        "train_error_se": c.get("train_error_se"),
        "seeds": c["test_error_count"],
    }


def published_curve(published: Mapping[str, Any], band: Sequence[float]) -> dict[str, Any]:
    """The published curve's peak, best smaller width, largest width and first interpolating
    width (the first with zero training error), by the rule of the module docstring."""
    widths, errors = list(published["widths"]), list(published["test_error"])
    ratios = [
        parameter_count(w, published["depth"], published["dim"], published["classes"])
        / published["n_train"]
        for w in widths
    ]
    peak, best, above, last = peak_of(widths, errors, ratios, band)

    def at(i: int | None) -> dict[str, Any] | None:
        if i is None:
            return None
        return {"width": widths[i], "params_over_samples": ratios[i], "test_error": errors[i]}

    fitted = [w for w, e in zip(widths, published["train_error"], strict=True) if e == 0]
    return {
        "peak": at(peak),
        "best_below_peak": at(best),
        "best_above_peak": at(above),
        "largest_width": at(last),
        "height": (
            min(errors[peak] - errors[best], errors[peak] - errors[above])
            if None not in (peak, best, above)
            else None
        ),
        "first_interpolating_width": fitted[0] if fitted else None,
        "n_test": published["n_test"],
        "curve": {
            "width": widths,
            "test_error": errors,
            "train_error": list(published["train_error"]),
        },
    }


def against_published(
    ours: Mapping[str, Any] | None,
    published_error: float | None,
    n_test: int,
    published_n_test: int,
) -> dict[str, Any]:
    """z-score and p-value of one of our mean test errors against a published one (module
    docstring); the family decides the verdict."""
    if not ours or published_error is None:
        return {"published": published_error, "verdict": None}
    mean, se, sd = ours["test_error"], ours.get("test_error_se"), ours.get("test_error_sd")
    out = {"published": published_error, "ours": mean, "se": se, "width": ours["width"]}
    if se is None or sd is None:
        return {**out, "verdict": None}
    sigma = math.sqrt(
        se**2
        + sd**2
        + mean * (1 - mean) / n_test
        + published_error * (1 - published_error) / published_n_test
    )
    z = z_score(mean, sigma, published_error)
    return {**out, "sigma": sigma, "z": z, "p": z_p_value(z)}


def peak_width_interval(
    jobs: list[dict], table: list[dict], band: Sequence[float], n_boot: int
) -> tuple[float, float] | None:
    """95% bootstrap interval of the candidate peak's width (`stats.peak_candidate`), every
    width's seeds resampled independently."""
    inside = [i for i, c in enumerate(table) if band[0] <= c["params_over_samples"] <= band[1]]
    rows = [r for r in tidy_rows(jobs) if r["status"] == "ok"]
    samples = [np.array([r["test_error"] for r in rows if r["width"] == c["width"]]) for c in table]
    if not inside or min(len(s) for s in samples) < 2:
        return None
    widths = [c["width"] for c in table]

    def peak_width(*per_width: np.ndarray) -> float:
        index = peak_candidate([float(s.mean()) for s in per_width], inside)
        return float(widths[index])

    return bootstrap_interval(peak_width, samples, n_boot=n_boot)


def summarize(records: Mapping[str, list[dict]], settings: Mapping[str, Any]) -> Results:
    """The study's summary and tables from its records, against the published curve."""
    jobs = records.get("train", [])
    ok = [r for r in jobs if r["status"] == "ok"]
    band = settings["peak_band"]
    published = published_curve(settings["published"], band)
    out: dict[str, Any] = {"published": published}
    table = sorted(curves(jobs), key=lambda c: c["width"])
    if not table:
        return Results(
            summary=out, tables={"curves.csv": []}, metrics={"comparisons": 0, "agree": 0}
        )
    n = ok[0]["metrics"]["n_train"]
    for c in table:
        c["params_over_samples"] = c["n_parameters_mean"] / n
    config = ok[0]["config"]
    out.update(
        data=config["data"]["name"],
        label_noise=config["data"]["label_noise"],
        n_train=n,
        n_test=config["data"]["n_test"],
        loss=config["train"]["loss"],
        optimizer=config["train"]["optimizer"],
        lr=config["train"]["lr"],
        momentum=config["train"]["momentum"],
        batch_size=config["train"]["batch_size"],
        max_steps=config["train"]["max_steps"],
        epochs=config["train"]["max_steps"] * (config["train"]["batch_size"] or n) / n,
        depth=config["model"]["depth"],
    )
    fitted = [c["width"] for c in table if c.get("train_error_mean", 1.0) == 0.0]
    out["first_interpolating_width"] = fitted[0] if fitted else None

    ratios = [c["params_over_samples"] for c in table]
    errors = [c["test_error_mean"] for c in table]
    peak_i, best_i, _, last_i = peak_of([c["width"] for c in table], errors, ratios, band)
    comparisons: dict[str, Any] = {}
    test: dict[str, Any] = {"verdict": "differs", "shows": False, "interior": False}
    if peak_i is None:
        out.update(interior_peak=False, shows_peak=False, peak=None)
    else:
        peak, last = table[peak_i], table[last_i]
        best = table[best_i] if best_i is not None else peak
        test = peak_test(
            errors,
            [c.get("test_error_se") for c in table],
            [c["test_error_count"] for c in table],
            published.get("height"),
            peak_i,
        )
        sides = test.get("sides") or {}
        out.update(
            interior_peak=test["interior"],
            shows_peak=test["shows"],
            peak=point(peak),
            best_below_peak=point(best),
            best_above_peak=point(table[sides["right"]["index"]]) if sides else None,
            largest_width=point(last),
        )
        interval = peak_width_interval(jobs, table, band, int(settings["bootstrap"]))
        pub_peak = published["peak"]
        location = {
            "published": pub_peak["width"] if pub_peak else None,
            "ours": peak["width"],
            "interval": list(interval) if interval else None,
            "verdict": None,
        }
        if interval and pub_peak:
            inside = interval[0] <= pub_peak["width"] <= interval[1]
            location["verdict"] = "agrees" if inside else "differs"
        comparisons["peak_width"] = location
        n_test, pub_n_test = out["n_test"], published["n_test"]
        comparisons["peak_test_error"] = against_published(
            out["peak"], pub_peak and pub_peak["test_error"], n_test, pub_n_test
        )
        pub_widths = list(settings["published"]["widths"])
        pub_at_last = (
            settings["published"]["test_error"][pub_widths.index(last["width"])]
            if last["width"] in pub_widths
            else None
        )
        comparisons["largest_width_test_error"] = against_published(
            out["largest_width"], pub_at_last, n_test, pub_n_test
        )
    errors_family = [
        comparisons[k] for k in ("peak_test_error", "largest_width_test_error") if k in comparisons
    ]
    family = judge_family(errors_family, "published test errors")
    comparisons["shows_peak"] = {
        "published": True,
        "ours": out.get("shows_peak"),
        "effect": test.get("effect"),
        "p": test.get("p"),
        "power": test.get("power"),
        "sides": test.get("sides"),
        "verdict": test.get("verdict"),
    }
    out["comparisons"] = comparisons
    out["families"] = [family]
    metrics = {
        **count_verdicts(list(comparisons.values())),
        "mnist1d_peak_width": (out.get("peak") or {}).get("width"),
        "mnist1d_peak_test_error": (out.get("peak") or {}).get("test_error"),
        "mnist1d_largest_width_test_error": (out.get("largest_width") or {}).get("test_error"),
    }
    return Results(summary=out, tables={"curves.csv": table}, metrics=metrics)
