"""Processes of the native Compose topology: one long-running service per process
group, its health checks, and the Debian packages it needs.

Every service runs in its own session (process group) and carries a marker variable in
its environment, so that :mod:`testkit.topology` can find and end whatever outlived it.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_apt_updated = False
#: held while apt-get runs, across processes
APT_LOCK = Path("/tmp/tdv-airflow-apt.lock")


class TopologyError(RuntimeError):
    """A service did not start, did not become healthy, or left processes behind."""


def wait_until(check: Callable[[], bool], timeout: float, what: str,
               alive: Callable[[], None] | None = None, interval: float = 0.5) -> None:
    """Poll ``check`` until it is true (its exceptions count as not yet).

    :param check: the readiness test.
    :param timeout: seconds to wait.
    :param what: names the service in the error.
    :param alive: raises when a process died meanwhile.
    :param interval: seconds between checks.
    :raises TopologyError: after ``timeout`` seconds.
    """
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


def http_ok(url: str, timeout: float = 3.0) -> bool:
    """Whether ``url`` answers 200.

    :param url: a loopback URL.
    :param timeout: seconds to wait for the answer.
    """
    import urllib.request

    with urllib.request.urlopen(url, timeout=timeout) as answer:  # noqa: S310 - loopback
        return bool(answer.status == 200)


def redis_pong(port: int) -> bool:
    """Whether the Redis server on ``port`` answers ``PING``.

    :param port: its loopback port.
    """
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
    # test processes run side by side (pytest-xdist): one apt-get at a time, or dpkg's
    # lock refuses the second
    with open(APT_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _apt_updated:
            subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, timeout=600)
            _apt_updated = True
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends",
                        *packages], check=True, env=env, timeout=900)


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


def proc_stat(pid: int) -> tuple[str, int] | None:
    """A process's state letter and process group, or ``None`` when it is gone.

    :param pid: the process.
    """
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return fields[0], int(fields[2])


def pids() -> Iterable[int]:
    """The ids of every process on this machine."""
    return (int(name) for name in os.listdir("/proc") if name.isdigit())


def has_marker(pid: int, marker: bytes) -> bool:
    """Whether a process's environment holds ``marker`` (``NAME=value``).

    :param pid: the process.
    :param marker: the ``NAME=value`` entry.
    """
    try:
        return marker in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False


def _group_alive(pgid: int) -> bool:
    """Whether a process group still has a live (not zombie) member."""
    for pid in pids():
        stat = proc_stat(pid)
        if stat is not None and stat[1] == pgid and stat[0] != "Z":
            return True
    return False


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
                **as_user(self.user))
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


def as_user(user: str | None) -> dict[str, Any]:
    """Popen arguments that run a child as ``user`` (only root may switch).

    :param user: a user name; ``None`` for the current user.
    """
    if user is None or os.geteuid() != 0:
        return {}
    entry = pwd.getpwnam(user)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def server_user() -> str | None:
    """The user PostgreSQL runs as: ``postgres`` (created if needed) when we are root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/bin/false",
                        "postgres"], check=True, timeout=60)
    return "postgres"
