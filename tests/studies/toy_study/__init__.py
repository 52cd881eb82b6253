"""A study that lives outside the package: what a user writes to add a study, one folder
(this module, and its configs in `conf/`: its sweep in `conf/study/toy.yaml`, its sizes per
profile in `conf/profile/study/toy/`).

Each job reports a distance d = 2 · width^slope · e^{ε}, ε ~ N(0, 0.05²) drawn from the seed and
the width (a seed's slope then varies from seed to seed, as a real study's does, and the interval
over seeds has a width), so its summary must recover `study.slope` and judge it against
`study.reference`. A job first waits `study.seconds` (0: not at all), for the tests that cancel
or time out a running job.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from widthlab.runtime.schemas import integer
from widthlab.runtime.study import FigureSpec, Job, PlotSpec, Results, Study
from widthlab.runtime.tables import mean_std_curves, slope_summary, tidy_rows
from widthlab.seeding import rng_for


def _number(key: str, value: Any) -> None:
    from widthlab.runtime.errors import ConfigError

    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(key, value, "a number")


def measure(cfg) -> dict[str, float]:
    time.sleep(float(cfg.study.seconds))
    width = int(cfg.study.width)
    noise = rng_for(int(cfg.seed), f"toy/{width}").standard_normal()
    return {
        "distance": 2.0 * width ** float(cfg.study.slope) * math.exp(0.05 * noise),
        "width": width,
    }


class ToyStudy(Study):
    question = "Does the toy distance shrink like width^slope?"
    title = "A toy study from outside the package (`toy`)"
    order = 999
    headline_metric = "toy_slope"
    jobs = {"main": Job(measure, "distance", groups=("study",), peak_memory=lambda cfg: 1e6)}
    schema = {"width": integer(1), "slope": _number, "reference": _number, "seconds": _number}
    plots = (PlotSpec("distance vs width", "curves.csv", "width", ("distance",)),)

    def summarize(self, records: Mapping[str, list[dict]], settings: Mapping[str, Any]) -> Results:
        rows = tidy_rows(records.get("main", []))
        fit = slope_summary(rows, "width", "distance", float(settings["reference"]))
        curves = mean_std_curves(rows, (), "width", ["distance"])
        return Results(
            summary={"slope": fit},
            tables={"curves.csv": curves},
            metrics={
                "comparisons": 1,
                "agree": int(fit["verdict"] == "agrees"),
                "toy_slope": fit["slope"],
            },
        )

    def figures(self, results: Results) -> dict[str, FigureSpec]:
        fig = Figure()
        ax = fig.subplots()
        rows = results.tables["curves.csv"]
        ax.loglog([r["width"] for r in rows], [r["distance_mean"] for r in rows], "o-")
        return {"toy": FigureSpec(fig, "Toy distance against width, mean over seeds.")}

    def report(self, summary: Mapping[str, Any], page: Any) -> list[str]:
        from widthlab.runtime.report import slope_text, verdict

        fit = summary["slope"]
        return [
            *page.figures(summary),
            f"Toy slope {slope_text(fit)}: {verdict(fit['verdict'])}.",
            "",
        ]


__all__ = ["ToyStudy", "np"]
