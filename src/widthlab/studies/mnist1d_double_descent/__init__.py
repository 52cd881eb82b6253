"""Does a two-hidden-layer MLP trained on MNIST-1D with noisy labels, at the published
setting, show the published deep double descent (Greydanus & Kobak, arXiv:2011.14439):
where does the test error peak, how high, and where does it end at the largest width?

One job = (width, seed): the job of `double_descent_mlp` (`studies/double_descent_mlp/job.py`:
train to the step budget, then measure), at the published setting that
`conf/study/mnist1d_double_descent.yaml` (in this folder) states and cites, with the
published curve there; sizes in `conf/profile/study/`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from widthlab.runtime.errors import ConfigError
from widthlab.runtime.schemas import fraction, integer, list_of, nonnegative, positive, text
from widthlab.runtime.study import FigureSpec, Job, PlotSpec, Results, Study
from widthlab.studies.double_descent_mlp import job
from widthlab.studies.mnist1d_double_descent import figures, report, summary


class MNIST1DDoubleDescent(Study):
    """Deep double descent on MNIST-1D at the published setting (Greydanus & Kobak 2020)."""

    question = (
        "Does a two-hidden-layer MLP on MNIST-1D with noisy labels, trained at the published "
        "setting, show the published deep double descent: the test error's peak where the "
        "network first fits the noisy labels, its height, and its value at the largest width?"
    )
    title = "MNIST-1D: deep double descent at the published setting (`mnist1d_double_descent`)"
    order = 35
    headline_metric = "mnist1d_peak_test_error"
    shown_settings = ("train.max_steps",)
    model_config = "mlp"
    jobs = {
        "train": Job(
            job.measure,
            "test_error",
            groups=("data", "model", "train", "study"),
            peak_memory=job.peak_memory,
            measure_batch=job.measure_batch,
            stack_keys=("model.width", "seed"),
        )
    }
    schema = {
        "peak_band": list_of(positive, min_length=2),
        "bootstrap": integer(100),
        "published": {
            "source": text,
            "dim": integer(1),
            "classes": integer(2),
            "depth": integer(1),
            "n_train": integer(1),
            "n_test": integer(1),
            "label_redrawn": fraction,
            "loss": text,
            "optimizer": text,
            "lr": positive,
            "momentum": nonnegative,
            "batch_size": integer(1),
            "epochs": integer(1),
            "widths": list_of(integer(1), min_length=2),
            "test_error": list_of(fraction, min_length=2),
            "train_error": list_of(fraction, min_length=2),
        },
    }
    plots = (
        PlotSpec(
            "test and train error vs width", "curves.csv", "width", ("test_error", "train_error")
        ),
    )

    summarize = staticmethod(summary.summarize)
    report = staticmethod(report.section)

    @classmethod
    def source_files(cls) -> list[Path]:
        """The study's own modules and double_descent_mlp's job module, which its jobs run."""
        # The job's code lives in double_descent_mlp: its edits must invalidate these records.
        return [*super().source_files(), Path(job.__file__).resolve()]

    def check(self, cfg: Mapping[str, Any]) -> None:
        """Refuse a bad peak band, a published curve that does not match its widths and a data set
        other than MNIST-1D."""
        s = cfg["study"]
        band = s["peak_band"]
        if len(band) != 2 or band[0] > band[1]:
            raise ConfigError("study.peak_band", band, "[low, high] with low ≤ high")
        published = s["published"]
        widths = list(published["widths"])
        if widths != sorted(set(widths)):
            raise ConfigError("study.published.widths", widths, "increasing widths")
        for key in ("test_error", "train_error"):
            if len(published[key]) != len(widths):
                raise ConfigError(
                    f"study.published.{key}",
                    published[key],
                    f"one value per published width ({len(widths)})",
                )
        if "label_noise" not in cfg["data"]:
            raise ConfigError(
                "data", cfg["data"]["name"], "a classification data set (mnist1d_noisy, mnist1d)"
            )

    def sweep_warnings(self, configs: list[Mapping[str, Any]]) -> list[str]:
        """Warn when the widths' parameter counts P do not cross the number of training
        points n, where a cross-entropy network starts to fit every label."""
        first = configs[0]
        card = json.loads(
            (Path(first["paths"]["data_dir"]) / f"{first['data']['name']}.json").read_text()
        )

        def params(m: Mapping[str, Any]) -> int:
            return summary.parameter_count(m["width"], m["depth"], card["dim"], card["n_outputs"])

        counts = [params(c["model"]) for c in configs]
        if min(counts) < card["n_train"] < max(counts):
            return []
        widths = sorted({c["model"]["width"] for c in configs})
        return [
            f"model.width={widths} gives {min(counts)} to {max(counts)} parameters, which does "
            f"not cross n = {card['n_train']} training points: the sweep cannot show the peak"
        ]

    def figures(self, results: Results) -> dict[str, FigureSpec]:
        """The test error against width beside the published curve."""
        rows = results.tables.get("curves.csv", [])
        if not rows:
            return {}
        return {
            "mnist1d_double_descent": FigureSpec(
                figures.mnist1d_double_descent_figure(rows, results.summary),
                "Left: test error (clean test labels) and train error (noisy training labels) of "
                "the trained two-hidden-layer network against its hidden width h, log x; dotted "
                "with crosses: the published single-run curves (Greydanus & Kobak, "
                "deep-double-descent notebook). Right: training and test cross-entropy, "
                "log-log. Dash-dotted: the width where the parameter count equals the number of "
                "training points. Line = mean over seeds, band = mean ± 1 sd over seeds.",
            )
        }
