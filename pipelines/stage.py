"""A study's DVC stage: every sweep the study lists (`study.sweeps`), then its aggregate.

Usage:
    python pipelines/stage.py study=double_descent_rf                 # as `dvc repro` runs it
    python pipelines/stage.py study=double_descent_rf profile=smoke   # overrides go to each step

Each sweep is `pipelines/run.py -m study=<sweep> <overrides>`, run in this one process
(`widthlab.runtime.stage`); the first step that fails stops the stage with its exit status.
"""

import sys
from pathlib import Path

from widthlab.runtime.collector import tune_collector
from widthlab.runtime.stage import run_stage

if __name__ == "__main__":
    tune_collector()  # before torch, Lightning and MLflow are imported
    sys.exit(run_stage(sys.argv[1:], pipelines=Path(__file__).resolve().parent))
