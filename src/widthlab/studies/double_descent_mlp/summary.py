"""`double_descent_mlp`'s results: the test-error curve against P/(n·C) and its peak, per
training loss.

Rule (settings from the study config, recorded in the summary): the candidate peak is, among
the widths with P/(n·C) in `peak_band`, the one whose seed-averaged test error rises most
above the lowest error at a smaller width (where none rises, the highest error in the band).
It must be interior to the sweep, and it "shows" when it is above the lowest error on each
side of it (`stats.peak_test`: a one-sided Welch t-test each side, both at 5%). Where it does
not show, the rule states its power against a peak `peak_effect` above each side (the
smallest peak the study is meant to see) at the observed standard errors and seed count;
below 80% the verdict is "inconclusive (k seeds)", not "differs".

The squared-loss curve (the main sweep) fills the top level of the summary; the curve of each
other loss (the `cross_entropy` sweep) is judged by the same rule, within its own curve, and
goes under `other_losses.<loss>`. The curves table has a `loss` column.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from widthlab.runtime.study import Results
from widthlab.runtime.tables import mean_std_curves, tidy_rows
from widthlab.stats import count_verdicts, peak_candidate, peak_test

METRICS = (
    "test_error",
    "test_loss",
    "train_error",
    "train_loss",
    "noisy_fit",
    "n_parameters",
    "params_over_threshold",
    "steps",
    "reached_stop_loss",
)


def loss_of(record: Mapping[str, Any]) -> str:
    """The loss a job trained on, from its config (records before the cross-entropy sweep
    existed are squared-loss ones)."""
    return str(record.get("config", {}).get("train", {}).get("loss", "squared"))


def curves(records: list[dict]) -> list[dict]:
    """Per (loss, width): mean, sd, SE and count over seeds, with P/(n·C) as the x axis."""
    rows = [{**row, "loss": loss_of(rec)} for rec in records for row in tidy_rows([rec])]
    out = mean_std_curves(rows, ("loss",), "width", METRICS)
    for c in out:
        c["params_over_threshold"] = c.get("params_over_threshold_mean")
        c["group"] = "mlp" if c["loss"] == "squared" else f"mlp {c['loss']}"
    return [c for c in out if c["params_over_threshold"] is not None]


def point(c: Mapping[str, Any]) -> dict[str, Any]:
    """A width's curve point for the summary: width, P/(n·C), test and training error with SE."""
    return {
        "width": c["width"],
        "params_over_threshold": c["params_over_threshold"],
        "test_error": c["test_error_mean"],
        "test_error_se": c.get("test_error_se"),
        "train_error": c.get("train_error_mean"),
        "train_error_se": c.get("train_error_se"),
        "seeds": c["test_error_count"],
    }


def peak_summary(table: list[dict], settings: Mapping[str, Any]) -> dict[str, Any]:
    """The peak within the band, whether it beats both the best smaller and the largest network, and
    its verdict."""
    low, high = settings["peak_band"]
    inside = [i for i, c in enumerate(table) if low <= c["params_over_threshold"] <= high]
    index = peak_candidate([c["test_error_mean"] for c in table], inside)
    if index is None:
        return {"interior_peak": False, "shows_peak": False, "peak": None, "verdict": "differs"}
    test = peak_test(
        [c["test_error_mean"] for c in table],
        [c.get("test_error_se") for c in table],
        [c["test_error_count"] for c in table],
        float(settings["peak_effect"]),
        index,
    )
    out: dict[str, Any] = {
        "interior_peak": test["interior"],
        "shows_peak": test["shows"],
        "peak": point(table[index]),
        "largest_width": point(table[-1]),
        "peak_effect": test["effect"],
        "p": test.get("p"),
        "power": test.get("power"),
        "verdict": test["verdict"],
    }
    sides = test.get("sides") or {}
    if "left" in sides:
        out["best_below_peak"] = point(table[sides["left"]["index"]])
        out["best_above_peak"] = point(table[sides["right"]["index"]])
        out["sides"] = sides
    return out


def curve_summary(table: list[dict], ok: list[dict], settings: Mapping[str, Any]) -> dict[str, Any]:
    """The peak and the training settings of one loss's curve (its rows of `table`, sorted
    by width, and its finished records `ok`)."""
    out: dict[str, Any] = {}
    if table:
        out.update(peak_summary(table, settings))
        config = ok[0]["config"]
        out.update(
            threshold=ok[0]["metrics"]["threshold"],
            max_steps=config["train"]["max_steps"],
            stop_loss=config["train"]["stop_loss"],
            loss=config["train"]["loss"],
            optimizer=config["train"]["optimizer"],
            lr=config["train"]["lr"],
            label_noise=config["data"]["label_noise"],
            data=config["data"]["name"],
        )
    return out


def summarize(records: Mapping[str, list[dict]], settings: Mapping[str, Any]) -> Results:
    """The study's summary and tables from its records."""
    jobs = records.get("train", [])
    table = sorted(curves(jobs), key=lambda c: (c["loss"] != "squared", c["loss"], c["width"]))
    losses = list(dict.fromkeys(c["loss"] for c in table))
    ok = [r for r in jobs if r["status"] == "ok"]

    def entry(loss: str) -> dict[str, Any]:
        return curve_summary(
            [c for c in table if c["loss"] == loss], [r for r in ok if loss_of(r) == loss], settings
        )

    main = losses[0] if losses else "squared"
    out = entry(main)
    others = {loss: entry(loss) for loss in losses[1:]}
    if others:
        out["other_losses"] = others
    ce = others.get("cross_entropy", {})
    metrics = {
        **count_verdicts([e for e in (out, *others.values()) if e]),
        "peak_params_over_threshold": (out.get("peak") or {}).get("params_over_threshold"),
        "peak_test_error": (out.get("peak") or {}).get("test_error"),
        "largest_width_test_error": (out.get("largest_width") or {}).get("test_error"),
    }
    if ce:
        metrics["ce_largest_width_test_error"] = (ce.get("largest_width") or {}).get("test_error")
    return Results(summary=out, tables={"curves.csv": table}, metrics=metrics)
