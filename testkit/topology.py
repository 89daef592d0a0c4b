"""The Compose deployment of docker-compose.yml, run natively: one process per service.

Docker does not run on these machines, so this harness starts the same services as
``docker compose up`` on the loopback interface, each on a free port:

* postgres: Debian's ``postgresql`` server, a fresh cluster in a temporary folder, run
  as a non-root user;
* redis: Debian's ``redis-server``, without persistence;
* local-aws: :class:`tdv_airflow.local.aws.LocalAws` (moto server);
* airflow-init: ``airflow db migrate``, the passwords file, and the example DAG's bucket
  on the local AWS;
* airflow-apiserver, airflow-scheduler, airflow-dag-processor, airflow-triggerer,
  airflow-worker: ``airflow api-server``, ``scheduler``, ``dag-processor``,
  ``triggerer`` and ``celery worker``.

Every Airflow process gets exactly the environment the Compose file gives its Airflow
services (:func:`testkit.compose_spec.airflow_env`), with the Compose variables at their
defaults and the service host names translated to the native ports
(:func:`testkit.compose_env.native_env`),
plus the few settings a container gets from its image or its isolation (listed in
:meth:`Topology.airflow_environ`). Missing Debian packages are installed with apt-get
(root only).

Every process is started in its own session (process group) with a marker variable in
its environment; :meth:`Topology.stop` ends the groups (SIGTERM, then SIGKILL) and then
looks for any process still carrying the marker, kills it and reports it, so nothing
survives a run, a failed start included.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any

from tdv_airflow.local.aws import LocalAws, free_port
from testkit.compose_env import interpolate, native_env
from testkit.compose_spec import ROOT, local_bucket
from testkit.compose_spec import airflow_env as compose_airflow_env
from testkit.compose_spec import load as load_compose
from testkit.example_dag import ensure_bucket
from testkit.processes import (
    Service,
    TopologyError,
    as_user,
    has_marker,
    http_ok,
    pids,
    postgres_bindir,
    proc_stat,
    redis_pong,
    redis_server,
    server_user,
    wait_until,
)

BIN = Path(sys.executable).parent
AIRFLOW = str(BIN / "airflow")
CELERY = str(BIN / "celery")
DAGS = ROOT / "dags"
#: Every process of a topology carries ``TDV_TOPOLOGY_ID=<its id>`` in its environment.
MARKER = "TDV_TOPOLOGY_ID"
#: The Celery application the worker runs (the Compose health check pings it).
CELERY_APP = "airflow.providers.celery.executors.celery_executor.app"


class Topology:
    """PostgreSQL, Redis, the local AWS and the five Airflow services, on loopback.

    ::

        with Topology(workdir, extra_env=wait_settings("deferrable", 2)) as topo:
            api = topo.api()          # a logged-in REST API v2 client

    :param workdir: where AIRFLOW_HOME and the logs go (created).
    :param concurrency: Celery worker slots (``airflow celery worker --concurrency``).
    :param extra_env: further variables for every Airflow process, e.g. Airflow
        configuration such as :func:`testkit.example_dag.wait_settings`.
    :param startup_timeout: seconds the whole start may take.
    :param dags_folder: the DAGs folder (the repository's ``dags/``, as the Compose file
        mounts it).
    """

    AIRFLOW_SERVICES: tuple[str, ...] = (
        "api-server", "scheduler", "dag-processor", "triggerer", "worker")

    def __init__(self, workdir: Path, *, concurrency: int = 4,
                 extra_env: Mapping[str, str] | None = None,
                 startup_timeout: float = 420.0, dags_folder: Path = DAGS) -> None:
        self.workdir = Path(workdir)
        self.dags_folder = Path(dags_folder)
        self.home = self.workdir / "airflow-home"
        self.logs = self.workdir / "logs"
        self.concurrency = concurrency
        self.extra_env = dict(extra_env or {})
        self.startup_timeout = startup_timeout
        self.id = uuid.uuid4().hex
        self.ports = {name: free_port() for name in
                      ("postgres", "redis", "api", "scheduler_health", "worker_logs",
                       "trigger_logs")}
        self.aws = LocalAws(log_path=self.logs / "local-aws.log")
        self.services: dict[str, Service] = {}
        self._pg_dir: Path | None = None
        self._aws_pid: int | None = None
        self._stopped = False

    # ----- addresses and environments

    @property
    def api_url(self) -> str:
        """The api-server's base URL."""
        return f"http://127.0.0.1:{self.ports['api']}"

    @property
    def admin_password(self) -> str:
        """The admin password airflow-init writes (``_AIRFLOW_WWW_USER_PASSWORD``)."""
        init_env = load_compose()["services"]["airflow-init"]["environment"]
        return interpolate(str(init_env["_AIRFLOW_WWW_USER_PASSWORD"]))

    @property
    def aws_netloc(self) -> str:
        """Where the Airflow processes reach the local AWS (``host:port``)."""
        return f"127.0.0.1:{self.aws.port}"

    def _base_environ(self) -> dict[str, str]:
        """This process's environment without Airflow, AWS or tdv settings."""
        drop = ("AIRFLOW", "AWS_", "TDV_", "_AIRFLOW", "PG", "CELERY")
        return {k: v for k, v in os.environ.items() if not k.startswith(drop)}

    def airflow_environ(self) -> dict[str, str]:
        """The environment of every Airflow process.

        The Compose settings (translated), plus what a container gets elsewhere:
        ``AIRFLOW_HOME`` (the image's), the DAGs folder (the Compose file mounts
        ``./dags`` on the image's), the ports of the scheduler's health check and of the
        worker's and triggerer's log servers (fixed ports in a container, free ones
        here), the venv's ``bin`` on ``PATH``, the marker, and ``extra_env``.
        """
        netlocs = {
            "postgres": f"127.0.0.1:{self.ports['postgres']}",
            "redis": f"127.0.0.1:{self.ports['redis']}",
            "local-aws": self.aws_netloc,
            "airflow-apiserver": f"127.0.0.1:{self.ports['api']}",
        }
        return {
            **self._base_environ(),
            **native_env(compose_airflow_env(), netlocs, self.home),
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT":
                str(self.ports["scheduler_health"]),
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(self.ports["worker_logs"]),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(self.ports["trigger_logs"]),
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            MARKER: self.id,
            **self.extra_env,
        }

    def _marked(self, env: Mapping[str, str]) -> dict[str, str]:
        return {**env, MARKER: self.id}

    # ----- start

    def start(self) -> Topology:
        """Start everything and wait until every service is healthy.

        On any failure everything started so far is stopped before the error propagates.
        """
        self.logs.mkdir(parents=True, exist_ok=True)
        (self.home / "config").mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        try:
            with ThreadPoolExecutor(3) as pool:
                for job in [pool.submit(self._start_postgres), pool.submit(self._start_redis),
                            pool.submit(self._start_local_aws)]:
                    job.result()
            self._init_airflow()
            env = self.airflow_environ()
            commands = {
                "api-server": [AIRFLOW, "api-server", "--host", "127.0.0.1",
                               "--port", str(self.ports["api"])],
                "scheduler": [AIRFLOW, "scheduler"],
                "dag-processor": [AIRFLOW, "dag-processor"],
                "triggerer": [AIRFLOW, "triggerer"],
                "worker": [AIRFLOW, "celery", "worker", "--concurrency", str(self.concurrency)],
            }
            for name in self.AIRFLOW_SERVICES:  # a subclass may run fewer
                self.services[name] = Service(name, commands[name], env, self.logs / f"{name}.log",
                                              cwd=self.workdir).start()
            self._wait_healthy(self.startup_timeout - (time.monotonic() - started))
        except BaseException:
            self.stop(check=False)
            raise
        return self

    def _start_postgres(self) -> None:
        bindir = postgres_bindir()
        user = server_user()
        self._pg_dir = Path(tempfile.mkdtemp(prefix="tdv-pg-"))
        data, pwfile = self._pg_dir / "data", self._pg_dir / "pwfile"
        pwfile.write_text("airflow\n")
        if user is not None:
            entry = pwd.getpwnam(user)
            for path in (self._pg_dir, pwfile):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        env = self._marked({"PATH": os.environ.get("PATH", ""), "LC_ALL": "C",
                            "HOME": str(self._pg_dir)})
        with open(self.logs / "postgres-initdb.log", "wb") as log:
            done = subprocess.run(  # noqa: S603 - fixed argv
                [str(bindir / "initdb"), "-D", str(data), "-U", "airflow", f"--pwfile={pwfile}",
                 "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8",
                 "--locale=C", "--no-sync"],
                stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self._pg_dir, timeout=300,
                check=False, **as_user(user))
        if done.returncode != 0:
            raise TopologyError("initdb failed:\n"
                                + (self.logs / "postgres-initdb.log").read_text()[-3000:])
        self.services["postgres"] = pg = Service(
            "postgres",
            [str(bindir / "postgres"), "-D", str(data), "-p", str(self.ports["postgres"]),
             "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self._pg_dir}",
             "-c", "max_connections=300", "-c", "fsync=off", "-c", "synchronous_commit=off",
             "-c", "full_page_writes=off"],
            env, self.logs / "postgres.log", user=user, cwd=self._pg_dir,
            stop_signal=signal.SIGINT).start()
        isready = [str(bindir / "pg_isready"), "-q", "-h", "127.0.0.1",
                   "-p", str(self.ports["postgres"]), "-U", "airflow", "-d", "postgres"]
        wait_until(lambda: subprocess.run(isready, timeout=10, check=False).returncode == 0,  # noqa: S603
                    60, "postgres", pg.check_alive, interval=0.2)
        subprocess.run(  # noqa: S603 - fixed argv
            [str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(self.ports["postgres"]),
             "-U", "airflow", "airflow"],
            env={**env, "PGPASSWORD": "airflow"}, check=True, timeout=60, capture_output=True)

    def _start_redis(self) -> None:
        server = redis_server()
        rdir = self.workdir / "redis"
        rdir.mkdir(exist_ok=True)
        self.services["redis"] = redis = Service(
            "redis",
            [server, "--port", str(self.ports["redis"]), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", str(rdir)],
            self._marked({"PATH": os.environ.get("PATH", "")}), self.logs / "redis.log",
            cwd=rdir).start()
        wait_until(lambda: redis_pong(self.ports["redis"]), 30, "redis", redis.check_alive,
                    interval=0.1)

    def _start_local_aws(self) -> None:
        self.aws.start()
        self._aws_pid = self.aws.pid

    def _init_airflow(self) -> None:
        """What airflow-init does: migrate the database, write the passwords file, create
        the example DAG's bucket on the local AWS."""
        env = self.airflow_environ()
        with open(self.logs / "airflow-init.log", "wb") as log:
            done = subprocess.run([AIRFLOW, "db", "migrate"], env=env, stdout=log,  # noqa: S603
                                  stderr=subprocess.STDOUT, cwd=self.workdir, timeout=600,
                                  check=False)
        if done.returncode != 0:
            raise TopologyError("airflow db migrate failed:\n"
                                + (self.logs / "airflow-init.log").read_text()[-4000:])
        passwords = Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
        passwords.parent.mkdir(parents=True, exist_ok=True)
        passwords.write_text(json.dumps({"admin": self.admin_password}))
        ensure_bucket(self.boto3_client("s3"), local_bucket())

    def check_alive(self) -> None:
        """Raise when any service has exited."""
        for service in self.services.values():
            service.check_alive()

    def _command_ok(self, argv: list[str]) -> bool:
        done = subprocess.run(argv, env=self.airflow_environ(), capture_output=True,  # noqa: S603
                              timeout=120, check=False, cwd=self.workdir)
        return done.returncode == 0

    def _wait_healthy(self, timeout: float) -> None:
        """The Compose health checks, run natively and in parallel."""
        checks: dict[str, Callable[[], bool]] = {
            "api-server": lambda: http_ok(f"{self.api_url}/api/v2/version"),
            "scheduler": lambda: http_ok(
                f"http://127.0.0.1:{self.ports['scheduler_health']}/health"),
            "dag-processor": lambda: self._command_ok(
                [AIRFLOW, "jobs", "check", "--job-type", "DagProcessorJob", "--local"]),
            "triggerer": lambda: self._command_ok(
                [AIRFLOW, "jobs", "check", "--job-type", "TriggererJob", "--local"]),
            "worker": lambda: self._command_ok(
                [CELERY, "--app", CELERY_APP, "inspect", "ping", "--timeout", "5"]),
        }
        with ThreadPoolExecutor(len(checks)) as pool:
            jobs = [pool.submit(wait_until, check, timeout, name, self.check_alive, 2.0)
                    for name, check in checks.items() if name in self.AIRFLOW_SERVICES]
            for job in jobs:
                job.result()

    # ----- clients

    def api(self) -> Any:
        """A REST API v2 client logged in as the Compose admin (see :mod:`.airflow_api`)."""
        from testkit.airflow_api import AirflowApi

        return AirflowApi.login(self.api_url, "admin", self.admin_password)

    def boto3_client(self, service: str) -> Any:
        """A boto3 client on this topology's local AWS."""
        import boto3

        from tdv_airflow.local.aws import FAKE_ACCESS_KEY_ID, FAKE_SECRET_ACCESS_KEY

        return boto3.client(service, endpoint_url=self.aws.endpoint_url,
                            region_name=self.aws.region,
                            aws_access_key_id=FAKE_ACCESS_KEY_ID,
                            aws_secret_access_key=FAKE_SECRET_ACCESS_KEY)

    def release_held_stack(self, stack_name: str) -> None:
        """Let a stack held in CREATE_IN_PROGRESS by a custom resource complete.

        See :mod:`testkit.held_stack`: the emulator holds such a stack until the
        custom resource's answer arrives.
        """
        from testkit.held_stack import release

        stack = self.boto3_client("cloudformation").describe_stacks(
            StackName=stack_name)["Stacks"][0]
        if stack["StackStatus"] != "CREATE_IN_PROGRESS":
            raise TopologyError(f"stack {stack_name} is {stack['StackStatus']}, not held")
        release(self.aws.endpoint_url, stack["StackId"], region=self.aws.region)

    def diagnostics(self, lines: int = 40) -> str:
        """The end of every service's log, for assertion messages."""
        return "\n".join(f"----- {name} ({s.log_path})\n{s.tail(lines)}"
                         for name, s in self.services.items())

    # ----- stop

    def survivors(self) -> list[str]:
        """Live processes that carry this topology's marker or belong to its groups."""
        marker = f"{MARKER}={self.id}".encode()
        groups = {s.pid for s in self.services.values() if s.pid} | (
            {self._aws_pid} if self._aws_pid else set())
        found = []
        for pid in pids():
            stat = proc_stat(pid)
            if stat is None or stat[0] == "Z" or pid == os.getpid():
                continue
            if stat[1] in groups or has_marker(pid, marker):
                with contextlib.suppress(OSError):
                    cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
                    found.append(f"{pid}: {cmd.decode(errors='replace').strip()[:200]}")
        return found

    def stop(self, check: bool = True) -> list[str]:
        """Stop every process: Airflow first, then Redis, the local AWS and PostgreSQL.

        :param check: raise :class:`TopologyError` when a process outlived its service's
            stop (it is killed either way).
        :returns: the processes that had to be killed after the services' stop.
        """
        if self._stopped:
            return []
        self._stopped = True
        airflow = [self.services[n] for n in self.AIRFLOW_SERVICES if n in self.services]
        for service in airflow:
            service.signal(service.stop_signal)
        with ThreadPoolExecutor(max(1, len(airflow))) as pool:
            list(pool.map(lambda s: s.stop(timeout=30.0), airflow))
        if "redis" in self.services:
            self.services["redis"].stop()
        self.aws.stop()
        if "postgres" in self.services:
            self.services["postgres"].stop(timeout=30.0)
        left = self.survivors()
        for entry in left:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(entry.split(":", 1)[0]), signal.SIGKILL)
        if self._pg_dir is not None:
            shutil.rmtree(self._pg_dir, ignore_errors=True)
        if left and check:
            raise TopologyError(f"processes outlived the topology (killed): {left}")
        return left

    def __enter__(self) -> Topology:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop(check=exc is None)
