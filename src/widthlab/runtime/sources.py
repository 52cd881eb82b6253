"""Which source files can change what, and digests of them that ignore what cannot.

Two questions decide what reruns after an edit: which code a job's numbers come from (its
record's `code_hash`, `runtime.jobs`), and which code a DVC stage's output files come from
(the `digest` of its resolved settings, `runtime.params`). Both answers are

- **the import closure** of a starting set of modules within the project's packages
  (`widthlab`, `hydra_plugins`): the modules they import, at the top or inside a function,
  absolutely or relatively, and the packages' `__init__` files Python runs on the way, found
  statically from the source (`ast`) — so a study that uses another study's job carries that
  job's code, and editing a study nobody imports changes nothing else;
- **less the glue** whose edits cannot change a number or an output file (`GLUE`: MLflow
  logging, the interpreter's collector, the progress bar, error wording, the record files'
  format), whose own imports are not followed;
- **digested as tokens** (`normalized_source`): comments, blank lines, line breaks inside
  brackets, indentation width and statement-level strings (docstrings) are left out, so an
  edit that changes none of the code's tokens changes no digest; f-strings are one token
  whatever the Python version tokenizes them as.
"""

from __future__ import annotations

import ast
import hashlib
import io
import os
import tokenize
from collections.abc import Callable, Iterable
from functools import cache
from pathlib import Path

SRC = Path(__file__).resolve().parents[2]  # src/: the folder holding the packages
PACKAGES = ("widthlab", "hydra_plugins")
# Modules that talk to MLflow or tune the interpreter, nothing else: no record, table, figure
# or report changes with them (relative to SRC).
GLUE = frozenset(
    {
        "widthlab/runtime/tracking.py",
        "widthlab/runtime/curves.py",
        "widthlab/runtime/collector.py",
    }
)
# A study's modules that only present its records (summary, its tables, figures, report
# section): no record depends on them.
PRESENTATION_MODULES = frozenset({"summary.py", "tables.py", "figures.py", "report.py"})

_SKIPPED = {tokenize.COMMENT, tokenize.NL, tokenize.ENCODING}
_STATEMENT_START = {tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT}
_FSTRING = tuple(getattr(tokenize, n, -1) for n in ("FSTRING_START", "FSTRING_END"))


def normalized_source(text: str) -> bytes:
    """The code's tokens without comments, non-logical line breaks and statement-level
    strings (docstrings), one per line as `type<TAB>text`: the same for any two versions of
    a file that differ only in those, its line breaks inside brackets or its indentation."""
    lines = text.splitlines(keepends=True)
    tokens: list[tuple[int, str]] = []
    depth = 0  # inside an f-string that Python ≥ 3.12 splits into several tokens
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type == _FSTRING[0]:
            depth += 1
            if depth == 1:
                start = tok.start
            continue
        if depth:
            if tok.type == _FSTRING[1]:
                depth -= 1
                if depth == 0:
                    tokens.append((tokenize.STRING, _slice(lines, start, tok.end)))
            continue
        if tok.type in _SKIPPED:
            continue
        # Indentation and line ends count as structure, whatever their characters.
        text = "" if tok.type in _STATEMENT_START else tok.string
        tokens.append((tok.type, text))
    kept: list[tuple[int, str]] = []
    i = 0
    while i < len(tokens):
        # A statement made of strings alone (a docstring, or an unused literal) does nothing.
        j = i
        while j < len(tokens) and tokens[j][0] == tokenize.STRING:
            j += 1
        starts = i == 0 or tokens[i - 1][0] in _STATEMENT_START
        ends = j < len(tokens) and tokens[j][0] in (tokenize.NEWLINE, tokenize.ENDMARKER)
        if j > i and starts and ends:
            i = j + (tokens[j][0] == tokenize.NEWLINE)
            continue
        kept.append(tokens[i])
        i += 1
    return "".join(f"{kind}\t{text}\n" for kind, text in kept).encode()


def _slice(lines: list[str], start: tuple[int, int], end: tuple[int, int]) -> str:
    (r0, c0), (r1, c1) = start, end
    if r0 == r1:
        return lines[r0 - 1][c0:c1]
    return lines[r0 - 1][c0:] + "".join(lines[r0 : r1 - 1]) + lines[r1 - 1][:c1]


def module_file(name: str) -> Path | None:
    """The file of the project module `name` (`widthlab.kernels`), or None."""
    if name.split(".")[0] not in PACKAGES:
        return None
    base = SRC.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _package_inits(name: str) -> list[Path]:
    """The `__init__.py` files Python runs to import `name`'s parent packages."""
    parts = name.split(".")
    found = [module_file(".".join(parts[:k])) for k in range(1, len(parts))]
    return [p for p in found if p is not None and p.name == "__init__.py"]


@cache
def _imported(path: Path) -> tuple[Path, ...]:
    """The project files `path` imports (module docstring), sorted."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = _package_of(path)
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if package is None:
                    continue
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            names.add(module)
            names |= {f"{module}.{a.name}" for a in node.names}  # `from pkg import module`
    files: set[Path] = set()
    for name in names:
        file = module_file(name)
        if file is not None:
            files.add(file)
            files.update(_package_inits(name))
    return tuple(sorted(files))


def _package_of(path: Path) -> str | None:
    """The dotted package a project file belongs to (None outside the project)."""
    try:
        rel = path.relative_to(SRC)
    except ValueError:
        return None
    return ".".join(rel.with_suffix("").parts[:-1])  # a module's package, or an __init__'s


def _rel(path: Path) -> str:
    return path.relative_to(SRC).as_posix() if path.is_relative_to(SRC) else path.as_posix()


def closure(
    start: Iterable[str | os.PathLike[str]], skip: Callable[[Path], bool] = lambda p: False
) -> list[Path]:
    """`start` and every project file they import, transitively (module docstring), less
    `GLUE` and the files `skip` names, whose imports are not followed either."""
    todo = [Path(p).resolve() for p in start]
    seen: set[Path] = set()
    while todo:
        path = todo.pop()
        if path in seen or _rel(path) in GLUE or skip(path):
            continue
        seen.add(path)
        todo.extend(_imported(path))
        if path.is_relative_to(SRC):
            todo.extend(_package_inits(_package_of(path) + ".x") if _package_of(path) else [])
    return sorted(seen, key=_rel)


def digest(files: Iterable[str | os.PathLike[str]]) -> str:
    """sha256 (first 16 hex digits) of the files' names and normalized sources."""
    h = hashlib.sha256()
    for path in sorted((Path(f).resolve() for f in files), key=_rel):
        h.update(f"{_rel(path) if path.is_relative_to(SRC) else path.name}\0".encode())
        h.update(_normalized(path, path.stat().st_mtime_ns))
        h.update(b"\0")
    return h.hexdigest()[:16]


@cache
def _normalized(path: Path, mtime_ns: int) -> bytes:
    """`normalized_source` of a file, once per version of it in a process."""
    return normalized_source(path.read_text())


def is_presentation(path: Path) -> bool:
    """A study's summary, tables, figures or report module (of any study)."""
    return path.name in PRESENTATION_MODULES and "studies" in path.parts


def record_code_files(study_files: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """The code a study's records come from: the closure of its modules, presentation left
    out (neither included nor followed)."""
    return closure([Path(f) for f in study_files if not is_presentation(Path(f))], is_presentation)


def runtime_file(name: str) -> Path:
    """`src/widthlab/runtime/<name>.py`."""
    return SRC / "widthlab" / "runtime" / f"{name}.py"


def plugin_files() -> list[Path]:
    """The project's Hydra plugins (the sweeper and the launcher compose every job)."""
    return sorted((SRC / "hydra_plugins").rglob("*.py"))
