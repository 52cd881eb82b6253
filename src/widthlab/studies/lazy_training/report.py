"""`lazy_training`'s report section."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from widthlab.runtime.report import Page, minus, num, p_value, pm, slope_text, tested, verdict

ROWS = (
    ("weight change, first layer", "first_layer"),
    ("weight change, hidden layer", "hidden_layers"),
    ("weight change, last layer", "last_layer"),
    ("all parameters ‖θ_T − θ₀‖/‖θ₀‖", "param_change"),
    ("NTK change ‖Θ̂_T − Θ̂₀‖/‖Θ̂₀‖", "ntk_change"),
    ("trained vs linearized (test)", "linearization_gap"),
    ("trained vs ∞-width NTK prediction (test)", "limit_gap"),
)


def section(summary: Mapping[str, Any], page: Page) -> list[str]:
    """The study's section of the report."""
    lines = page.figures(summary)
    lines += [
        "Slope of log(quantity) against log(width), pooled over seeds, with its 95% interval "
        "over seeds, against Lee et al. (2019): the exponent their Fig. 1 measures (first and "
        "last layers width^−1/2, hidden-to-hidden weights and the NTK change width^−1; a "
        "two-sided t-test), or the O(width^−1/2) bound of their Theorem 2.1 (only a slope "
        "clearly above it contradicts it); the exponents are one family and the bounds "
        "another (p → Holm-adjusted p):",
        "",
        "| quantity | depth | slope [95% interval] | Lee et al. 2019 | p → Holm | verdict "
        "| seeds |",
        "|---|---|---|---|---|---|---|",
    ]
    for depth_key, fits in summary["slopes"].items():
        depth = depth_key.removeprefix("depth")
        for name, key in ROWS:
            chosen = [
                (f"{name} (layer {m.rsplit('_', 1)[-1]})", f)
                for m, f in fits.items()
                if f.get("role") == key
            ]
            if key in fits:
                chosen.append((name, fits[key]))
            for label, fit in chosen:
                ref = fit.get("reference")
                if fit.get("claim") == "at_most":
                    paper = f"≤ {num(ref)} (bound)"
                else:
                    paper = num(ref) if ref is not None else "–"
                lines.append(
                    f"| {label} | {depth} | {slope_text(fit)} | {paper} | {tested(fit)} "
                    f"| {verdict(fit.get('verdict'))} | {fit.get('seeds', '–')} |"
                )
    lines += ["", *exponent_lines(summary)]
    lines += [
        "",
        "**Against the paper.** Lee et al. (2019, Theorem 2.1) prove that under gradient "
        "descent with a learning rate below 2/λ_max the weights, the NTK and the gap to the "
        "linearized network all shrink at least as fast as width^−1/2; their Fig. 1 finds "
        "the NTK change and the hidden-to-hidden weights closer to width^−1. The verdicts "
        "above test each exponent with the slope's interval.",
        "",
    ]
    return lines


def exponent_lines(summary: Mapping[str, Any]) -> list[str]:
    """The NTK change's exponent: how it runs with width at every depth, and at depth 1 for
    ReLU against the smooth erf (the activation sweep)."""
    lines = []
    runs = summary.get("ntk_change_exponent") or {}
    if runs:
        lines += [
            "**The NTK change's exponent**, whatever its verdict: the local slopes between "
            "successive widths, their trend per doubling of width, and the exponent of a fit "
            "a·n^p(1 + b/n) that takes out the leading finite-width correction (95% intervals "
            "over seeds):",
            "",
        ]
        lines += [
            f"- depth {key.removeprefix('depth')}: {e['verdict']} — {minus(e['reason'])}."
            for key, e in runs.items()
        ]
        lines.append("")
    act = summary.get("activations") or {}
    fits = act.get("fits") or {}
    if fits:
        lines += [
            "**ReLU against erf at depth 1** (the activation sweep: more widths and seeds; the "
            "width^−1 derivations of Dyer & Gur-Ari (2020) and Huang & Yau (2020) assume a "
            "smooth activation, which erf is and ReLU is not):",
            "",
            "| activation | widths | seeds | NTK-change slope [95% interval] | p → Holm "
            "| vs −1 | how it runs with width |",
            "|---|---|---|---|---|---|---|",
        ]
        for activation, fit in fits.items():
            why = (act.get("explained") or {}).get(activation) or {}
            widths = fit.get("widths") or []
            span = f"{widths[0]}–{widths[-1]}" if widths else "–"
            lines.append(
                f"| {activation} | {span} | {fit.get('seeds', '–')} | {slope_text(fit)} "
                f"| {tested(fit)} | {verdict(fit.get('verdict'))} "
                f"| {why.get('verdict', '–')}: {minus(why.get('reason', ''))} |"
            )
        diff = act.get("relu_minus_erf")
        if diff:
            lines += [
                "",
                f"ReLU's exponent minus erf's: {pm(diff['difference'], diff['se'])} (Welch t, "
                f"{num(diff['dof'], 2)} degrees of freedom, p = {p_value(diff['p'])}): "
                f"{minus(diff['finding'])}.",
            ]
        lines.append("")
    return lines
