"""The collector settings of pipeline processes (widthlab.runtime.collector)."""

import json
import subprocess
import sys

from conftest import REPO

PROBE = """
import atexit, gc, json, sys
before = gc.get_threshold()
{imports}
after_import = gc.get_threshold()
from widthlab.runtime.collector import FIRST_THRESHOLD, tune_collector
handlers = atexit._ncallbacks()
tune_collector()
tune_collector()
print(json.dumps([before, after_import, gc.get_threshold(), atexit._ncallbacks() - handlers,
                  FIRST_THRESHOLD]))
"""


def probe(imports: str) -> list:
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(imports=imports)],
        capture_output=True, text=True, check=True, cwd=REPO,
    ).stdout  # fmt: skip
    return json.loads(out)


def test_importing_the_library_leaves_the_collector_alone_and_tuning_happens_once():
    before, after_import, tuned, new_handlers, first = probe(
        "import widthlab.runtime.jobs, widthlab.runtime.aggregate, widthlab.runtime.stage"
    )
    assert after_import == before  # `import widthlab…` never changes the process's collector
    assert tuned == [first, before[1], before[2]]
    assert new_handlers == 1  # the exit-time freeze, registered once for two calls


SCRIPTS = ("stage", "run", "aggregate", "data", "params", "report")

ENTRY = """
import gc, json, runpy, sys
sys.argv = ["{name}.py", "--help"]
try:
    runpy.run_path("pipelines/{name}.py", run_name="__main__")
except SystemExit:
    pass
heavy = [m for m in ("torch", "pytorch_lightning", "mlflow") if m in sys.modules]
print(json.dumps([gc.get_threshold()[0], heavy]))
"""


def test_every_entry_point_tunes_the_collector_before_the_heavy_imports():
    """Each `pipelines/*.py` tunes the collector in `__main__` and imports torch, Lightning
    and MLflow only inside its task, after that (`--help` runs no task: none is imported)."""
    from widthlab.runtime.collector import FIRST_THRESHOLD

    for name in SCRIPTS:
        done = subprocess.run(
            [sys.executable, "-c", ENTRY.format(name=name)],
            capture_output=True, text=True, cwd=REPO,
        )  # fmt: skip
        assert done.returncode == 0, (name, done.stderr[-2000:])
        threshold, heavy = json.loads(done.stdout.strip().splitlines()[-1])
        assert threshold == FIRST_THRESHOLD, name
        assert heavy == [], (name, heavy)
