"""An embedded local AWS: a moto server on a free loopback port.

Used by the demo and the tests so that a whole deployment runs without an AWS account.
From Python::

    with LocalAws() as aws:
        print(aws.endpoint_url)          # http://127.0.0.1:PORT
        aws.reset()                      # forget every resource

From the shell (``pip install 'tdv-airflow[local]'``)::

    tdv-local-aws start      # prints the endpoint; state kept in .tdv/local-aws.json
    tdv-local-aws status
    tdv-local-aws stop

The server runs in its own process (``python -m tdv_airflow.local.moto_server``, moto's
server with small, documented fidelity fixes) so that several processes (an Airflow task
runner, a triggerer, the tests) see the same resources.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from tdv_airflow.exceptions import LocalAwsError

DEFAULT_REGION = "us-east-1"
#: Credentials the emulator accepts; never valid on AWS.
FAKE_ACCESS_KEY_ID = "testing"
FAKE_SECRET_ACCESS_KEY = "testing"  # noqa: S105 - a well-known placeholder for the emulator
DEFAULT_STATE_FILE = Path(".tdv") / "local-aws.json"


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on ``host`` right now.

    :param host: the loopback address to bind.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _alive(pid: int) -> bool:
    """Whether ``pid`` still runs; reaps it when it is our exited child (no zombie)."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:  # not our child: ask the kernel
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _is_up(endpoint_url: str) -> bool:
    """Whether a server answers at all (moto's data.json answers 500 once it holds a stack)."""
    try:
        url = f"{endpoint_url}/moto-api/data.json"
        with urllib.request.urlopen(url, timeout=1):  # noqa: S310 - http URL of our own server
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError):
        return False


@dataclass
class LocalAws:
    """A moto server process bound to 127.0.0.1.

    :param port: the port to listen on; a free one is chosen when ``None``.
    :param region: the region the emulator's clients use.
    :param startup_timeout: seconds to wait for the server to answer.
    :param log_path: where the server's output goes (discarded when ``None``).
    :param pid: the server's process id, once started (or of one started before).
    :param fixes: the fidelity fixes to install (names from
        :data:`tdv_airflow.local.moto_server.FIXES`); ``None``: all. ``()`` runs moto as
        it is, e.g. to show what a fix is for.
    """

    port: int | None = None
    region: str = DEFAULT_REGION
    startup_timeout: float = 20.0
    log_path: Path | None = None
    pid: int | None = None
    fixes: tuple[str, ...] | None = None

    @property
    def endpoint_url(self) -> str:
        """The server's base URL, e.g. ``http://127.0.0.1:5123``."""
        if self.port is None:
            raise LocalAwsError("the local AWS has not been started: call start() first")
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LocalAws:
        """Start the server and wait until it answers."""
        if self.port is None:
            self.port = free_port()
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        env = {**os.environ, "MOTO_PORT": str(self.port)}
        env.pop("TDV_MOTO_FIXES", None)
        if self.fixes is not None:
            env["TDV_MOTO_FIXES"] = ",".join(self.fixes)
        proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            [sys.executable, "-m", "tdv_airflow.local.moto_server", "-H", "127.0.0.1",
             "-p", str(self.port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        self.pid = proc.pid
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise LocalAwsError(
                    f"moto server exited with code {proc.returncode} on port {self.port}; "
                    "is the 'local' extra installed (pip install 'tdv-airflow[local]')?"
                )
            if _is_up(self.endpoint_url):
                return self
            time.sleep(0.1)
        self.stop()
        raise LocalAwsError(f"moto server did not answer on {self.endpoint_url} "
                            f"within {self.startup_timeout} s")

    def stop(self) -> None:
        """Stop the server (no error when it is already gone)."""
        if self.pid is None:
            return
        try:
            os.killpg(self.pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            self.pid = None
            return
        for _ in range(50):
            if not _alive(self.pid):
                break
            time.sleep(0.1)
        else:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)
            _alive(self.pid)
        self.pid = None

    def reset(self) -> None:
        """Forget every resource the emulator holds."""
        url = f"{self.endpoint_url}/moto-api/reset"
        req = urllib.request.Request(url, method="POST")  # noqa: S310 - loopback URL we built
        with urllib.request.urlopen(req, timeout=10):  # noqa: S310 - loopback URL we built
            pass

    def environ(self) -> dict[str, str]:
        """Environment variables that point boto3 and Airflow's ``aws_default`` here."""
        conn = {
            "conn_type": "aws",
            "login": FAKE_ACCESS_KEY_ID,
            "password": FAKE_SECRET_ACCESS_KEY,
            "extra": {"endpoint_url": self.endpoint_url, "region_name": self.region},
        }
        return {
            "AWS_ACCESS_KEY_ID": FAKE_ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": FAKE_SECRET_ACCESS_KEY,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(conn),
        }

    def __enter__(self) -> LocalAws:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tdv-local-aws", description=__doc__.split("\n")[0])
    parser.add_argument("action", choices=["start", "stop", "status", "env"])
    parser.add_argument("--port", type=int, default=None, help="port (default: a free one)")
    parser.add_argument("--state-file", type=Path, default=DEFAULT_STATE_FILE)
    args = parser.parse_args(argv)
    state: dict[str, int] = {}
    if args.state_file.exists():
        state = json.loads(args.state_file.read_text())
    aws = LocalAws(port=state.get("port"), pid=state.get("pid"))
    running = aws.port is not None and _is_up(aws.endpoint_url)
    if args.action == "start":
        if running:
            print(aws.endpoint_url)
            return 0
        aws = LocalAws(port=args.port)
        args.state_file.parent.mkdir(parents=True, exist_ok=True)
        aws.log_path = args.state_file.with_suffix(".log")
        aws.start()
        args.state_file.write_text(json.dumps({"port": aws.port, "pid": aws.pid}))
        print(aws.endpoint_url)
    elif args.action == "stop":
        aws.stop()
        args.state_file.unlink(missing_ok=True)
        print("stopped")
    elif args.action == "env":
        if not running:
            print("not running", file=sys.stderr)
            return 1
        for name, value in aws.environ().items():
            print(f"export {name}='{value}'")
    else:
        print(aws.endpoint_url if running else "not running")
        return 0 if running else 1
    return 0


def main() -> None:
    """Console entry point of ``tdv-local-aws``."""
    raise SystemExit(_cli())


if __name__ == "__main__":
    main()
