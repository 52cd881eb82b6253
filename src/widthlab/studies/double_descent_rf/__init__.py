"""Does the test error of random-features regression peak at the interpolation threshold
d = n and fall again toward the infinite-width kernel limit, as Mei & Montanari (2019)
predict?

One job (`job.py`) = one data set and seed: every width of `study.width_ratios` and every
ridge of `study.ridges`. Configs: `conf/study/double_descent_rf.yaml` (sphere_linear) and
`conf/study/double_descent_rf/digits.yaml`, sharing `conf/study/double_descent_rf/common.yaml`;
sizes in `conf/profile/study/`, all in this folder.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

from widthlab.runtime.errors import ConfigError
from widthlab.runtime.schemas import integer, list_of, nonnegative, optional, positive
from widthlab.runtime.study import FigureSpec, Job, PlotSpec, Results, Study
from widthlab.studies.double_descent_rf import figures, job, report, summary


class DoubleDescentRF(Study):
    """Double descent of random-features regression against Mei & Montanari's asymptotics."""

    question = (
        "Does the test error of random-features regression peak at the interpolation "
        "threshold d = n and fall again toward the infinite-width kernel limit, as the "
        "asymptotics of Mei & Montanari (2019) predict?"
    )
    title = "Random features: double descent (`double_descent_rf`)"
    order = 20
    headline_metric = "theory_rms_z"
    model_config = "random_features"
    jobs = {"rf": Job(job.measure, None, peak_memory=job.peak_memory)}
    schema = {
        "width_ratio_grid": list_of(positive),
        "width_ratios": optional(list_of(positive)),
        "ridges": list_of(nonnegative),
        "n_train": optional(integer(1)),
        "gd_check_steps": integer(1),
        "gd_times": list_of(nonnegative),
        "gd_tolerance": positive,
        "peak_k": positive,
        "theory_excluded_band": list_of(positive, min_length=2),
        "kkt_tolerance": positive,
    }
    plots = (
        PlotSpec(
            "test error vs d/n (excess risk; test MSE for digits)",
            "curves.csv",
            "d_over_n",
            ("excess_risk", "test_mse"),
            ("name", "ridge"),
        ),
        PlotSpec("‖β‖ vs d/n", "curves.csv", "d_over_n", ("beta_norm",), ("name", "ridge")),
        PlotSpec(
            "early-stopped GD: excess risk vs d/n",
            "gd_curves.csv",
            "d_over_n",
            ("gd_excess_risk",),
            ("name", "steps"),
        ),
    )
    residual_keys = ("kkt_", "gd_limit_distance", "gd_explicit_vs_closed_form", "gram_condition")
    # Zero but for rounding where the fit interpolates (d ≥ n without ridge; the kernel limit).
    round_off_keys = ("train_mse",)

    summarize = staticmethod(summary.summarize)
    report = staticmethod(report.section)

    def check(self, cfg: Mapping[str, Any]) -> None:
        """Refuse a seed's training block beyond the pool, widths that do not increase and a bad
        theory band."""
        s, data = cfg["study"], cfg["data"]
        n, seed = s["n_train"], cfg["seed"]
        if n is not None and (seed + 1) * n > data["n_train"]:
            raise ConfigError(
                "study.n_train",
                n,
                f"(seed + 1)·n_train ≤ data.n_train = {data['n_train']} (one "
                f"disjoint block of the training pool per seed; seed={seed})",
            )
        n = n or data["n_train"]
        widths = job.widths_for(job.width_ratios(s), n)
        if any(b <= a for a, b in itertools.pairwise(widths)):
            raise ConfigError(
                "study.width_ratios",
                s["width_ratios"],
                f"ratios whose widths round(r·n), n = {n}, strictly increase",
            )
        band = s["theory_excluded_band"]
        if len(band) != 2 or band[0] > band[1]:
            raise ConfigError("study.theory_excluded_band", band, "[low, high] with low ≤ high")

    def sweep_warnings(self, configs: list[Mapping[str, Any]]) -> list[str]:
        """A warning when the sweep's widths do not cross the threshold d/n = 1."""
        ratios = job.width_ratios(configs[0]["study"])
        if min(ratios) < 1 < max(ratios):
            return []
        return [
            f"study.width_ratios={list(ratios)} does not cross the interpolation threshold "
            "d/n = 1: the sweep cannot show the double-descent peak"
        ]

    def figures(self, results: Results) -> dict[str, FigureSpec]:
        """One double-descent figure per data set, and the gradient-descent checks'."""
        rows = results.tables.get("curves.csv", [])
        out = {}
        band = "band = mean ± 1 sd over seeds"
        for name in sorted({r["name"] for r in rows}):
            seeds = sample_size(rows, name)
            out[f"rf_double_descent_{name}"] = FigureSpec(
                figures.rf_double_descent_figure(rows, name),
                f"Random-features regression on {name}: test error (excess risk against the "
                f"noiseless target, or test MSE) against d/n, log-log, one line per ridge λ; "
                f"dashed: Mei–Montanari theory (sphere_linear), dotted: the infinite-width "
                f"kernel; then training MSE, ‖β‖ and (digits) the test classification error. "
                f"Mean over {seeds} seeds, {band}.",
            )
        if any(r["name"] == "sphere_linear" for r in rows):
            out["gd_min_norm"] = FigureSpec(
                figures.gd_min_norm_figure(rows),
                "Left: KKT residuals of the minimum-norm interpolator and the distances of "
                "gradient descent (explicit and closed form) to it, for every interpolating "
                "ridgeless fit (d ≥ n), stored as powers of ten: all at round-off, against the "
                "dashed float64 ε. Right: gradient-descent steps needed to come within the "
                f"tolerance of β̂, which diverge as d → n. {band}.",
            )
            gd = results.tables.get("gd_curves.csv", [])
            if gd:
                out["gd_early_stopping"] = FigureSpec(
                    figures.gd_early_stopping_figure(gd, min_norm_rows=rows),
                    "Excess risk of gradient descent from zero stopped after t steps against "
                    "d/n, one line per t (colour), and the minimum-norm limit t = ∞ (black): "
                    f"early stopping acts as a ridge and removes the peak. {band}.",
                )
        return out


def sample_size(rows: list[dict], name: str) -> str:
    """The seed counts of data set `name`'s curve points, for a caption (`3`, or `2/3`)."""
    counts = {
        r.get("excess_risk_count") or r.get("test_mse_count") for r in rows if r["name"] == name
    }
    counts.discard(None)
    return "/".join(str(c) for c in sorted(counts)) or "?"
