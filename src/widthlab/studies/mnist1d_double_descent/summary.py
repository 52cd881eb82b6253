"""`mnist1d_double_descent`'s results: the test-error curve against width, its peak, and the
comparison with the published curve.

Rules (settings from the study config, recorded in the summary):

* The peak is the highest seed-averaged test error among the widths whose parameter count
  P lies in `peak_band` (a band of P/n); it "shows" when it is interior to the sweep and
  above both the best smaller width and the largest width by more than `peak_k` standard
  errors of the difference (SE = sd/√seeds). The published curve's peak, best smaller width
  and largest width are found by the same rule from `published` (one run: no SE).
* Where the peak sits: a percentile bootstrap over seeds (each width's seeds resampled,
  `bootstrap` times) gives a 95% interval of the peak's width; it agrees when the published
  peak width lies in it.
* A test error against the published one: z = (ours − published)/σ with
  σ² = SE² + sd² + p(1−p)/n_test + p′(1−p′)/n′_test, i.e. the variance of our mean over seeds,
  that of one more run (the published number is a single run: its seed spread is taken to be
  ours), and the binomial sampling variance of each test set (p, p′ the two error rates). The
  variance from drawing the training signals and which labels are flipped is not in σ: our
  data set is one draw, fixed across seeds. It agrees when |z| ≤ `z_max`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from widthlab.runtime.study import Results
from widthlab.runtime.tables import tidy_rows
from widthlab.stats import bootstrap_interval, clearly_above, z_score
from widthlab.studies.double_descent_mlp.summary import curves


def parameter_count(width: int, depth: int, dim: int, classes: int) -> int:
    """P of a `depth`-hidden-layer MLP with biases: D→w, (depth − 1) × w→w, w→C."""
    return width * (dim + 1) + (depth - 1) * width * (width + 1) + classes * (width + 1)


def peak_of(
    widths: Sequence[int],
    errors: Sequence[float],
    ratios: Sequence[float],
    band: Sequence[float],
) -> tuple[int | None, int | None, int]:
    """(index of the peak, index of the best smaller width, index of the largest width) of a
    curve ordered by width: the peak is the highest error with P/n in `band` (None if no
    width is in it), the best smaller width the lowest error before it."""
    inside = [i for i, r in enumerate(ratios) if band[0] <= r <= band[1]]
    last = len(widths) - 1
    if not inside:
        return None, None, last
    peak = max(inside, key=lambda i: errors[i])
    before = range(peak)
    best = min(before, key=lambda i: errors[i]) if peak > 0 else None
    return peak, best, last


def point(c: Mapping[str, Any]) -> dict[str, Any]:
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
    peak, best, last = peak_of(widths, errors, ratios, band)

    def at(i: int | None) -> dict[str, Any] | None:
        if i is None:
            return None
        return {"width": widths[i], "params_over_samples": ratios[i], "test_error": errors[i]}

    fitted = [w for w, e in zip(widths, published["train_error"], strict=True) if e == 0]
    return {
        "peak": at(peak),
        "best_below_peak": at(best),
        "largest_width": at(last),
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
    z_max: float,
) -> dict[str, Any]:
    """z-score and verdict of one of our mean test errors against a published one."""
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
    verdict = None if z is None else ("agrees" if abs(z) <= z_max else "differs")
    return {**out, "sigma": sigma, "z": z, "verdict": verdict}


def peak_width_interval(
    jobs: list[dict], table: list[dict], band: Sequence[float], n_boot: int
) -> tuple[float, float] | None:
    """95% bootstrap interval of the peak's width, each in-band width's seeds resampled."""
    inside = [c for c in table if band[0] <= c["params_over_samples"] <= band[1]]
    rows = [r for r in tidy_rows(jobs) if r["status"] == "ok"]
    samples = [
        np.array([r["test_error"] for r in rows if r["width"] == c["width"]]) for c in inside
    ]
    if not samples or min(len(s) for s in samples) < 2:
        return None
    widths = [c["width"] for c in inside]

    def peak_width(*per_width: np.ndarray) -> float:
        return float(widths[int(np.argmax([s.mean() for s in per_width]))])

    return bootstrap_interval(peak_width, samples, n_boot=n_boot)


def summarize(records: Mapping[str, list[dict]], settings: Mapping[str, Any]) -> Results:
    jobs = records.get("train", [])
    ok = [r for r in jobs if r["status"] == "ok"]
    band, k, z_max = settings["peak_band"], float(settings["peak_k"]), float(settings["z_max"])
    published = published_curve(settings["published"], band)
    out: dict[str, Any] = {"published": published}
    table = sorted(curves(jobs), key=lambda c: c["width"])
    if not table:
        return Results(summary=out, tables={"curves.csv": []}, metrics={"comparisons": 0})
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
    peak_i, best_i, last_i = peak_of([c["width"] for c in table], errors, ratios, band)
    comparisons: dict[str, Any] = {}
    if peak_i is None:
        out.update(interior_peak=False, shows_peak=False, peak=None)
    else:
        peak, last = table[peak_i], table[last_i]
        best = table[best_i] if best_i is not None else peak

        def above(other: Mapping[str, Any]) -> bool | None:
            return clearly_above(
                peak["test_error_mean"],
                peak.get("test_error_se"),
                other["test_error_mean"],
                other.get("test_error_se"),
                k,
            )

        interior = 0 < peak_i < last_i
        decided = [above(best), above(last)]
        out.update(
            interior_peak=interior,
            shows_peak=False if not interior else (None if None in decided else all(decided)),
            peak=point(peak),
            best_below_peak=point(best),
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
            out["peak"], pub_peak and pub_peak["test_error"], n_test, pub_n_test, z_max
        )
        pub_widths = list(settings["published"]["widths"])
        pub_at_last = (
            settings["published"]["test_error"][pub_widths.index(last["width"])]
            if last["width"] in pub_widths
            else None
        )
        comparisons["largest_width_test_error"] = against_published(
            out["largest_width"], pub_at_last, n_test, pub_n_test, z_max
        )
    comparisons["shows_peak"] = {
        "published": True,
        "ours": out.get("shows_peak"),
        "verdict": {True: "agrees", False: "differs", None: None}[out.get("shows_peak")],
    }
    out["comparisons"] = comparisons
    verdicts = [c["verdict"] for c in comparisons.values() if c.get("verdict")]
    metrics = {
        "comparisons": len(verdicts),
        "agree": sum(v == "agrees" for v in verdicts),
        "mnist1d_peak_width": (out.get("peak") or {}).get("width"),
        "mnist1d_peak_test_error": (out.get("peak") or {}).get("test_error"),
        "mnist1d_largest_width_test_error": (out.get("largest_width") or {}).get("test_error"),
    }
    return Results(summary=out, tables={"curves.csv": table}, metrics=metrics)
