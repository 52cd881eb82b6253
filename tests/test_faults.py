"""Faults around the entry points: a full disk at every step, a sweep callback that fails,
a tracking store created on a full disk or kept on a read-only one, a set of outputs
interrupted halfway, a path outside ASCII.

A full disk is a real small file system (a tmpfs mounted for the test, which needs root;
the tests are skipped where it cannot be mounted); the entry points run in this process,
as `python pipelines/<entry>.py` would run them.
"""

import errno
import hashlib
import json
import logging
import os
import shutil
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from conftest import REPO, SEARCH_PATH

from widthlab.runtime import preflight
from widthlab.runtime.stage import run_stage

pytestmark = pytest.mark.slow

TOY = ["study=toy", SEARCH_PATH, "profile=smoke"]


def run_entry(name: str, args: list[str]) -> int:
    """`python pipelines/<name>.py args` in this process; returns the exit status."""
    import importlib.util

    for handler in logging.root.handlers[:]:
        logging.root.removeHandler(handler)
    if name == "stage":
        return run_stage(args, REPO / "pipelines")
    spec = importlib.util.spec_from_file_location(
        f"fault_{name}", REPO / "pipelines" / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    saved = sys.argv
    sys.argv = [f"{name}.py", *args]
    try:
        module.main()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.argv = saved
    return 0


def one_line(capsys) -> str:
    """The one error line the entry point printed (and nothing like a traceback)."""
    captured = capsys.readouterr()
    err = captured.err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert "Traceback" not in err, err[-3000:]
    assert len(errors) == 1, err[-3000:]
    assert "[ERROR]" not in captured.out
    return errors[0]


def files(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.endswith(".lock")
    }


def toy_records(results: Path) -> list[Path]:
    return sorted((results / "toy" / "records" / "main").glob("*.json"))


def active_runs(db: Path) -> int:
    if not db.exists():
        return 0
    with sqlite3.connect(db) as con:
        return con.execute("select count(*) from runs where lifecycle_stage='active'").fetchone()[0]


# ------------------------------------------------------------------ a small file system
@pytest.fixture
def small_disk(tmp_path):
    """mount(size) → a folder on a new tmpfs of `size`; fill(folder, keep) leaves `keep`
    bytes free on it; all unmounted afterwards."""
    mounted: list[Path] = []

    def mount(size: str, read_only: bool = False) -> Path:
        folder = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
        folder.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        mounted.append(folder)
        return folder

    yield mount
    for folder in reversed(mounted):
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def fill(folder: Path, keep: int = 0) -> None:
    """Leave about `keep` bytes free on `folder`'s file system."""
    free = shutil.disk_usage(folder).free
    with open(folder / f"filler-{uuid.uuid4().hex[:6]}", "wb") as fh:
        try:
            fh.write(b"\0" * max(0, free - keep))
        except OSError:
            pass


def remount(folder: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(folder)], check=True)


# ------------------------------------------------------------------ 1. the sweep callback
@pytest.mark.parametrize("where", ["manifest", "parent"])
def test_a_failing_sweep_callback_stops_the_sweep_before_any_job(tmp_path, monkeypatch, capsys,
                                                                 empty_store, where):  # fmt: skip
    """Hydra turns a callback's exception into a warning and launches every job anyway; a
    failure while writing the manifest (a full disk, here injected) or opening the parent
    run (a store that breaks) must stop the sweep: one line, exit 2, nothing launched."""
    from widthlab.runtime.sweep import SweepCallback

    monkeypatch.chdir(tmp_path)
    shutil.copy(empty_store, tmp_path / "mlflow.db")

    def full_disk(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", "results/toy/records/sweeps")

    def broken_store(self, *args, **kwargs):
        raise RuntimeError("the store broke")

    if where == "manifest":
        monkeypatch.setattr(SweepCallback, "_write_manifest", full_disk)
    else:
        monkeypatch.setattr(SweepCallback, "_open_parent", broken_store)
    code = run_entry("run", ["-m", *TOY, f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}"])
    line = one_line(capsys)
    assert code == 2
    expected = "no space left on device" if where == "manifest" else "the store broke"
    assert expected in line, line
    assert toy_records(tmp_path / "results") == []  # no job ran
    assert active_runs(tmp_path / "mlflow.db") == 0  # no parent left behind


# ------------------------------------------------------------------ 4. a full disk, every step
def test_a_full_disk_is_one_line_at_every_step(tmp_path, monkeypatch, capsys, small_disk,
                                               smoke_data):  # fmt: skip
    monkeypatch.chdir(tmp_path)
    disk = small_disk("4m")
    shutil.copytree(smoke_data, disk / "data")
    assert run_entry("stage", [*TOY, "tracking=off", f"paths.results_dir={disk}/results"]) == 0
    capsys.readouterr()
    fill(disk, keep=4096)
    before = files(disk / "results")
    steps = {
        "run -m": ("run", ["-m", *TOY, "tracking=off", f"paths.results_dir={disk}/results",
                           "study.slope=-0.4"]),
        "run": ("run", [*TOY, "tracking=off", f"paths.results_dir={disk}/fresh"]),
        "aggregate": ("aggregate", [*TOY, "tracking=off", f"paths.results_dir={disk}/results"]),
        "stage": ("stage", [*TOY, "tracking=off", f"paths.results_dir={disk}/results"]),
        "report": ("report", [*TOY, "tracking=off", f"paths.results_dir={disk}/results",
                              f"paths.reports_dir={disk}/reports"]),
        "data": ("data", ["data=teacher", "profile=smoke", "tracking=off",
                          f"paths.data_dir={disk}/data"]),
        "tracking store": ("run", [*TOY, f"tracking.uri=sqlite:///{disk}/mlflow.db",
                                   f"paths.results_dir={tmp_path}/results"]),
    }  # fmt: skip
    for step, (entry, args) in steps.items():
        code = run_entry(entry, args)
        line = one_line(capsys)
        assert code == 2, step
        assert "no space left on device" in line and str(disk) in line, (step, line)
    assert files(disk / "results") == before  # nothing changed
    assert not (disk / "mlflow.db").exists()


def test_a_disk_that_fills_while_writing_is_one_line_and_stops_the_sweep(tmp_path, monkeypatch,
                                                                          capsys, small_disk,
                                                                          smoke_data):  # fmt: skip
    """The space check passes (forced), then a write fails: a record, the aggregate's set."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(preflight, "MIN_FREE_BYTES", 0)
    disk = small_disk("4m")
    results = f"paths.results_dir={disk}/results"
    assert run_entry("stage", [*TOY, "tracking=off", results]) == 0
    capsys.readouterr()
    before = files(disk / "results")
    fill(disk, keep=0)
    # A sweep whose records cannot be written stops at the first, with one line.
    code = run_entry("run", ["-m", *TOY, "tracking=off", results, "study.slope=-0.3"])
    assert code == 2
    assert "no space left on device" in one_line(capsys)
    # The aggregate fails while writing its new set: the old set stays whole.
    code = run_entry("aggregate", [*TOY, "tracking=off", results, "study.reference=0"])
    assert code == 2
    assert "no space left on device" in one_line(capsys)
    after = files(disk / "results")
    assert {k: v for k, v in after.items() if "/records/" not in k} == {
        k: v for k, v in before.items() if "/records/" not in k
    }
    assert not [p for p in (disk / "results").rglob("*") if p.name.endswith(".tmp")]


# ------------------------------------------------------------------ 2. the tracking store
def test_a_store_on_a_full_disk_is_never_left_half_created(tmp_path, monkeypatch, capsys,
                                                           small_disk):  # fmt: skip
    """MLflow creates a store's tables and runs its migrations in place: a full disk left a
    half-migrated store on which every later command failed ("duplicate column name: step"),
    even after the space was freed. Now the store is made beside and renamed when whole."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(preflight, "MIN_FREE_BYTES", 0)  # let it try
    disk = small_disk("300k")
    store = f"tracking.uri=sqlite:///{disk}/mlflow.db"
    code = run_entry("run", [*TOY, store])
    assert code == 2
    assert "no space left on device" in one_line(capsys)
    assert sorted(p.name for p in disk.iterdir() if not p.name.endswith(".lock")) == []
    remount(disk, "size=8m")  # space freed
    assert run_entry("run", [*TOY, store]) == 0, capsys.readouterr().err[-3000:]
    assert active_runs(disk / "mlflow.db") == 1


def test_a_read_only_store_stops_the_aggregate_before_it_writes(tmp_path, monkeypatch, capsys,
                                                                small_disk, empty_store,
                                                                smoke_data):  # fmt: skip
    monkeypatch.chdir(tmp_path)
    assert run_entry("stage", [*TOY, "tracking=off"]) == 0
    capsys.readouterr()
    disk = small_disk("4m")
    shutil.copy(empty_store, disk / "mlflow.db")
    remount(disk, "ro")
    before = files(tmp_path / "results")
    code = run_entry("aggregate", [*TOY, f"tracking.uri=sqlite:///{disk}/mlflow.db"])
    line = one_line(capsys)
    assert code == 2
    assert line.startswith(f"error: {disk}/mlflow.db: tracking.uri: the store is read-only"), line
    assert active_runs(disk / "mlflow.db") == 0
    assert files(tmp_path / "results") == before


# ------------------------------------------------------------------ 8. a stage's outputs as a set
KILL_BETWEEN_RENAMES = """
import os, signal, sys
from pathlib import Path
from widthlab.runtime import atomic

folder = Path(sys.argv[1])
real, done = os.replace, []

def replace(src, dst):
    real(src, dst)
    if not str(dst).endswith(".json") or "swap" not in str(dst):
        done.append(dst)
        if len(done) == 2:
            os.kill(os.getpid(), signal.SIGKILL)  # killed between two renames

os.replace = replace
atomic.atomic_write_set(
    {folder / "summary.json": b"new summary", folder / "metrics.json": b"new metrics",
     folder / "tables" / "curves.csv": b"new curves", folder / "figures" / "a.png": b"new a"},
    remove=[folder / "figures" / "old.png"],
)
"""


def test_a_set_whose_writer_was_killed_between_renames_becomes_the_new_set_whole(tmp_path):
    from widthlab.runtime.atomic import finish_interrupted_swaps

    folder = tmp_path / "results" / "toy"
    old = {"summary.json": b"old summary", "metrics.json": b"old metrics",
           "tables/curves.csv": b"old curves", "figures/a.png": b"old a",
           "figures/old.png": b"stale"}  # fmt: skip
    for rel, payload in old.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(payload)
    done = subprocess.run([sys.executable, "-c", KILL_BETWEEN_RENAMES, str(folder)])
    assert done.returncode == -9
    contents = {rel: (folder / rel).read_bytes() for rel in old if (folder / rel).exists()}
    assert b"old curves" in contents.values() or b"old a" in contents.values()  # half of it
    assert finish_interrupted_swaps(folder) == 1
    assert {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()} == {
        "summary.json",
        "metrics.json",
        "tables/curves.csv",
        "figures/a.png",
    }
    for rel in ("summary.json", "metrics.json", "tables/curves.csv", "figures/a.png"):
        assert (folder / rel).read_bytes().startswith(b"new"), rel


class Interrupted(BaseException):
    """Stands for a kill in the middle of a set's renames."""


def test_an_aggregate_interrupted_between_renames_is_finished_by_the_next_reader(
    tmp_path, monkeypatch, capsys, smoke_data
):
    """The aggregate's set, half-renamed when its process died, is finished by the report
    before it reads it (and by the next aggregate); a data file and its card likewise by
    the loader."""
    import widthlab.runtime.atomic as atomic
    from widthlab.runtime.datafiles import load_dataset, save_dataset

    monkeypatch.chdir(tmp_path)
    assert run_entry("stage", [*TOY, "tracking=off"]) == 0
    assert run_entry("aggregate", [*TOY, "tracking=off", "study.reference=0"]) == 0
    new = files(tmp_path / "results" / "toy")
    assert run_entry("aggregate", [*TOY, "tracking=off"]) == 0
    capsys.readouterr()
    real, renamed = os.replace, []

    def replace(src, dst):
        real(src, dst)
        renamed.append(dst)
        if len(renamed) == 2:
            raise Interrupted

    monkeypatch.setattr(atomic.os, "replace", replace)
    assert run_entry("aggregate", [*TOY, "tracking=off", "study.reference=0"]) == 2
    monkeypatch.setattr(atomic.os, "replace", real)
    capsys.readouterr()
    half = files(tmp_path / "results" / "toy")
    assert half != new and any(k.startswith(".widthlab-swap-") for k in half)
    assert run_entry("report", [*TOY, "tracking=off"]) == 0
    assert files(tmp_path / "results" / "toy") == new

    # A data set's arrays and card: the pair, half-renamed, is finished by the loader.
    from dataclasses import replace as changed

    ds = load_dataset("teacher", smoke_data)
    data = tmp_path / "data"
    save_dataset(changed(ds, x_train=ds.x_train + 1.0), data)  # the old pair
    renamed.clear()
    monkeypatch.setattr(atomic.os, "replace", replace)
    with pytest.raises(Interrupted):
        save_dataset(ds, data)  # new arrays renamed, the old card still there
    monkeypatch.setattr(atomic.os, "replace", real)
    assert list(data.glob(".widthlab-swap-*"))
    assert (load_dataset("teacher", data).x_train == ds.x_train).all()
    assert not list(data.glob(".widthlab-swap-*"))


# ------------------------------------------------------------------ 6. a path outside ASCII
def test_a_path_outside_ascii_needs_no_quotes(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert run_entry("run", [*TOY, "tracking=off", "paths.results_dir=résultats"]) == 0
    assert toy_records(tmp_path / "résultats"), capsys.readouterr().err[-3000:]
    record = json.loads(toy_records(tmp_path / "résultats")[0].read_text())
    assert record["status"] == "ok"
