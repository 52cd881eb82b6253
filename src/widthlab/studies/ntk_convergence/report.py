"""`ntk_convergence`'s report section: slopes with verdicts, the circle, the Monte-Carlo NNGP."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from widthlab.runtime.report import Page, interval, num, slope_text, tested, verdict


def section(summary: Mapping[str, Any], page: Page) -> list[str]:
    """The study's section of the report."""
    ref = summary["reference_slope"]
    lines = page.figures(summary, ["kernel_convergence"])
    lines += [
        f"Slope of log ‖K̂ − K‖_F/‖K‖_F against log width, pooled over seeds, with its 95% "
        "interval over seeds (each seed's own slope one measurement: a seed's networks share "
        f"their draws across widths, kernels and depths), against Lee et al. (2019)'s "
        f"{num(ref)}; the 12 slopes are one family (p → Holm-adjusted p); the OLS interval "
        "that counts every point as independent is shown for comparison:",
        "",
        f"| kernel | depth | activation | slope [95% interval, seeds] | OLS interval | seeds "
        f"| p → Holm | vs {num(ref)} |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, s in summary["slopes"].items():
        kernel, depth, activation = key.rsplit("_", 2)
        ols = interval(s.get("ols_ci_low"), s.get("ols_ci_high"), 3)
        lines.append(
            f"| {kernel} | {depth.removeprefix('depth')} | {activation} | {slope_text(s)} "
            f"| {ols} | {s.get('seeds', '–')} | {tested(s)} | {verdict(s.get('verdict'))} |"
        )
    lines.append("")
    lines += circle_lines(summary.get("circle") or {}, summary, page)
    lines += mc_lines(summary.get("mc_nngp") or {}, summary, page)
    lines += [
        "**Against the papers.** Jacot et al. (2018) show the NTK at initialization "
        "concentrating on a deterministic limit as width grows (their Fig. 1: widths 500 and "
        "10 000); Lee et al. (2019) bound the distance by O(width^−1/2), the rate of the "
        "central limit theorem, which the slopes above test kernel by kernel.",
        "",
    ]
    return lines


def circle_lines(circle: Mapping[str, Any], summary: Mapping[str, Any], page: Page) -> list[str]:
    """The report's circle part: the spreads' ratio against √(width ratio)."""
    if not circle:
        return []
    lines = page.figures(summary, ["ntk_circle"])
    parts = [
        f"width {w}: {num(v['relative_sd'], 2)} {interval(v['ci_low'], v['ci_high'])} "
        f"({v['seeds']} seeds)"
        for w, v in circle["widths"].items()
    ]
    text = (
        "Spread of Θ̂(x₀, x(γ)) over seeds relative to the limit, averaged over γ, with "
        "95% bootstrap intervals: " + "; ".join(parts) + "."
    )
    if circle.get("sd_ratio") is not None:
        contains = "contains" if circle["verdict"] == "agrees" else "does **not** contain"
        text += (
            f" Their ratio {num(circle['sd_ratio'], 3)} "
            f"{interval(circle['ci_low'], circle['ci_high'])} {contains} √(width ratio) = "
            f"√({circle['wide']}/{circle['narrow']}) = {num(circle['sqrt_width_ratio'], 3)}, "
            "the O(width^−1/2) prediction: "
            f"{verdict(circle['verdict'])}."
        )
    return [*lines, text, ""]


def mc_lines(mc: Mapping[str, Any], summary: Mapping[str, Any], page: Page) -> list[str]:
    """The report's Monte-Carlo NNGP part."""
    if not mc:
        return []
    settings = summary.get("settings", {}).get("mc", {})
    factor, ref = settings.get("resolved_factor"), settings.get("reference_slope")
    lines = page.figures(summary, ["mc_nngp"])
    lines += [
        "The Monte-Carlo NNGP (mean over M networks of the readout estimator) estimates the "
        "*finite-width* NNGP, which equals the limit exactly at depth 1 and differs by "
        "O(1/width) deeper. Its distance d to the limit is that bias plus Monte-Carlo noise "
        "of expected size ‖SE‖/‖K‖ (the floor); the bias counts as resolved where "
        f"d > {num(factor)} × floor, and its slope over those widths is compared with "
        f"{num(ref)}:",
        "",
        "| depth | activation | networks M | widths | bias resolved at | bias slope [95% interval] "
        "| verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, e in mc.items():
        depth, activation = key.removeprefix("depth").split("_", 1)
        fit = e.get("bias_slope")
        shown = (
            slope_text(fit)
            if fit
            else ("none resolved: no bias, as exact" if depth == "1" else "too few resolved widths")
        )
        word = e.get("verdict") or (fit or {}).get("verdict")
        lines.append(
            f"| {depth} | {activation} | {e['networks']} | {', '.join(map(str, e['widths']))} "
            f"| {', '.join(map(str, e['resolved_widths'])) or '–'} | {shown} | {verdict(word)} |"
        )
    return [*lines, ""]
