"""`mnist1d_double_descent`'s report section."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from widthlab.runtime.report import Page, num, p_value, pm, tested, verdict


def _widths(bounds: list | None) -> str:
    return f"[{num(bounds[0])}, {num(bounds[1])}]" if bounds else "– (fewer than 2 seeds)"


def _ours_error(c: Mapping[str, Any]) -> str:
    if c.get("ours") is None:
        return "–"
    where = f" (h = {c['width']})" if c.get("width") is not None else ""
    return pm(c["ours"], c.get("se")) + where


def section(summary: Mapping[str, Any], page: Page) -> list[str]:
    """The study's section of the report."""
    s = summary
    settings = s.get("settings", {})
    published = settings.get("published", {})
    pub = s.get("published", {})
    lines = page.figures(s)
    if not s.get("peak"):
        return [*lines, "*(no finished job, or no width in the peak band: no curve)*", ""]
    comparisons = s.get("comparisons", {})
    location = comparisons.get("peak_width", {})
    height = comparisons.get("peak_test_error", {})
    last = comparisons.get("largest_width_test_error", {})
    shows = comparisons.get("shows_peak", {})
    pub_peak = pub.get("peak") or {}
    z = "" if height.get("z") is None else f"z = {num(height['z'], 2)}"
    z_last = "" if last.get("z") is None else f"z = {num(last['z'], 2)}"
    band = settings.get("peak_band", [None, None])
    sides = shows.get("sides") or {}
    shown_by = (
        "p = "
        + p_value(shows.get("p"))
        + (
            f"; power {num(shows['power'], 2)} against the published height "
            f"{num(shows.get('effect'), 2)}"
            if shows.get("power") is not None
            else ""
        )
    )
    redrawn, classes = published.get("label_redrawn", 0.0), published.get("classes", 10)
    seeds = s["peak"]["seeds"]
    lines += [
        f"Against the published curve ({published.get('source', 'source not recorded')}); "
        f"ours: mean over {seeds} seeds ± SE:",
        "",
        "| | published | ours | uncertainty | verdict |",
        "|---|---|---|---|---|",
        f"| where the peak sits (width h) | {location.get('published', '–')} "
        f"(P/n = {num(pub_peak.get('params_over_samples'), 3)}) | {location.get('ours')} "
        f"(P/n = {num(s['peak']['params_over_samples'], 3)}) "
        f"| 95% bootstrap interval {_widths(location.get('interval'))} "
        f"| {verdict(location.get('verdict'))} |",
        f"| test error at the peak | {num(height.get('published'), 4)} | {_ours_error(height)} "
        f"| {z}, p {tested(height)} | {verdict(height.get('verdict'))} |",
        f"| test error at the largest width | {num(last.get('published'), 4)} "
        f"| {_ours_error(last)} | {z_last}, p {tested(last)} | {verdict(last.get('verdict'))} |",
        f"| a peak that shows | yes (the published figure) | {num(shows.get('ours'))} "
        f"| {shown_by} | {verdict(shows.get('verdict'))} |",
        "",
        f"Best smaller width: h = {s['best_below_peak']['width']}, test error "
        f"{pm(s['best_below_peak']['test_error'], s['best_below_peak'].get('test_error_se'))} "
        f"(published: h = {(pub.get('best_below_peak') or {}).get('width')}, "
        f"{num((pub.get('best_below_peak') or {}).get('test_error'), 4)}); best larger width: "
        f"h = {(s.get('best_above_peak') or {}).get('width', '–')} (published: h = "
        f"{(pub.get('best_above_peak') or {}).get('width')}). "
        + "".join(
            f"Peak above the best {side} width by {pm(v['difference'], v['se'])} "
            f"(Welch t, {num(v['dof'], 2)} degrees of freedom). "
            for side, v in (("smaller", sides.get("left")), ("larger", sides.get("right")))
            if v
        )
        + "First width that fits "
        f"every noisy training label (zero train error on average): "
        f"{s.get('first_interpolating_width') or 'none in the sweep'} (published: "
        f"{pub.get('first_interpolating_width')}).",
        "",
        "**Setting**, ours against the notebook's:",
        "",
        "| | published | ours |",
        "|---|---|---|",
        f"| training / test signals | {published.get('n_train')} / {published.get('n_test')} "
        f"| {s.get('n_train')} / {s.get('n_test')} (the package's default split) |",
        f"| wrong training labels | {num(100 * redrawn, 3)}% redrawn uniformly over "
        f"{classes} classes: {num(100 * redrawn * (classes - 1) / classes, 3)}% "
        f"| {num(100 * s['label_noise'], 3)}% flipped to another class |",
        f"| network | {published.get('depth')} hidden ReLU layers of width h "
        f"| {s.get('depth')} hidden ReLU layers of width h |",
        "| initialization | PyTorch's default: weights and biases U(±1/√fan_in) "
        "| weights N(0, 1/(3·fan_in)), the same variance; biases 0 |",
        f"| loss | {published.get('loss')} | {s.get('loss')} |",
        f"| optimizer | {published.get('optimizer')}, lr {num(published.get('lr'))}, momentum "
        f"{num(published.get('momentum'))} | {s.get('optimizer')}, lr {num(s.get('lr'))}, "
        f"momentum {num(s.get('momentum'))} |",
        f"| minibatch, epochs | {published.get('batch_size')}, {published.get('epochs')} "
        f"| {s.get('batch_size')}, {num(s.get('epochs'))} ({s.get('max_steps')} steps) |",
        "",
        f"**Rules.** The candidate peak is the width, among those with P/n in "
        f"[{num(band[0], 3)}, {num(band[1], 3)}], whose mean test error rises most above the "
        "best smaller width (the same rule picks the published peak); it shows when interior "
        "and above the best width on each side (a one-sided Welch t-test each side at 5%); "
        "where it does not, the rule's power against the published peak's height decides "
        "between *differs* (power ≥ 80%) and *inconclusive*. A test error is compared with "
        "the published single run by z = (ours − "
        "published)/σ with σ² = SE² + sd² (one more run) + the binomial variance of each test "
        "set; the variance of drawing the training set and its flipped labels is left out. "
        "The peak's place agrees when the published width lies in the 95% interval of ours "
        f"({settings.get('bootstrap')} bootstrap resamples of the seeds).",
        "",
    ]
    return lines
