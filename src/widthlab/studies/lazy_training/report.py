"""`lazy_training`'s report section."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from widthlab.runtime.report import Page, num, slope_text, verdict

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
    lines = page.figures(summary)
    lines += [
        "Slope of log(quantity) against log(width), pooled over seeds, with its 95% interval, "
        "against Lee et al. (2019): the exponent their Fig. 1 measures (first and last "
        "layers width^−1/2, hidden-to-hidden weights and the NTK change width^−1; *agrees* "
        "when the interval contains it), or the O(width^−1/2) bound of their Theorem 2.1 "
        "(*agrees* unless the whole interval lies above it):",
        "",
        "| quantity | depth | slope [95% interval] | Lee et al. 2019 | verdict | points |",
        "|---|---|---|---|---|---|",
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
                paper = (
                    num(ref)
                    if ref is not None
                    else (f"≤ {num(fit['bound'])} (bound)" if fit.get("bound") is not None else "–")
                )
                lines.append(
                    f"| {label} | {depth} | {slope_text(fit)} | {paper} "
                    f"| {verdict(fit.get('verdict'))} | {fit['n']} |"
                )
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
