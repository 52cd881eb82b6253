"""`finite_vs_infinite`'s report section."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from widthlab.runtime.report import Page, num, pm, slope_text, tested, verdict


def _kernel_cells(k: Mapping[str, Any] | None) -> str:
    if not k:
        return "– | –"
    return f"{num(k.get('test_accuracy'), 3)} | {num(k.get('test_loss'), 3)}"


def _ridge(k: Mapping[str, Any] | None) -> str:
    return num((k or {}).get("ridge"))


def section(summary: Mapping[str, Any], page: Page) -> list[str]:
    """The study's section of the report."""
    settings = summary.get("settings", {})
    depths = summary.get("depths", {})
    lines = page.figures(summary)
    if not depths:
        return [*lines, "*(no finished job: nothing to compare)*", ""]
    lines += [
        "Test accuracy and test loss L = (1/2n) Σ‖y − f‖² of the kernel regressions (ridge "
        "chosen on the validation split, relative ridge r: λ = r·tr(k)/n), of the NTK "
        "predictor of the networks' own gradient descent (the asymptote), and of the trained "
        "networks at the largest width (mean ± SE over seeds):",
        "",
        "| depth | NNGP, tuned: acc | loss | r | NTK, tuned: acc | loss | r "
        "| NTK predictor of GD: acc | loss | network (width): acc | loss |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, entry in depths.items():
        kernels = entry.get("kernels", {})
        widest = entry.get("largest_width") or {}
        network = (
            f"{pm(widest.get('test_accuracy_mean'), widest.get('test_accuracy_se'))} "
            f"({widest.get('width')}) | "
            f"{pm(widest.get('test_loss_mean'), widest.get('test_loss_se'))}"
            if widest
            else "– | –"
        )
        lines.append(
            f"| {key.removeprefix('depth')} "
            f"| {_kernel_cells(kernels.get('nngp'))} | {_ridge(kernels.get('nngp'))} "
            f"| {_kernel_cells(kernels.get('ntk'))} | {_ridge(kernels.get('ntk'))} "
            f"| {_kernel_cells(entry.get('asymptote'))} | {network} |"
        )
    bound = settings.get("gap_bound")
    lines += [
        "",
        "How the trained network closes in on its asymptote: slope of log(gap) against "
        "log(width), pooled over seeds, with its 95% interval over seeds, p → Holm-adjusted "
        "p within its family; the first width from which "
        "on every width's mean is within one standard error of the asymptote:",
        "",
        "| depth | function gap ‖f_T − f_∞,T‖/‖f_∞,T‖: slope | p → Holm | verdict (≤ bound) "
        "| test-loss gap: slope | p → Holm | verdict (≤ bound) | first width within 1 SE: loss "
        "| accuracy |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key, entry in depths.items():
        slopes = entry.get("slopes")
        if not slopes:
            continue
        within = entry.get("first_width_within_se", {})
        f, g = slopes["function_gap"], slopes["abs_loss_gap"]
        lines.append(
            f"| {key.removeprefix('depth')} | {slope_text(f)} | {tested(f)} "
            f"| {verdict(f.get('verdict'))} | {slope_text(g)} | {tested(g)} "
            f"| {verdict(g.get('verdict'))} "
            f"| {within.get('test_loss') or 'none'} | {within.get('test_accuracy') or 'none'} |"
        )
    lines += [
        "",
        f"**Setting.** The first {summary.get('n_train')} training points of "
        f"`{summary.get('data')}` (the last {num(100 * settings.get('val_fraction', 0), 3)}% "
        "of them the kernels' validation split), the whole test split. Networks: NTK "
        "parameterization, centered (the output minus its value at initialization, so the "
        "width → ∞ limit is the deterministic NTK predictor), trained by full-batch gradient "
        f"descent on L for {summary.get('steps')} steps with η = "
        f"{num(settings.get('lr_fraction'))}·n/λ_max(Θ).",
        "",
        "**Rules.** Function gap: Lee et al. (2019, Theorem 2.1) bound it by "
        f"O(width^{num(bound)}); *agrees* unless the whole interval lies above {num(bound)} "
        "(one family over the depths, Holm). The test-loss gap |L(f_T) − L(f_∞,T)| inherits "
        "the bound (the loss is Lipschitz in f on bounded outputs): the same rule, its own "
        "family.",
        "",
        '**Against the paper.** Lee et al. (2020, "Finite versus infinite neural networks: an '
        'empirical study") compare trained networks with NNGP and NTK regression and use '
        "centering to remove the initial function; here the same comparison on MNIST-1D, with "
        "the kernels' tuned scores as a reference and the networks' own NTK predictor as the "
        "limit the width should reach.",
        "",
    ]
    return lines
