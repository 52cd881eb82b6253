"""How far are the empirical NTK and NNGP of finite networks from their infinite-width
limits, and how fast does the distance shrink with width? (Jacot et al. 2018; Lee et al. 2019)

Jobs (`job.py`): `kernels` per (width, depth, activation, seed), `mc_nngp` per (width,
depth, activation), `circle` per (width, block of seeds). Configs:
`conf/study/ntk_convergence.yaml` (the kernels sweep),
`conf/study/ntk_convergence/{mc,circle}.yaml` (the other sweeps) and
`conf/study/ntk_convergence/common.yaml` (what they share); sizes in
`conf/profile/study/`, all in this folder.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from widthlab.activations import ACTIVATIONS
from widthlab.runtime.errors import ConfigError
from widthlab.runtime.schemas import choice, integer, positive
from widthlab.runtime.study import FigureSpec, Job, PlotSpec, Results, Study
from widthlab.studies.ntk_convergence import figures, job, report, summary


def _seeds_by_width(key: str, value: Any) -> None:
    if not isinstance(value, Mapping) or not value:
        raise ConfigError(key, value, "a mapping {width: number of seeds}")
    for width, seeds in value.items():
        integer(1)(f"{key}.{width}", seeds)


def _number(key: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(key, value, "a number")


class NTKConvergence(Study):
    """Convergence of the empirical NTK and NNGP to their infinite-width limits (Lee et al. 2019;
    Jacot et al. 2018)."""

    question = (
        "How far are the empirical NTK and NNGP of finite networks from their infinite-width "
        "limits, and does the distance shrink like width^−1/2?"
    )
    title = "NNGP and NTK: convergence to the infinite-width limit (`ntk_convergence`)"
    order = 10
    headline_metric = "worst_slope"
    model_config = "mlp"
    # Its networks are built by widthlab.empirical, never from model._target_; the circle
    # job takes its width, depth, activation and seeds from study.circle.
    ignores = ("model._target_", "model.out_features", "model.base_width")
    jobs = {
        "kernels": Job(
            job.measure_kernels, "ntk_distance", peak_memory=job.kernels_memory, ignores=ignores
        ),
        "mc_nngp": Job(job.measure_mc_nngp, "mc_bias", peak_memory=job.mc_memory, ignores=ignores),
        "circle": Job(
            job.measure_circle,
            "relative_sd",
            groups=("model", "study"),
            peak_memory=job.circle_memory,
            ignores=(*ignores, "model.width", "model.depth", "model.activation", "seed", "data"),
        ),
    }
    schema = {
        "n_probe": integer(1),
        "reference_slope": _number,
        "mc": {"networks": integer(2), "resolved_factor": positive, "reference_slope": _number},
        "circle": {
            "width": integer(1),
            "seeds": _seeds_by_width,
            "parts": integer(1),
            "part": integer(0),
            "depth": integer(1),
            "activation": choice(ACTIVATIONS),
            "points": integer(3),
            "bootstrap": integer(100),
            "seeds_drawn": integer(0),
        },
    }
    plots = (
        PlotSpec(
            "NTK distance to the limit vs width",
            "curves.csv",
            "width",
            ("ntk_distance",),
            ("activation", "depth"),
        ),
        PlotSpec(
            "NNGP distance to the limit vs width",
            "curves.csv",
            "width",
            ("nngp_distance",),
            ("activation", "depth"),
        ),
        PlotSpec(
            "Monte Carlo NNGP: distance to the limit, its noise floor and bias vs width",
            "mc_nngp.csv",
            "width",
            ("mc_distance", "mc_floor", "mc_bias"),
            ("activation", "depth"),
        ),
    )

    summarize = staticmethod(summary.summarize)
    report = staticmethod(report.section)

    def check(self, cfg: Mapping[str, Any]) -> None:
        """Refuse a parameterization without the analytic limit, too many probes and circle parts
        that do not fit its seeds."""
        m, s = cfg["model"], cfg["study"]
        if s["job"] != "circle" and m["parameterization"] != "ntk":
            # The limits of widthlab.kernels are those of the NTK parameterization; a
            # standard-parameterized net's NTK is ~width times larger and has no finite limit.
            raise ConfigError(
                "model.parameterization",
                m["parameterization"],
                "'ntk' in this study (the analytic limits are those of the NTK parameterization)",
            )
        if s["job"] != "circle" and s["n_probe"] > cfg["data"]["n_train"]:
            raise ConfigError(
                "study.n_probe",
                s["n_probe"],
                f"≤ data.n_train = {cfg['data']['n_train']} (the probe set is "
                "taken from the training split)",
            )
        circle = s["circle"]
        if s["job"] == "circle" and circle["width"] not in circle["seeds"]:
            raise ConfigError(
                "study.circle.width",
                circle["width"],
                f"one of the widths of study.circle.seeds: {sorted(circle['seeds'])}",
            )
        if circle["part"] >= circle["parts"]:
            raise ConfigError(
                "study.circle.part",
                circle["part"],
                f"0 … study.circle.parts − 1 = {circle['parts'] - 1}",
            )
        fewest = min(circle["seeds"].values())
        if circle["parts"] > 1 and 2 * circle["parts"] > fewest:
            # A part's own spread over seeds (its job's headline) needs two of them.
            raise ConfigError(
                "study.circle.parts",
                circle["parts"],
                f"1, or at most {fewest // 2} (at least 2 seeds a part; the fewest seeds of "
                f"any width in study.circle.seeds is {fewest})",
            )

    def figures(self, results: Results) -> dict[str, FigureSpec]:
        """The kernel distances against width, the Monte-Carlo NNGP and the circle figure."""
        s, t = results.summary, results.tables
        out = {}
        curves = t.get("curves.csv", [])
        if curves:
            seeds = figures.caption_seeds(curves, "ntk_distance")
            out["kernel_convergence"] = FigureSpec(
                figures.kernel_convergence_figure(curves, s),
                f"Relative Frobenius distance of one network's empirical NTK (left) and NNGP "
                f"(right) to the analytic limit against width, log-log; line = mean over "
                f"{seeds} seeds, band = ± 1 sd over seeds; legend: slope pooled over seeds "
                "[95% interval]; dotted: ∝ width^−1/2.",
            )
        if t.get("mc_nngp.csv"):
            out["mc_nngp"] = FigureSpec(
                figures.mc_nngp_figure(t["mc_nngp.csv"], s),
                "Monte-Carlo NNGP: distance d of the mean over M networks to the limit (solid), "
                "its Monte-Carlo noise floor ‖SE‖/‖K‖ (dotted) and the bias estimate "
                "√(d² − floor²) (open squares) against width, per depth; at depth 1 the bias "
                "is exactly 0, deeper it shrinks like width^−1 (dotted reference through the "
                "first resolved point).",
            )
        if t.get("circle.csv"):
            out["ntk_circle"] = FigureSpec(
                figures.ntk_circle_figure(t["circle.csv"], t.get("circle_seeds.csv", []), s),
                "Empirical NTK Θ̂(x₀, x(γ)) on the unit circle at initialization (Jacot et al. "
                "2018, Fig. 1): thin lines = single networks, band = mean ± 1 sd over all "
                "seeds of each width, black = the analytic limit; the title gives the ratio "
                "of the spreads with its 95% bootstrap interval.",
            )
        return out
