"""The package's layers: the maths imports no run-time framework, nothing imports in a
cycle, a study uses another only through documented public functions, and no module grows
past about 400 lines."""

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


# A study reaches into another only where declared here, and only through public names with a
# docstring: mnist1d_double_descent runs double_descent_mlp's job (its measure, memory and
# batching functions, and the module's file for its code digest) and reuses its curves.
CROSS_STUDY = {("mnist1d_double_descent", "double_descent_mlp")}


def study_of(name: str) -> str | None:
    parts = name.split(".")
    return parts[2] if len(parts) > 2 and parts[:2] == ["widthlab", "studies"] else None


def cross_study_uses(path: Path, own: str) -> list[tuple[str, str]]:
    """(module of another study, name) for each name `path` takes from another study: a name
    it imports from the module, or an attribute of the module imported whole."""
    tree = ast.parse(path.read_text())
    whole: dict[str, str] = {}  # local name → another study's module imported whole
    uses = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                other = study_of(full)
                if other is None or other == own:
                    continue
                if full in MODULES:
                    whole[alias.asname or alias.name] = full
                else:
                    uses.append((node.module, alias.name))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                other = study_of(alias.name)
                assert other is None or other == own, f"{path}: import {alias.name}"
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id in whole:
                uses.append((whole[node.value.id], node.attr))
    return uses


def documented_public(module: str, name: str) -> bool:
    if name == "__file__":  # the module's path, for the importing study's code digest
        return True
    if name.startswith("_"):
        return False
    tree = ast.parse(MODULES[module].read_text())
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef) and node.name == name:
            return bool(ast.get_docstring(node))
    return False


def test_a_study_uses_another_only_through_documented_public_functions():
    edges = set()
    for name, path in MODULES.items():
        own = study_of(name)
        if own is None:
            continue
        for module, used in cross_study_uses(path, own):
            edges.add((own, study_of(module)))
            assert documented_public(module, used), f"{name} uses {module}.{used}"
    assert edges == CROSS_STUDY


def test_the_cross_study_check_sees_a_private_name(tmp_path):
    path = tmp_path / "m.py"
    path.write_text(
        "from widthlab.studies.double_descent_mlp import job\n"
        "from widthlab.studies.double_descent_mlp.summary import curves\n"
        "job._private(1)\n"
    )
    uses = cross_study_uses(path, "mnist1d_double_descent")
    assert set(uses) == {
        ("widthlab.studies.double_descent_mlp.summary", "curves"),
        ("widthlab.studies.double_descent_mlp.job", "_private"),
    }
    assert documented_public(*uses[0]) != documented_public(*uses[1])
