"""Python's cyclic garbage collector, set for a pipeline process.

A pipeline process (a DVC stage, a sweep's worker) imports torch, Lightning, MLflow, Hydra
and matplotlib: about half a million objects the collector tracks, which live until the
process ends. With CPython's default thresholds (700, 10, 10) the cyclic collector walks that
growing heap again and again while it is imported, and walks all of it once more when the
interpreter shuts down. Neither walk can free anything: every one of those objects is still
in use. Measured on a laptop core, `import torch, pytorch_lightning, mlflow, hydra,
matplotlib.figure` and exit take 4.2–4.5 s by default and 3.0–3.1 s with the settings below;
in a smoke stage the collector's own time (`gc.callbacks`) was 1.2–1.5 s of ~10 s, plus
~1.1 s at exit.

`tune_collector()` makes two changes, and only in the processes that call it (the entry
points under `pipelines/` and the stage's tasks, which is where a sweep's workers start its
jobs), never on `import widthlab`:

- the youngest generation is collected after `FIRST_THRESHOLD` net allocations of container
  objects rather than 700 (the older generations' thresholds are CPython's), so a full
  collection comes ~14× less often. Collection is only deferred, never turned off; reference
  counting, which frees tensors and arrays, is untouched;
- at exit, `gc.freeze()` runs, so the interpreter's final collections skip the objects alive
  at that point. It is registered before the heavy imports, so it runs after their exit
  handlers (MLflow's, loky's: `atexit` is last-in first-out); a handler registered earlier
  (logging's) runs after it, which is harmless, as freezing frees and closes nothing.
  Files, MLflow runs and records are closed or written by the code that opened them, never
  by a finalizer at exit.

Neither change touches a number a job computes: the collector decides only when unreachable
objects are freed.
"""

from __future__ import annotations

import atexit
import gc

FIRST_THRESHOLD = 10_000

_tuned = False


def tune_collector() -> None:
    """Apply the module docstring's collector settings to this process (once; later calls do
    nothing)."""
    global _tuned
    if _tuned:
        return
    _tuned = True
    _, second, third = gc.get_threshold()
    gc.set_threshold(FIRST_THRESHOLD, second, third)
    atexit.register(gc.freeze)
