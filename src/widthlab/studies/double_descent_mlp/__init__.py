"""Does the test error of a trained MLP peak where its parameter count P reaches the
interpolation threshold n·C and fall again beyond it (Belkin et al. 2019, Fig. 4)?

One job (`job.py`) = (width, seed) of one training loss. Configs:
`conf/study/double_descent_mlp.yaml` (squared loss) and
`conf/study/double_descent_mlp/cross_entropy.yaml` (the same networks on the cross-entropy),
sharing `conf/study/double_descent_mlp/common.yaml`; sizes in `conf/profile/study/`, all in
this folder.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from widthlab.runtime.errors import ConfigError
from widthlab.runtime.schemas import list_of, positive
from widthlab.runtime.study import FigureSpec, Job, PlotSpec, Results, Study
from widthlab.studies.double_descent_mlp import figures, job, report, summary


class DoubleDescentMLP(Study):
    """Model-wise double descent of a trained one-hidden-layer MLP (Belkin et al. 2019)."""

    question = (
        "Does the test error of a trained network peak where its parameter count P reaches "
        "the interpolation threshold n·C, and fall again beyond it?"
    )
    title = "MLP: model-wise double descent (`double_descent_mlp`)"
    order = 30
    headline_metric = "peak_test_error"
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
    schema = {"peak_band": list_of(positive, min_length=2), "peak_effect": positive}
    plots = (
        PlotSpec(
            "test and train error vs P/(n·C)",
            "curves.csv",
            "params_over_threshold",
            ("test_error", "train_error"),
            ("loss",),
        ),
    )

    summarize = staticmethod(summary.summarize)
    report = staticmethod(report.section)

    def check(self, cfg: Mapping[str, Any]) -> None:
        """Refuse a peak band that is not [low, high] and a data set without classes."""
        band = cfg["study"]["peak_band"]
        if len(band) != 2 or band[0] > band[1]:
            raise ConfigError("study.peak_band", band, "[low, high] with low ≤ high")
        # The classification data sets are the ones with training labels to flip.
        if "label_noise" not in cfg["data"]:
            raise ConfigError(
                "data",
                cfg["data"]["name"],
                "a classification data set (digits, digits_noisy, mnist, fashion_mnist, "
                "mnist1d, mnist1d_noisy)",
            )

    def sweep_warnings(self, configs: list[Mapping[str, Any]]) -> list[str]:
        """Warn when the widths' parameter counts do not cross n·C (sizes from the data
        set's card, which the pre-flight has checked)."""
        import json
        from pathlib import Path

        first = configs[0]
        card = json.loads(
            (Path(first["paths"]["data_dir"]) / f"{first['data']['name']}.json").read_text()
        )
        dim, classes, n = card["dim"], card["n_outputs"], card["n_train"]

        def params(m: Mapping[str, Any]) -> int:
            w = m["width"]
            return w * (dim + 1) + (m["depth"] - 1) * w * (w + 1) + classes * (w + 1)

        counts = [params(c["model"]) for c in configs]
        widths = sorted({c["model"]["width"] for c in configs})
        if min(counts) < n * classes < max(counts):
            return []
        return [
            f"model.width={widths} gives {min(counts)} to {max(counts)} parameters, which "
            f"does not cross the interpolation threshold n·C = {n * classes}: the sweep "
            "cannot show the double-descent peak"
        ]

    def figures(self, results: Results) -> dict[str, FigureSpec]:
        """The test and training error against P/(n·C), per loss."""
        rows = results.tables.get("curves.csv", [])
        if not rows:
            return {}
        seeds = (results.summary.get("peak") or {}).get("seeds", "?")
        main = results.summary.get("loss") or "squared"
        mine = [r for r in rows if (r.get("loss") or "squared") == main]
        out = {
            "mlp_double_descent": FigureSpec(
                figures.mlp_double_descent_figure(mine, results.summary),
                "Left: test error (clean test labels) and train error (noisy training labels) of "
                "the trained network against P/(n·C), log x; right: training and test loss, "
                "log-log; "
                f"dash-dotted: the interpolation threshold P = n·C. {main.replace('_', '-')} "
                f"loss; mean over {seeds} seeds, band = mean ± 1 sd over seeds.",
            )
        }
        others = results.summary.get("other_losses") or {}
        if others:
            counts = "/".join(
                str((e.get("peak") or {}).get("seeds", "?"))
                for e in (results.summary, *others.values())
            )
            out["mlp_losses"] = FigureSpec(
                figures.loss_comparison_figure(rows, results.summary),
                "The same networks trained on the squared loss (one-hot targets) and on the "
                "softmax cross-entropy, same data, optimizer and step budget: test error "
                "(left) and train error on the noisy training labels (right) against "
                "P/(n·C), log x; dash-dotted: P = n·C. Mean over seeds "
                f"({counts} per loss, as listed), band = mean ± 1 sd over seeds.",
            )
        return out
