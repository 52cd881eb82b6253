"""`double_descent_rf`'s report section."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from widthlab.runtime.report import Page, num, pm, verdict


def _pm(entry: Mapping[str, Any] | None) -> str:
    if not entry:
        return "–"
    return pm(entry.get("mean"), entry.get("se"))


def section(summary: Mapping[str, Any], page: Page) -> list[str]:
    """The study's section of the report."""
    s = summary.get("settings", {})
    band, k = s.get("theory_excluded_band", [None, None]), s.get("peak_k")
    names = sorted({key.rpartition("_ridge")[0] for key in summary["curves"]})
    lines = page.figures(summary, [f"rf_double_descent_{n}" for n in names])
    lines += [
        f"Mean over seeds ± SE. A peak is named only when it is interior to the sweep and above "
        f"the lowest point on each side by more than {num(k)} standard errors of the "
        "difference; a maximum at an end of the grid is reported as *no interior peak*.",
        "",
        "| data set | λ | error | peak at d/n | peak height | error at the largest d/n "
        "| kernel limit (d = ∞) | seeds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, c in summary["curves"].items():
        name, _, ridge = key.rpartition("_ridge")
        if c["interior_peak"]:
            where = num(c["peak_d_over_n"]) + ("" if c["shows_peak"] else " (within noise)")
        else:
            edge = num(c["maximum_at_edge_d_over_n"])
            where = f"no interior peak (maximum at the edge, d/n = {edge})"
        lines.append(
            f"| {name} | {ridge} | {c['metric']} | {where} | {_pm(c['peak'])} "
            f"| {_pm(c['largest_width'])} at {num(c['largest_d_over_n'])} "
            f"| {_pm(c['kernel_limit'])} | {c['largest_width'].get('seeds')} |"
        )
    lines += ["", *theory_lines(summary, band), *checks_lines(summary, page)]
    lines += [
        "**Against the paper.** Mei & Montanari (2019) predict, for ψ₂ = n/D fixed, a ridgeless "
        "risk that diverges at ψ₁ = ψ₂ and then decreases monotonically in ψ₁ = d/D toward the "
        "kernel limit, with a ridge λ > 0 damping the peak. The table above and the z-scores "
        "test both: where the simulated peak sits, and whether the simulated means agree with "
        "the formula within their sampling error.",
        "",
    ]
    return lines


def theory_lines(summary: Mapping[str, Any], band: list) -> list[str]:
    """The report's comparison of each curve with the asymptotic theory."""
    rows = [(k, c["theory"]) for k, c in summary["curves"].items() if c.get("theory")]
    if not rows:
        return []
    lines = [
        f"Against the asymptotic theory, away from the threshold (d/n ∉ [{num(band[0])}, "
        f"{num(band[1])}], where the theory diverges): t = (mean − theory)/SE at each d/n "
        "(seeds − 1 degrees of freedom); a seed's features are nested across d/n, so the "
        "points of a curve are one family judged by Holm's procedure, and the curve agrees "
        "when none of them differs. The RMS z near 1 means the theory is right up to "
        "sampling noise (a summary, not a test: the points share draws):",
        "",
        "| data set | λ | points | differ (Holm) | beyond 3 SE | RMS z | largest |z| "
        "| largest relative deviation (at d/n) | verdict |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key, t in rows:
        name, _, ridge = key.rpartition("_ridge")
        lines.append(
            f"| {name} | {ridge} | {t['points']} | {t.get('points_differ', '–')} "
            f"| {t['beyond_3se']} | {num(t['rms_z'], 2)} "
            f"| {num(t['max_abs_z'], 2)} | {num(t['max_relative_deviation'], 2)} "
            f"({num(t['max_relative_deviation_at'])}) | {verdict(t['verdict'])} |"
        )
    return [*lines, ""]


def checks_lines(summary: Mapping[str, Any], page: Page) -> list[str]:
    """The report's minimum-norm and gradient-descent checks."""
    checks = (summary["curves"].get("sphere_linear_ridge0") or {}).get("min_norm_checks")
    if not checks:
        return []
    lines = page.figures(summary, ["gd_min_norm", "gd_early_stopping"])
    lines += [
        "Gradient descent from β₀ = 0 and the minimum-norm interpolator, over every "
        "interpolating ridgeless job on sphere_linear (largest value; round-off residuals are "
        "stored as their power of ten): KKT primal feasibility ‖Hβ − y‖/‖y‖ ≤ "
        f"{num(checks.get('max_kkt_feasibility'))}, stationarity ‖β − Hᵀc‖/‖β‖ ≤ "
        f"{num(checks.get('max_kkt_stationarity'))}, GD at t = ∞ against the min-norm solution "
        f"≤ {num(checks.get('max_gd_limit_distance'))}, the explicit iteration against its "
        f"closed form ≤ {num(checks.get('max_gd_explicit_vs_closed_form'))}; tolerance "
        f"{num(checks['tolerance'])}: {'passed' if checks.get('passed') else '**failed**'} "
        "(a check of the solvers, not a verdict).",
        "",
    ]
    return lines
