"""What a job reads of its config: the settings its record depends on, and nothing else.

A study's `measure(cfg)` reads some of its config's values — a few keys of a 60-key study
node, the whole `model` group when it instantiates it. `recorded_reads(cfg)` records, while
its block runs, every value read from `cfg` or from any node under it, as `{dotted key:
value}` (`runtime.jobs` keeps it in the record as `reads`). A record is then reused exactly
when every value it read is the same now (`changed_reads`), whatever else changed: a value
that 4 of a sweep's 17 jobs read recomputes those 4.

This is sound for a deterministic `measure`: if every value it read is the same, it takes
the same path and reads the same values, so a key it never read cannot change its result;
its data file and its code are checked apart (the record's data digest and code hash).

How reads are seen: OmegaConf fetches every child of a config through `_get_node`
(attribute and item access, `get`, `in`, `items`, `select`, `to_container`, and so Hydra's
`instantiate`), so the block wraps `DictConfig._get_node` and records

- a leaf (a value node) under its full key, `study.separability.draws`;
- a list as one value, its elements unrecorded (`model.widths`: the whole list);
- a key looked up and absent as `ABSENT`;
- a node copied with `copy.deepcopy` (whose copy may be read apart from the config) as one
  value, the whole subtree.

Only reads of `cfg`'s own tree are kept: other configs a job makes are not its settings.
`_get_node` is OmegaConf's internal method; tests/test_reads.py checks every access pattern
above on the installed OmegaConf, so a version that fetches children otherwise fails there.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from enum import Enum
from typing import Any

ABSENT = "§absent"  # a key that was looked up and not there


class _Recorder:
    """One config's reads (naming a key reads the config too: `_Session.busy` keeps those
    out)."""

    def __init__(self, root: Any) -> None:
        self.root = root
        self.reads: dict[str, Any] = {}

    def owns(self, node: Any) -> bool:
        """Whether `node` is in the recorded tree, outside any list. A copy whose parent is
        set to a node of the tree (Hydra's `instantiate` copies a node, merges its keyword
        arguments in and reads the copy) is not: its parent does not hold it."""
        from omegaconf import DictConfig

        while node is not self.root:
            parent = node._get_parent()
            if not isinstance(parent, DictConfig):
                return False  # another config's root, or inside a list
            if parent.__dict__["_content"].get(node._key()) is not node:
                return False
            node = parent
        return True

    def saw(self, parent: Any, key: Any, node: Any) -> None:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(node, DictConfig) and not node._is_none():
            return  # a step on the way to a value
        if not self.owns(parent):
            return
        if isinstance(key, Enum):  # Hydra looks up `_target_` as a str-valued Enum
            key = key.value
        name = parent._get_full_key(key)
        if node is None:
            self.reads.setdefault(name, ABSENT)
        elif isinstance(node, ListConfig | DictConfig):
            self.reads[name] = OmegaConf.to_container(node, resolve=True)
        else:
            self.reads[name] = node._dereference_node()._value()

    def copied(self, node: Any) -> None:
        from omegaconf import OmegaConf

        parent = node._get_parent()
        if parent is not None and self.owns(parent):
            self.reads[node._get_full_key(None)] = OmegaConf.to_container(node, resolve=True)


class _Session:
    """The recorders of one block: each config's, and whether a read is being named."""

    def __init__(self, recorders: list[_Recorder]) -> None:
        self.recorders = recorders
        self.busy = False

    def notify(self, method: str, *args: Any) -> None:
        if self.busy:
            return
        self.busy = True
        try:
            for recorder in self.recorders:
                getattr(recorder, method)(*args)
        finally:
            self.busy = False


_ACTIVE: ContextVar[_Session | None] = ContextVar("widthlab_reads", default=None)
_INSTALLED = {"count": 0}  # blocks recording now, in any thread: the wrappers stay while > 0
_ORIGINALS: list[Any] = []  # OmegaConf's own methods while they are wrapped
_LOCK = threading.Lock()


def _wrapped_get_node(original: Any) -> Any:
    def _get_node(self, key, *args, **kwargs):
        node = original(self, key, *args, **kwargs)
        session = _ACTIVE.get()
        if session is not None:
            session.notify("saw", self, key, node)
        return node

    return _get_node


def _wrapped_deepcopy(original: Any) -> Any:
    def __deepcopy__(self, memo):
        session = _ACTIVE.get()
        if session is not None:
            session.notify("copied", self)
        return original(self, memo)

    return __deepcopy__


@contextmanager
def recorded_reads(cfg: Any) -> Iterator[dict[str, Any]]:
    """Record the values read from `cfg` while the block runs (module docstring); yields the
    `{dotted key: value}` mapping, filled as the block reads. Blocks in other threads record
    their own configs' reads (the recorder is per context); OmegaConf's methods are wrapped
    while any block runs and restored when the last one ends."""
    with recorded_reads_of([cfg]) as (reads,):
        yield reads


@contextmanager
def recorded_reads_of(cfgs: list[Any]) -> Iterator[list[dict[str, Any]]]:
    """`recorded_reads` for several configs at once (the jobs of a stack, measured
    together): each config's reads in its own mapping."""
    from omegaconf import DictConfig

    session = _Session([_Recorder(cfg) for cfg in cfgs])
    with _LOCK:
        if _INSTALLED["count"] == 0:
            _ORIGINALS[:] = [DictConfig._get_node, DictConfig.__deepcopy__]
            DictConfig._get_node = _wrapped_get_node(_ORIGINALS[0])
            DictConfig.__deepcopy__ = _wrapped_deepcopy(_ORIGINALS[1])
        _INSTALLED["count"] += 1
    token = _ACTIVE.set(session)
    try:
        yield [recorder.reads for recorder in session.recorders]
    finally:
        _ACTIVE.reset(token)
        with _LOCK:
            _INSTALLED["count"] -= 1
            if _INSTALLED["count"] == 0:
                DictConfig._get_node, DictConfig.__deepcopy__ = _ORIGINALS


def lookup(config: Mapping[str, Any], key: str) -> Any:
    """The value at dotted `key` in a plain nested mapping, or `ABSENT`. A part that is not
    a key as text is tried as an integer (OmegaConf writes `{500: 100}`'s key as `500`)."""
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, Mapping):
            return ABSENT
        if part in node:
            node = node[part]
        elif part.lstrip("-").isdigit() and int(part) in node:
            node = node[int(part)]
        else:
            return ABSENT
    return copy.deepcopy(node)


def changed_reads(reads: Mapping[str, Any], config: Mapping[str, Any]) -> list[str]:
    """The keys of `reads` whose value in `config` (resolved, plain) is not the one read."""
    from widthlab.runtime.records import jsonable

    return [k for k, v in reads.items() if jsonable(lookup(config, k)) != jsonable(v)]
