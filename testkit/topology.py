"""The Compose deployment of docker-compose.yml, run natively: one process per service.

Docker does not run on these machines, so this harness starts the same services as
``docker compose up`` on the loopback interface, each on a free port:

* postgres: Debian's ``postgresql`` server, a fresh cluster in a temporary folder, run
  as a non-root user;
* redis: Debian's ``redis-server``, without persistence;
* local-aws: :class:`tdv_airflow.local.aws.LocalAws` (moto server);
* airflow-init: ``airflow db migrate`` and the passwords file;
* airflow-apiserver, airflow-scheduler, airflow-dag-processor, airflow-triggerer,
  airflow-worker: ``airflow api-server``, ``scheduler``, ``dag-processor``,
  ``triggerer`` and ``celery worker``.

Every Airflow process gets exactly the environment the Compose file gives its Airflow
services (:func:`tests.compose_spec.airflow_env`), with the Compose variables at their
defaults and the service host names translated to the native ports (:func:`native_env`),
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
import glob
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

from tdv_airflow.local.aws import LocalAws, free_port
from testkit.compose_spec import ROOT
from testkit.compose_spec import airflow_env as compose_airflow_env
from testkit.compose_spec import load as load_compose

BIN = Path(sys.executable).parent
AIRFLOW = str(BIN / "airflow")
CELERY = str(BIN / "celery")
DAGS = ROOT / "dags"
#: Every process of a topology carries ``TDV_TOPOLOGY_ID=<its id>`` in its environment.
MARKER = "TDV_TOPOLOGY_ID"
#: AIRFLOW_HOME inside the Compose containers (the apache/airflow image's).
CONTAINER_HOME = "/opt/airflow"
#: The Compose services that other services reach by host name.
COMPOSE_HOSTS = ("airflow-apiserver", "local-aws", "postgres", "redis")
#: The Celery application the worker runs (the Compose health check pings it).
CELERY_APP = "airflow.providers.celery.executors.celery_executor.app"

_COMPOSE_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$\$")
_apt_updated = False


class TopologyError(RuntimeError):
    """A service did not start, did not become healthy, or left processes behind."""


# --------------------------------------------------------------------------- helpers


def interpolate(value: str, variables: Mapping[str, str] | None = None) -> str:
    """Resolve Compose's ``${NAME}``, ``${NAME:-default}``, ``${NAME-default}``, ``$$``.

    :param value: a value from the Compose file.
    :param variables: the variables set (none by default: every default applies, so the
        caller's shell, e.g. a real ``AIRFLOW_CONN_AWS_DEFAULT``, never leaks in).
    """
    variables = variables or {}

    def resolve(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, default = match.group(1), match.group(2), match.group(3) or ""
        current = variables.get(name)
        if op == ":-":
            return current if current else default
        if op == "-":
            return current if current is not None else default
        if op in {":?", "?"}:
            if not current:
                raise TopologyError(f"Compose variable {name} is required: {default}")
            return current
        return current or ""

    return _COMPOSE_VAR.sub(resolve, value)


def _host_pattern(host: str, encoded: bool) -> re.Pattern[str]:
    if encoded:  # inside a percent-encoded URL, e.g. endpoint_url=http%3A%2F%2Fhost%3A5000
        return re.compile(rf"(?<=%2F){re.escape(host)}(?:%3A\d+)?(?=%2F|&|$)", re.IGNORECASE)
    return re.compile(rf"(?<=[@/]){re.escape(host)}(?::\d+)?(?=[/?]|$)")


def translate_hosts(value: str, netlocs: Mapping[str, str]) -> str:
    """Point URLs at Compose service hosts to native ``host:port`` pairs instead.

    Handles plain URLs (``@postgres/airflow``, ``@redis:6379/0``,
    ``http://airflow-apiserver:8080/``) and percent-encoded ones inside a connection URI
    (``endpoint_url=http%3A%2F%2Flocal-aws%3A5000``).

    :param value: the setting.
    :param netlocs: Compose host -> native ``host:port``.
    :raises TopologyError: when a Compose host name is still there afterwards.
    """
    for host, netloc in netlocs.items():
        value = _host_pattern(host, encoded=False).sub(netloc, value)
        value = _host_pattern(host, encoded=True).sub(quote(netloc, safe=""), value)
    for host in COMPOSE_HOSTS:
        if _host_pattern(host, False).search(value) or _host_pattern(host, True).search(value):
            raise TopologyError(f"no native address for Compose host {host!r} in {value!r}")
    return value


def native_env(compose_env: Mapping[str, str], netlocs: Mapping[str, str], home: Path,
               variables: Mapping[str, str] | None = None) -> dict[str, str]:
    """The Compose environment of an Airflow service, for a process on this machine.

    :param compose_env: the service's ``environment`` from the Compose file.
    :param netlocs: Compose host -> native ``host:port``.
    :param home: the native AIRFLOW_HOME (replaces the container's ``/opt/airflow``).
    :param variables: Compose variables (see :func:`interpolate`).
    """
    env = {}
    for name, raw in compose_env.items():
        value = translate_hosts(interpolate(str(raw), variables), netlocs)
        if value == CONTAINER_HOME or value.startswith(CONTAINER_HOME + "/"):
            value = str(home) + value[len(CONTAINER_HOME):]
        env[name] = value
    return env


def _wait_until(check: Callable[[], bool], timeout: float, what: str,
                alive: Callable[[], None] | None = None, interval: float = 0.5) -> None:
    """Poll ``check`` until it is true; ``alive`` raises when a process died meanwhile."""
    deadline = time.monotonic() + timeout
    while True:
        if alive is not None:
            alive()
        with contextlib.suppress(Exception):
            if check():
                return
        if time.monotonic() > deadline:
            raise TopologyError(f"{what}: not ready after {timeout:.0f} s")
        time.sleep(interval)


def _http_ok(url: str, timeout: float = 3.0) -> bool:
    import urllib.request

    with urllib.request.urlopen(url, timeout=timeout) as answer:  # noqa: S310 - loopback
        return bool(answer.status == 200)


def _redis_pong(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(64).startswith(b"+PONG")


def _apt_install(*packages: str) -> None:
    """Install Debian packages (root only; ``apt-get update`` once per process)."""
    global _apt_updated
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise TopologyError(f"the Debian packages {packages} are needed: install them "
                            f"(apt-get install {' '.join(packages)})")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if not _apt_updated:
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, timeout=600)
        _apt_updated = True
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
                   check=True, env=env, timeout=900)


def postgres_bindir() -> Path:
    """The newest PostgreSQL server's ``bin`` folder; installs ``postgresql`` when missing."""
    for attempt in range(2):
        found = sorted((Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")),
                       key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
        if found:
            return found[-1]
        initdb = shutil.which("initdb")
        if initdb and (Path(initdb).resolve().parent / "postgres").exists():
            return Path(initdb).resolve().parent
        if attempt == 0:
            _apt_install("postgresql")
    raise TopologyError("PostgreSQL's initdb was not found after installing postgresql")


def redis_server() -> str:
    """The ``redis-server`` executable; installs Debian's ``redis-server`` when missing."""
    path = shutil.which("redis-server")
    if path is None:
        _apt_install("redis-server")
        path = shutil.which("redis-server")
    if path is None:
        raise TopologyError("redis-server was not found after installing it")
    return path


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """A process's state letter and process group, or ``None`` when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return fields[0], int(fields[2])


def _pids() -> Iterable[int]:
    return (int(name) for name in os.listdir("/proc") if name.isdigit())


def _has_marker(pid: int, marker: bytes) -> bool:
    try:
        return marker in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False


def _group_alive(pgid: int) -> bool:
    """Whether a process group still has a live (not zombie) member."""
    for pid in _pids():
        stat = _proc_stat(pid)
        if stat is not None and stat[1] == pgid and stat[0] != "Z":
            return True
    return False


# --------------------------------------------------------------------------- services


@dataclass
class Service:
    """One long-running process, in its own session, with its output in a log file.

    :param name: the Compose service it stands for.
    :param argv: the command.
    :param env: its whole environment.
    :param log_path: where stdout and stderr go.
    :param user: the user to run as (``None``: the current one).
    :param stop_signal: sent to the process group first (``SIGINT`` is PostgreSQL's fast
        shutdown).
    """

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    user: str | None = None
    cwd: Path | None = None
    stop_signal: int = signal.SIGTERM
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> Service:
        """Start the process."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=self.env, cwd=self.cwd, start_new_session=True,
                **_as_user(self.user))
        return self

    @property
    def pid(self) -> int | None:
        """The leader's pid (also the process group id)."""
        return self.proc.pid if self.proc else None

    def check_alive(self) -> None:
        """Raise, with the end of the log, when the process has exited."""
        if self.proc is not None and self.proc.poll() is not None:
            raise TopologyError(f"{self.name} exited with code {self.proc.returncode}:\n"
                                f"{self.tail()}")

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the whole process group (no error when it is gone)."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signum)

    def wait_gone(self, timeout: float) -> bool:
        """Wait until the leader is reaped and no process of the group is left."""
        if self.proc is None:
            return True
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.proc.poll()
            if self.proc.returncode is not None and not _group_alive(self.proc.pid):
                return True
            time.sleep(0.1)
        return False

    def stop(self, timeout: float = 20.0) -> None:
        """``stop_signal`` to the group, then SIGKILL after ``timeout`` seconds."""
        if self.proc is None:
            return
        self.signal(self.stop_signal)
        if not self.wait_gone(timeout):
            self.signal(signal.SIGKILL)
            self.wait_gone(10.0)

    def tail(self, lines: int = 60) -> str:
        """The last ``lines`` lines of the log."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


def _as_user(user: str | None) -> dict[str, Any]:
    """Popen arguments that run a child as ``user`` (only root may switch)."""
    if user is None or os.geteuid() != 0:
        return {}
    entry = pwd.getpwnam(user)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _server_user() -> str | None:
    """The user PostgreSQL runs as: ``postgres`` (created if needed) when we are root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/bin/false",
                        "postgres"], check=True, timeout=60)
    return "postgres"


# --------------------------------------------------------------------------- topology


class Topology:
    """PostgreSQL, Redis, the local AWS and the five Airflow services, on loopback.

    ::

        with Topology(workdir, extra_env={"TDV_POKE_INTERVAL": "2"}) as topo:
            api = topo.api()          # a logged-in REST API v2 client

    :param workdir: where AIRFLOW_HOME and the logs go (created).
    :param concurrency: Celery worker slots (``airflow celery worker --concurrency``).
    :param extra_env: further variables for every Airflow process (e.g. the example
        DAG's parse-time ``TDV_*`` settings).
    :param startup_timeout: seconds the whole start may take.
    :param dags_folder: the DAGs folder (the repository's ``dags/``, as the Compose file
        mounts it).
    """

    AIRFLOW_SERVICES = ("api-server", "scheduler", "dag-processor", "triggerer", "worker")

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
            "local-aws": f"127.0.0.1:{self.aws.port}",
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
            for name, argv in commands.items():
                self.services[name] = Service(name, argv, env, self.logs / f"{name}.log",
                                              cwd=self.workdir).start()
            self._wait_healthy(self.startup_timeout - (time.monotonic() - started))
        except BaseException:
            self.stop(check=False)
            raise
        return self

    def _start_postgres(self) -> None:
        bindir = postgres_bindir()
        user = _server_user()
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
                check=False, **_as_user(user))
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
        _wait_until(lambda: subprocess.run(isready, timeout=10, check=False).returncode == 0,  # noqa: S603
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
        _wait_until(lambda: _redis_pong(self.ports["redis"]), 30, "redis", redis.check_alive,
                    interval=0.1)

    def _start_local_aws(self) -> None:
        self.aws.start()
        self._aws_pid = self.aws.pid

    def _init_airflow(self) -> None:
        """What airflow-init does: migrate the database, write the passwords file."""
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
            "api-server": lambda: _http_ok(f"{self.api_url}/api/v2/version"),
            "scheduler": lambda: _http_ok(
                f"http://127.0.0.1:{self.ports['scheduler_health']}/health"),
            "dag-processor": lambda: self._command_ok(
                [AIRFLOW, "jobs", "check", "--job-type", "DagProcessorJob", "--local"]),
            "triggerer": lambda: self._command_ok(
                [AIRFLOW, "jobs", "check", "--job-type", "TriggererJob", "--local"]),
            "worker": lambda: self._command_ok(
                [CELERY, "--app", CELERY_APP, "inspect", "ping", "--timeout", "5"]),
        }
        with ThreadPoolExecutor(len(checks)) as pool:
            jobs = [pool.submit(_wait_until, check, timeout, name, self.check_alive, 2.0)
                    for name, check in checks.items()]
            for job in jobs:
                job.result()

    # ----- clients

    def api(self) -> Any:
        """A REST API v2 client logged in as the Compose admin (see :mod:`.api`)."""
        from tests.distributed.api import AirflowApi

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

        See :mod:`tests.airflow.held_stack`: the emulator holds such a stack until the
        custom resource's answer arrives.
        """
        from tests.airflow.held_stack import release

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
        for pid in _pids():
            stat = _proc_stat(pid)
            if stat is None or stat[0] == "Z" or pid == os.getpid():
                continue
            if stat[1] in groups or _has_marker(pid, marker):
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
