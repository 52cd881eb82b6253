"""Beyond the kernel regime: which parameterization keeps learning features as width grows,
and does the best learning rate transfer from a narrow network to a wide one? (Yang & Hu
2021, Tensor Programs IV; Yang et al. 2022, Tensor Programs V)

Jobs (`job.py`): `transfer` per (parameterization, width, seed), a grid of learning rates
trained side by side, from which come (b) feature movement and NTK change and (c) the
learning-rate transfer; `coord` per (parameterization, width), (a) the coordinate check.
Configs: `conf/study/feature_learning.yaml` (the transfer sweep),
`conf/study/feature_learning/coord.yaml` and `.../common.yaml`; sizes in
`conf/profile/study/`, all in this folder.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from widthlab.checks import is_int, is_real
from widthlab.models.mlp import PARAMETERIZATIONS
from widthlab.runtime.errors import ConfigError
from widthlab.runtime.schemas import integer, list_of, nonnegative, positive
from widthlab.runtime.study import FigureSpec, Job, PlotSpec, Results, Study
from widthlab.studies.feature_learning import figures, job, report, summary

CLASSIFICATION_DATA = ("digits", "digits_noisy", "mnist", "fashion_mnist")


def _rates(key: str, value: Any) -> None:
    """{parameterization: integer log2 learning rate} for every parameterization."""
    if (
        not isinstance(value, Mapping)
        or set(value) != set(PARAMETERIZATIONS)
        or not all(is_int(v) for v in value.values())
    ):
        raise ConfigError(
            key, value, f"a mapping {{parameterization: integer}} for {list(PARAMETERIZATIONS)}"
        )


def _names(key: str, value: Any) -> None:
    """A (possibly empty) list of parameterizations."""
    if not isinstance(value, list | tuple) or not set(value) <= set(PARAMETERIZATIONS):
        raise ConfigError(key, value, f"a list of parameterizations from {list(PARAMETERIZATIONS)}")


def _references(key: str, value: Any) -> None:
    """{parameterization: {feature_movement | ntk_change: exponent of width}}."""
    allowed = {"feature_movement", "ntk_change"}
    if not isinstance(value, Mapping) or not set(value) <= set(PARAMETERIZATIONS):
        raise ConfigError(key, value, "a mapping {parameterization: {quantity: exponent}}")
    for p, refs in value.items():
        if not isinstance(refs, Mapping) or not set(refs) <= allowed:
            raise ConfigError(f"{key}.{p}", refs, f"a mapping with keys from {sorted(allowed)}")
        for name, exponent in refs.items():
            if not is_real(exponent):
                raise ConfigError(f"{key}.{p}.{name}", exponent, "a number")


class FeatureLearning(Study):
    """Feature learning and learning-rate transfer across parameterizations (Yang & Hu 2021; Yang et
    al. 2022)."""

    question = (
        "Which parameterization (standard, NTK, mean-field, μP) keeps learning features as the "
        "network gets wider, and does the best learning rate of a narrow network transfer to "
        "a wide one?"
    )
    title = "Feature learning and learning-rate transfer across widths (`feature_learning`)"
    order = 50
    headline_metric = "mup_best_lr_shift_steps"
    model_config = "mlp"
    jobs = {
        "transfer": Job(
            job.measure_transfer,
            "n_diverged",
            groups=("data", "model", "train", "study"),
            peak_memory=job.transfer_memory,
            # its own grid of learning rates, SGD without a stopping rule or a Trainer
            ignores=("train.lr", "train.stop_loss", "train.log_every_n_epochs", "train.trainer"),
        ),
        "coord": Job(
            job.measure_coord,
            "lr",
            groups=("data", "model", "train", "study"),
            peak_memory=job.coord_memory,
            # steps 0-5 of SGD at study.coord's learning rate, on one batch
            ignores=(
                "train.lr",
                "train.stop_loss",
                "train.log_every_n_epochs",
                "train.trainer",
                "train.batch_size",
                "train.max_steps",
                "train.divergence_factor",
            ),
        ),
    }
    schema = {
        "n_probe": integer(2),
        "flat_tolerance": positive,
        "coord": {
            "steps": integer(1),
            "check_step": integer(1),
            "batch": integer(1),
            "widths": list_of(integer(1), min_length=3),
            "seeds": integer(1),
            "log2_lr": _rates,
            "flat": _names,
            "not_flat": _names,
        },
        "transfer": {
            "log2_lr_min": _rates,
            "n_lr": integer(3),
            "max_shift": nonnegative,
            "stays": _names,
            "moves": _names,
            "wider_is_better": _names,
            "bootstrap": integer(100),
        },
        "movement": {"log2_lr": _rates, "references": _references, "flat": _names},
    }
    plots = (
        PlotSpec(
            "feature movement of the first hidden layer vs width",
            "movement.csv",
            "width",
            ("feature_movement_layer_1",),
            ("parameterization",),
        ),
        PlotSpec(
            "relative change of the NTK vs width",
            "movement.csv",
            "width",
            ("ntk_change",),
            ("parameterization",),
        ),
        PlotSpec(
            "training loss vs learning rate",
            "transfer.csv",
            "lr",
            ("train_loss",),
            ("parameterization", "width"),
        ),
    )

    summarize = staticmethod(summary.summarize)
    report = staticmethod(report.section)

    def check(self, cfg: Mapping[str, Any]) -> None:
        """Refuse SGD with momentum, a data set without classes, sizes beyond the pool and
        contradictory predictions."""
        s, t, data = cfg["study"], cfg["train"], cfg["data"]
        if t["optimizer"] == "sgd" and t["momentum"] != 0:
            raise ConfigError(
                "train.momentum",
                t["momentum"],
                "0 in this study (its networks are trained side by side by "
                "widthlab.stacked_mlp, whose SGD has no momentum)",
            )
        if data["name"] not in CLASSIFICATION_DATA:
            raise ConfigError(
                "data", data["name"], f"a classification data set {CLASSIFICATION_DATA}"
            )
        for key, value in (
            ("study.n_probe", s["n_probe"]),
            ("study.coord.batch", s["coord"]["batch"]),
        ):
            if value > data["n_train"]:
                raise ConfigError(key, value, f"≤ data.n_train = {data['n_train']}")
        if s["coord"]["check_step"] > s["coord"]["steps"]:
            raise ConfigError(
                "study.coord.check_step",
                s["coord"]["check_step"],
                f"≤ study.coord.steps = {s['coord']['steps']}",
            )
        tr, moves = s["transfer"], s["movement"]["log2_lr"]
        both = set(tr["stays"]) & set(tr["moves"])
        if both:
            raise ConfigError(
                "study.transfer.moves", tr["moves"], f"none of study.transfer.stays {sorted(both)}"
            )
        for p in PARAMETERIZATIONS:
            low = tr["log2_lr_min"][p]
            if not low <= moves[p] < low + tr["n_lr"]:
                raise ConfigError(
                    f"study.movement.log2_lr.{p}",
                    moves[p],
                    f"a rate of the transfer grid, {low} … {low + tr['n_lr'] - 1}",
                )

    def sweep_warnings(self, configs: list[Mapping[str, Any]]) -> list[str]:
        """Warn when the widths of the transfer sweep span less than the 16× over which the
        best learning rate is meant to stay put."""
        if configs[0]["study"]["job"] != "transfer":
            return []
        widths = sorted({c["model"]["width"] for c in configs})
        if widths[-1] >= 16 * widths[0]:
            return []
        return [
            f"model.width={widths} spans {widths[-1] / widths[0]:g}× (< 16×): the shift of the "
            "best learning rate is measured over a narrower range than Yang et al. (2022) use"
        ]

    def figures(self, results: Results) -> dict[str, FigureSpec]:
        """The coordinate check, the feature movement and the learning-rate transfer figures."""
        s, t = results.summary, results.tables
        out = {}
        if t.get("coord.csv"):
            out["coordinate_check"] = FigureSpec(
                figures.coordinate_check_figure(t["coord.csv"], s),
                "Coordinate check, one panel per parameterization: the mean |coordinate| of "
                "each hidden layer's activations (colours) and of the output's change since "
                "initialization (black) against width, log-log, after 1 … 5 optimizer steps on "
                "one fixed batch (lighter = earlier; bold = the step judged); legend: slope at "
                "that step [95% interval]. Line = mean over seeds, band = ± 1 sd over seeds.",
            )
        if t.get("movement.csv"):
            out["feature_movement"] = FigureSpec(
                figures.movement_figure(t["movement.csv"], s),
                "Left: feature movement ‖h_T − h_0‖/‖h_0‖ of each hidden layer (solid first, "
                "dashed deeper) at the end of training; right: relative change of the tangent "
                "kernel weighted by the learning-rate scales, against width, log-log, one "
                "colour per parameterization, each at its rate of study.movement.log2_lr. "
                "Legend: slope [95% interval]; grey: width^−1/2 and width^−1. Line = mean over "
                "seeds, band = ± 1 sd over seeds.",
            )
        if t.get("transfer.csv"):
            out["learning_rate_transfer"] = FigureSpec(
                figures.transfer_figure(t["transfer.csv"], s),
                "Training loss after the fixed budget against the learning rate (log2), one "
                "panel per parameterization, one curve per width (darker = wider); rates at "
                "which a seed diverged are left out. Markers on the top edge: the best rate "
                "of each width (parabola-refined) with its 95% bootstrap interval over seeds. "
                "Line = mean over seeds, band = ± 1 sd over seeds.",
            )
        return out
