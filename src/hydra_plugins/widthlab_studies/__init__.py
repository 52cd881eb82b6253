"""Hydra's search path reaches into every study folder: a study's configs live with its code.

A study of widthlab is one folder, `src/widthlab/studies/<name>/`, and its configs are the
folder's `conf/`, laid out as config groups of the root config (`conf/config.yaml`):

    conf/study/<name>.yaml                       the study's main sweep: `study=<name>`
    conf/study/<name>/<sweep>.yaml               its other sweeps: `study=<name>/<sweep>`
    conf/profile/study/<name>/<profile>.yaml     its sizes per profile (smoke, laptop, gpu),
                                                 composed at `profile.study.<name>`

`StudyConfigSearchPath` appends each study folder's `conf/` to Hydra's search path (as
`file://` entries, so that finding them imports no study's code), after the repository's
own `conf/`. The study folders are those of the repository whose `conf/` the app runs with
(`<repo>/src/widthlab/studies/`, beside `<repo>/conf/`), not of wherever Python imports the
package from: `dvc exp run --temp` and `--queue` run a copy of the repository while an
editable install imports the original, and the copy's configs (the value DVC set) must be
the ones read. Without such a folder (an installed package run with its own `conf/`), the
package's own location.

Hydra merges a config group's options across the search path, so `study=` lists
every study, and a study's configs select their own sizes with the defaults entry
`/profile/study/<name>: ${profile}` (the active profile's name). The sizes files hold plain
values only: they are the files `dvc exp run -S` rewrites (`widthlab.runtime.params`).

A study outside the package (a test's, a user's) ships the same `conf/` beside its module
and adds it with `hydra.searchpath=[file://<folder>/conf]` or `pkg://<package>.conf`.
Hydra finds search-path plugins in the `hydra_plugins` namespace package.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin

PACKAGE = "widthlab.studies"


def study_config_dirs(repository: Path | None = None) -> list[Path]:
    """The `conf/` folder of every study folder, sorted by study name: those of
    `<repository>/src/widthlab/studies/` when it exists, else those of the package
    `widthlab.studies` where Python finds it (without importing any study)."""
    own = repository / "src" / Path(*PACKAGE.split(".")) if repository else None
    if own is not None and own.is_dir():
        folders = [own]
    else:
        spec = importlib.util.find_spec(PACKAGE)
        if spec is None or not spec.submodule_search_locations:
            return []
        folders = [Path(p) for p in spec.submodule_search_locations]
    found = {c.parent.name: c for f in folders for c in f.glob("*/conf") if c.is_dir()}
    return [found[name] for name in sorted(found)]


def app_repository(search_path: ConfigSearchPath) -> Path | None:
    """The folder holding the app's own config folder (provider `main`), or None."""
    for element in search_path.get_path():
        if element.provider == "main" and element.path:
            path = element.path.removeprefix("file://")
            if "://" not in path:
                return Path(path).resolve().parent
    return None


class StudyConfigSearchPath(SearchPathPlugin):
    """Appends every study folder's `conf/` to Hydra's config search path (module doc)."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        """Append each study folder's `conf/` of the app's repository, after its `conf/`."""
        for folder in study_config_dirs(app_repository(search_path)):
            search_path.append(provider="widthlab-study", path=f"file://{folder}")
