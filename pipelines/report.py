"""Render the study report, `reports/report.md`, from the studies' summaries and figures.

Usage:
    python pipelines/report.py

Reads `results/<study>/summary.json` and the figures under `results/<study>/figures/`
(written by `pipelines/aggregate.py`) and writes one Markdown page: per study its question,
its figures, its headline numbers, the command and config that produced it, and how it
compares with the paper it reproduces. Every number on the page is formatted from the
summary by `fmt` (4 significant digits), nothing is typed by hand; the page is regenerated
by the DVC stage `report` and never edited.
"""

import json
import math
import os
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from widthlab.records import atomic_write_bytes
from widthlab.schemas import validate_config
from widthlab.validation import exit_on_config_error


def fmt(x) -> str:
    """A number as printed on the page: 4 significant digits, `∞` for inf, `–` for missing."""
    if x is None:
        return "–"
    if isinstance(x, int) and not isinstance(x, bool):
        return str(x)
    x = float(x)
    if math.isinf(x):
        return "∞"
    if math.isnan(x):
        return "–"
    return f"{x:.4g}"


def jobs_line(summary: dict) -> str:
    """'Jobs: N, failed: M' with each failed job's key and reason, and any stale records the
    aggregate left out."""
    line = f"Jobs: {summary['n_jobs']}, failed: {summary['n_failed']}" + "".join(
        f"; `{f['key']}`: {f['reason']}" for f in summary["failed"]
    )
    stale = summary.get("stale_records_ignored") or []
    if stale:
        line += f" ({len(stale)} records of earlier sweeps left out)"
    missing = summary.get("missing_jobs") or []
    if missing:
        line += f"; {len(missing)} jobs of the sweep have no record: rerun the sweep"
    return line + "."


def _figure(lines: list[str], page_dir: Path, path: Path, alt: str) -> None:
    if path.exists():
        lines.append(f"![{alt}]({os.path.relpath(path, page_dir)})\n")
    else:
        lines.append(f"*(figure {path.name} missing: run `dvc repro`)*\n")


def rf_section(summary: dict, figures: Path, page_dir: Path, profile: str) -> list[str]:
    lines = [
        "## Random features: double descent (`double_descent_rf`)\n",
        "**Question.** Does the test error of random-features regression peak at the "
        "interpolation threshold d = n and fall again toward the infinite-width kernel "
        "limit, as the precise asymptotics of Mei & Montanari (2019) predict?\n",
    ]
    _figure(lines, page_dir, figures / "rf_double_descent_sphere_linear.png",
            "random-features double descent on sphere_linear")  # fmt: skip
    _figure(lines, page_dir, figures / "rf_double_descent_digits.png",
            "random-features double descent on digits")  # fmt: skip
    _figure(lines, page_dir, figures / "gd_early_stopping.png", "early-stopped gradient descent")
    _figure(lines, page_dir, figures / "gd_min_norm.png", "gradient descent reaches min-norm")
    lines += [
        "| data set | λ | error | peak at d/n | peak height | error at largest d/n "
        "| kernel limit (d = ∞) | max deviation from theory (d/n ∉ [0.8, 1.25]) | seeds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key, c in summary["curves"].items():
        name, _, ridge = key.rpartition("_ridge")
        lines.append(
            f"| {name} | {ridge} | {c['metric']} | {fmt(c['peak_d_over_n'])} "
            f"| {fmt(c['peak_height'])} | {fmt(c['largest_width_error'])} "
            f"| {fmt(c['kernel_limit_error'])} "
            f"| {fmt(c.get('theory_max_relative_deviation'))} | {fmt(c['seeds'])} |"
        )
    ridgeless = summary["curves"].get("sphere_linear_ridge0", {})
    lines += [
        "",
        "Gradient descent from β₀ = 0 and the minimum-norm interpolator, over every "
        "interpolating ridgeless job on sphere_linear: largest KKT primal feasibility "
        f"‖Hβ − y‖/‖y‖ = {fmt(ridgeless.get('max_kkt_feasibility'))}, stationarity "
        f"‖β − Hᵀc‖/‖β‖ = {fmt(ridgeless.get('max_kkt_stationarity'))}, distance of GD at "
        f"t = ∞ to the min-norm solution {fmt(ridgeless.get('max_gd_limit_distance'))}, "
        "explicit iteration against its closed form "
        f"{fmt(ridgeless.get('max_gd_explicit_vs_closed_form'))}.",
        "",
        jobs_line(summary),
        "",
        "**Reproduce.** `python pipelines/random_features.py -m study=double_descent_rf "
        f"profile={profile}` (and `study=double_descent_rf_digits`), then "
        "`python pipelines/aggregate.py study=double_descent_rf`; configs "
        "`conf/study/double_descent_rf*.yaml`, `conf/model/random_features.yaml`, "
        f"`conf/data/sphere_linear.yaml`, `conf/profile/{profile}.yaml`.",
        "",
        "**Against the paper.** Mei & Montanari (2019) predict, for ψ₂ = n/D fixed, a ridgeless "
        "risk that diverges at ψ₁ = ψ₂ and then decreases monotonically in ψ₁ = d/D toward the "
        "kernel limit, with a ridge λ > 0 damping the peak; the table gives where the simulated "
        "peak sits and the largest relative gap between the simulated means and their formula "
        "away from the threshold (finite D = dim shrinks the gap as 1/D).",
        "",
    ]
    return lines


def ntk_section(summary: dict, figures: Path, page_dir: Path, profile: str) -> list[str]:
    lines = [
        "## NNGP and NTK: convergence to the infinite-width limit (`ntk_convergence`)\n",
        "**Question.** How far are the empirical NTK and NNGP of a finite network from their "
        "infinite-width limits, and does the distance shrink like width^−1/2?\n",
    ]
    _figure(lines, page_dir, figures / "kernel_convergence.png", "kernel convergence")
    _figure(lines, page_dir, figures / "ntk_circle.png", "NTK on the circle")
    lines += [
        "Fitted slope of log ‖K̂ − K‖_F/‖K‖_F against log width (pooled over seeds, 95% "
        "interval), and the mean ± sd of the per-seed slopes:",
        "",
        "| kernel | depth | activation | slope | 95% interval | per-seed slope | points |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, s in summary["slopes"].items():
        kernel, depth, activation = key.rsplit("_", 2)
        lines.append(
            f"| {kernel} | {depth.removeprefix('depth')} | {activation} | {fmt(s['slope'])} "
            f"| [{fmt(s['ci_low'])}, {fmt(s['ci_high'])}] "
            f"| {fmt(s['per_seed_slope_mean'])} ± {fmt(s['per_seed_slope_std'])} | {s['n']} |"
        )
    circle = summary.get("circle", {})
    lines += ["", jobs_line(summary), ""]
    if circle:
        lines += [
            "NTK on the unit circle at initialization (Jacot et al. 2018, Fig. 1): standard "
            "deviation over seeds relative to the limit, averaged over γ: "
            + ", ".join(
                f"width {w}: {fmt(v['relative_sd'])} ({v['seeds']} seeds)"
                for w, v in circle["widths"].items()
            )
            + f"; ratio {fmt(circle.get('sd_ratio'))} against √(width ratio) = "
            f"{fmt(circle.get('sqrt_width_ratio'))}.",
            "",
        ]
    lines += [
        "**Reproduce.** `python pipelines/ntk_convergence.py -m study=ntk_convergence "
        f"profile={profile}`, `python pipelines/ntk_circle.py study=ntk_convergence`, then "
        "`python pipelines/aggregate.py study=ntk_convergence`; configs "
        "`conf/study/ntk_convergence.yaml`, `conf/model/mlp.yaml`, "
        f"`conf/profile/{profile}.yaml`.",
        "",
        "**Against the papers.** Jacot et al. (2018) show the NTK at initialization "
        "concentrating on a deterministic limit as width grows (their Fig. 1: widths 500 and "
        "10 000); Lee et al. (2019) bound the distance by O(width^−1/2). The slopes above "
        "measure that rate for the NTK and the NNGP; the Monte-Carlo output covariance over "
        "a fixed number of networks instead plateaus at its O(M^−1/2) sampling error.",
        "",
    ]
    return lines


def mlp_section(summary: dict, figures: Path, page_dir: Path, profile: str) -> list[str]:
    s = summary
    lines = [
        "## MLP: model-wise double descent (`double_descent_mlp`)\n",
        "**Question.** Does the test error of a trained network peak where its parameter "
        "count P reaches the interpolation threshold n·C, and fall again beyond it?\n",
    ]
    _figure(lines, page_dir, figures / "mlp_double_descent.png", "MLP double descent")
    lines += [
        "| | width | P/(n·C) | test error (mean over seeds) | train error |",
        "|---|---|---|---|---|",
        f"| best below the peak | {fmt(s.get('best_below_peak_width'))} "
        f"| {fmt(s.get('best_below_peak_params_over_threshold'))} "
        f"| {fmt(s.get('best_below_peak_test_error'))} | |",
        f"| peak | {fmt(s.get('peak_width'))} | {fmt(s.get('peak_params_over_threshold'))} "
        f"| {fmt(s.get('peak_test_error'))} ± {fmt(s.get('peak_test_error_std'))} "
        f"| {fmt(s.get('peak_train_error'))} |",
        f"| largest width | {fmt(s.get('largest_width'))} "
        f"| {fmt(s.get('largest_params_over_threshold'))} "
        f"| {fmt(s.get('largest_width_test_error'))} | {fmt(s.get('largest_width_train_error'))} |",
        "",
        f"Threshold n·C = {fmt(s.get('threshold'))}; at most {fmt(s.get('max_steps'))} "
        f"full-batch Adam steps, stopping once the training loss is below "
        f"{fmt(s.get('stop_loss'))}; {fmt(s.get('seeds'))} seeds. The peak is the highest "
        "mean test error within P/(n·C) ∈ [1/3, 3]; above both the best smaller network and "
        "the largest one by more than two standard errors of the difference: "
        f"**{ {True: 'yes', False: 'no', None: 'undecided (one seed)'}[s.get('shows_peak')] }**. "
        "The peak's height depends on the step budget: networks near the threshold fit the "
        "noisy labels slowly.",
        "",
        jobs_line(s),
        "",
        "**Reproduce.** `python pipelines/double_descent_mlp.py -m study=double_descent_mlp "
        f"profile={profile}`, then `python pipelines/aggregate.py study=double_descent_mlp`; "
        "configs `conf/study/double_descent_mlp.yaml`, `conf/train/adam.yaml`, "
        f"`conf/data/digits_noisy.yaml`, `conf/profile/{profile}.yaml`.",
        "",
        "**Against the paper.** Belkin et al. (2019, Fig. 4) train one-hidden-layer networks on "
        "MNIST (n = 4000, squared loss on one-hot labels) and see the test error peak at "
        "P ≈ n·C and fall beyond it; here the digits set with 20% of its training labels "
        "flipped plays MNIST's part at laptop scale, and the peak sits where the training "
        "error first reaches 0.",
        "",
    ]
    return lines


LAZY_ROWS = (
    ("weight change, first layer", "first_layer"),
    ("weight change, hidden layer", "hidden_layers"),
    ("weight change, last layer", "last_layer"),
    ("all parameters ‖θ_T − θ₀‖/‖θ₀‖", "param_change"),
    ("NTK change ‖Θ̂_T − Θ̂₀‖/‖Θ̂₀‖", "ntk_change"),
    ("trained vs linearized (test)", "linearization_gap"),
    ("trained vs ∞-width NTK prediction (test)", "limit_gap"),
)


def lazy_section(summary: dict, figures: Path, page_dir: Path, profile: str) -> list[str]:
    lines = [
        "## Lazy training: the NTK regime (`lazy_training`)\n",
        "**Question.** As an NTK-parameterized network gets wider, do its weights and its NTK "
        "move less during training, and does it agree with its linearization at init?\n",
    ]
    _figure(lines, page_dir, figures / "lazy_training.png", "lazy training")
    lines += [
        "Fitted slope of log(quantity) against log(width), pooled over seeds, with its 95% "
        "interval; Lee et al. (2019) bound every row by width^−1/2, and their Fig. 1 finds "
        "the first and last layers ∝ width^−1/2, hidden-to-hidden weights and the NTK change "
        "∝ width^−1:",
        "",
        "| quantity | depth | slope | 95% interval | Lee et al. 2019 | points |",
        "|---|---|---|---|---|---|",
    ]
    for depth_key, fits in summary["slopes"].items():
        depth = depth_key.removeprefix("depth")
        for name, key in LAZY_ROWS:
            chosen = [(f"{name} (layer {m.rsplit('_', 1)[-1]})", f)
                      for m, f in fits.items() if f.get("role") == key]  # fmt: skip
            if key in fits:
                chosen.append((name, fits[key]))
            for label, fit in chosen:
                lines.append(
                    f"| {label} | {depth} | {fmt(fit['slope'])} | [{fmt(fit['ci_low'])}, "
                    f"{fmt(fit['ci_high'])}] | {fmt(fit.get('lee_2019_slope'))} | {fit['n']} |"
                )
    lines += [
        "",
        jobs_line(summary),
        "",
        "**Reproduce.** `python pipelines/lazy_training.py -m study=lazy_training "
        f"profile={profile}`, then `python pipelines/aggregate.py study=lazy_training`; configs "
        "`conf/study/lazy_training.yaml`, `conf/train/gd.yaml`, `conf/data/teacher.yaml`, "
        f"`conf/profile/{profile}.yaml`.",
        "",
        "**Against the paper.** Lee et al. (2019, Theorem 2.1) prove that under gradient "
        "descent with a learning rate below 2/λ_max (here η·λ_max(Θ)/n = 1) the weights, the "
        "NTK and the gap to the linearized network all shrink as O(width^−1/2); the slopes "
        "above measure those rates, the gap to the infinite-width prediction included.",
        "",
    ]
    return lines


SECTIONS = {
    "double_descent_rf": rf_section,
    "ntk_convergence": ntk_section,
    "double_descent_mlp": mlp_section,
    "lazy_training": lazy_section,
}


def render_report(results_dir: Path, page: Path, profile: str) -> str:
    lines = [
        "# widthlab — study report",
        "",
        "Generated by `python pipelines/report.py` (DVC stage `report`) from "
        f"`{results_dir}/<study>/summary.json`; do not edit by hand. Profile: `{profile}`.",
        "",
    ]
    for study, section in SECTIONS.items():
        path = results_dir / study / "summary.json"
        if not path.exists():
            lines += [f"## {study}", "", "*(no summary yet: run `dvc repro`)*", ""]
            continue
        summary = json.loads(path.read_text())
        lines += section(summary, results_dir / study / "figures", page.parent, profile)
    return "\n".join(lines) + "\n"


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
@exit_on_config_error
def main(cfg: DictConfig) -> None:
    validate_config(cfg, "report")  # every group it reads, before any work
    page = Path(cfg.paths.reports_dir) / "report.md"
    profile = str(OmegaConf.select(cfg, "profile.name"))
    text = render_report(Path(cfg.paths.results_dir), page, profile)
    atomic_write_bytes(page, text.encode())
    print(f"wrote {page}")


if __name__ == "__main__":
    main()
