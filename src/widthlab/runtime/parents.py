"""A sweep's MLflow parent run, and what a reviewer sees of a study in MLflow's own UI.

Parent runs (`SweepCallback` opens and closes them, `runtime.aggregate` logs onto them):

- A sweep's parent is named `<study config> · <profile>` and tagged with the sweep's digest
  (`widthlab.sweep_digest`): a digest of the records its results consist of (each job's key
  and the config hash of the record it ends with: the cached record's own, or the one it
  computes). A rerun whose every job is cached reuses the newest finished parent with the
  same digest instead of adding one; a rerun with a new digest gets its own parent, even
  when it computes nothing (a threshold changed: same records, new aggregate), which keeps
  only the aggregate's numbers; a parent left without a child because an identical sweep
  racing it computed every job is deleted.
- The aggregate logs a study's numbers onto the parent of each sweep it summarized, found by
  the digest its manifest holds (`parent_for_digest`), never onto the newest parent: after
  `dvc exp apply` back to a baseline, the baseline's numbers go to the baseline's parent.

The review view (`review_view`): each study's experiment carries a saved view of its runs
table, MLflow's own `mlflow.sharedViewState.<key>` experiment tag (what the UI's "Views › Save
as new view" writes): the columns a reviewer compares first (each job's swept settings and
headline metric, the study's headline numbers on the parents) and, in the chart view, a
section of charts against width (`review_view`). MLflow does not share which parents are
expanded: a parent's children are one click away (its `+`). `experiment_url` is the link
that opens it: the runs view (`workflowType=machine_learning`; MLflow 3 otherwise opens a
GenAI overview with no runs) with `viewStateShareKey=widthlab`.

Dirty trees: a run made from a working tree whose source or configuration differs from its
commit (the record's `git_commit` ends in `+dirty`) is tagged `widthlab.git_dirty=true` and
says so in its description, beside MLflow's own commit tag, which names the clean commit.
"""

from __future__ import annotations

import base64
import json
import logging
import time
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

log = logging.getLogger(__name__)

VIEW_KEY = "widthlab"  # the saved view's key: tag mlflow.sharedViewState.widthlab
VIEW_TAG = "mlflow.sharedViewState." + VIEW_KEY
UI = "http://127.0.0.1:5000"


def ui_address(uri: str) -> str:
    """Where a store's UI is: a tracking server serves its own; a local store is opened with
    `mlflow ui`, on 127.0.0.1:5000 by default."""
    return uri.rstrip("/") if uri.startswith(("http://", "https://")) else UI


def experiment_url(experiment_id: str, ui: str = UI) -> str:
    """The link that opens a study's runs in the review view (module docstring)."""
    return (
        f"{ui}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"
        f"&viewStateShareKey={VIEW_KEY}"
    )


def dirty_tags(commit: str) -> dict[str, str]:
    """`widthlab.git_dirty` and, for a dirty tree, the run's description saying so."""
    dirty = commit.endswith("+dirty")
    tags = {"widthlab.git_dirty": str(dirty).lower(), "widthlab.git_commit": commit}
    if dirty:
        tags["mlflow.note.content"] = (
            f"Made from a working tree with uncommitted changes to its source or configuration "
            f"(commit {commit.removesuffix('+dirty')} plus those changes): MLflow's own git "
            "commit tag names the clean commit only."
        )
    return tags


def newest_parent(client: Any, experiment_id: str, digest: str, status: str) -> Any | None:
    """The newest parent run of a sweep with `digest` in `status`, or None."""
    runs = client.search_runs(
        [experiment_id],
        f"tags.`widthlab.sweep_digest` = '{digest}' and attributes.status = '{status}'",
        order_by=["start_time DESC"],
        max_results=1,
    )
    return runs[0] if runs else None


def parent_for_digest(client: Any, experiment_id: str, digest: str) -> str | None:
    """The id of the newest finished parent of the sweep with `digest`, or None."""
    run = newest_parent(client, experiment_id, digest, "FINISHED")
    return run.info.run_id if run is not None else None


def close_cached_runs(client: Any, experiment_id: str, keys: set[str]) -> None:
    """End as FINISHED the RUNNING runs of the cached jobs `keys` (a process killed after the
    job's record was written), with one search for the whole sweep: cached jobs are not
    launched, so nothing else would close them."""
    if not keys:
        return
    running = client.search_runs(
        [experiment_id], "attributes.status = 'RUNNING'", max_results=50000
    )
    for run in running:
        if run.data.tags.get("widthlab.key") in keys:
            client.set_terminated(run.info.run_id, status="FINISHED")


def end_running_children(client: Any, run_id: str, status: str) -> int:
    """End the children of parent `run_id` still RUNNING with `status` (a sweep stopped by a
    signal: a worker killed outright could not end its own run); returns how many."""
    experiment_id = client.get_run(run_id).info.experiment_id
    running = client.search_runs(
        [experiment_id],
        f"tags.`mlflow.parentRunId` = '{run_id}' and attributes.status = 'RUNNING'",
        max_results=50000,
    )
    for run in running:
        client.set_terminated(run.info.run_id, status=status)
    return len(running)


def end_parent(client: Any, run_id: str, status: str) -> None:
    """End a parent this process created; delete it when it ended FINISHED with no child and
    another finished parent of the same digest holds the runs (a racing identical sweep)."""
    client.set_terminated(run_id, status=status)
    run = client.get_run(run_id)
    experiment_id = run.info.experiment_id
    children = client.search_runs(
        [experiment_id], f"tags.`mlflow.parentRunId` = '{run_id}'", max_results=1
    )
    if status != "FINISHED" or children:
        return
    digest = run.data.tags.get("widthlab.sweep_digest")
    twins = client.search_runs(
        [experiment_id],
        f"tags.`widthlab.sweep_digest` = '{digest}' and attributes.status = 'FINISHED'",
        max_results=2,
    )
    if digest and any(t.info.run_id != run_id for t in twins):
        client.delete_run(run_id)


def _compressed(state: Mapping[str, Any]) -> str:
    """The UI's form of a view state: `deflate;` + base64 of the zlib-compressed JSON."""
    raw = json.dumps(state, separators=(",", ":")).encode()
    return "deflate;" + base64.b64encode(zlib.compress(raw)).decode()


SECTION = "against width"


def line_chart(metric: str, section: str) -> dict[str, Any]:
    """A chart card of MLflow's chart view: `metric`'s history against its step, log x."""
    return {
        "uuid": f"widthlab-line-{metric}",
        "type": "LINE",
        "runsCountToCompare": 100,
        "metricSectionId": section,
        "deleted": False,
        "isGenerated": False,
        "displayName": metric,
        "metricKey": metric,
        "selectedMetricKeys": [metric],
        "lineSmoothness": 0,
        "xAxisScaleType": "log",
        "scaleType": "log",
        "range": {},
        "xAxisKey": "step",
        "selectedXAxisMetricKey": "",
        "yAxisKey": "metric",
        "yAxisExpressions": [],
        "ignoreOutliers": False,
        "useGlobalXaxisKey": False,
        "useGlobalLineSmoothing": True,
    }


def review_view(
    name: str, params: Sequence[str], metrics: Sequence[str], curves: Sequence[str] = ()
) -> str:
    """The saved view's tag value (module docstring): these param and metric columns, and a
    chart section "against width" holding a line chart of each of the `curves` a parent
    holds, against its step (the width, log scale)."""
    section = "widthlab-against-width"
    charts = [line_chart(c, section) for c in curves]
    sections = [
        {"uuid": section, "name": SECTION, "display": True, "isReordered": False,
         "deleted": False, "isGenerated": False}
    ]  # fmt: skip
    columns = [f"params.`{p}`" for p in params] + [f"metrics.`{m}`" for m in metrics]
    state = {
        "searchFilter": "",
        "orderByKey": "attributes.start_time",
        "orderByAsc": False,
        "startTime": "ALL",
        "lifecycleFilter": "Active",
        "datasetsFilter": [],
        "modelVersionFilter": "All Runs",
        "selectedColumns": columns,
        "columnOrder": [],
        "columnWidths": {},
        "runsHiddenMode": "SHOW_ALL",
        "compareRunCharts": charts,
        "compareRunSections": sections,
        "viewMaximized": False,
        "runListHidden": False,
        "isAccordionReordered": True,
        "useGroupedValuesInCharts": True,
        "hideEmptyCharts": True,
        "groupBy": None,
        "groupsExpanded": {},
        "globalLineChartConfig": {"xAxisKey": "step", "lineSmoothness": 0},
    }
    now = int(time.time() * 1000)
    return json.dumps(
        {"name": name, "createdAt": now, "updatedAt": now, "state": _compressed(state)}
    )


def read_view(value: str) -> dict[str, Any]:
    """The view state a `review_view` tag value holds (for tests and checks)."""
    outer = json.loads(value)
    packed = outer["state"].removeprefix("deflate;")
    return {**outer, "state": json.loads(zlib.decompress(base64.b64decode(packed)))}
