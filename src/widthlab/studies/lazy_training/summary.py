"""`lazy_training`'s results: log-log slopes against width, per depth, with verdicts.

Rules (references from the study config, recorded in the summary): every quantity is fitted
as log(quantity) = a + slope · log(width), pooled over seeds, with a 95% interval over seeds
(`stats.seed_slope`: a seed's runs at every width share its data, so the seed is the
independent unit).
* Against an exponent Lee et al. (2019, Fig. 1) measure (`references`: per layer role and
  the NTK change): a two-sided t-test, one family "exponents" over every depth.
* Against the bound of their Theorem 2.1 (`bounds`: O(width^−1/2) for the parameters and
  both function-space gaps): only a slope clearly above the bound (a slower decay than the
  theorem allows) contradicts it; one family "bounds".
* Each family is judged by Holm's procedure (`stats.judge_family`); every slope that still
  differs is explained (`stats.explain_slope`), and the NTK change's exponent, which the
  literature debates, is examined at every depth whatever its verdict.
* The activation sweep (depth 1, ReLU and erf, its own widths and seeds) settles that
  exponent: per activation the slope against −1, its explanation, and the difference of
  the two activations' exponents (Welch t over the seeds' own slopes). The width^−1
  derivations assume a smooth activation: erf should follow −1; a ReLU exponent that holds
  steady away from −1 while erf's does not is a property of ReLU ("real"), not of the widths.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from widthlab.runtime.study import Results
from widthlab.runtime.tables import mean_std_curves, per_seed_matrix, slope_summary, tidy_rows
from widthlab.stats import ALPHA, count_verdicts, explain_slope, judge_family, welch

METRICS = (
    "param_change",
    "ntk_change",
    "linearization_gap",
    "limit_gap",
    "linearization_gap_train",
)


def layer_metrics(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """The per-layer weight-change keys of the rows, in layer order."""
    names = {k for r in rows for k in r if k.startswith("weight_change_layer_")}
    return sorted(names, key=lambda k: int(k.rsplit("_", 1)[-1]))


def role(index: int, count: int) -> str:
    """Which of first, hidden or last layers layer `index` of `count` is."""
    return "first_layer" if index == 0 else "last_layer" if index == count - 1 else "hidden_layers"


LABELS = {
    "param_change": "all parameters",
    "ntk_change": "NTK change",
    "linearization_gap": "trained vs linearized",
    "limit_gap": "trained vs ∞-width prediction",
}


def label(metric: str, fit: Mapping[str, Any], depth: int) -> str:
    """A fitted slope's readable name, with its depth."""
    if metric.startswith("weight_change_layer_"):
        name = f"weight change, layer {metric.rsplit('_', 1)[-1]} ({fit['role'].replace('_', ' ')})"
    else:
        name = LABELS.get(metric, metric)
    return f"{name}, depth {depth}"


def summarize(records: Mapping[str, list[dict]], settings: Mapping[str, Any]) -> Results:
    """The study's summary and tables from its records."""
    jobs = records.get("train", [])
    rows = tidy_rows(jobs)
    references, bounds = dict(settings["references"]), dict(settings["bounds"])
    slopes: dict[str, Any] = {}
    exponents, bounded, groups = [], [], {}
    for depth in sorted({r["depth"] for r in rows}):
        group = [r for r in rows if r["depth"] == depth]
        layers = layer_metrics(group)
        entry = {}
        for i, metric in enumerate(layers):
            kind = role(i, len(layers))
            entry[metric] = {
                **slope_summary(group, "width", metric, references.get(kind)),
                "role": kind,
            }
        for metric in METRICS:
            if metric in references:
                fit = slope_summary(group, "width", metric, references[metric])
            elif metric in bounds:
                fit = slope_summary(group, "width", metric, bounds[metric], claim="at_most")
                fit["bound"] = bounds[metric]
            else:
                fit = slope_summary(group, "width", metric)
            entry[metric] = fit
        for metric, fit in entry.items():
            groups[id(fit)] = (group, metric, depth)
            if fit.get("claim") == "equals":
                exponents.append(fit)
            elif fit.get("claim") == "at_most":
                bounded.append(fit)
        slopes[f"depth{depth}"] = entry
    families = [
        judge_family(exponents, "exponents (Lee et al. Fig. 1)"),
        judge_family(bounded, "bounds (Theorem 2.1)"),
    ]
    explanations = []
    for fit in [*exponents, *bounded]:
        if fit.get("verdict") == "differs":
            group, metric, depth = groups[id(fit)]
            widths, values = per_seed_matrix(group, "width", metric)
            why = explain_slope(widths, values, fit["reference"], fit["claim"])
            fit["explained"] = why
            explanations.append(
                {
                    "test": label(metric, fit, depth),
                    "verdict": why["verdict"],
                    "reason": why["reason"],
                }
            )
    ntk_exponent = {}
    for depth in sorted({r["depth"] for r in rows}):
        group = [r for r in rows if r["depth"] == depth]
        widths, values = per_seed_matrix(group, "width", "ntk_change")
        if len(widths) >= 2:
            ntk_exponent[f"depth{depth}"] = explain_slope(
                widths, values, float(references["ntk_change"])
            )
    by_activation = activation_summary(
        tidy_rows(records.get("activations", [])), float(references["ntk_change"])
    )
    metrics_ = [*METRICS, *layer_metrics(rows), "train_loss", "test_loss", "lr_stability", "steps"]
    table = mean_std_curves(rows, ("depth",), "width", metrics_)
    table = [{"group": f"depth {c['depth']}", **c} for c in table]
    ntk = [e["ntk_change"] for e in slopes.values() if "ntk_change" in e]
    gaps = [e["linearization_gap"]["slope"] for e in slopes.values() if "linearization_gap" in e]
    metrics = {
        **count_verdicts([*exponents, *bounded, *(by_activation.get("fits") or {}).values()]),
        "ntk_change_slope_deepest": ntk[-1]["slope"] if ntk else None,
        "linearization_gap_slope_least_steep": max(gaps) if gaps else None,
    }
    if by_activation:
        families.append(by_activation.pop("family"))
        for activation, fit in by_activation["fits"].items():
            if fit.get("verdict") == "differs":
                why = by_activation["explained"][activation]
                explanations.append(
                    {
                        "test": f"NTK change, depth 1, {activation} (activation sweep)",
                        "verdict": why["verdict"],
                        "reason": why["reason"],
                    }
                )
    summary = {
        "activations": by_activation,
        "slopes": slopes,
        "families": families,
        "explanations": explanations,
        "ntk_change_exponent": ntk_exponent,
    }
    tables = {"curves.csv": table}
    if by_activation:
        tables["activations.csv"] = by_activation.pop("curves")
    return Results(summary=summary, tables=tables, metrics=metrics)


def activation_summary(rows: list[dict], reference: float) -> dict[str, Any]:
    """The activation sweep (module docstring): per activation the NTK change's slope against
    `reference` (one family over the activations), its explanation, and the difference of
    the two exponents; the curves table."""
    rows = [r for r in rows if r["status"] == "ok"]
    if not rows:
        return {}
    fits, explained = {}, {}
    for activation in sorted({r["activation"] for r in rows}):
        mine = [r for r in rows if r["activation"] == activation]
        fits[activation] = slope_summary(mine, "width", "ntk_change", reference)
        widths, values = per_seed_matrix(mine, "width", "ntk_change")
        explained[activation] = explain_slope(widths, values, reference)
    family = judge_family(list(fits.values()), "NTK change by activation")
    out: dict[str, Any] = {"fits": fits, "explained": explained, "family": family}
    if {"relu", "erf"} <= set(fits):
        a, b = fits["relu"], fits["erf"]
        test = welch(a["slope"], a["stderr"], a["seeds"], b["slope"], b["stderr"], b["seeds"])
        if test is not None:
            from scipy import stats

            diff, se, dof = test
            p = float(2 * stats.t.sf(abs(diff) / se, dof))
            out["relu_minus_erf"] = {
                "difference": diff,
                "se": se,
                "dof": dof,
                "p": p,
                "finding": (
                    "ReLU's exponent differs from erf's: the departure is ReLU's own"
                    if p < ALPHA
                    else "ReLU and erf share the exponent: whatever holds it away from "
                    f"{reference:g} at these widths is not ReLU's kink"
                ),
            }
    out["curves"] = mean_std_curves(rows, ("activation",), "width", list(METRICS))
    return out
