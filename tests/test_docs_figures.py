"""Numbers once: a figure the docs quote is the figure in the file that holds it.

A measured figure is quoted in bold with its file beside it,
**580.9 s [565.5, 581.7]** (`benchmarks/results/<name>.txt`); every number in it must be a
number of that file at the precision quoted. The headline metric each study puts in
`dvc metrics show`, listed in docs/results.md, must be the one its `metrics.json` holds and its
Study class names."""

import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
QUOTE = re.compile(r"\*\*([^*]+)\*\*\s+\(`(benchmarks/results/[\w.]+)`\)")
NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?")
# Keys every study's metrics.json may hold besides its headline (widthlab.runtime.aggregate).
METRIC_KEYS = {"differs", "failed_jobs", "inconclusive", "checks_failed"}


def _pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def _quotes() -> list[tuple[str, str, str]]:
    return [
        (str(page.relative_to(ROOT)), figure, source)
        for page in _pages()
        for figure, source in QUOTE.findall(page.read_text())
    ]


def _quoted_in(number: str, text: str) -> bool:
    """Whether `number`, as written with its decimals, is a rounding of a number in `text`."""
    decimals = len(number.partition(".")[2])
    value = float(number)
    tolerance = 0.5 * 10**-decimals + 1e-12
    return any(abs(float(found) - value) <= tolerance for found in NUMBER.findall(text))


def test_the_docs_quote_their_figures():
    pages = {page for page, _, _ in _quotes()}
    assert len(_quotes()) >= 10
    assert {"docs/speed.md", "docs/profiles.md"} <= pages


@pytest.mark.parametrize(("page", "figure", "source"), _quotes())
def test_a_quoted_figure_is_its_files(page, figure, source):
    path = ROOT / source
    assert path.exists(), f"{page} quotes {source}, which does not exist"
    text = path.read_text()
    numbers = NUMBER.findall(figure)
    assert numbers, f"{page}: no number in **{figure}**"
    for number in numbers:
        assert _quoted_in(number, text), f"{page}: {number} of **{figure}** is not in {source}"


def test_quoting_rounds_to_the_precision_written():
    text = "median 580.889 s, range [565.466, 581.708]"
    assert _quoted_in("580.9", text) and _quoted_in("565.5", text)
    assert not _quoted_in("580.8", text)
    assert _quoted_in("581", "median 580.889 s")
    assert not _quoted_in("583", text)


def test_each_studys_headline_metric_is_the_one_the_docs_name():
    table = dict(
        re.findall(r"^\s*\| `(\w+)` \| `(\w+)` \|$", (ROOT / "docs/results.md").read_text(), re.M)
    )
    studies = yaml.safe_load((ROOT / "dvc.yaml").read_text())["vars"][0]["studies"]
    assert set(table) == set(studies)
    for study in studies:
        keys = set(json.loads((ROOT / "results" / study / "metrics.json").read_text()))
        assert keys - METRIC_KEYS == {table[study]}, f"results/{study}/metrics.json"
        source = (ROOT / "src/widthlab/studies" / study / "__init__.py").read_text()
        assert f'headline_metric = "{table[study]}"' in source, study
