"""The README is a map and docs/ the book: the map stays short and its links land, every page
is on the site's nav, every module of the library is in the API reference, and every study of
the pipeline has its page. (`mkdocs build --strict`, run by .ci/run, renders the site itself.)"""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README_MAX_LINES = 250


def _nav_pages(node) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, list):
        return [page for item in node for page in _nav_pages(item)]
    if isinstance(node, dict):
        return [page for value in node.values() for page in _nav_pages(value)]
    return []


def _studies() -> list[str]:
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    return dvc["vars"][0]["studies"]


def test_readme_is_short_and_its_links_land():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= README_MAX_LINES
    targets = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text)
    assert any(target.startswith("docs/") for target in targets)
    for target in targets:
        if "://" in target:
            continue
        assert (ROOT / target).exists(), f"README links to {target}, which does not exist"


def test_every_page_is_on_the_nav():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    nav = set(_nav_pages(config["nav"]))
    pages = {str(path.relative_to(DOCS)) for path in DOCS.rglob("*.md")}
    assert pages - nav == set(), "pages missing from mkdocs.yml's nav"
    assert nav - pages == set(), "nav entries without a page"


def test_every_module_is_in_the_api_reference():
    documented = set()
    for page in (DOCS / "api").glob("*.md"):
        documented |= set(re.findall(r"^::: ([\w.]+)$", page.read_text(), re.MULTILINE))
    modules = set()
    for path in (ROOT / "src" / "widthlab").rglob("*.py"):
        parts = list(path.relative_to(ROOT / "src").with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        name = ".".join(parts)
        # widthlab.runtime is a namespace package: mkdocs.yml loads it from src/widthlab.
        modules.add(name.removeprefix("widthlab.") if name.startswith("widthlab.runtime") else name)
    assert modules - documented == set(), "modules missing from docs/api/"
    assert documented - modules == set(), "docs/api/ names modules that do not exist"


def test_every_study_has_its_page():
    index = (DOCS / "studies" / "index.md").read_text()
    for study in _studies():
        page = DOCS / "studies" / f"{study}.md"
        assert page.exists(), f"no docs page for the study {study}"
        assert f"[`{study}`]({study}.md)" in index, f"{study} is not in docs/studies/index.md"
    assert len(re.findall(r"^\| \[`", index, re.MULTILINE)) == len(_studies())
