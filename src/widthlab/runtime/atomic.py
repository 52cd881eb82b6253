"""Writing files so that a reader never sees half of them: one file, or a stage's set of files.

One file (`atomic_write_bytes`): written to a temporary file beside it, synced, then renamed
into place; a rename is atomic, so a reader sees the old file or the new one.

A set of files (`atomic_write_set`: an aggregate's summary, metrics, tables, plots and
figures; a data set's arrays and card; the params stage's files) is replaced as a whole:

1. every new file is written beside its target as a temporary file and synced, and nothing
   else: a full disk or a kill here leaves the old set whole (the temporary files are
   removed, or ignored if the process was killed);
2. a journal naming each temporary file, its target and the files the new set drops is
   written atomically beside them (`.widthlab-swap-<id>.json`): this is the commit point;
3. the journal is carried out (each temporary file renamed onto its target, the dropped
   files removed) and deleted. Renames need no space, so this step does not fail on a full
   disk; a process killed in the middle of it leaves the journal, and the next writer or
   reader of that folder (`finish_interrupted_swaps`: the aggregate, the report, a data
   file's loader) carries it out first, so the set becomes the new one whole.

So, whatever happens, the files of a set are either all the old ones or all the new ones,
once anything reads them through the project's entry points.
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path

JOURNAL_PREFIX = ".widthlab-swap-"


def _temporary_beside(path: Path, payload: bytes) -> str:
    """Write `payload` to a new synced temporary file in `path`'s folder; its name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual mode
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return tmp


def _sync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike[str], payload: bytes) -> None:
    """Write `payload` to `path` through a temporary file renamed into place."""
    path = Path(path)
    tmp = _temporary_beside(path, payload)
    try:
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_set(outputs: Mapping[Path, bytes], remove: Iterable[Path] = ()) -> None:
    """Replace the files `outputs` (path → bytes) and remove the files `remove` as one set
    (module docstring): a failure leaves the old set whole."""
    outputs = {Path(p): payload for p, payload in outputs.items()}
    dropped = [Path(p) for p in remove if Path(p) not in outputs]
    dropped = [p for p in dropped if p.exists()]
    if not dropped and len(outputs) <= 1:
        for path, payload in outputs.items():
            atomic_write_bytes(path, payload)
        return
    folder = Path(os.path.commonpath([str(p.parent.resolve()) for p in [*outputs, *dropped]]))
    finish_interrupted_swaps(folder)
    written: list[tuple[str, str]] = []
    try:
        for path, payload in outputs.items():
            written.append((_temporary_beside(path, payload), str(path.resolve())))
        journal = folder / f"{JOURNAL_PREFIX}{uuid.uuid4().hex}.json"
        text = json.dumps({"replace": written, "remove": [str(p.resolve()) for p in dropped]})
        for parent in {Path(target).parent for _, target in written}:
            _sync_folder(parent)  # the temporary files' names on disk before the journal's
        atomic_write_bytes(journal, text.encode())
        _sync_folder(folder)
    except BaseException:
        for tmp, _ in written:
            Path(tmp).unlink(missing_ok=True)
        raise
    carry_out(journal)


def carry_out(journal: Path) -> None:
    """Step 3 of the module docstring for one journal (also for one left by a killed
    process: a temporary file already renamed is skipped)."""
    try:
        plan = json.loads(journal.read_text())
    except FileNotFoundError:
        return  # carried out by another process meanwhile
    except ValueError:  # cannot happen (written atomically); a hand-edited file: leave it
        return
    for tmp, target in plan.get("replace", []):
        try:
            os.replace(tmp, target)
        except FileNotFoundError:
            pass  # renamed already
    for target in plan.get("remove", []):
        Path(target).unlink(missing_ok=True)
    for folder in {Path(target).parent for _, target in plan.get("replace", [])}:
        _sync_folder(folder)
    journal.unlink(missing_ok=True)


def finish_interrupted_swaps(folder: str | os.PathLike[str]) -> int:
    """Carry out every journal a killed process left in `folder` (module docstring); returns
    how many. A folder that does not exist has none."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    journals = sorted(folder.glob(f"{JOURNAL_PREFIX}*.json"))
    for journal in journals:
        carry_out(journal)
    return len(journals)
