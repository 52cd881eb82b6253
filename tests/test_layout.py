"""The package's layers: the maths imports no run-time framework, nothing imports in a
cycle, and no module grows past about 400 lines."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "widthlab"
FRAMEWORKS = ("hydra", "omegaconf", "mlflow", "pytorch_lightning", "lightning", "dvc", "filelock")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every module `path` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
MATHS = [m for m in MODULES if not m.startswith(("widthlab.runtime", "widthlab.studies"))]


@pytest.mark.parametrize("module", MATHS)
def test_the_maths_imports_no_run_time_framework(module):
    used = {i.split(".")[0] for i in imports(MODULES[module])}
    assert not used & set(FRAMEWORKS), sorted(used & set(FRAMEWORKS))
    inner = {i for i in imports(MODULES[module]) if i.startswith("widthlab.")}
    assert not [i for i in inner if i.startswith(("widthlab.runtime", "widthlab.studies"))]


def test_the_run_time_glue_never_imports_a_study():
    for name, path in MODULES.items():
        if name.startswith("widthlab.runtime"):
            assert not [i for i in imports(path) if i.startswith("widthlab.studies")], name


def test_the_import_graph_has_no_cycles():
    graph = {}
    for name, path in MODULES.items():
        targets = set()
        for i in imports(path):
            while i and i not in MODULES:  # `from widthlab.x import y`: module x
                i = i.rpartition(".")[0]
            if i and i != name and not name.startswith(i + "."):  # a package's own __init__
                targets.add(i)
        graph[name] = targets
    state: dict[str, int] = {}

    def visit(node, trail):
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                raise AssertionError(" → ".join([*trail, node, nxt]))
            if nxt not in state:
                visit(nxt, [*trail, node])
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node, [])


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_is_much_over_400_lines(module):
    assert len(MODULES[module].read_text().splitlines()) <= 420
