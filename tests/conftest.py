"""Shared fixtures: the Hydra compose API on the repository's conf/, shrunk for tests."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"


@pytest.fixture
def compose_cfg():
    """compose_cfg(*overrides) → the resolved-able root config with profile=smoke, tracking=off."""

    def _compose(*overrides: str, return_hydra_config: bool = False) -> DictConfig:
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            return compose(
                "config",
                overrides=["profile=smoke", "tracking=off", *overrides],
                return_hydra_config=return_hydra_config,
            )

    return _compose


@pytest.fixture
def run_pipeline(tmp_path):
    """run_pipeline(job, *args) runs `python pipelines/<job>.py args` with cwd = tmp_path."""

    def _run(job: str, *args: str, env: dict | None = None, cwd: Path | None = None):
        # A tracking server set in the developer's shell must not receive test runs.
        inherited = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
        full_env = {**inherited, "PYTHONUNBUFFERED": "1", **(env or {})}
        return subprocess.run(
            [sys.executable, str(REPO / "pipelines" / f"{job}.py"), *args],
            cwd=cwd or tmp_path, env=full_env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip

    return _run


def load_pipeline(name: str):
    """Import pipelines/<name>.py as a module (its Hydra main is not run)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        f"pipeline_{name}", REPO / "pipelines" / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def smoke_data(tmp_path_factory):
    """The smoke profile's data sets, generated once into a temporary data folder."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from widthlab.data import make_dataset, save_dataset

    folder = tmp_path_factory.mktemp("data")
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        for name in ("sphere_linear", "teacher", "digits", "digits_noisy"):
            cfg = compose("config", overrides=["profile=smoke", "tracking=off", f"data={name}"])
            settings = OmegaConf.to_container(cfg.data, resolve=True)
            save_dataset(make_dataset(settings.pop("name"), **settings), folder)
    return folder
