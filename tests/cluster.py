"""A one-node SLURM cluster and an MLflow tracking server on PostgreSQL, for the cluster tests.

Started and stopped by the tests themselves (conftest.py's session fixture `cluster`), from
Debian's packages (`apt-get install slurm-wlm munge postgresql`, as .ci/run does), as root:

- `munged` with its own key and socket;
- `slurmctld` and `slurmd`: one node named after this machine, partition `debug`, processes
  tracked through /proc (`proctrack/linuxproc`, `task/none`: no cgroups needed), accounting
  off (`accounting_storage/none`: no slurmdbd, so `sacct` fails, as on many small clusters;
  widthlab's launcher asks `squeue` and `scontrol`). The node declares `NODE_CPUS` CPUs
  whatever the machine has (`SlurmdParameters=config_overrides`), so that many one-CPU jobs
  run, and log, at once even on a small machine;
- PostgreSQL (run as the `postgres` user: the server refuses root), database `mlflow`;
- `mlflow server` on 127.0.0.1, backed by that database, its artifacts in `artifacts/`.

Everything lives in one temporary folder on ports found free: nothing of the machine's own
configuration (/etc/slurm, /etc/munge, /run/munge) is read or changed, and a client command
reaches this cluster through `SLURM_CONF` (`Cluster.env`). `python tests/cluster.py` starts
one by hand, prints its environment and stops it on Ctrl-C.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

NODE_CPUS = 16
PARTITION = "debug"
DEBIAN_PACKAGES = "slurm-wlm munge postgresql"
DAEMONS = ("munged", "slurmctld", "slurmd")


def postgres_bin() -> Path | None:
    """The folder of Debian's PostgreSQL server programs (the newest installed)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
    return found[-1].parent if found else None


def missing() -> str | None:
    """Why a cluster cannot start on this machine, in one line; None when it can."""
    if os.geteuid() != 0:
        return "the cluster tests start SLURM and PostgreSQL daemons: run them as root"
    lacking = [d for d in DAEMONS if shutil.which(d) is None and not Path("/usr/sbin", d).exists()]
    if lacking or postgres_bin() is None:
        return (
            f"the cluster tests need Debian's {DEBIAN_PACKAGES} (not found: "
            f"{', '.join(lacking) or 'postgresql'}): apt-get install -y {DEBIAN_PACKAGES}"
        )
    modules = {
        "psycopg": "psycopg",
        "hydra_plugins.hydra_submitit_launcher": "hydra-submitit-launcher",
    }
    for module, extra in modules.items():
        try:
            __import__(module)
        except ImportError:
            return f"the cluster tests need {extra}: pip install -e '.[test]'"
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return "the cluster tests run PostgreSQL as the user `postgres`, which does not exist"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what: str, ready, timeout: float = 60.0, log: Path | None = None) -> None:
    """Poll `ready()` until it is true; on timeout raise, quoting the end of `log`."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if ready():
                return
        except OSError:
            pass
        time.sleep(0.25)
    tail = log.read_text()[-2000:] if log is not None and log.exists() else ""
    raise RuntimeError(f"{what} did not start within {timeout:.0f} s\n{tail}")


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Cluster:
    """The daemons of one test cluster (module docstring), all under `root`."""

    root: Path
    ports: dict[str, int]
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def slurm_conf(self) -> Path:
        return self.root / "etc" / "slurm.conf"

    @property
    def tracking_uri(self) -> str:
        return f"http://127.0.0.1:{self.ports['mlflow']}"

    @property
    def database_uri(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.ports['postgres']}/mlflow"

    @property
    def backend_uri(self) -> str:
        """The database as MLflow's server reads it, through psycopg 3 (SQLAlchemy before 2.1
        would take a bare postgresql:// for psycopg2)."""
        return self.database_uri.replace("postgresql://", "postgresql+psycopg://", 1)

    @property
    def artifacts(self) -> Path:
        return self.root / "artifacts"

    def env(self) -> dict[str, str]:
        """What a command needs to use this cluster: its SLURM config and tracking server."""
        return {"SLURM_CONF": str(self.slurm_conf), "MLFLOW_TRACKING_URI": self.tracking_uri}

    def slurm(self, *command: str, check: bool = True) -> str:
        """Run a SLURM client command (`squeue`, `scancel`, `sacct`) on this cluster."""
        proc = subprocess.run(
            command,
            env={**os.environ, "SLURM_CONF": str(self.slurm_conf)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check and proc.returncode != 0:
            raise RuntimeError(f"{' '.join(command)}: {proc.stderr.strip()}")
        return proc.stdout

    def _start(self, name: str, command: list[str], user: str | None = None, **env: str):
        log = self.root / "log" / f"{name}.log"
        with log.open("ab") as out:
            self.processes[name] = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.root,
                env={**os.environ, "SLURM_CONF": str(self.slurm_conf), **env},
                start_new_session=True,
                user=user,
                group=user,
                extra_groups=[] if user else None,
            )
        return log

    def _alive(self, name: str) -> bool:
        proc = self.processes.get(name)
        if proc is None or proc.poll() is not None:
            log = self.root / "log" / f"{name}.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{name} exited\n{tail}")
        return True

    def _wait_for_port(self, name: str, port: int, log: Path) -> None:
        wait_for(name, lambda: self._alive(name) and port_open(port), log=log)

    def start(self) -> Cluster:
        for sub in ("etc", "log", "munge", "spool/ctld", "spool/d", "artifacts"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)  # the postgres user and munge's socket checks traverse it
        self._start_munge()
        self.slurm_conf.write_text(self._slurm_conf())
        self._start_slurm()
        self._start_postgres()
        self.start_tracking_server()
        return self

    def _start_munge(self) -> None:
        munge = self.root / "munge"
        munge.chmod(0o755)  # munged wants its socket's folder open to all
        key = munge / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        log = self._start(
            "munged",
            ["munged", "-F", f"--socket={munge / 'munge.socket'}", f"--key-file={key}",
             f"--log-file={munge / 'munged.log'}", f"--pid-file={munge / 'munged.pid'}",
             f"--seed-file={munge / 'munged.seed'}"],
        )  # fmt: skip
        socket_made = lambda: self._alive("munged") and (munge / "munge.socket").exists()  # noqa: E731
        wait_for("munged", socket_made, log=log)

    def _slurm_conf(self) -> str:
        host = socket.gethostname().split(".")[0]
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
        munge = self.root / "munge" / "munge.socket"
        lines = {
            "ClusterName": "widthlab",
            "SlurmctldHost": f"{host}(127.0.0.1)",
            "SlurmctldPort": self.ports["slurmctld"],
            "SlurmdPort": self.ports["slurmd"],
            "SlurmUser": "root",
            "SlurmdUser": "root",
            "AuthType": "auth/munge",
            "AuthInfo": f"socket={munge}",
            "CredType": "cred/munge",
            "StateSaveLocation": self.root / "spool" / "ctld",
            "SlurmdSpoolDir": self.root / "spool" / "d",
            "SlurmctldPidFile": self.root / "log" / "slurmctld.pid",
            "SlurmdPidFile": self.root / "log" / "slurmd.pid",
            "ProctrackType": "proctrack/linuxproc",
            "TaskPlugin": "task/none",
            "MpiDefault": "none",
            "ReturnToService": 2,
            "SlurmdParameters": "config_overrides",
            "SelectType": "select/cons_tres",
            "SelectTypeParameters": "CR_CPU_Memory",
            "DefMemPerCPU": 512,
            # Seconds between a cancelled job's SIGTERM and its SIGKILL (default 30).
            "KillWait": 5,
            "InactiveLimit": 0,
            "AccountingStorageType": "accounting_storage/none",
            "JobAcctGatherType": "jobacct_gather/none",
            "JobCompType": "jobcomp/none",
        }
        text = "".join(f"{k}={v}\n" for k, v in lines.items())
        text += f"NodeName={host} NodeAddr=127.0.0.1 CPUs={NODE_CPUS} RealMemory={memory}\n"
        text += f"PartitionName={PARTITION} Nodes={host} Default=YES MaxTime=INFINITE State=UP\n"
        return text

    def _start_slurm(self) -> None:
        host = socket.gethostname().split(".")[0]
        log = self._start("slurmctld", ["slurmctld", "-D", "-i"])
        self._wait_for_port("slurmctld", self.ports["slurmctld"], log)
        log = self._start("slurmd", ["slurmd", "-D", "-N", host])

        def node_idle() -> bool:
            self._alive("slurmd")
            state = self.slurm("sinfo", "-h", "-N", "-o", "%T", check=False).strip()
            return state == "idle"

        wait_for("slurmd", node_idle, log=log)

    def _start_postgres(self) -> None:
        pg = postgres_bin()
        folder = self.root / "postgres"
        folder.mkdir()
        shutil.chown(folder, "postgres", "postgres")
        subprocess.run(
            [pg / "initdb", "-D", folder / "data", "--auth=trust", "-U", "postgres", "-E", "UTF8",
             "--no-sync"],
            check=True, capture_output=True, timeout=120, user="postgres", group="postgres",
            extra_groups=[], cwd=folder,
        )  # fmt: skip
        port = self.ports["postgres"]
        log = self._start(
            "postgres",
            [pg / "postgres", "-D", folder / "data", "-h", "127.0.0.1", "-p", str(port),
             "-k", folder, "-c", "fsync=off", "-c", "max_connections=200"],
            user="postgres",
        )  # fmt: skip
        self._wait_for_port("postgres", port, log)

        def created() -> bool:
            proc = subprocess.run(
                [pg / "createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "mlflow"],
                capture_output=True, text=True, timeout=30,
            )  # fmt: skip
            return proc.returncode == 0

        wait_for("PostgreSQL's database", created, log=log)

    def start_tracking_server(self, workers: int = 2) -> None:
        """`mlflow server` on its port (again, after `stop_tracking_server`). MLflow's job
        runner (huey consumers, for GenAI jobs) is left off: nothing here uses it."""
        log = self._start(
            "mlflow",
            [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", self.backend_uri,
             "--artifacts-destination", str(self.artifacts), "--host", "127.0.0.1",
             "--port", str(self.ports["mlflow"]), "--workers", str(workers)],
            MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",
        )  # fmt: skip

        def healthy() -> bool:
            self._alive("mlflow")
            with urllib.request.urlopen(f"{self.tracking_uri}/health", timeout=2) as response:
                return response.status == 200

        wait_for("the MLflow server", healthy, timeout=120, log=log)

    def stop_tracking_server(self) -> None:
        self._stop("mlflow")

    def _stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        proc = self.processes.pop(name, None)
        if proc is None:
            return
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=30)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)

    def stop(self) -> None:
        """Cancel every job left, stop every daemon (the last started first), remove the folder."""
        if "slurmctld" in self.processes:
            self.slurm("scancel", "--full", "--user=root", check=False)
            deadline = time.time() + 30
            while time.time() < deadline and self.slurm("squeue", "-h", check=False).strip():
                time.sleep(0.5)
        self._stop("mlflow")
        self._stop("postgres", signal.SIGINT)  # PostgreSQL's fast shutdown
        for name in ("slurmd", "slurmctld", "munged"):
            self._stop(name)
        shutil.rmtree(self.root, ignore_errors=True)


def start_cluster() -> Cluster:
    """A cluster in a new temporary folder (module docstring); stop it with `stop()`."""
    root = Path(tempfile.mkdtemp(prefix="widthlab-cluster-"))
    names = ("slurmctld", "slurmd", "postgres", "mlflow")
    cluster = Cluster(root, {name: free_port() for name in names})
    try:
        return cluster.start()
    except BaseException:
        cluster.stop()
        raise


if __name__ == "__main__":
    reason = missing()
    if reason:
        sys.exit(f"error: {reason}")
    started = start_cluster()
    print("".join(f"export {k}={v}\n" for k, v in started.env().items()), end="", flush=True)
    print(f"# partition {PARTITION}, daemons' logs in {started.root / 'log'}; Ctrl-C stops it")
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # `kill` stops it the same way
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        started.stop()
