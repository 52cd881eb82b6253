"""Per point, the mean of a float32 study at one commit against another: whether a change to
training (e.g. stacking a width's seeds) moved any mean by more than 2 standard errors.

    python benchmarks/compare_means.py OLD_REV NEW_REV   # e.g. 8ede41a 2e61870

Reads each study's committed `tables/curves.csv` at both revisions (`git show`) and prints a
Markdown table per study: old and new mean ± SE (seeds), z = (new − old)/√(SE_new² + SE_old²)
for every point present in both, flagged beyond 2; then the largest |z|.
"""

from __future__ import annotations

import csv
import io
import math
import subprocess
import sys

# study: (the curves' key columns, the metrics compared)
SPECS = {
    "double_descent_mlp": (("loss", "width"), ["test_error", "train_error", "test_loss"]),
    "mnist1d_double_descent": (("width",), ["test_error", "train_error"]),
    "finite_vs_infinite": (("depth", "width"), ["test_accuracy", "function_gap", "abs_loss_gap"]),
}


def rows(rev: str, study: str) -> list[dict[str, str]]:
    path = f"results/{study}/tables/curves.csv"
    text = subprocess.run(
        ["git", "show", f"{rev}:{path}"], capture_output=True, text=True, check=True
    ).stdout
    return list(csv.DictReader(io.StringIO(text)))


def main(old_rev: str, new_rev: str) -> None:
    worst = 0.0
    for study, (keys, metrics) in SPECS.items():
        old = {tuple(r[k] for k in keys): r for r in rows(old_rev, study)}
        print(f"## {study}")
        print("| " + " | ".join(keys) + " | metric | old mean ± SE (n) | new mean ± SE (n) | z |")
        print("|" + "---|" * (len(keys) + 4))
        for r in rows(new_rev, study):
            o = old.get(tuple(r[k] for k in keys))
            if o is None:
                continue
            for m in metrics:
                if not r.get(f"{m}_mean") or not o.get(f"{m}_mean"):
                    continue
                a, sa = float(o[f"{m}_mean"]), float(o.get(f"{m}_se") or 0)
                b, sb = float(r[f"{m}_mean"]), float(r.get(f"{m}_se") or 0)
                se = math.hypot(sa, sb)
                z = (b - a) / se if se > 0 else math.nan
                if math.isfinite(z):
                    worst = max(worst, abs(z))
                flag = " **>2**" if abs(z) > 2 else ""
                print(
                    f"| {' | '.join(r[k] for k in keys)} | {m} | {a:.4g} ± {sa:.2g} "
                    f"({o[f'{m}_count']}) | {b:.4g} ± {sb:.2g} ({r[f'{m}_count']}) "
                    f"| {z:+.2f}{flag} |"
                )
    print(f"largest |z|: {worst:.2f}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
