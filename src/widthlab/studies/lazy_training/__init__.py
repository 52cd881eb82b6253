"""As an NTK-parameterized network gets wider, does training become lazy: its weights and
its NTK barely move and it agrees with its linearization at init (Lee et al. 2019)?

One job (`job.py`) = (width, depth, seed). Configs: `conf/study/lazy_training.yaml` (the
main sweep) and `conf/study/lazy_training/activations.yaml` (depth 1, ReLU against erf, over
more widths and seeds: the exponent of the NTK change); sizes in `conf/profile/study/`, all in
this folder.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from widthlab.runtime.errors import ConfigError
from widthlab.runtime.schemas import integer, stable_step
from widthlab.runtime.study import FigureSpec, Job, PlotSpec, Results, Study, require_values
from widthlab.studies.lazy_training import figures, job, report, summary


def _exponents(key: str, value: Any) -> None:
    if not isinstance(value, Mapping) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in value.values()
    ):
        raise ConfigError(key, value, "a mapping {quantity: exponent of width}")


class LazyTraining(Study):
    """Lazy training of NTK-parameterized networks as they widen (Lee et al. 2019)."""

    question = (
        "As an NTK-parameterized network gets wider, do its weights and its NTK move less "
        "during training, and does it agree with its linearization at init?"
    )
    title = "Lazy training: the NTK regime (`lazy_training`)"
    order = 40
    headline_metric = "ntk_change_slope_deepest"
    model_config = "mlp"
    jobs = {
        "train": Job(
            job.measure,
            "linearization_gap",
            groups=("data", "model", "train", "study"),
            peak_memory=job.peak_memory,
            ignores=("train.lr",),  # η = study.lr_fraction·n/λ_max(Θ)
        ),
        # The same measurement at depth 1 for ReLU and erf (lazy_training/activations).
        "activations": Job(
            job.measure,
            "ntk_change",
            groups=("data", "model", "train", "study"),
            peak_memory=job.peak_memory,
            ignores=("train.lr",),
        ),
    }
    schema = {
        "n_train": integer(1),
        "n_eval": integer(1),
        "lr_fraction": stable_step,
        "steps": integer(1),
        "references": _exponents,
        "bounds": _exponents,
    }
    plots = (
        PlotSpec(
            "relative NTK change vs width", "curves.csv", "width", ("ntk_change",), ("depth",)
        ),
        PlotSpec(
            "trained vs linearized network (test) vs width",
            "curves.csv",
            "width",
            ("linearization_gap",),
            ("depth",),
        ),
    )

    summarize = staticmethod(summary.summarize)
    report = staticmethod(report.section)

    def check(self, cfg: Mapping[str, Any]) -> None:
        """The linearized-model closed form holds for full-batch gradient descent on the
        squared loss of an NTK-parameterized network, and nothing else."""
        require_values(
            cfg,
            {
                "model.parameterization": "ntk",
                "train.optimizer": "sgd",
                "train.loss": "squared",
                "train.momentum": 0,
                "train.batch_size": None,
            },
            "its closed form is that of full-batch gradient descent on the squared loss, NTK "
            "parameterization",
        )
        s, data = cfg["study"], cfg["data"]
        if "n_test" not in data:  # the gaps are measured on the first n_eval test points
            raise ConfigError(
                "data",
                data["name"],
                "a data set with a test split data.n_test (teacher, sphere_linear, mnist1d, "
                "mnist1d_noisy, mnist, fashion_mnist)",
            )
        if s["n_train"] > data["n_train"]:
            raise ConfigError("study.n_train", s["n_train"], f"≤ data.n_train = {data['n_train']}")
        if s["n_eval"] > data["n_test"]:
            raise ConfigError("study.n_eval", s["n_eval"], f"≤ data.n_test = {data['n_test']}")

    def figures(self, results: Results) -> dict[str, FigureSpec]:
        """Weight change, NTK change and linearization gap against width."""
        rows = results.tables.get("curves.csv", [])
        if not rows:
            return {}
        return {
            "lazy_training": FigureSpec(
                figures.lazy_training_figure(rows, results.summary),
                "Against width, log-log, one colour per depth: (a) relative change of each "
                "layer's weights during training (solid first, dashed hidden, dotted last layer); "
                "(b) relative change of the empirical NTK; (c) the trained network against its "
                "linearization at init (solid) and against the infinite-width NTK prediction "
                "(dashed), on test points. Legends: slope [95% interval]; grey: width^−1/2 and "
                "width^−1 references. Line = mean over seeds, band = ± 1 sd over seeds.",
            )
        }
