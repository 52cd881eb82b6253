import json
from pathlib import Path

import numpy as np

from widthlab.records import (
    atomic_write_json,
    code_hash,
    config_hash,
    current_job_keys,
    job_key,
    read_records,
    write_sweep_manifest,
)


def test_job_key_is_sorted_and_file_name_safe():
    assert job_key({"model.width": 1024, "seed": 3, "data.name": "sphere_linear"}) == (
        "data.name=sphere_linear,model.width=1024,seed=3"
    )
    assert "/" not in job_key({"x": "a/b c"})


def test_config_hash_ignores_excluded_keys_and_changes_with_values():
    a = {"model": {"width": 8}, "tracking": {"uri": "sqlite:///a.db"}}
    b = {"model": {"width": 8}, "tracking": {"uri": "http://x"}}
    c = {"model": {"width": 9}, "tracking": {"uri": "sqlite:///a.db"}}
    assert config_hash(a, exclude=["tracking"]) == config_hash(b, exclude=["tracking"])
    assert config_hash(a, exclude=["tracking"]) != config_hash(c, exclude=["tracking"])


def test_atomic_json_is_strict_and_leaves_no_temporary_files(tmp_path):
    atomic_write_json(tmp_path / "r.json", {"b": np.float64(1.5), "a": float("nan"), "n": [1]})
    assert json.loads((tmp_path / "r.json").read_text()) == {"a": None, "b": 1.5, "n": [1]}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]
    assert read_records(tmp_path) == [{"a": None, "b": 1.5, "n": [1]}]


def test_code_hash_follows_the_entry_point_file(tmp_path):
    entry = tmp_path / "job.py"
    entry.write_text("x = 1\n")
    before = code_hash(entry)
    assert code_hash(entry) == before
    entry.write_text("x = 2\n")
    assert code_hash(entry) != before
    assert code_hash() != before  # the package alone


def test_code_hash_skips_modules_that_cannot_change_a_record(tmp_path, monkeypatch):
    import shutil

    import widthlab.records as records

    package = tmp_path / "widthlab"
    shutil.copytree(Path(records.__file__).parent, package)
    monkeypatch.setattr(records, "__file__", str(package / "records.py"))
    before = records.code_hash()
    (package / "figures.py").write_text("# a new figure style\n")
    assert records.code_hash() == before
    (package / "losses.py").write_text((package / "losses.py").read_text() + "# changed\n")
    assert records.code_hash() != before


def test_sweep_manifests_list_the_current_jobs(tmp_path):
    assert current_job_keys(tmp_path) is None  # no manifest: every record counts
    write_sweep_manifest(tmp_path, "a", ["k1", "k2"])
    write_sweep_manifest(tmp_path, "b", ["k3"])
    assert current_job_keys(tmp_path) == {"k1", "k2", "k3"}
    write_sweep_manifest(tmp_path, "a", ["k1"])  # a's latest sweep replaces its list
    assert current_job_keys(tmp_path) == {"k1", "k3"}
    assert read_records(tmp_path) == []  # manifests are not records
    write_sweep_manifest(tmp_path, "c", None)  # a group sweep: its jobs are unknown
    assert current_job_keys(tmp_path) is None
