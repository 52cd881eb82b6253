"""The study report, `reports/report.md`: one page, every study's section, from its summary.

`render_report` finds every `results/<name>/summary.json` that names its study class,
orders the studies by their `order`, and puts at the top the commit and date of the source
that produced the results (the newest commit touching src/, conf/, pipelines/ — stable
across commits that only add results) and the profile. Each study writes its own section
(`Study.report`) with the helpers of `Page`: numbers with their standard errors at the
precision those support, verdicts, figures with captions, the jobs line, the command that
reproduces the study and a link to its MLflow experiment. Nothing on the page is typed by
hand: a threshold or a reference value comes from the summary that used it.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from widthlab.runtime.errors import BadFile
from widthlab.runtime.records import source_commit
from widthlab.runtime.study import load_study
from widthlab.stats import with_uncertainty


def num(x: Any, sig: int = 3) -> str:
    """A number as printed: `sig` significant digits, `∞` for inf, `–` for missing."""
    if x is None:
        return "–"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return str(x)
    x = float(x)
    if math.isinf(x):
        return "∞" if x > 0 else "−∞"
    if math.isnan(x):
        return "–"
    return minus(f"{x:.{sig}g}")


def minus(text: str) -> str:
    """Typographic minus signs, exponents (1e-5) left as they are."""
    return re.sub(r"(?<![eE])-", "−", text)


def pm(value: Any, se: Any) -> str:
    """`0.359 ± 0.033` (± one standard error, at the precision the SE supports)."""
    return minus(with_uncertainty(value, se))


def interval(low: Any, high: Any, sig: int = 2) -> str:
    """`[low, high]` with as many decimals as `sig` significant digits of its half-width need."""
    if low is None or high is None:
        return "–"
    places = max(0, sig - 1 - math.floor(math.log10(max(abs(high - low) / 2, 1e-300))))
    return minus(f"[{low:.{places}f}, {high:.{places}f}]")


def slope_text(fit: Mapping[str, Any]) -> str:
    """`−0.50 [−0.53, −0.47]`: a slope at the precision its 95% interval supports."""
    low, high, slope = fit.get("ci_low"), fit.get("ci_high"), fit.get("slope")
    if slope is None:
        return "–"
    if low is None or high is None:
        return f"{num(slope, 2)} (no interval: too few points)"
    half = max((high - low) / 2, 1e-300)
    places = max(0, 1 - math.floor(math.log10(half)))
    return minus(f"{slope:.{places}f} [{low:.{places}f}, {high:.{places}f}]")


def verdict(word: str | None) -> str:
    """A verdict as printed: "differs" in bold, "inconclusive (k seeds)" in italics."""
    if word is not None and word.startswith("inconclusive"):
        return f"*{word}*"
    return {"agrees": "agrees", "differs": "**differs**", None: "–"}.get(word, str(word))


def p_value(p: Any) -> str:
    """A p-value as printed: two significant digits, '< 0.001' below that."""
    if p is None or not isinstance(p, int | float) or not math.isfinite(p):
        return "–"
    return "< 0.001" if p < 0.001 else f"{p:.2g}"


def tested(test: Mapping[str, Any]) -> str:
    """'p 0.044 → 0.53' (raw p, then Holm-adjusted within its family), for a table cell."""
    if test.get("holm_p") is None:
        return p_value(test.get("p"))
    return f"{p_value(test.get('p'))} → {p_value(test.get('holm_p'))}"


def family_lines(summary: Mapping[str, Any]) -> list[str]:
    """How the study's verdicts were judged: each family of tests with Holm's step-down
    procedure at its family-wise error rate, its size and the level its smallest p-value
    must beat; the checks that are not verdicts; and every remaining "differs" explained."""
    lines: list[str] = []
    families = [f for f in summary.get("families") or [] if f.get("size")]
    if families:
        parts = [
            f"*{f['family']}*: {f['size']} test{'s' if f['size'] > 1 else ''}, smallest p "
            f"below {num(f['first_level'], 2)} (α/{f['size']}), {f['differ']} differ"
            for f in families
        ]
        alpha = families[0]["alpha"]
        lines += [
            "**Families of tests.** Each verdict is one test of a claim; the tests answering "
            "one question form a family, judged together by Holm's step-down procedure at a "
            f"family-wise error of {num(100 * alpha)}% (p → Holm-adjusted p in the tables; "
            "“differs” where the adjusted p is below "
            f"{num(alpha)}): " + "; ".join(parts) + ".",
            "",
        ]
    checks = summary.get("checks") or []
    if checks:
        failed = [c for c in checks if not c.get("passed")]
        lines += [
            f"**Checks** (the computation's own consistency, not claims about networks; "
            f"{len(checks) - len(failed)} of {len(checks)} passed): "
            + "; ".join(
                f"{c['check']}: {c.get('detail', '')} — "
                + ("passed" if c.get("passed") else "**failed**")
                for c in checks
            )
            + ".",
            "",
        ]
    explained = summary.get("explanations") or []
    if explained:
        lines += ["**Each “differs”, explained** (from the pipeline's own numbers):", ""]
        lines += [f"- {e['test']}: **{e['verdict']}** — {minus(e['reason'])}." for e in explained]
        lines.append("")
    return lines


@dataclass
class Page:
    """Where the page is and what it links to; the helpers studies write sections with."""

    results_dir: Path
    page_path: Path
    profile: str
    tracking: Mapping[str, Any] = field(default_factory=dict)

    def figures(self, summary: Mapping[str, Any], names: Sequence[str] | None = None) -> list[str]:
        """Each figure of the study (or those in `names`) with its caption beneath."""
        captions = summary.get("figures") or {}
        folder = self.results_dir / summary["study"] / "figures"
        lines = []
        for name in names if names is not None else list(captions):
            path = folder / f"{name}.png"
            caption = captions.get(name, name)
            if path.exists():
                rel = os.path.relpath(path, self.page_path.parent)
                lines += [f"![{name}]({rel})", "", f"*{caption}*", ""]
            else:
                lines += [f"*(figure {name} missing: run `dvc repro`)*", ""]
        return lines

    def jobs_line(self, summary: Mapping[str, Any]) -> str:
        """'Jobs: N, failed: M' with each failed job's key and reason, the stale records the
        aggregate left out and the jobs of the sweep with no record."""
        line = f"Jobs: {summary['n_jobs']}, failed: {summary['n_failed']}" + "".join(
            f"; `{f['key']}`: {f['reason']}" for f in summary.get("failed", [])
        )
        stale = summary.get("stale_records_ignored") or []
        if stale:
            line += f" ({len(stale)} records of earlier sweeps left out)"
        missing = summary.get("missing_jobs") or []
        if missing:
            line += f"; {len(missing)} jobs of the sweep have no record: rerun the sweep"
        return line + "."

    def reproduce(self, summary: Mapping[str, Any]) -> str:
        """The command that reruns the study, and the configs it reads."""
        name, settings = summary["study"], summary.get("settings", {})
        sweeps = settings.get("sweeps") or [name]
        configs = [f"`study/{s}.yaml`" for s in sweeps]
        configs.append(f"`profile/study/{name}/{self.profile}.yaml`")
        return (
            f"**Reproduce.** `python pipelines/stage.py study={name} profile={self.profile}` "
            f"(every sweep, then the aggregate); configs {', '.join(configs)} in the study's "
            f"`conf/` folder, and `conf/profile/{self.profile}.yaml`."
        )

    def mlflow_line(self, summary: Mapping[str, Any]) -> str:
        """Where the study's runs are: its MLflow experiment, with a link when it exists."""
        name = summary["study"]
        uri = str(self.tracking.get("uri") or "")
        link = ""
        # Only a store that exists is asked: reading must not create one (MLflow would).
        missing = (
            uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file()
        )
        if self.tracking.get("enabled") and uri and not missing:
            try:
                from mlflow import MlflowClient

                exp = MlflowClient(tracking_uri=uri).get_experiment_by_name(name)
            except Exception:  # an unreachable or broken store: the page still renders
                exp = None
            if exp is not None:
                from widthlab.runtime.parents import experiment_url, ui_address

                link = f" (<{experiment_url(exp.experiment_id, ui_address(uri))}>)"
        return (
            f"**Runs.** MLflow experiment `{name}`{link}: one parent run per sweep with the "
            "headline metrics and figures, one child per job; open with `mlflow ui "
            "--backend-store-uri sqlite:///mlflow.db --port 5000`."
        )


def read_summaries(results_dir: Path) -> list[dict[str, Any]]:
    """Every study summary under `results_dir`, in report order."""
    from widthlab.runtime.atomic import finish_interrupted_swaps

    for folder in sorted(p for p in results_dir.iterdir() if p.is_dir()):
        finish_interrupted_swaps(folder)  # an aggregate's set a kill left half-renamed
    found = []
    for path in sorted(results_dir.glob("*/summary.json")):
        try:
            summary = json.loads(path.read_text())
        except ValueError as exc:
            raise BadFile(path, f"not valid JSON, so not a study summary ({exc})") from None
        if not isinstance(summary, dict) or "study_class" not in summary:
            raise BadFile(path, "not a study summary (no study_class): rerun its aggregate")
        found.append((load_study(summary["study_class"]), summary))
    found.sort(key=lambda pair: (pair[0].order, pair[1]["study"]))
    return found


def render_report(
    results_dir: Path, page_path: Path, profile: str, tracking: Mapping[str, Any] | None = None
) -> str:
    """The Markdown page (module docstring)."""
    source = source_commit()
    page = Page(results_dir, page_path, profile, tracking or {})
    found = read_summaries(results_dir)
    lines = [
        "# widthlab — study report",
        "",
        f"Results of commit `{source['commit'][:12]}` ({source['date']}), profile "
        f"`{profile}`. Generated by `python pipelines/report.py` (the DVC stage `report`) from "
        f"`{results_dir}/<study>/summary.json`; do not edit by hand. Errors and rates are "
        "fractions (0.12 = 12%); ± is one standard error of the mean over seeds unless a "
        "table says otherwise; a slope is followed by its 95% interval, over seeds (each "
        "seed's own slope one independent measurement). A verdict is one test in a family "
        "judged by Holm's procedure (each study lists its families); a rule that saw no "
        "effect with too little power to see it says *inconclusive*.",
        "",
        "Contents: "
        + ", ".join(f"[{study.title or s['study']}](#{s['study']})" for study, s in found)
        + ".",
        "",
    ]
    for study, summary in found:
        lines += [
            f'<a id="{summary["study"]}"></a>',
            "",
            f"## {study.title or summary['study']}",
            "",
            f"**Question.** {study.question}",
            "",
        ]
        lines += study.report(summary, page)
        lines += ["", *family_lines(summary)]
        lines += [
            "",
            page.jobs_line(summary),
            "",
            page.reproduce(summary),
            "",
            page.mlflow_line(summary),
            "",
        ]
    return "\n".join(lines).rstrip() + "\n"


def check_results_dir(results_dir: Path) -> None:
    """The results folder exists, is a folder and holds at least one study summary: a report
    of nothing is not written (it would replace the page with an empty one)."""
    if not results_dir.exists():
        raise BadFile(results_dir, "paths.results_dir does not exist: run the studies first")
    if not results_dir.is_dir():
        raise BadFile(results_dir, "paths.results_dir must be a folder, but this is a file")
    if not any(results_dir.glob("*/summary.json")):
        raise BadFile(
            results_dir,
            "no study summary in paths.results_dir (<study>/summary.json): run a study's "
            "stage first (`python pipelines/stage.py study=<name>`, or `dvc repro`)",
        )


def write_report(cfg: Any) -> Path:
    """The report stage (`pipelines/report.py`): check, render, write atomically."""
    from widthlab.runtime.preflight import check_writable_dir
    from widthlab.runtime.records import atomic_write_bytes
    from widthlab.runtime.schemas import validate_config

    resolved = validate_config(cfg)
    check_writable_dir("paths.reports_dir", resolved["paths"]["reports_dir"])
    check_results_dir(Path(resolved["paths"]["results_dir"]))
    page = Path(resolved["paths"]["reports_dir"]) / "report.md"
    profile = str((resolved.get("profile") or {}).get("name"))
    text = render_report(
        Path(resolved["paths"]["results_dir"]), page, profile, resolved["tracking"]
    )
    atomic_write_bytes(page, text.encode())
    print(f"wrote {page}")
    return page
