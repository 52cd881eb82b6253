import json

import numpy as np

from widthlab.records import atomic_write_json, config_hash, job_key, read_records


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
