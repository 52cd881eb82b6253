"""No silent wrong result: over a hundred bad inputs, across every entry point and every kind
of mistake, each stopped before any work with one line (key, value and what is allowed, or
the file and what is wrong), a non-zero exit, nothing written or changed, and no MLflow run.

The entry points run in this process (their Hydra apps, as `python pipelines/<entry>.py`
would run them) in a working folder holding the smoke data and one finished study.
"""

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import sqlite3
import sys
from pathlib import Path

import pytest
from conftest import REPO, SEARCH_PATH

from widthlab.runtime.stage import run_stage

pytestmark = pytest.mark.slow

ENTRIES: dict = {}


def entry(name: str):
    if name not in ENTRIES:
        spec = importlib.util.spec_from_file_location(
            f"entry_{name}", REPO / "pipelines" / f"{name}.py"
        )
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        ENTRIES[name] = module.main
    return ENTRIES[name]


def run_entry(name: str, args: list[str]) -> int:
    # Each app below configures logging to a file of its own run; a later one must not write
    # to the file handler an earlier one closed (separate processes never share them).
    for handler in logging.root.handlers[:]:
        logging.root.removeHandler(handler)
    if name == "stage":
        return run_stage(args, REPO / "pipelines")
    saved = sys.argv
    sys.argv = [f"{name}.py", *args]
    try:
        entry(name)()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.argv = saved
    return 0


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, smoke_data):
    """Smoke data files and a finished `toy` study (records, summary) to be left untouched."""
    root = tmp_path_factory.mktemp("bad")
    shutil.copytree(smoke_data, root / "data")
    here = os.getcwd()
    os.chdir(root)
    try:
        assert run_entry("stage", ["study=toy", "tracking=off", SEARCH_PATH]) == 0
    finally:
        os.chdir(here)
    return root


def snapshot(root: Path) -> dict[str, str]:
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if path.is_file() and rel.parts[0] not in ("outputs",) and not path.name.endswith(".lock"):
            out[str(rel)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def mlflow_runs(db: Path) -> int:
    if not db.exists():
        return 0
    with sqlite3.connect(db) as con:
        try:
            return con.execute("select count(*) from runs").fetchone()[0]
        except sqlite3.OperationalError:
            return 0


# Setups that damage one file of the workspace before the row runs (and are undone after).
def card(change):
    def setup(root: Path) -> None:
        path = root / "data" / "teacher.json"
        content = json.loads(path.read_text())
        path.write_text(json.dumps(change(content)))

    return setup


def write(relative: str, text: str | None):
    def setup(root: Path) -> None:
        path = root / relative
        if text is None:
            path.unlink()
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)

    return setup


def sqlite_file(relative: str, *statements: str, truncate: int | None = None):
    """A SQLite file made by `statements` (a store that is not MLflow's, or one whose schema
    is not the one this MLflow writes), cut to `truncate` bytes if given."""

    def setup(root: Path) -> None:
        path = root / relative
        with sqlite3.connect(path) as con:
            for statement in statements:
                con.execute(statement)
        con.close()
        if truncate is not None:
            os.truncate(path, truncate)

    return setup


HALF_MIGRATED = sqlite_file(
    "half.db",
    "create table alembic_version (version_num varchar(32) not null)",
    "insert into alembic_version values ('770bee3ae1dd')",  # where a full disk stopped it
    "create table runs (run_uuid varchar(32))",
    "create table experiments (experiment_id integer)",
)
TRUNCATED = sqlite_file(
    "cut.db",
    "create table runs (run_uuid text)",
    "insert into runs select hex(randomblob(400)) from (with recursive c(x) as "
    "(select 1 union all select x + 1 from c limit 2000) select x from c)",
    truncate=300_000,
)


def drop_sha(content):
    del content["arrays"]["x_train"]["sha256"]
    return content


TOY = ["study=toy", SEARCH_PATH]
LAZY = ["study=lazy_training"]
MLP = ["study=double_descent_mlp"]
RF = ["study=double_descent_rf"]
NTK = ["study=ntk_convergence"]
FL = ["study=feature_learning"]
DD1D = ["study=mnist1d_double_descent"]
FVI = ["study=finite_vs_infinite"]
MM = ["study=max_margin"]
GOOD_RECORD = '{"key": "seed=0,study.width=64", "status": "ok", "job": {"seed": 0}, "metrics": {}}'
TOY_RECORD = "results/toy/records/main/seed=0,study.width=64.json"

# (entry, arguments, the start of the error line after "error: ", setup or None)
ROWS = [
    # --- 1. values outside what is allowed, every group, every entry point ---------------
    ("data", ["data=sphere_linear", "data.n_train=0"], "data.n_train=0 is not allowed", None),
    ("data", ["data=sphere_linear", "data.n_train=-5"], "data.n_train=-5 is not allowed", None),
    ("data", ["data=sphere_linear", "data.n_test=abc"], "data.n_test='abc' is not allowed", None),
    ("data", ["data=sphere_linear", "data.dim=1"], "data.dim=1 is not allowed", None),
    ("data", ["data=sphere_linear", "data.dim=2.5"], "data.dim=2.5 is not allowed", None),
    ("data", ["data=sphere_linear", "data.noise=-1.0"], "data.noise=-1.0 is not allowed", None),
    ("data", ["data=sphere_linear", "data.signal=nan"], "data.signal=nan is not allowed", None),
    ("data", ["data=sphere_linear", "data.nonlinear=inf"], "data.nonlinear=inf is not allowed", None),
    ("data", ["data=sphere_linear", "data.seed=-1"], "data.seed=-1 is not allowed", None),
    ("data", ["data=sphere_linear", "+data.nosie=0.3"], "data.nosie=0.3 is not allowed: expected no such key", None),
    ("data", ["data=teacher", "data.teacher_width=0"], "data.teacher_width=0 is not allowed", None),
    ("data", ["data=teacher", "data.noise=true"], "data.noise=True is not allowed", None),
    ("data", ["data=digits", "data.label_noise=1.0"], "data.label_noise=1.0 is not allowed", None),
    ("data", ["data=digits", "data.label_noise=-0.1"], "data.label_noise=-0.1 is not allowed", None),
    ("data", ["data=digits", "data.n_train=5000"], "data.n_train=5000 is not allowed", None),
    ("data", ["data=digits_noisy", "data.label_noise=1.5"], "data.label_noise=1.5 is not allowed", None),
    ("data", ["data=mnist", "data.n_test=0"], "data.n_test=0 is not allowed", None),
    ("data", ["data=mnist", "data.n_train=70000"], "data.n_train=70000 is not allowed", None),
    ("data", ["data=mnist1d", "data.n_train=4001"], "data.n_train=4001 is not allowed", None),
    ("data", ["data=mnist1d_noisy", "data.n_test=1001"], "data.n_test=1001 is not allowed", None),
    ("data", ["data=digits", "seed=1.5"], "seed=1.5 is not allowed", None),
    ("data", ["data=digits", "device=tpu"], "device='tpu' is not allowed", None),
    ("data", ["data=digits", "threads=0"], "threads=0 is not allowed", None),
    ("data", ["data=digits", "resume=maybe"], "resume='maybe' is not allowed", None),
    ("data", ["data=digits", "tracking.enabled=maybe"], "tracking.enabled='maybe' is not allowed", None),
    ("data", ["data=digits", "max_memory_gb=-1"], "max_memory_gb=-1 is not allowed", None),
    ("run", [*NTK, "model.width=0"], "model.width=0 is not allowed", None),
    ("run", [*NTK, "model.depth=0"], "model.depth=0 is not allowed", None),
    ("run", [*NTK, "model.activation=sigmoid"], "model.activation='sigmoid' is not allowed", None),
    ("run", [*NTK, "model.parameterization=standard"], "model.parameterization='standard' is not allowed", None),
    ("run", [*NTK, "model.parameterization=mystery"], "model.parameterization='mystery' is not allowed", None),
    ("run", [*NTK, "model.w_std=0"], "model.w_std=0 is not allowed", None),
    ("run", [*NTK, "model.b_std=-1"], "model.b_std=-1 is not allowed", None),
    ("run", [*NTK, "study.n_probe=100000"], "study.n_probe=100000 is not allowed", None),
    ("run", [*NTK, "study.n_probe=0"], "study.n_probe=0 is not allowed", None),
    ("run", [*NTK, "study.reference_slope=half"], "study.reference_slope='half' is not allowed", None),
    ("run", ["study=ntk_convergence/mc", "study.mc.networks=1"], "study.mc.networks=1 is not allowed", None),
    ("run", ["study=ntk_convergence/mc", "study.mc.resolved_factor=0"], "study.mc.resolved_factor=0 is not allowed", None),
    ("run", ["study=ntk_convergence/circle", "study.circle.points=2"], "study.circle.points=2 is not allowed", None),
    ("run", ["study=ntk_convergence/circle", "study.circle.width=77"], "study.circle.width=77 is not allowed", None),
    ("run", ["study=ntk_convergence/circle", "study.circle.bootstrap=5"], "study.circle.bootstrap=5 is not allowed", None),
    ("run", ["study=ntk_convergence/circle", "study.circle.activation=swish"], "study.circle.activation='swish' is not allowed", None),
    ("run", ["study=ntk_convergence/circle", "study.circle.part=2"], "study.circle.part=2 is not allowed", None),
    ("run", ["study=ntk_convergence/circle", "study.circle.parts=2"], "study.circle.parts=2 is not allowed", None),
    ("run", [*RF, "study.ridges=[-1.0]"], "study.ridges[0]=-1.0 is not allowed", None),
    ("run", [*RF, "study.ridges=[]"], "study.ridges=[] is not allowed", None),
    ("run", [*RF, "study.width_ratios=[0]"], "study.width_ratios[0]=0 is not allowed", None),
    ("run", [*RF, "study.width_ratios=[2,1]"], "study.width_ratios=[2, 1] is not allowed", None),
    ("run", [*RF, "study.gd_check_steps=0"], "study.gd_check_steps=0 is not allowed", None),
    ("run", [*RF, "study.gd_tolerance=0"], "study.gd_tolerance=0 is not allowed", None),
    ("run", [*RF, "study.theory_excluded_band=[2,1]"], "study.theory_excluded_band=[2, 1] is not allowed", None),
    ("run", [*RF, "model.activation=gelu"], "model.activation='gelu' is not allowed", None),
    ("run", [*RF, "model.feature_distribution=uniform"], "model.feature_distribution='uniform' is not allowed", None),
    ("run", [*RF, "seed=99"], "study.n_train=60 is not allowed", None),
    ("run", [*MM, "study.lr_fraction=2.0"], "study.lr_fraction=2.0 is not allowed", None),
    ("run", [*MM, "study.steps=500"], "study.steps=500 is not allowed", None),
    ("run", [*MM, "study.digit_classes=[3,3]"], "study.digit_classes=[3, 3] is not allowed", None),
    ("run", [*MM, "seed=5"], "study.n_train=40 is not allowed", None),
    ("run", ["study=max_margin/multiclass", "data=sphere_linear"], "data='sphere_linear' is not allowed", None),
    ("run", ["study=max_margin/separability", "study.separability.n_points=1000"], "study.separability.n_points=1000 is not allowed", None),
    ("run", ["study=max_margin/classification", "study.classification.width_ratios=[0.5,0.51,2]"], "study.classification.width_ratios=[0.5, 0.51, 2] is not allowed", None),
    ("run", [*MLP, "train.lr=0"], "train.lr=0 is not allowed", None),
    ("run", [*MLP, "train.lr=-1"], "train.lr=-1 is not allowed", None),
    ("run", [*MLP, "train.optimizer=lbfgs"], "train.optimizer='lbfgs' is not allowed", None),
    ("run", [*MLP, "train.loss=hinge"], "train.loss='hinge' is not allowed", None),
    ("run", [*MLP, "train.batch_size=0"], "train.batch_size=0 is not allowed", None),
    ("run", [*MLP, "train.dtype=float16"], "train.dtype='float16' is not allowed", None),
    ("run", [*MLP, "train.max_steps=0"], "train.max_steps=0 is not allowed", None),
    ("run", [*MLP, "train.stop_loss=-1"], "train.stop_loss=-1 is not allowed", None),
    ("run", [*MLP, "train.momentum=-0.5"], "train.momentum=-0.5 is not allowed", None),
    ("run", [*MLP, "train.divergence_factor=0"], "train.divergence_factor=0 is not allowed", None),
    ("run", [*MLP, "train.log_every_n_epochs=0"], "train.log_every_n_epochs=0 is not allowed", None),
    ("run", [*MLP, "study.peak_band=[3,1]"], "study.peak_band=[3, 1] is not allowed", None),
    ("run", [*MLP, "study.peak_effect=0"], "study.peak_effect=0 is not allowed", None),
    ("run", [*MLP, "data=sphere_linear"], "data='sphere_linear' is not allowed", None),
    ("run", [*LAZY, "train=adam"], "train.optimizer='adam' is not allowed", None),
    ("run", [*LAZY, "train.momentum=0.9"], "train.momentum=0.9 is not allowed", None),
    ("run", [*LAZY, "train.loss=cross_entropy"], "train.loss='cross_entropy' is not allowed", None),
    ("run", [*LAZY, "model.parameterization=standard"], "model.parameterization='standard' is not allowed", None),
    ("run", [*LAZY, "study.steps=-3"], "study.steps=-3 is not allowed", None),
    ("run", [*LAZY, "study.n_train=100000"], "study.n_train=100000 is not allowed", None),
    ("run", [*LAZY, "study.n_eval=100000"], "study.n_eval=100000 is not allowed", None),
    ("run", [*LAZY, "study.lr_fraction=0"], "study.lr_fraction=0 is not allowed", None),
    ("run", [*FL, "train.momentum=0.9"], "train.momentum=0.9 is not allowed: expected 0 in this study", None),
    ("run", [*FL, "data=teacher"], "data='teacher' is not allowed: expected a classification data set", None),
    ("run", [*FL, "model.base_width=0"], "model.base_width=0 is not allowed", None),
    ("run", [*FL, "study.transfer.n_lr=2"], "study.transfer.n_lr=2 is not allowed", None),
    ("run", [*FL, "study.transfer.log2_lr_min.mup=-2.5"], "study.transfer.log2_lr_min=", None),
    ("run", [*FL, "study.movement.log2_lr.ntk=40"], "study.movement.log2_lr.ntk=40 is not allowed: expected a rate of the transfer grid", None),
    ("run", [*FL, "+study.movement.references.ntk.slope=-1"], "study.movement.references.ntk=", None),
    ("run", [*FL, "study.coord.check_step=6"], "study.coord.check_step=6 is not allowed", None),
    ("run", [*FL, "study.coord.flat=[muP]"], "study.coord.flat=['muP'] is not allowed", None),
    ("run", [*FL, "study.flat_tolerance=0"], "study.flat_tolerance=0 is not allowed", None),
    ("run", ["study=feature_learning/coord", "study.coord.widths=[64,0,128]"], "study.coord.widths[1]=0 is not allowed", None),
    ("run", [*MLP, "model.parameterization=mup"], "model.base_width=None is not allowed: expected an integer ≥ 1 with model.parameterization='mup'", None),
    ("run", [*LAZY, "model.parameterization=mean_field"], "model.parameterization='mean_field' is not allowed: expected 'ntk' in this study", None),
    ("run", [*LAZY, "data=digits"], "data='digits' is not allowed: expected a data set with a test split", None),
    ("run", [*DD1D, "study.peak_band=[5,0.5]"], "study.peak_band=[5, 0.5] is not allowed", None),
    ("run", [*DD1D, "study.published.widths=[3,2]"], "study.published.widths=[3, 2] is not allowed", None),
    ("run", [*DD1D, "study.bootstrap=10"], "study.bootstrap=10 is not allowed", None),
    ("run", [*FVI, "study.ridges=[-1.0]"], "study.ridges[0]=-1.0 is not allowed", None),
    ("run", [*FVI, "study.val_fraction=1.0"], "study.val_fraction=1.0 is not allowed", None),
    ("run", [*FVI, "train.momentum=0.9"], "train.momentum=0.9 is not allowed", None),
    ("run", ["study=finite_vs_infinite/kernels", "study.n_train=5000"], "study.n_train=5000 is not allowed", None),
    ("run", [*TOY, "study.width=0"], "study.width=0 is not allowed", None),
    ("run", [*TOY, "study.job=other"], "study.job='other' is not allowed", None),
    ("run", [*TOY, "study.job_keys=[model.width]"], "study.job_keys='model.width' is not allowed", None),
    ("run", [*TOY, "+study.extra=1"], "study.extra=1 is not allowed: expected no such key", None),
    ("run", [*TOY, "seed=-3"], "seed=-3 is not allowed", None),
    ("run", ["tracking=off"], "study=None is not allowed: expected one of ['double_descent_mlp', ", None),
    # Sweeps: checked job by job before the first starts, and never empty.
    ("run", ["-m", *NTK, "model.width=16,32,0"], "model.width=0 is not allowed", None),
    ("run", ["-m", *LAZY, "model.width=64,0"], "model.width=0 is not allowed", None),
    ("run", ["-m", *MLP, "train.lr=0.1,0"], "train.lr=0 is not allowed", None),
    ("run", ["-m", *NTK, "model.width=range(5,5)"], "model.width='range(5,5)' is not allowed: expected a sweep with at least one value", None),
    ("run", ["-m", *TOY, "seed=range(0)"], "seed='range(0)' is not allowed: expected a sweep with at least one value", None),
    ("run", ["-m", *TOY, "study.job_keys=[seed]"], "study.job_keys=['seed'] is not allowed: expected keys that tell the sweep's jobs apart", None),
    # --- 2. the data file does not prove the settings asked for --------------------------
    ("run", [*MLP, "data.label_noise=0.5"], "data set 'digits_noisy' in data/ was made with label_noise=0.2, but data.label_noise=0.5 here", None),
    ("run", [*LAZY, "data.dim=50"], "data set 'teacher' in data/ was made with dim=8, but data.dim=50 here", None),
    ("run", [*LAZY, "profile=laptop"], "data set 'teacher' in data/ was made with n_train=64, but data.n_train=256 here", None),
    ("run", ["-m", *MLP, "profile=laptop"], "data set 'digits_noisy' in data/ was made with n_train=300, but data.n_train=1000 here", None),
    ("run", [*LAZY, "data.seed=3"], "data set 'teacher' in data/ was made with seed=0, but data.seed=3 here", None),
    ("run", [*LAZY], "data set 'teacher' in data/ is unusable (the card is a list, not a mapping)", card(lambda c: [])),
    ("run", ["-m", *LAZY], "data set 'teacher' in data/ is unusable (the card's array 'x_train' has no sha256)", card(drop_sha)),
    ("run", [*LAZY], "data set 'teacher' in data/ is unusable (the card's 'task' is missing or not a str)", card(lambda c: {**c, "task": 3})),
    ("run", [*LAZY], "data set 'teacher' in data/ is unusable (the card names the data set 'other')", card(lambda c: {**c, "name": "other"})),
    ("run", [*LAZY], "data set 'teacher' not found in data/", write("data/teacher.npz", None)),
    ("run", ["-m", *LAZY], "data set 'teacher' not found in data/", write("data/teacher.json", None)),
    ("run", [*LAZY], "data set 'teacher' in data/ is unusable", write("data/teacher.npz", "not a zip")),
    ("stage", [*LAZY], "data set 'teacher' not found in data/", write("data/teacher.npz", None)),
    # --- 3. aggregate and report read defensively -----------------------------------------
    ("aggregate", TOY, f"{TOY_RECORD}: not valid JSON", write(TOY_RECORD, GOOD_RECORD[:40])),
    ("aggregate", TOY, f"{TOY_RECORD}: not a job record: 'key' is missing", write(TOY_RECORD, "{}")),
    ("aggregate", TOY, f"{TOY_RECORD}: metrics.distance = '0.5' is text, not a number",
     write(TOY_RECORD, GOOD_RECORD.replace('"metrics": {}', '"metrics": {"distance": "0.5"}'))),
    ("aggregate", TOY, f"{TOY_RECORD}: status 'done' is neither", write(TOY_RECORD, GOOD_RECORD.replace('"ok"', '"done"'))),
    ("aggregate", TOY, "results/toy/records/sweeps/toy.json: not valid JSON", write("results/toy/records/sweeps/toy.json", "{garbled")),
    ("aggregate", TOY, "results/toy/records/sweeps/toy.json: not a sweep manifest", write("results/toy/records/sweeps/toy.json", '{"keys": 7}')),
    ("aggregate", [*TOY, "study.name=nothing_yet"], "results/nothing_yet/records: no job records", None),
    ("aggregate", [*TOY, "study.reference=x"], "study.reference='x' is not allowed", None),
    ("report", [], "results/toy/summary.json: not valid JSON", write("results/toy/summary.json", "{")),
    ("report", [], "results/toy/summary.json: not a study summary", write("results/toy/summary.json", "{}")),
    # --- 4. paths ----------------------------------------------------------------------------
    ("run", [*TOY, "paths.results_dir=blocker"], "blocker: paths.results_dir must be a folder, but this is a file", write("blocker", "x")),
    ("run", [*TOY, "paths.results_dir=blocker/sub"], "blocker: paths.results_dir=blocker/sub cannot be created", write("blocker", "x")),
    ("run", [*LAZY, "paths.data_dir=blocker"], "blocker: paths.data_dir must be a folder, but this is a file", write("blocker", "x")),
    ("data", ["data=teacher", "paths.data_dir=blocker"], "blocker: paths.data_dir must be a folder, but this is a file", write("blocker", "x")),
    ("report", ["paths.reports_dir=blocker"], "blocker: paths.reports_dir must be a folder, but this is a file", write("blocker", "x")),
    ("aggregate", [*TOY, "paths.results_dir=blocker"], "blocker: paths.results_dir=blocker/toy cannot be created: blocker is a file", write("blocker", "x")),
    # --- 5. targets ------------------------------------------------------------------------
    ("run", [*MLP, "model._target_=widthlab.models.mlp.Nope"], "model._target_='widthlab.models.mlp.Nope' is not allowed: expected an importable network class", None),
    ("run", [*MLP, "model._target_=collections.OrderedDict"], "model._target_='collections.OrderedDict' is not allowed: expected a subclass of torch.nn", None),
    ("run", [*MLP, "train.trainer._target_=no.Trainer"], "train.trainer._target_='no.Trainer' is not allowed: expected an importable Lightning Trainer", None),
    ("run", [*MLP, "train.trainer._target_=torch.nn.Linear"], "train.trainer._target_='torch.nn.Linear' is not allowed: expected a subclass of", None),
    ("run", [*TOY, "study._target_=toy_study.Nope"], "study._target_='toy_study.Nope' is not allowed: expected an importable Study class", None),
    ("run", [*TOY, "study._target_=toy_study.measure"], "study._target_='toy_study.measure' is not allowed", None),
    ("aggregate", [*TOY, "study._target_=no.Study"], "study._target_='no.Study' is not allowed", None),
    ("stage", [*TOY, "study._target_=no.Study"], "study._target_='no.Study' is not allowed", None),
    # --- 6. tracking -------------------------------------------------------------------------
    ("run", [*TOY, "tracking=mlflow", "tracking.uri=bogus://x"], "tracking.uri='bogus://x' is not allowed: expected sqlite:///<path>", None),
    ("run", [*TOY, "tracking=mlflow", "tracking.uri=http://127.0.0.1:9"], "tracking.uri='http://127.0.0.1:9' is not allowed: expected a reachable MLflow server", None),
    ("run", ["-m", *TOY, "tracking=mlflow", "tracking.uri=http://127.0.0.1:9"], "tracking.uri='http://127.0.0.1:9' is not allowed: expected a reachable MLflow server", None),
    ("data", ["data=teacher", "tracking=mlflow", "tracking.uri=bogus://x"], "tracking.uri='bogus://x' is not allowed", None),
    ("run", [*TOY, "tracking=mlflow", "tracking.uri=sqlite:///data"], "data: tracking.uri points at a folder, not a SQLite file", None),
    # --- 8. memory -------------------------------------------------------------------------
    ("run", [*LAZY, "model.width=22000", "model.depth=2"], "job `model.depth=2,model.width=22000,seed=0` needs about", None),
    ("run", ["-m", *NTK, "model.width=64,400000", "model.depth=2"], "job `model.activation=relu,model.depth=2,model.width=400000,seed=0` needs about", None),
    ("run", [*MLP, "model.width=500", "max_memory_gb=0.001"], "job `model.width=500,seed=0` needs about 0.0 GiB (estimated peak), more than the 0.0 GiB of max_memory_gb=0.001", None),
    ("data", ["data=sphere_linear", "data.n_train=10000000000"], "job `data=sphere_linear` needs about", None),
    # --- stage: a bad study or value stops before any sweep ----------------------------------
    ("stage", ["study=no_such_study"], "study=no_such_study is not allowed: expected one of the configs of study/: double_descent_mlp", None),
    ("stage", [*TOY, "study.width=0"], "study.width=0 is not allowed", None),
    ("stage", [*TOY, "study.sweeps=[]"], "study.sweeps=[] is not allowed", None),
    # --- 9. round 3: what a user of the newer studies types -------------------------------
    # Keys a study never reads are refused, not ignored (runtime.unread).
    ("run", [*NTK, "model._target_=torch.nn.Linear"], "model._target_='torch.nn.Linear' is not allowed: expected no value: the kernels job of ntk_convergence does not read model._target_", None),
    ("run", ["-m", *NTK, "model._target_=torch.nn.Linear"], "model._target_='torch.nn.Linear' is not allowed: expected no value", None),
    ("stage", [*NTK, "model._target_=torch.nn.Linear"], "model._target_='torch.nn.Linear' is not allowed: expected no value: the circle, kernels and mc_nngp jobs", None),
    ("run", ["-m", "study=ntk_convergence/circle", "model.width=1000"], "model.width=1000 is not allowed: expected no value: the circle job of ntk_convergence does not read model.width", None),
    ("run", ["-m", "study=ntk_convergence/circle", "seed=3"], "seed=3 is not allowed: expected no value: the circle job", None),
    ("run", ["-m", "study=ntk_convergence/circle", "data.n_train=50"], "data.n_train=50 is not allowed: expected no value: the circle job", None),
    ("run", [*LAZY, "train.lr=0.5"], "train.lr=0.5 is not allowed: expected no value: the train job of lazy_training does not read train.lr", None),
    ("run", [*FVI, "train.lr=0.5"], "train.lr=0.5 is not allowed: expected no value: the train job of finite_vs_infinite", None),
    ("run", ["-m", "study=finite_vs_infinite/kernels", "model.width=64"], "model.width=64 is not allowed: expected no value: the kernels job of finite_vs_infinite", None),
    ("run", ["-m", "study=finite_vs_infinite/kernels", "seed=2"], "seed=2 is not allowed: expected no value", None),
    ("stage", [*FVI, "train.lr=0.5"], "train.lr=0.5 is not allowed: expected no value: the kernels and train jobs of finite_vs_infinite", None),
    ("run", [*FL, "train.lr=0.1"], "train.lr=0.1 is not allowed: expected no value: the transfer job of feature_learning", None),
    ("run", ["-m", "study=feature_learning/coord", "train.max_steps=10"], "train.max_steps=10 is not allowed: expected no value: the coord job", None),
    ("run", [*FL, "train.stop_loss=0.01"], "train.stop_loss=0.01 is not allowed: expected no value", None),
    # A model config the study's jobs cannot take.
    ("run", [*MM, "model=mlp"], "model='mlp' is not allowed: expected 'random_features' in this study", None),
    ("run", ["-m", "study=max_margin/separability", "model=mlp"], "model='mlp' is not allowed: expected 'random_features'", None),
    ("run", [*RF, "model=mlp"], "model='mlp' is not allowed: expected 'random_features'", None),
    ("run", [*LAZY, "model=random_features"], "model='random_features' is not allowed: expected 'mlp' in this study", None),
    ("run", [*DD1D, "model=random_features"], "model='random_features' is not allowed: expected 'mlp'", None),
    # Values that passed every check and then failed, or diverged with status ok.
    ("run", [*FVI, "study.lr_fraction=3"], "study.lr_fraction=3 is not allowed: expected a number in (0, 2)", None),
    ("run", ["-m", "study=finite_vs_infinite/kernels", "study.lr_fraction=2"], "study.lr_fraction=2 is not allowed: expected a number in (0, 2)", None),
    ("run", [*LAZY, "study.lr_fraction=2.5"], "study.lr_fraction=2.5 is not allowed: expected a number in (0, 2)", None),
    ("run", [*LAZY, "seed=99999999999999999999"], "seed=99999999999999999999 is not allowed: expected an integer ≥ 0 and ≤ 4294967295", None),
    ("run", ["-m", *FVI, "seed=0,4294967296"], "seed=4294967296 is not allowed", None),
    ("data", ["data=mnist1d", "data.seed=99999999999999999999"], "data.seed=99999999999999999999 is not allowed", None),
    ("run", [*LAZY, "threads=1000"], "threads=1000 is not allowed: expected an integer from 1 to", None),
    ("data", ["data=digits", "threads=1000"], "threads=1000 is not allowed", None),
    # The command line: a key given twice, an override Hydra cannot read.
    ("run", ["-m", *LAZY, "model.depth=1,2", "model.depth=3"], "model.depth is given twice on the command line (`model.depth=1,2` and `model.depth=3`)", None),
    ("data", ["data=teacher", "data.dim=4", "data.dim=8"], "data.dim is given twice", None),
    ("aggregate", [*TOY, "study.reference=1", "study.reference=2"], "study.reference is given twice", None),
    ("run", [*LAZY, "model.width=(64"], "the override `model.width=(64` is not in Hydra's override grammar", None),
    # Unknown config names: the same one line and status from every entry point.
    ("run", ["study=nope"], "study=nope is not allowed: expected one of the configs of study/:", None),
    ("run", ["-m", "study=ntk_convergence/nope"], "study=ntk_convergence/nope is not allowed: expected one of the configs of study/: double_descent_mlp", None),
    ("data", ["data=nope"], "data=nope is not allowed: expected one of the configs of data/: digits", None),
    ("aggregate", ["study=nope"], "study=nope is not allowed: expected one of the configs of study/:", None),
    ("aggregate", [*TOY, "profile=nope"], "profile=nope is not allowed: expected one of the configs of profile/: gpu, laptop, smoke", None),
    ("report", ["profile=nope"], "profile=nope is not allowed: expected one of the configs of profile/:", None),
    ("stage", [*LAZY, "profile=nope"], "profile=nope is not allowed: expected one of the configs of profile/:", None),
    ("run", ["-m", *LAZY, "hydra/launcher=nope"], "hydra/launcher=nope is not allowed: expected one of the configs of hydra/launcher/: basic, cores", None),
    ("run", [*LAZY, "train=nope"], "train=nope is not allowed: expected one of the configs of train/: adam, gd, sgd", None),
    # A YAML file Hydra cannot read.
    ("run", [*LAZY, "hydra.searchpath=[file://extra_conf]", "profile=tabbed"], "extra_conf/profile/tabbed.yaml: not valid YAML at line 2, column 1: found character '\\t'", write("extra_conf/profile/tabbed.yaml", "name: smoke\n\tparallel_jobs: 1\n")),
    # The launcher: a count joblib refuses, before any parent run or manifest.
    ("run", ["-m", *TOY, "hydra/launcher=cores", "hydra.launcher.n_jobs=0"], "hydra.launcher.n_jobs=0 is not allowed: expected a number of jobs side by side", None),
    ("data", ["-m", "data=teacher,digits", "hydra/launcher=cores", "hydra.launcher.n_jobs=0"], "hydra.launcher.n_jobs=0 is not allowed", None),
    # Tracking stores that are not an intact MLflow store of this MLflow's schema.
    ("run", [*TOY, "tracking.uri=sqlite:///notes.db"], "notes.db: tracking.uri: not an SQLite database, so not an MLflow store", write("notes.db", "my notes")),
    ("run", ["-m", *TOY, "tracking.uri=sqlite:///empty.db"], "empty.db: tracking.uri: an empty file, not an MLflow store: remove it", write("empty.db", "")),
    ("run", [*TOY, "tracking.uri=sqlite:///half.db"], "half.db: tracking.uri: an MLflow store at schema revision 770bee3ae1dd, but this MLflow writes", HALF_MIGRATED),
    ("aggregate", [*TOY, "tracking.uri=sqlite:///half.db"], "half.db: tracking.uri: an MLflow store at schema revision 770bee3ae1dd", HALF_MIGRATED),
    ("data", ["data=teacher", "tracking.uri=sqlite:///half.db"], "half.db: tracking.uri: an MLflow store at schema revision", HALF_MIGRATED),
    ("aggregate", [*TOY, "tracking.uri=sqlite:///cut.db"], "cut.db: tracking.uri: the MLflow store is damaged (SQLite: database disk image is malformed)", TRUNCATED),
    ("run", [*TOY, "tracking.uri=sqlite:///other.db"], "other.db: tracking.uri: an SQLite database, but not an MLflow store", sqlite_file("other.db", "create table notes (text)")),
    # Records and results the aggregate and the report cannot use.
    ("aggregate", TOY, f"{TOY_RECORD}: status 'ok' but no metrics", write(TOY_RECORD, GOOD_RECORD)),
    ("report", ["paths.results_dir=nothing_here"], "nothing_here: paths.results_dir does not exist", None),
    ("report", ["paths.results_dir=empty"], "empty: no study summary in paths.results_dir", write("empty/.keep", "")),
    ("report", ["paths.results_dir=blocker"], "blocker: paths.results_dir must be a folder, but this is a file", write("blocker", "x")),
]  # fmt: skip


def test_the_table_is_large_and_covers_every_entry_point():
    assert len(ROWS) >= 200
    assert {row[0] for row in ROWS} == {"data", "run", "stage", "aggregate", "report"}


@pytest.mark.parametrize(("name", "args", "expected", "setup"), ROWS,
                         ids=[f"{i}-{r[0]}" for i, r in enumerate(ROWS)])  # fmt: skip
def test_bad_input_stops_before_any_work_with_one_line(workspace, capsys, monkeypatch, name,
                                                      args, expected, setup):  # fmt: skip
    monkeypatch.chdir(workspace)
    backup = workspace.parent / f"{workspace.name}-backup"
    if setup is not None:
        shutil.rmtree(backup, ignore_errors=True)
        shutil.copytree(workspace, backup, ignore=shutil.ignore_patterns("outputs"))
        setup(workspace)
    db = workspace / "mlflow.db"
    before = snapshot(workspace)
    try:
        # Tracking on, into a store of the workspace: a run created by mistake would show.
        extra = [] if any(a.startswith("tracking=") for a in args) else ["tracking=mlflow"]
        extra += [] if any("tracking.uri" in a for a in args) else [f"tracking.uri=sqlite:///{db}"]
        extra += [] if any(a.startswith("hydra.searchpath=") for a in args) else [SEARCH_PATH]
        extra += [] if any(a.startswith("profile=") for a in args) else ["profile=smoke"]
        code = run_entry(name, [*args, *extra])
        captured = capsys.readouterr()
        err = captured.err.strip()
        last = err.splitlines()[-1] if err else ""
        assert code == 2, err
        assert last.startswith(f"error: {expected}") or expected in last, err[-2000:]
        assert "Traceback" not in err
        # One line: no log lines (Hydra's ERROR lines of a bad _target_) before it.
        assert [line for line in err.splitlines() if line.startswith("error:")] == [last]
        assert "[ERROR]" not in captured.out + captured.err
        assert snapshot(workspace) == before  # nothing written or changed
        assert mlflow_runs(db) == 0  # no MLflow run
    finally:
        if setup is not None:
            for path in list(workspace.iterdir()):
                if path.name != "outputs":
                    shutil.rmtree(path) if path.is_dir() else path.unlink()
            for path in backup.iterdir():
                shutil.move(str(path), workspace / path.name)
            shutil.rmtree(backup)
