"""A copy of the repository with its smoke pipeline run once, for the end-to-end tests.

`copy_repository` copies what git would clone into a new git repository; `pipeline_env`
makes the pipeline in a copy run the copy's own code (`PYTHONPATH` before the editable
install), so an edit to the copy's source is what the copy's stages see and digest.
conftest.py's `smoke_pipeline` fixture runs `dvc repro` once per test session; each test
that changes something works on its own `clone` of it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def copy_repository(dest: Path) -> None:
    """Copy the files git would clone (tracked + untracked-not-ignored) into a fresh repo,
    without the committed results (the pipeline makes them)."""
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    for rel in filter(None, files):
        src = REPO / rel
        if src.is_file() and not rel.startswith(("results/", "reports/")) and rel != "dvc.lock":
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    git(dest, "init", "-q")
    git(dest, "add", "-A")
    git(dest, "commit", "-qm", "copy")


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def pipeline_env(repo: Path, extra: dict | None = None) -> dict:
    """The environment of `dvc` in `repo`: its own code first on the path, its own relative
    MLflow store (no tracking server inherited from the developer's shell)."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    path = os.pathsep.join(filter(None, [str(repo / "src"), env.get("PYTHONPATH")]))
    return {**env, "PYTHONPATH": path, **(extra or {})}


def dvc(
    cwd: Path, *args: str, env: dict | None = None, check: bool = True
) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "dvc", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=900,
        env=pipeline_env(cwd, env),
    )
    if check:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def smoke_repository(path: Path) -> Path:
    """A copy at `path` whose active profile is `smoke`, committed."""
    copy_repository(path)
    config = path / "conf" / "config.yaml"
    config.write_text(config.read_text().replace("profile: laptop", "profile: smoke"))
    git(path, "commit", "-qam", "smoke")
    return path


def clone(source: Path, dest: Path) -> Path:
    """A full copy of a repository (git, DVC cache, MLflow store, outputs) at `dest`."""
    shutil.copytree(source, dest, symlinks=True)
    return dest


def snapshot(repo: Path, tracking: bool = True) -> dict[str, str]:
    """{path: sha256} of every file of the workspace but git's and DVC's own folders and
    Hydra's logs: what a user would call the workspace; with `tracking=False` not the MLflow
    store either (`mlflow.db`, its lock and `mlruns/`), where every run adds runs."""
    out = {}
    skipped = {".git", "outputs"} | (
        set() if tracking else {"mlflow.db", "mlflow.db.lock", "mlruns"}
    )
    for path in sorted(repo.rglob("*")):
        rel = path.relative_to(repo)
        if rel.parts[0] in skipped or rel.parts[:2] in ((".dvc", "cache"), (".dvc", "tmp")):
            continue
        if path.is_file() and not path.is_symlink():
            out[rel.as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out
