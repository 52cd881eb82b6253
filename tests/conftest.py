"""Shared fixtures: the Hydra compose API on the repository's conf/ (plus the configs of the
toy study of tests/studies/toy_study, a study from outside the package), shrunk to the smoke
profile for tests; and the studies the pipeline runs, read from dvc.yaml."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
STUDIES_DIR = REPO / "src" / "widthlab" / "studies"
TEST_STUDIES = REPO / "tests" / "studies"
TOY = TEST_STUDIES / "toy_study"
SEARCH_PATH = f"hydra.searchpath=[file://{TOY / 'conf'}]"
sys.path.insert(0, str(TEST_STUDIES))  # the toy study's package, as a user's study would be


def dvc_studies(dvc_yaml: Path = REPO / "dvc.yaml") -> list[str]:
    """The studies the pipeline runs: the `studies` list of dvc.yaml's `vars`, in its order."""
    import yaml

    entries = yaml.safe_load(dvc_yaml.read_text())["vars"]
    return next(list(e["studies"]) for e in entries if isinstance(e, dict) and "studies" in e)


STUDIES = dvc_studies()
PROFILES = sorted(p.stem for p in (CONF / "profile").glob("*.yaml"))


def study_conf(study: str) -> Path:
    """A study's config folder: `src/widthlab/studies/<study>/conf`."""
    return STUDIES_DIR / study / "conf"


def composed(*overrides: str, hydra: bool = False) -> DictConfig:
    """The root config with `overrides`, profile=smoke unless given, the toy study's configs
    on the search path."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(
            "config",
            overrides=["profile=smoke", SEARCH_PATH, *overrides],
            return_hydra_config=hydra,
        )


@pytest.fixture
def compose_cfg():
    """compose_cfg(*overrides) → the root config with profile=smoke, tracking=off."""

    def _compose(*overrides: str, return_hydra_config: bool = False) -> DictConfig:
        return composed("tracking=off", *overrides, hydra=return_hydra_config)

    return _compose


def subprocess_env(extra: dict | None = None) -> dict:
    """The environment of an entry point run by a test: no tracking server inherited from the
    developer's shell, the toy study importable."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    path = os.pathsep.join(filter(None, [str(TEST_STUDIES), env.get("PYTHONPATH")]))
    return {**env, "PYTHONUNBUFFERED": "1", "PYTHONPATH": path, **(extra or {})}


@pytest.fixture
def run_pipeline(tmp_path):
    """run_pipeline(entry, *args) runs `python pipelines/<entry>.py args` with cwd = tmp_path."""

    def _run(entry: str, *args: str, env: dict | None = None, cwd: Path | None = None):
        return subprocess.run(
            [sys.executable, str(REPO / "pipelines" / f"{entry}.py"), *args],
            cwd=cwd or tmp_path,
            env=subprocess_env(env),
            capture_output=True,
            text=True,
            timeout=900,
        )

    return _run


@pytest.fixture(scope="session")
def smoke_data(tmp_path_factory):
    """The smoke profile's data sets, generated once into a temporary data folder."""
    from omegaconf import OmegaConf

    from widthlab.data import make_dataset
    from widthlab.runtime.datafiles import save_dataset

    folder = tmp_path_factory.mktemp("data")
    for name in ("sphere_linear", "teacher", "digits", "digits_noisy", "mnist1d", "mnist1d_noisy"):
        cfg = composed("tracking=off", f"data={name}")
        settings = OmegaConf.to_container(cfg.data, resolve=True)
        save_dataset(make_dataset(settings.pop("name"), **settings), folder)
    return folder


def sphere_points(n: int, dim: int, seed=0):
    """n points uniform on the sphere of radius √dim (`widthlab.seeding.uniform_sphere`)."""
    import numpy as np

    from widthlab.seeding import uniform_sphere

    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    return uniform_sphere(rng, n, dim, np.sqrt(dim))


@pytest.fixture(scope="session")
def smoke_pipeline(tmp_path_factory):
    """A copy of the repository whose smoke pipeline `dvc repro` has run once (its output in
    `first_repro.log`), results committed: the end-to-end tests share it and change only
    their own `smoke_repo.clone` of it."""
    from smoke_repo import dvc, git, smoke_repository

    repo = smoke_repository(tmp_path_factory.mktemp("smoke") / "repo")
    first = dvc(repo, "repro")
    (repo.parent / "first_repro.log").write_text(first.stdout + first.stderr)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "results")
    return repo


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory) -> Path:
    """An empty MLflow store, made once (its ~50 migrations take seconds): copy it."""
    from widthlab.runtime.tracking import client

    path = tmp_path_factory.mktemp("store") / "mlflow.db"
    client(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture(scope="session")
def cluster():
    """A one-node SLURM cluster (accounting off) and an MLflow tracking server on PostgreSQL
    (tests/cluster.py), started once for the cluster tests and stopped after them, every
    daemon with it; skipped with one line where this machine cannot run one."""
    from cluster import missing, start_cluster

    reason = missing()
    if reason:
        pytest.skip(reason)
    started = start_cluster()
    yield started
    started.stop()
