"""What a job reads of its config (`runtime.reads`): every way a job or Hydra reads a value is
recorded under its full key, nothing else is, and a record's reads decide its reuse."""

import copy

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from widthlab.runtime.reads import ABSENT, changed_reads, lookup, recorded_reads

BASE = {
    "seed": 1,
    "study": {"a": 1, "b": {"c": 2, "d": [1, 2, 3]}, "e": None, "seeds": {500: 100}, "x": 9},
    "model": {"_target_": "builtins.dict", "w": 3},
    "data": {"n": 5, "m": 6},
    "other": 7,
}


@pytest.fixture
def cfg():
    node = OmegaConf.create(copy.deepcopy(BASE))
    OmegaConf.set_struct(node, True)
    return node


@pytest.mark.parametrize(
    ("read", "expected"),
    [
        (lambda c: c.study.a, {"study.a": 1}),
        (lambda c: c["study"]["a"], {"study.a": 1}),
        (lambda c: c.study.b.d[1], {"study.b.d": [1, 2, 3]}),  # a list is one value
        (lambda c: c.study.get("e"), {"study.e": None}),
        (lambda c: c.study.get("nope", 3), {"study.nope": ABSENT}),
        (lambda c: "zz" in c.study, {"study.zz": ABSENT}),
        (lambda c: OmegaConf.select(c, "study.b.c"), {"study.b.c": 2}),
        (lambda c: OmegaConf.to_container(c.data, resolve=True), {"data.n": 5, "data.m": 6}),
        (lambda c: c.study.seeds[500], {"study.seeds.500": 100}),
        (lambda c: dict(c.data.items()), {"data.n": 5, "data.m": 6}),
        # Hydra copies the node, merges the keyword arguments into the copy and reads the
        # copy: the node counts as read whole, the merged argument not at all.
        (lambda c: instantiate(c.model, extra=1), {"model": {"_target_": "builtins.dict", "w": 3}}),
        (lambda c: copy.deepcopy(c.study.b), {"study.b": {"c": 2, "d": [1, 2, 3]}}),
        (lambda c: OmegaConf.create({"k": 1}).k, {}),  # another config: not the job's
    ],
)
def test_every_way_of_reading_is_recorded_under_its_key(cfg, read, expected):
    with recorded_reads(cfg) as reads:
        read(cfg)
    assert reads == expected


def test_recording_ends_with_its_block_even_when_the_block_raises(cfg):
    from omegaconf import DictConfig

    original = DictConfig._get_node
    with pytest.raises(KeyError), recorded_reads(cfg) as reads:
        _ = cfg.study.a
        raise KeyError("a job that fails")
    _ = cfg.study.x
    assert reads == {"study.a": 1}
    assert DictConfig._get_node is original


def test_only_a_change_to_a_value_read_changes_the_reads(cfg):
    with recorded_reads(cfg) as reads:
        cfg.study.a, cfg.study.b.d, cfg.study.get("nope"), cfg.study.seeds[500]
    assert changed_reads(reads, BASE) == []
    other = copy.deepcopy(BASE)
    other["other"], other["study"]["x"], other["study"]["b"]["c"] = 8, 10, 3  # never read
    assert changed_reads(reads, other) == []
    other["study"]["b"]["d"] = [1, 2]
    other["study"]["nope"] = 0  # looked up when it was absent: now there
    other["study"]["seeds"][500] = 99
    assert sorted(changed_reads(reads, other)) == ["study.b.d", "study.nope", "study.seeds.500"]


def test_lookup_walks_plain_mappings_and_integer_keys():
    assert lookup(BASE, "study.seeds.500") == 100
    assert lookup(BASE, "study.b.d") == [1, 2, 3]
    assert lookup(BASE, "study.b.d.0") == ABSENT
    assert lookup(BASE, "model.none") == ABSENT


def test_blocks_in_two_threads_record_their_own_configs(cfg):
    import threading

    other = OmegaConf.create({"study": {"a": 2, "z": 3}})
    inside, results = threading.Barrier(2), {}

    def read(name, node, key):
        with recorded_reads(node) as reads:
            inside.wait(5)  # both blocks are open at once
            _ = node.study[key]
            inside.wait(5)
        results[name] = reads

    threads = [
        threading.Thread(target=read, args=("one", cfg, "a")),
        threading.Thread(target=read, args=("two", other, "z")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == {"one": {"study.a": 1}, "two": {"study.z": 3}}
    from omegaconf import DictConfig

    assert DictConfig._get_node.__module__ == "omegaconf.dictconfig"  # restored


def test_the_configs_of_a_stack_record_their_reads_apart(cfg):
    from widthlab.runtime.reads import recorded_reads_of

    other = OmegaConf.create({"study": {"a": 2, "z": 3}, "seed": 5})
    with recorded_reads_of([cfg, other]) as (first, second):
        _ = cfg.study.a, other.study.z, other.seed
    assert first == {"study.a": 1} and second == {"study.z": 3, "seed": 5}
