"""Finite against infinite on real data (Lee et al. 2020): as an NTK-parameterized network
trained by gradient descent on MNIST-1D gets wider, does its test accuracy and loss approach
those of its infinite-width NTK predictor, how fast, and from which width is it within one
standard error? NNGP and NTK kernel regression (ridge chosen on a validation split) are the
kernels' own scores beside it.

Jobs (`job.py`): `train` per (width, depth, seed), `kernels` per depth. Configs:
`conf/study/finite_vs_infinite.yaml` (the networks' sweep), `conf/study/finite_vs_infinite/
kernels.yaml` (the kernels' sweep) and `conf/study/finite_vs_infinite/common.yaml`; sizes in
`conf/profile/study/`, all in this folder.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from widthlab.runtime.errors import ConfigError
from widthlab.runtime.schemas import fraction, integer, list_of, nonnegative, stable_step
from widthlab.runtime.study import FigureSpec, Job, PlotSpec, Results, Study, require_values
from widthlab.studies.finite_vs_infinite import figures, job, report, summary


def _number(key: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(key, value, "a number")


class FiniteVsInfinite(Study):
    """Trained networks on MNIST-1D against their infinite-width NTK predictor."""

    question = (
        "As a network trained by gradient descent on MNIST-1D gets wider, do its test accuracy "
        "and loss approach those of its infinite-width NTK predictor, and from which width is "
        "it within one standard error?"
    )
    title = "Finite against infinite networks on MNIST-1D (`finite_vs_infinite`)"
    order = 45
    headline_metric = "fvi_function_gap_slope_deepest"
    model_config = "mlp"
    jobs = {
        "train": Job(
            job.measure_network,
            "function_gap",
            groups=("data", "model", "train", "study"),
            peak_memory=job.network_memory,
            measure_batch=job.measure_networks,
            stack_keys=("model.width", "seed"),
            ignores=("train.lr",),  # η = study.lr_fraction·n/λ_max(Θ)
        ),
        "kernels": Job(
            job.measure_kernels,
            None,
            peak_memory=job.kernels_memory,
            # the infinite-width limit: no network, no width, no seed, no training loop
            ignores=(
                "model._target_",
                "model.width",
                "model.out_features",
                "model.base_width",
                "seed",
                "train",
            ),
        ),
    }
    schema = {
        "n_train": integer(2),
        "val_fraction": fraction,
        "ridges": list_of(nonnegative),
        "lr_fraction": stable_step,
        "steps": integer(1),
        "gap_bound": _number,
    }
    plots = (
        PlotSpec("test accuracy vs width", "curves.csv", "width", ("test_accuracy",), ("depth",)),
        PlotSpec(
            "distance to the NTK predictor vs width",
            "curves.csv",
            "width",
            ("function_gap", "abs_loss_gap"),
            ("depth",),
        ),
    )

    summarize = staticmethod(summary.summarize)
    report = staticmethod(report.section)

    def check(self, cfg: Mapping[str, Any]) -> None:
        """The NTK predictor is the limit of full-batch gradient descent on the squared loss
        of an NTK-parameterized network, and nothing else; the data must have one-hot
        classes and enough points for both splits."""
        require_values(
            cfg,
            {
                "model.parameterization": "ntk",
                "train.optimizer": "sgd",
                "train.loss": "squared",
                "train.momentum": 0,
                "train.batch_size": None,
            },
            "its asymptote is the limit of full-batch gradient descent on the squared loss, "
            "NTK parameterization",
        )
        s, data = cfg["study"], cfg["data"]
        if "label_noise" not in data or "n_test" not in data:
            raise ConfigError(
                "data", data["name"], "a classification set with a test split (mnist1d, mnist)"
            )
        if s["n_train"] > data["n_train"]:
            raise ConfigError("study.n_train", s["n_train"], f"≤ data.n_train = {data['n_train']}")
        n_val = round(s["val_fraction"] * s["n_train"])
        if not 1 <= n_val < s["n_train"]:
            raise ConfigError(
                "study.val_fraction",
                s["val_fraction"],
                f"a fraction leaving at least one point in each split of n = {s['n_train']}",
            )

    def figures(self, results: Results) -> dict[str, FigureSpec]:
        """The accuracy and loss gaps and the function distance against width."""
        rows = results.tables.get("curves.csv", [])
        if not rows:
            return {}
        return {
            "finite_vs_infinite": FigureSpec(
                figures.finite_vs_infinite_figure(rows, results.summary),
                "Against the hidden width, one colour per depth: (a) test accuracy and (b) test "
                "loss of the trained (centered) networks, line = mean over seeds, band = ± 1 sd "
                "over seeds; dashed: the NTK predictor of the same gradient descent, the "
                "networks' infinite-width limit; markers at ∞: NTK (filled) and NNGP (open) "
                "kernel regression with the ridge chosen on the validation split. (c) "
                "‖f_T − f_∞,T‖/‖f_∞,T‖ on the test points, log-log, slope [95% interval] in the "
                "legend; dotted grey: width^−1/2.",
            )
        }
