"""`double_descent_mlp`'s report section."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from widthlab.runtime.report import Page, num, p_value, pm, verdict


def _row(label: str, p: Mapping[str, Any] | None) -> str:
    if not p:
        return f"| {label} | – | – | – | – |"
    return (
        f"| {label} | {p['width']} | {num(p['params_over_threshold'], 3)} "
        f"| {pm(p['test_error'], p.get('test_error_se'))} "
        f"| {pm(p.get('train_error'), p.get('train_error_se'))} |"
    )


def section(summary: Mapping[str, Any], page: Page) -> list[str]:
    """The study's section of the report."""
    s = summary
    settings = s.get("settings", {})
    band = settings.get("peak_band", [None, None])
    lines = page.figures(s, ["mlp_double_descent"])
    if not s.get("peak"):
        return [*lines, "*(no finished job: no curve)*", ""]
    where = "" if s.get("interior_peak") else " (at the edge of the sweep: no interior peak)"
    lines += [
        f"Test error against the clean test labels and train error against the noisy training "
        f"labels, mean over {s['peak']['seeds']} seeds ± SE (standard error of the mean):",
        "",
        "| | width | P/(n·C) | test error | train error |",
        "|---|---|---|---|---|",
        _row("best below the peak", s.get("best_below_peak")),
        _row("peak" + where, s.get("peak")),
        _row("best above the peak", s.get("best_above_peak")),
        _row("largest width", s.get("largest_width")),
        "",
        f"Data `{s.get('data')}` with {num(100 * s['label_noise'], 3)}% of the training labels "
        f"flipped; threshold n·C = {s.get('threshold')}; {s.get('loss')} loss, at most "
        f"{s.get('max_steps')} full-batch {s.get('optimizer')} steps (lr {num(s.get('lr'))}), "
        f"stopping once the training loss is below {num(s.get('stop_loss'))}. The candidate "
        f"peak is, within P/(n·C) ∈ [{num(band[0], 3)}, {num(band[1], 3)}], the width whose "
        "mean test error rises most above the best smaller network; it shows when it is "
        "interior and above the best network on each side of it (a one-sided Welch t-test "
        f"each side at 5%): {peak_words(s)}. The peak's height depends on the step budget: "
        "networks near the threshold fit the noisy labels slowly.",
        "",
        *other_loss_lines(s.get("other_losses") or {}, page, s),
        "**Against the paper.** Belkin et al. (2019, Fig. 4) train one-hidden-layer networks on "
        "MNIST (n = 4000, squared loss on one-hot labels) and see the test error peak at "
        "P ≈ n·C and fall beyond it; here a digits set with flipped training labels plays "
        "MNIST's part at laptop scale.",
        "",
    ]
    return lines


def peak_words(e: Mapping[str, Any]) -> str:
    """The peak rule's outcome with its p-value and, where the peak did not show, its power
    against the effect it looks for."""
    word = verdict(e.get("verdict"))
    shown = {"agrees": "the peak shows", "differs": "no peak"}.get(e.get("verdict"), "")
    detail = f"p = {p_value(e.get('p'))}"
    if e.get("verdict") != "agrees" and e.get("power") is not None:
        detail += f"; power {num(e['power'], 2)} against a peak {num(e.get('peak_effect'))} high"
    return f"{shown + ', ' if shown else ''}{word} ({detail})"


def other_loss_lines(
    others: Mapping[str, Any], page: Page, summary: Mapping[str, Any]
) -> list[str]:
    """The same table and peak rule for each other training loss (the cross-entropy sweep)."""
    lines: list[str] = []
    for loss, e in others.items():
        if not e.get("peak"):
            continue
        where = "" if e.get("interior_peak") else " (at the edge of the sweep: no interior peak)"
        lines += [
            *page.figures(summary, ["mlp_losses"]),
            f"The same networks trained on the {loss.replace('_', '-')} loss ({e['max_steps']} "
            f"{e.get('optimizer')} steps at most, stopping below {num(e.get('stop_loss'))}), "
            f"mean over {e['peak']['seeds']} seeds ± SE:",
            "",
            "| | width | P/(n·C) | test error | train error |",
            "|---|---|---|---|---|",
            _row("best below the peak", e.get("best_below_peak")),
            _row("peak" + where, e.get("peak")),
            _row("best above the peak", e.get("best_above_peak")),
            _row("largest width", e.get("largest_width")),
            "",
            f"The same rule, within this curve: {peak_words(e)}. "
            "Nakkiran et al. (2019) report model-wise double descent for networks trained on "
            "the cross-entropy too, made stronger by label noise.",
            "",
        ]
    return lines
