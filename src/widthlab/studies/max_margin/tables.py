"""`max_margin`'s tables of the gradient-descent trajectories and the gradient shares, from
the implicit-bias records (what the figures draw; no verdict is made here)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from widthlab.runtime.tables import mean_std_curves

TRAJECTORY = ("direction_gap", "margin_ratio", "support_share", "norm_ratio", "loss")


def problem_of(record: Mapping[str, Any]) -> str:
    """`<job kind>_<data set>`, e.g. binary_digits."""
    return f"{record.get('job_kind')}_{record.get('config', {}).get('data', {}).get('name')}"


def trajectory_rows(records: list[dict]) -> list[dict]:
    """Per (problem, step): mean, sd, SE and count over the separable jobs of each quantity
    recorded at the checkpoints."""
    rows = []
    for r in records:
        m = r.get("metrics", {})
        if r["status"] != "ok" or not m.get("separable"):
            continue
        for i, t in enumerate(m["steps"]):
            rows.append(
                {
                    "status": "ok",
                    "problem": problem_of(r),
                    "step": t,
                    **{k: m[k][i] for k in TRAJECTORY},
                }
            )
    return mean_std_curves(rows, ("problem",), "step", TRAJECTORY)


def share_rows(records: list[dict]) -> list[dict]:
    """The first separable job of each problem: every support constraint's SVM dual share
    and GD gradient share at the last step (by decreasing dual share), then the other
    constraints' GD shares."""
    rows, seen = [], set()
    for r in sorted(records, key=lambda r: r["key"]):
        m = r.get("metrics", {})
        if r["status"] != "ok" or not m.get("separable") or problem_of(r) in seen:
            continue
        seen.add(problem_of(r))
        order = np.argsort(m["svm_dual_shares"])[::-1]
        for rank, i in enumerate(order):
            rows.append(
                {
                    "problem": problem_of(r),
                    "key": r["key"],
                    "support": 1,
                    "rank": rank,
                    "svm_dual_share": m["svm_dual_shares"][i],
                    "gd_share": m["gd_shares_support"][i],
                }
            )
        for rank, share in enumerate(m["gd_shares_other"], start=len(order)):
            rows.append(
                {
                    "problem": problem_of(r),
                    "key": r["key"],
                    "support": 0,
                    "rank": rank,
                    "svm_dual_share": 0.0,
                    "gd_share": share,
                }
            )
    return rows
