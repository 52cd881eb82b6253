"""Records: keys, hashes, atomic strict JSON, manifests, and reading that names a bad file."""

import json
from pathlib import Path

import numpy as np
import pytest

from widthlab.runtime.errors import BadFile
from widthlab.runtime.records import (
    atomic_write_json,
    check_record,
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


def test_config_hash_changes_with_values_only():
    assert config_hash({"model": {"width": 8}}) == config_hash({"model": {"width": 8}})
    assert config_hash({"model": {"width": 8}}) != config_hash({"model": {"width": 9}})


def test_atomic_json_is_strict_and_leaves_no_temporary_files(tmp_path):
    atomic_write_json(tmp_path / "r.json", {"b": np.float64(1.5), "a": float("nan"), "n": [1]})
    assert json.loads((tmp_path / "r.json").read_text()) == {"a": None, "b": 1.5, "n": [1]}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_sweep_manifests_list_the_current_jobs_per_kind(tmp_path):
    assert current_job_keys(tmp_path) == {}
    write_sweep_manifest(tmp_path, "a", "main", ["k1", "k2"])
    write_sweep_manifest(tmp_path, "a/digits", "main", ["k3"])
    write_sweep_manifest(tmp_path, "a/circle", "circle", ["c1"])
    assert current_job_keys(tmp_path) == {"main": {"k1", "k2", "k3"}, "circle": {"c1"}}
    write_sweep_manifest(tmp_path, "a", "main", ["k1"])  # a's latest sweep replaces its list
    assert current_job_keys(tmp_path)["main"] == {"k1", "k3"}
    assert read_records(tmp_path) == {}  # manifests are not records


def record(**changes):
    base = {"key": "seed=0", "status": "ok", "job": {"seed": 0}, "metrics": {"d": 0.5}}
    return {**base, **changes}


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ('{"key": "seed=0", "status": "ok", "job"', "not valid JSON, so not a job record"),
        ("{}", "not a job record: 'key' is missing"),
        ("[1, 2]", "a record must be a JSON object, found list"),
        (json.dumps(record(status="done")), "status 'done' is neither 'ok' nor 'failed'"),
        (json.dumps(record(metrics={"d": "0.5"})), "metrics.d = '0.5' is text, not a number"),
        (json.dumps(record(metrics=[1])), "its 'metrics' is not a mapping"),
    ],
)
def test_a_bad_record_is_named_with_what_is_wrong(tmp_path, content, problem):
    path = tmp_path / "main" / "seed=0.json"
    path.parent.mkdir()
    path.write_text(content)
    with pytest.raises(BadFile) as info:
        read_records(tmp_path)
    assert str(info.value) == f"{path}: {problem}" or str(info.value).startswith(
        f"{path}: {problem}"
    )


def test_a_garbled_manifest_is_named(tmp_path):
    folder = tmp_path / "sweeps"
    folder.mkdir()
    (folder / "a.json").write_text('{"sweep": "a", "keys": 3}')
    with pytest.raises(BadFile, match=r"a\.json: not a sweep manifest"):
        current_job_keys(tmp_path)


def test_check_record_accepts_a_failed_record_without_metrics():
    assert check_record(record(status="failed", metrics={}), Path("x.json"))["status"] == "failed"
