"""Hydra's and YAML's errors as one line each (`errors.one_line`).

Hydra reports an unknown config name (`study=nope`) in 10–16 lines (every option, the
search path, a hint about HYDRA_FULL_ERROR), a tab in a YAML file as PyYAML's four-line
scanner message, and an override outside its grammar as a lexer error with a caret:

    error: study=nope is not allowed: expected one of the configs of study/: double_descent_mlp, …
    error: conf/profile/laptop.yaml: not valid YAML at line 2, column 1: found character '\\t' …
    error: the override `paths.results_dir=a b` is not in Hydra's override grammar (…)
"""

from __future__ import annotations

import re
from typing import Any

GRAMMAR = (
    "key=value; quote a value holding characters other than letters, digits and "
    "/-+.$%*@?|, e.g. key='a b', and sweep with commas under -m"
)


def hydra_message(exc: BaseException) -> str | None:
    """The one line of a Hydra, OmegaConf or YAML error, or None for any other error."""
    import yaml
    from hydra.errors import HydraException, MissingConfigException, OverrideParseException
    from omegaconf.errors import OmegaConfBaseException

    yaml_error = _yaml_cause(exc)
    if yaml_error is not None:
        return yaml_message(yaml_error)
    if isinstance(exc, MissingConfigException) and exc.options and exc.missing_cfg_file:
        missing = str(exc.missing_cfg_file)
        # The group whose options Hydra lists (a sweep's name, study=<study>/<sweep>, holds a /)
        found = re.search(r"Available options in '([^']+)'", str(exc))
        group = found.group(1) if found else missing.rpartition("/")[0]
        name = missing.removeprefix(group + "/")
        choices = ", ".join(sorted(exc.options))
        return f"{group}={name} is not allowed: expected one of the configs of {group}/: {choices}"
    if isinstance(exc, OverrideParseException):
        shown = str(exc).splitlines()[0].split(": ", 1)[-1]
        return f"the override `{shown}` is not in Hydra's override grammar ({GRAMMAR})"
    if isinstance(exc, HydraException | OmegaConfBaseException | yaml.YAMLError):
        lines = [line for line in str(exc).splitlines() if line.strip()]
        return lines[0] if lines else type(exc).__name__
    return None


def _yaml_cause(exc: BaseException) -> Any:
    import yaml

    while exc is not None:
        if isinstance(exc, yaml.YAMLError):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def yaml_message(error: Any) -> str:
    """`<file>: not valid YAML at line L, column C: <problem>` for PyYAML's marked errors."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    if mark is None:
        return f"not valid YAML: {problem}"
    hint = " (YAML indents with spaces, not tabs)" if "\\t" in problem or "\t" in problem else ""
    return (
        f"{mark.name}: not valid YAML at line {mark.line + 1}, column {mark.column + 1}: "
        f"{problem}{hint}"
    )
