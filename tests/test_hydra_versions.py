"""Hydra's private modules that the sweeper builds on are checked against one version of
each distribution (`hydra_plugins.widthlab_sweeper.CHECKED_VERSIONS`): pyproject.toml pins
those versions, and any other installed version fails here, loudly, before a sweep can
misbehave on it."""

import re
from importlib.metadata import version
from pathlib import Path

import pytest

from hydra_plugins.widthlab_sweeper import CHECKED_VERSIONS

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


@pytest.mark.parametrize("distribution", sorted(CHECKED_VERSIONS))
def test_the_installed_version_is_the_one_the_private_imports_were_checked_against(distribution):
    installed, checked = version(distribution), CHECKED_VERSIONS[distribution]
    assert installed == checked, (
        f"{distribution} {installed} is installed, but src/hydra_plugins was checked against "
        f"{checked} only: it subclasses hydra._internal.core_plugins.basic_sweeper.BasicSweeper "
        "and the joblib launcher. Run the whole suite, slow tests included "
        "(tests/test_launcher.py, tests/test_iteration.py, tests/test_e2e_dvc.py), on this "
        "version, then update CHECKED_VERSIONS and pyproject.toml."
    )


@pytest.mark.parametrize("distribution", sorted(CHECKED_VERSIONS))
def test_pyproject_pins_the_checked_versions(distribution):
    pins = re.findall(r'"([\w-]+)==([\w.]+)"', PYPROJECT.read_text())
    assert (distribution, CHECKED_VERSIONS[distribution]) in pins


def test_the_launcher_uses_no_private_hydra_module():
    launcher = Path(__file__).resolve().parents[1] / "src/hydra_plugins/widthlab_launcher"
    for path in launcher.glob("*.py"):
        assert "_internal" not in path.read_text(), path
