"""One docstring on every public name of the library: each module-level function and class of
src/widthlab, and each method of those classes, whose name has no leading underscore (the API
reference, docs/api/, is rendered from them)."""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "widthlab"
DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def public_definitions(tree: ast.Module, prefix: str = "") -> list[tuple[str, ast.AST]]:
    """(qualified name, node) of the public functions and classes of a module body and of the
    public methods of its public classes; nested functions are private to their function."""
    found = []
    for node in tree.body:
        if isinstance(node, DEFINITIONS) and not node.name.startswith("_"):
            found.append((prefix + node.name, node))
            if isinstance(node, ast.ClassDef):
                found += public_definitions(node, f"{prefix}{node.name}.")
    return found


def undocumented(path: Path) -> list[str]:
    """The public names of the module at `path` that have no docstring."""
    tree = ast.parse(path.read_text(), filename=str(path))
    relative = path.relative_to(SRC.parent)
    return [
        f"{relative}:{node.lineno} {name}"
        for name, node in public_definitions(tree)
        if not (ast.get_docstring(node) or "").strip()
    ]


def test_the_walk_finds_public_names_and_skips_private_ones():
    tree = ast.parse(
        "def f():\n    def inner(): pass\n"
        "def _g(): pass\n"
        "class A:\n    '''doc'''\n    def m(self): pass\n    def _p(self): pass\n"
        "class _B:\n    def m(self): pass\n"
    )
    assert [name for name, _ in public_definitions(tree)] == ["f", "A", "A.m"]


def test_every_public_name_has_a_docstring():
    modules = sorted(SRC.rglob("*.py"))
    assert len(modules) > 50
    missing = [entry for path in modules for entry in undocumented(path)]
    assert missing == [], f"{len(missing)} public names without a docstring:\n" + "\n".join(missing)
