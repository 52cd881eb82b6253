"""`feature_learning`'s report section: coordinate check, feature movement, learning-rate
transfer, each with its verdicts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from widthlab.runtime.report import Page, interval, minus, num, slope_text, tested, verdict

LABELS = {"standard": "standard", "ntk": "NTK", "mean_field": "mean-field", "mup": "μP"}


def _name(quantity: str) -> str:
    """A quantity as a Markdown table cell (its bars escaped)."""
    if quantity == "output_change":
        return "mean \\|f_t − f_0\\|"
    if quantity == "output":
        return "mean \\|f_t\\| (not judged)"
    if quantity.startswith("feature_movement_layer_"):
        return f"features, hidden layer {quantity.rsplit('_', 1)[-1]}"
    if quantity == "ntk_change":
        return "NTK change"
    return f"mean \\|{quantity}\\|"


def _steps(value) -> str:
    return "–" if value is None else minus(f"{int(value):+d}")


def _exponent(value) -> str:
    """An integer log₂ rate with a typographic minus."""
    return "–" if value is None else minus(str(int(value)))


def section(summary: Mapping[str, Any], page: Page) -> list[str]:
    """The study's section of the report."""
    settings = summary.get("settings", {})
    tolerance = num(settings.get("flat_tolerance"))
    lines = [
        "Four parameterizations of the same ReLU network (`widthlab.models.mlp`: the init "
        "scale, forward multiplier and learning-rate scale of every layer as a function of "
        "width; μP equals standard and mean-field equals NTK at the base width "
        f"n₀ = {num(summary.get('base_width'))}), trained on `{summary.get('data', '?')}`. A "
        "quantity is *flat* in width when the 95% interval of the slope of its logarithm on "
        f"log width lies within ±{tolerance}, *not flat* when it lies wholly outside, and "
        "*undecided* when it straddles the edge.",
        "",
    ]
    lines += coord_lines(summary, page, tolerance)
    lines += movement_lines(summary, page, tolerance)
    lines += transfer_lines(summary, page)
    lines += [
        "**Against the papers.** Yang & Hu (2021) classify abc-parameterizations: in the NTK "
        "parameterization features stop moving as width grows (the kernel limit), in μP (and "
        "its mean-field form) they keep moving by Θ(1), and standard parameterization at a "
        "width-independent learning rate has updates that grow with width. Yang et al. (2022, "
        "Fig. 1 and 3) find the best learning rate stays put across widths under μP and drifts "
        "under standard parameterization, and wider μP networks train better at a fixed rate. "
        "The verdicts above test each claim with the rule stated beside it.",
        "",
    ]
    return lines


def coord_lines(summary: Mapping[str, Any], page: Page, tolerance: str) -> list[str]:
    """The report's coordinate-check part."""
    coord = summary.get("coord") or {}
    if not coord:
        return []
    lines = page.figures(summary, ["coordinate_check"])
    step = next(iter(coord.values())).get("step")
    lines += [
        f"**(a) Coordinate check** after {step} steps: slope [95% interval] of each mean "
        "|coordinate| against width. Flat parameterizations must keep every hidden layer and "
        "the output's change flat; standard parameterization must not:",
        "",
        "| parameterization | " + " | ".join(["quantity", "slope [95% interval]", "flat"]) + " |",
        "|---|---|---|---|",
    ]
    for p, entry in coord.items():
        for quantity, fit in entry["fits"].items():
            shown = fit.get("flat") or "–"
            lines.append(
                f"| {LABELS.get(p, p)} | {_name(quantity)} | {slope_text(fit)} | {shown} |"
            )
    steps = sorted({int(k) for e in coord.values() for k in e.get("by_step", {})})
    lines += [
        "",
        "| parameterization | prediction | largest judged \\|slope\\| | verdict "
        + "".join(f"| step {s} " for s in steps)
        + "|",
        "|---|---|---|---|" + "---|" * len(steps),
    ]
    for p, entry in coord.items():
        by_step = entry.get("by_step", {})
        cells = "".join(f"| {verdict((by_step.get(str(s)) or {}).get('verdict'))} " for s in steps)
        lines.append(
            f"| {LABELS.get(p, p)} | {entry.get('prediction') or '–'} "
            f"| {num(entry.get('max_abs_slope'), 2)} | {verdict(entry.get('verdict'))} "
            f"{cells}|"
        )
    lines += [
        "",
        f"The verdict is the one at step {step}; the step columns show the same rule at "
        "every step of the check, so a verdict that holds at one step only shows.",
    ]
    return [*lines, ""]


def movement_lines(summary: Mapping[str, Any], page: Page, tolerance: str) -> list[str]:
    """The report's feature-movement and NTK-change part."""
    movement = summary.get("movement") or {}
    if not movement:
        return []
    lines = page.figures(summary, ["feature_movement"])
    lines += [
        "**(b) Feature movement and NTK change** at the end of training, each "
        "parameterization at one learning rate 2^e for every width; slope [95% interval] of "
        "log(quantity) on log width against the reference exponent (a t-test over seeds, the "
        "exponents one family: p → Holm-adjusted p) or flatness (the interval within "
        f"±{tolerance}):",
        "",
        "| parameterization | e | quantity | slope [95% interval] | reference | p → Holm "
        "| verdict | seeds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for p, entry in movement.items():
        for quantity, fit in entry["fits"].items():
            ref = fit.get("reference")
            shown = num(ref) if ref is not None else fit.get("prediction") or "–"
            lines.append(
                f"| {LABELS.get(p, p)} | {_exponent(entry.get('log2_lr'))} | {_name(quantity)} "
                f"| {slope_text(fit)} | {shown} | {tested(fit)} | {verdict(fit.get('verdict'))} "
                f"| {fit.get('seeds', '–')} |"
            )
    return [*lines, ""]


def transfer_lines(summary: Mapping[str, Any], page: Page) -> list[str]:
    """The report's learning-rate-transfer part."""
    transfer = summary.get("transfer") or {}
    if not transfer:
        return []
    settings = summary.get("settings", {}).get("transfer", {})
    lines = page.figures(summary, ["learning_rate_transfer"])
    lines += [
        "**(c) Learning-rate transfer.** Best log₂ learning rate per width (the grid minimum "
        "of the mean log training loss over seeds, refined by a parabola through its "
        "neighbours, 95% bootstrap interval over seeds):",
        "",
        "| parameterization | grid (log₂) | " + "best log₂ rate per width | shift narrow → wide "
        "(grid steps) | refined shift [95% interval] | range over widths | prediction | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for p, entry in transfer.items():
        parts = []
        bests = (entry.get("best") or {}).items()
        for width, best in sorted(bests, key=lambda item: int(item[0])):
            if best is None:
                parts.append(f"{width}: –")
                continue
            edge = "" if best.get("interior") else " (grid edge)"
            parts.append(
                f"{width}: {num(best['log2_lr'], 3)} {interval(best['ci_low'], best['ci_high'])}"
                f"{edge}"
            )
        shift = entry.get("shift_steps")
        refined = entry.get("refined_shift")
        ci = entry.get("refined_shift_ci") or [None, None]
        note = "" if entry.get("interior", True) else " (no interior optimum)"
        lines.append(
            f"| {LABELS.get(p, p)} | {_exponent(entry['grid'][0])} … "
            f"{_exponent(entry['grid'][1])} | " + "; ".join(parts) + f" | {_steps(shift)} over "
            f"{num(entry.get('width_ratio'))}× | {num(refined, 3)} {interval(*ci)} "
            f"| {num(entry.get('range_steps'))} | {entry.get('prediction') or '–'}{note} "
            f"| {verdict(entry.get('verdict'))} |"
        )
    lines += [
        "",
        f"*stays* agrees when the best grid rate of the widest width is within "
        f"{num(settings.get('max_shift'))} grid step(s) of the narrowest's; *moves* when the "
        "refined shift's 95% interval excludes 0.",
        "",
    ]
    wider = {p: e["wider_is_better"] for p, e in transfer.items() if e.get("wider_is_better")}
    if wider:
        lines += [
            "**Wider is better at a fixed learning rate**: at each rate where every seed of "
            "the narrowest and the widest width finished, a Welch t-test of their mean log "
            "training losses each way, t = (narrow − wide)/SE; the rates and both directions "
            "are one family (Holm). *Agrees* when the widest is significantly better at one "
            "rate at least and significantly worse at none; *differs* when it is "
            "significantly worse somewhere; *inconclusive* when no rate tells them apart:",
            "",
            "| parameterization | rates compared | widest better | narrowest better "
            "| t at each rate (log₂ rate: t) | verdict |",
            "|---|---|---|---|---|---|",
        ]
        for p, w in wider.items():
            ts = ", ".join(f"{_exponent(r['log2_lr'])}: {num(r.get('t'), 2)}" for r in w["rates"])
            lines.append(
                f"| {LABELS.get(p, p)} | {w['rates_compared']} | {w['rates_wider_better']} "
                f"| {w.get('rates_narrower_better', '–')} | {ts} | {verdict(w.get('verdict'))} |"
            )
        lines.append("")
    return lines
