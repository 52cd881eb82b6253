"""Which code a record or a stage comes from: import closures, the glue left out, and
digests that ignore comments, docstrings and layout but not code."""

import shutil

import pytest

from widthlab.runtime import sources
from widthlab.runtime.sources import normalized_source

CODE = '''"""A module."""
import os  # why


def f(x,
      y):
    """What f does."""
    return f"{x}" + 'y'


X = "kept"
'''


def test_comments_docstrings_and_layout_do_not_change_the_tokens():
    same = '''"""Another docstring."""

import os
def f(x, y):
  return f"{x}" + 'y'
X = "kept"   # a new comment
'''
    assert normalized_source(CODE) == normalized_source(same)


@pytest.mark.parametrize(
    "edit",
    [
        ('X = "kept"', 'X = "changed"'),  # a literal that is not a statement of its own
        ("return f", "return -f"),
        ("(x,\n", "(x=1,\n"),
        ("import os", "import sys"),
        ("    return", "    print()\n    return"),
    ],
)
def test_any_change_to_the_code_changes_the_tokens(edit):
    assert normalized_source(CODE.replace(*edit)) != normalized_source(CODE)


def test_record_code_follows_imports_across_studies_and_leaves_out_presentation_and_glue():
    files = sources.record_code_files(study_files("mnist1d_double_descent"))
    names = {sources._rel(p) for p in files}
    # MNIST-1D's job is double_descent_mlp's: a change to it changes MNIST-1D's records.
    assert "widthlab/studies/double_descent_mlp/job.py" in names
    assert "widthlab/runtime/training.py" in names and "widthlab/models/mlp.py" in names
    assert not {
        n for n in names if n.endswith(("summary.py", "tables.py", "figures.py", "report.py"))
    }
    assert not names & sources.GLUE
    assert "widthlab/plotting.py" not in names
    assert not [n for n in names if "/lazy_training/" in n]


def study_files(name):
    return sorted((sources.SRC / "widthlab" / "studies" / name).glob("*.py"))


@pytest.fixture
def copied_src(tmp_path, monkeypatch):
    """A copy of src/ that `sources` reads instead of the real one."""
    copy = tmp_path / "src"
    shutil.copytree(sources.SRC, copy, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    monkeypatch.setattr(sources, "SRC", copy)
    return copy


def test_a_glue_or_comment_edit_changes_no_digest_and_a_code_edit_does(copied_src):
    def record_digest():
        files = sorted((copied_src / "widthlab" / "studies" / "max_margin").glob("*.py"))
        return sources.digest(sources.record_code_files(files))

    before = record_digest()
    tracking = copied_src / "widthlab" / "runtime" / "tracking.py"
    tracking.write_text(tracking.read_text() + "\ndef logged():\n    return 1\n")
    kernels = copied_src / "widthlab" / "margin.py"
    kernels.write_text("# a comment\n\n" + kernels.read_text())
    figures = copied_src / "widthlab" / "studies" / "max_margin" / "figures.py"
    figures.write_text(figures.read_text() + "\nSTYLE = 2\n")
    assert record_digest() == before
    kernels.write_text(kernels.read_text() + "\nEPS = 1e-3\n")
    assert record_digest() != before
