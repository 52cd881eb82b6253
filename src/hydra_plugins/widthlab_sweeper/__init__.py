"""Hydra's basic sweeper without its second composition of every job.

Before a sweeper runs, `widthlab.runtime.sweep.SweepCallback` has composed every job of a
study sweep and checked it against the schemas, the study and the pre-flight. Hydra's
`BasicSweeper` then composes every job once more, only to validate it, before the launcher
composes it a third time to run it; on a sweep of hundreds of small jobs that second pass
cost as much as the jobs. `CheckedSweeper` expands and launches exactly as `BasicSweeper`
does and skips that validation for study sweeps (those with `study._target_`); any other
multirun (e.g. `pipelines/data.py -m`) is validated as before.

Hydra finds sweepers in the `hydra_plugins` namespace package; conf/hydra/sweeper/
widthlab.yaml selects this one.
"""

from __future__ import annotations

from collections.abc import Sequence

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from omegaconf import OmegaConf


class CheckedSweeper(BasicSweeper):
    """`BasicSweeper`, trusting `SweepCallback`'s checks of a study sweep (module doc)."""

    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        if OmegaConf.select(self.config, "study._target_", default=None) is not None:
            return
        super().validate_batch_is_legal(batch)
