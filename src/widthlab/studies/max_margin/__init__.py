"""Does gradient descent on the cross-entropy of random features converge in direction to the
hard-margin SVM on the same features (Soudry et al. 2018), and where do random labels stop
being separable (Cover 1965)?

Jobs (`job.py`): `binary` per (data set, seed), `multiclass` per seed, `separability` per
seed, `classification` per seed. Configs: `conf/study/max_margin.yaml` (binary, sphere_linear),
`conf/study/max_margin/{digits,multiclass,separability,classification}.yaml` (the other
sweeps) and `conf/study/max_margin/common.yaml` (what they share); sizes in
`conf/profile/study/`, all in this folder.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

from widthlab.runtime.errors import ConfigError
from widthlab.runtime.schemas import integer, list_of, optional, positive
from widthlab.runtime.study import FigureSpec, Job, PlotSpec, Results, Study
from widthlab.studies.max_margin import figures, job, report, summary

BINARY_DATA = ("sphere_linear", "digits", "digits_noisy")
MULTICLASS_DATA = ("digits", "digits_noisy")


def _digit_pair(key: str, value: Any) -> None:
    ok = isinstance(value, list | tuple) and len(value) == 2
    if not ok or not all(isinstance(v, int) and 0 <= v <= 9 for v in value) or value[0] == value[1]:
        raise ConfigError(key, value, "two different digit classes in 0..9, e.g. [3, 8]")


def _increasing_widths(key: str, ratios: list[float], n: int) -> None:
    widths = [job.width_for(r, n) for r in ratios]
    if any(b <= a for a, b in itertools.pairwise(widths)):
        raise ConfigError(
            key, list(ratios), f"ratios whose widths round(r·n), n = {n}, strictly increase"
        )


class MaxMargin(Study):
    """Implicit bias of gradient descent toward the hard-margin SVM (Soudry et al. 2018), and
    Cover's count."""

    question = (
        "Does gradient descent on the cross-entropy of random features converge in direction "
        "to the hard-margin SVM on the same features, with its gradient carried by the "
        "support vectors, and does the fraction of separable random labelings follow "
        "Cover's count?"
    )
    title = "Cross-entropy and the max-margin solution (`max_margin`)"
    order = 50
    headline_metric = "max_final_direction_gap"
    shown_settings = ("study.steps",)
    model_config = "random_features"
    jobs = {
        "binary": Job(
            job.measure_binary, "final_direction_gap", peak_memory=job.implicit_bias_memory
        ),
        "multiclass": Job(
            job.measure_multiclass, "final_direction_gap", peak_memory=job.implicit_bias_memory
        ),
        "separability": Job(job.measure_separability, None, peak_memory=job.separability_memory),
        "classification": Job(
            job.measure_classification, None, peak_memory=job.classification_memory
        ),
    }
    schema = {
        "n_train": optional(integer(1)),
        "width_ratio": positive,
        "digit_classes": _digit_pair,
        "steps": integer(10),
        "checkpoints_per_decade": integer(1),
        "lr_fraction": positive,
        "decades_checked": integer(1),
        "fit_decades": integer(1),
        "kkt_tolerance": positive,
        "peak_effect": positive,
        "separability": {
            "n_points": integer(2),
            "width_ratios": list_of(positive, min_length=2),
            "draws": integer(1),
        },
        "classification": {
            "n_train": integer(2),
            "width_ratios": list_of(positive, min_length=3),
        },
    }
    plots = (
        PlotSpec(
            "direction gap 1 − cos(w_t, ŵ) vs gradient-descent steps",
            "trajectories.csv",
            "step",
            ("direction_gap",),
            ("problem",),
        ),
        PlotSpec(
            "test error vs d/n: GD's logistic limit and min-norm least squares",
            "classification.csv",
            "d_over_n",
            ("logistic_limit_test_error", "least_squares_test_error"),
        ),
        PlotSpec(
            "separable fraction of random labelings vs d/n, and Cover's C(n, d)/2ⁿ",
            "separability.csv",
            "d_over_n",
            ("separable_fraction", "cover_fraction"),
        ),
    )
    residual_keys = ("kkt_", "distance_to_minimizer")

    summarize = staticmethod(summary.summarize)
    report = staticmethod(report.section)

    def check(self, cfg: Mapping[str, Any]) -> None:
        """Refuse a step size that can diverge, too few steps, a data set the job cannot use and
        sizes beyond the pool."""
        s, data, seed = cfg["study"], cfg["data"], cfg["seed"]
        kind, name = s["job"], data["name"]
        if s["lr_fraction"] >= 2:
            raise ConfigError(
                "study.lr_fraction",
                s["lr_fraction"],
                "a number below 2 (η·L_s < 2: beyond it gradient descent can diverge)",
            )
        decades = max(s["decades_checked"], s["fit_decades"])
        if kind in ("binary", "multiclass") and s["steps"] < 10**decades:
            raise ConfigError(
                "study.steps",
                s["steps"],
                f"≥ 10^{decades} (the gap is checked over decades_checked and fitted over "
                "fit_decades decades of steps)",
            )
        allowed = {
            "binary": BINARY_DATA,
            "multiclass": MULTICLASS_DATA,
            "separability": ("sphere_linear",),
            "classification": ("sphere_linear",),
        }[kind]
        if name not in allowed:
            raise ConfigError("data", name, f"one of {list(allowed)} for the {kind} job")
        if kind == "binary" and name == "sphere_linear":
            self._blocks("study.n_train", s["n_train"], seed, data["n_train"])
        if kind == "multiclass" and s["n_train"] is not None and s["n_train"] > data["n_train"]:
            raise ConfigError("study.n_train", s["n_train"], f"≤ data.n_train = {data['n_train']}")
        if kind == "separability":
            sep = s["separability"]
            if sep["n_points"] > data["n_train"]:
                raise ConfigError(
                    "study.separability.n_points",
                    sep["n_points"],
                    f"≤ data.n_train = {data['n_train']}",
                )
            _increasing_widths(
                "study.separability.width_ratios", sep["width_ratios"], sep["n_points"]
            )
        if kind == "classification":
            c = s["classification"]
            self._blocks("study.classification.n_train", c["n_train"], seed, data["n_train"])
            _increasing_widths("study.classification.width_ratios", c["width_ratios"], c["n_train"])

    @staticmethod
    def _blocks(key: str, n: int | None, seed: int, pool: int) -> None:
        """Replicate `seed` trains on block `seed` of n points of the training pool."""
        if n is None or (seed + 1) * n > pool:
            raise ConfigError(
                key,
                n,
                f"an integer with (seed + 1)·n ≤ data.n_train = {pool} (one disjoint block of "
                f"the training pool per seed; seed={seed})",
            )

    def sweep_warnings(self, configs: list[Mapping[str, Any]]) -> list[str]:
        """A warning when the separability sweep misses d/n = ½, or the classification sweep
        d/n = 1."""
        s = configs[0]["study"]
        if s["job"] == "separability":
            ratios = s["separability"]["width_ratios"]
            if not min(ratios) < 0.5 < max(ratios):
                return [
                    f"study.separability.width_ratios={list(ratios)} does not cross d/n = ½, "
                    "where Cover's separable fraction crosses ½"
                ]
        if s["job"] == "classification":
            ratios = s["classification"]["width_ratios"]
            if not min(ratios) < 1 < max(ratios):
                return [
                    f"study.classification.width_ratios={list(ratios)} does not cross the "
                    "interpolation threshold d/n = 1"
                ]
        return []

    def figures(self, results: Results) -> dict[str, FigureSpec]:
        """The implicit-bias, gradient-share, separability and classification figures."""
        s, t = results.summary, results.tables
        out = {}
        if t.get("trajectories.csv"):
            out["implicit_bias"] = FigureSpec(
                figures.implicit_bias_figure(t["trajectories.csv"], s),
                "Gradient descent on the cross-entropy from zero against the hard-margin SVM on "
                "the same random features, one colour per problem, against the step t (log "
                "x): (a) direction gap 1 − cos(w_t, ŵ), log-log, dashed: the fit "
                "√(2·gap) = c/ln(t/t₀) over the last study.fit_decades decades; (b) "
                "normalized margin over the SVM's, which can never exceed 1; (c) ‖w_t‖/‖ŵ‖, "
                "dotted: slope 1 in ln t (w_t ≈ ŵ ln t); (d) training loss. Line = mean over "
                "the separable seeds, band = ± 1 sd.",
            )
            out["gradient_shares"] = FigureSpec(
                figures.gradient_shares_figure(t.get("shares.csv", []), t["trajectories.csv"]),
                "Left: each constraint's share of the loss gradient at the last step of one "
                "run per problem against its SVM dual share α_k/Σα (log-log; dotted: equal "
                "shares); constraints that are not support vectors (α = 0) sit in the strip "
                "on the left. Right: the share of the gradient carried by the SVM's support "
                "vectors against the step t (mean over separable seeds, band ± 1 sd).",
            )
        if t.get("separability.csv"):
            out["separability"] = FigureSpec(
                figures.separability_figure(t["separability.csv"], s),
                "Fraction of draws (random features, uniform random ±1 labels) that are "
                "linearly separable against d/n, with Cover's C(n, d)/2ⁿ (line) and its "
                "±2 binomial standard errors for the number of draws (band); dash-dotted: "
                "d/n = ½, where Cover's fraction is ½.",
            )
        if t.get("classification.csv"):
            out["classification"] = FigureSpec(
                figures.classification_figure(t["classification.csv"], s),
                "Left: test error against clean labels on sphere_linear with noisy sign labels, "
                "against d/n (log x): GD's limit on the logistic loss (the max-margin "
                "classifier where the training set is separable, the logistic minimizer where "
                "it is not) and the minimum-norm least-squares fit of the ±1 labels; dotted: "
                "where half the training sets are separable; dash-dotted: d = n. Right: the "
                "fraction of separable training sets and of support vectors, and the "
                "direction gap between the two classifiers. Mean over seeds, band = ± 1 sd.",
            )
        return out
