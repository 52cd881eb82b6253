"""`max_margin`'s report section: GD against the SVM per problem, Cover, classification."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from widthlab.runtime.report import Page, num, p_value, pm, tested, verdict
from widthlab.studies.max_margin.figures import problem_label


def _pm(stat: Mapping[str, Any] | None, sig: int = 3) -> str:
    if not stat or stat.get("mean") is None:
        return "–"
    return pm(stat["mean"], stat.get("se")) if stat.get("se") else num(stat["mean"], sig)


def section(summary: Mapping[str, Any], page: Page) -> list[str]:
    """The study's section of the report."""
    settings = summary.get("settings", {})
    lines = page.figures(summary, ["implicit_bias", "gradient_shares"])
    lines += implicit_bias_lines(summary.get("implicit_bias") or {}, settings)
    lines += separability_lines(summary.get("separability") or {}, summary, page)
    lines += classification_lines(summary.get("classification") or {}, summary, page)
    lines += [
        "**Against the papers.** Soudry, Hoffer, Nacson, Gunasekar & Srebro (JMLR 2018) prove "
        "that on separable data gradient descent on the logistic loss (and, their Section 4, "
        "on the softmax cross-entropy) from any start with a small enough step converges in "
        "direction to the hard-margin SVM, w_t = ŵ ln t + ρ_t with ρ_t bounded, so that the "
        "direction error falls only like 1/ln t and the normalized margin approaches the "
        "SVM's from below; the tables test the margin bound, the steady approach and the "
        "concentration of the gradient on the support vectors, whose shares converge to "
        "the SVM's dual variables. Cover (1965) counts the labelings of n points in general "
        "position in ℝ^d that a homogeneous hyperplane separates, C(n, d) = 2 Σ_{k<d} "
        "binom(n−1, k), so that random labels are separable with probability ½ at n = 2d. "
        "Deng, Kammoun & Thrampoulidis (2019) predict a classification double descent whose "
        "peak for the max-margin classifier sits at the separability threshold, where the "
        "least-squares one sits at d = n.",
        "",
    ]
    return lines


def _check(entry: Mapping[str, Any]) -> str:
    return "passed" if entry.get("passed") else "**failed**"


def implicit_bias_lines(problems: Mapping[str, Any], settings: Mapping[str, Any]) -> list[str]:
    """The report's implicit-bias part, one block per problem."""
    if not problems:
        return []
    decades = settings.get("decades_checked")
    tol = settings.get("kkt_tolerance")
    pair = settings.get("digit_classes")
    lr = num(settings.get("lr_fraction"))
    first, second = pair if pair else ("?", "?")
    lines = [
        "Gradient descent from zero on the mean cross-entropy of d frozen random features "
        f"(n, d and the steps T per problem below), step η = {lr}/L_s (L_s the loss's "
        "smoothness constant: every step lowers the loss), against the hard-margin SVM on "
        "the same features (Clarabel through qpsolvers; separability decided by a linear "
        f"program). Binary digits: class {first} against {second}. Over every separable "
        f"seed: the solver's checks (tolerance {num(tol)}: the SVM's KKT residuals, and GD's "
        "normalized margin never above the SVM's maximum), and the claims about gradient "
        "descent (the direction gap must fall and the support vectors' gradient share rise "
        f"at every checkpoint of the last {decades} decades of steps):",
        "",
        "| problem | separable seeds | largest SVM KKT residual (check) | | largest "
        "(γ_t − γ̂)/γ̂ (check) | | gap falls | | SV share rises | |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, e in problems.items():
        if "kkt" not in e:
            lines.append(
                f"| {problem_label(name)} | 0 of {e['jobs']} | not separable: no max-margin "
                "solution | – | – | – | – | – | – | – |"
            )
            continue
        kkt = max(v for k, v in e["kkt"].items() if k.startswith("max_kkt_"))
        g, s = e["gap_decreasing"], e["support_share_increasing"]
        lines.append(
            f"| {problem_label(name)} | {e['separable_jobs']} of {e['jobs']} | {num(kkt, 1)} "
            f"| {_check(e['kkt'])} | {num(e['margin']['max_excess'], 3)} "
            f"| {_check(e['margin'])} | {g['passed']} of {g['jobs']} "
            f"| {verdict(g['verdict'])} | {s['passed']} of {s['jobs']} | {verdict(s['verdict'])} |"
        )
    lines += [
        "",
        "At the last step T, mean ± SE over the separable seeds: the direction gap 1 − cos, "
        "the normalized margin over the SVM's, the growth of ‖w_t‖ per unit of ln t over the "
        "last decade over ‖ŵ‖ (1 in the limit w_t ≈ ŵ ln t), the support vectors' share of "
        "the gradient and the total-variation distance between all gradient shares and the "
        "SVM's α/Σα; the fit √(2·gap) = c/ln(t/t₀) (Soudry et al.'s w_t ≈ ŵ ln t + ρ with "
        f"constant ρ) over the last {settings.get('fit_decades')} decades of steps, with "
        "its largest relative deviation from the measured gaps:",
        "",
        "| problem | n | d | T | support vectors | 1 − cos at T | γ_T/γ̂ | norm growth | SV "
        "share | share distance | fit c | fit t₀ | fit deviation |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, e in problems.items():
        if "kkt" not in e:
            continue
        slope = (e.get("fit_slope") or {}).get("mean")
        support = _pm(e["support_vectors"])
        if e["support_points"]["mean"] != e["support_vectors"]["mean"]:  # multiclass
            support += f" constraints, {_pm(e['support_points'])} points"
        lines.append(
            f"| {problem_label(name)} | {e['n_train']} | {e['width']} | {num(e['steps'])} "
            f"| {support} | {_pm(e['final_direction_gap'])} "
            f"| {_pm(e['final_margin_ratio'])} | {_pm(e['norm_growth_ratio'])} "
            f"| {_pm(e['final_support_share'])} | {_pm(e['share_distance'])} "
            f"| {num(1 / slope if slope else None)} | {_pm(e['fit_t0'])} "
            f"| {num(e['fit_max_relative_deviation'], 2)} |"
        )
    lines.append("")
    unseparable = [(name, x) for name, e in problems.items() for x in e.get("not_separable", [])]
    if unseparable:
        lines.append(
            "Training sets that are not separable (no max-margin solution; reported, not "
            "counted as failures): "
            + "; ".join(
                f"{problem_label(name)} `{x['key']}`: GD's loss {num(x['final_loss'])} against "
                f"the minimum {num(x['minimizer_loss'])}, distance to the minimizer "
                f"{num(x['gd_distance_to_minimizer'], 1)}"
                for name, x in unseparable
            )
            + "."
        )
        lines.append("")
    return lines


def separability_lines(sep: Mapping[str, Any], summary: Mapping[str, Any], page: Page) -> list[str]:
    """The report's separability part, against Cover's count."""
    if not sep:
        return []
    lines = page.figures(summary, ["separability"])
    lines += [
        f"n = {sep['n_points']} sphere_linear inputs, {sep['draws']} draws per d/n of random "
        "ReLU features and uniform random ±1 labels, each tested for homogeneous linear "
        "separability by a linear program; the pooled count of separable draws against "
        "Cover's C(n, d)/2ⁿ by an exact two-sided binomial test (z with the binomial SE "
        "√(p(1 − p)/draws) shown beside it). The widths reuse the same points and labels, so "
        "the d/n are one family judged by Holm's procedure (p → Holm-adjusted p):",
        "",
        "| d/n | d | separable fraction | Cover | SE | z | p → Holm | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for p in sep["by_point"]:
        lines.append(
            f"| {num(p['d_over_n'])} | {p['width']} | {num(p['separable_fraction'])} "
            f"| {num(p['cover_fraction'])} | {num(p['se'], 2)} | {num(p['z'], 2)} "
            f"| {tested(p)} | {verdict(p.get('verdict'))} |"
        )
    lines += [
        "",
        f"{sep['differ']} of {sep['points']} points differ (largest |z| "
        f"{num(sep['max_abs_z'], 2)}, smallest p {p_value(sep['smallest_p'])}); the measured "
        f"fraction crosses ½ at d/n = {num(sep['half_crossing_d_over_n'])}, Cover's at "
        f"{num(sep['cover_half_crossing_d_over_n'])}.",
        "",
    ]
    return lines


def _at(point: Mapping[str, Any] | None) -> str:
    if not point:
        return "–"
    return f"{pm(point['mean'], point.get('se'))} at {num(point['d_over_n'])}"


def classification_lines(c: Mapping[str, Any], summary: Mapping[str, Any], page: Page) -> list[str]:
    """The report's classification part: test error across widths."""
    if not c:
        return []
    effect = summary.get("settings", {}).get("peak_effect")
    lines = page.figures(summary, ["classification"])
    lines += [
        f"Noisy sign labels of sphere_linear (n = {c['n_train']} per seed), test error against "
        "the clean labels. Half the seeds' training sets are separable from d/n ≈ "
        f"{num(c['separable_half_crossing_d_over_n'])}, all of them from "
        f"{num(c['all_separable_from_d_over_n'])}. The candidate peak at a threshold is the "
        "highest mean error among its grid points; it shows when it lies above the lowest "
        "mean error on each side by a one-sided paired t-test at 5% (the same seeds' "
        "training sets and features; mean ± SE over seeds); where it does not, the power "
        f"against a peak {num(effect)} high decides between *differs* and *inconclusive*:",
        "",
        "| classifier | threshold (grid d/n) | peak | lowest below | peak − lowest below "
        "| lowest above | peak − lowest above | p | power | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, label, expected in (
        ("logistic_limit", "GD's logistic limit (max-margin where separable)", "separability"),
        ("least_squares", "min-norm least squares", "interpolation"),
    ):
        e = c.get(key) or {}
        if not e.get("peak"):
            continue
        grid = ", ".join(num(x) for x in e["expected_d_over_n"])
        below, above = e.get("difference_below") or {}, e.get("difference_above") or {}
        power = num(e.get("power"), 2) if e.get("verdict") != "agrees" else "–"
        lines.append(
            f"| {label} | {expected} ({grid}) | {_at(e['peak'])} | {_at(e.get('lowest_below'))} "
            f"| {pm(below.get('mean'), below.get('se'))} | {_at(e.get('lowest_above'))} "
            f"| {pm(above.get('mean'), above.get('se'))} | {p_value(e.get('p'))} | {power} "
            f"| {verdict(e['verdict'])} |"
        )
    every = c.get("all_support_vectors_from_d_over_n")
    lines += [
        "",
        "Every training point a support vector (where the max-margin and the least-squares "
        "classifiers coincide): "
        + (f"from d/n = {num(every)}." if every else "at no d/n of the sweep."),
        "",
    ]
    return lines
