"""One warm execution environment of one version of a deployed function, in a child
process.

:class:`FunctionProcess` finds one configuration of the function (``$LATEST``, or the
version or alias it is given: :func:`tdv_airflow.local.find.find_function`), lays it out
(:mod:`tdv_airflow.local.layout`) and runs the handler in a fresh Python process
(``python -I -S`` :mod:`tdv_airflow.local.lambda_runner`: neither the project nor this
environment's site-packages are importable) with that version's environment variables,
the caller's credentials and region, and ``AWS_ENDPOINT_URL`` when the clients point at
an emulator (:attr:`~tdv_airflow.core.clients.AwsClients.emulator_endpoint`). It feeds
the process API Gateway events (:mod:`tdv_airflow.local.events`) and turns its answers,
failures, time-outs and crashes into what API Gateway would return. Routing requests
between versions, as the stack's API does, is :class:`tdv_airflow.local.process.LocalFunction`.

The function runs with the caller's credentials, not the function's role: a missing
IAM permission of the role does not show locally.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

from tdv_airflow.core.clients import AwsClients
from tdv_airflow.exceptions import LocalRunError
from tdv_airflow.local.events import check_proxy_response, gateway_error
from tdv_airflow.local.find import DeployedFunction, find_function, unqualified_arn
from tdv_airflow.local.layout import Layout, default_workdir, lay_out

log = logging.getLogger(__name__)
function_log = logging.getLogger(f"{__name__}.function")
_PASS_THROUGH_ENV = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy",
                     "no_proxy", "AWS_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR")



def function_environ(clients: AwsClients, function: DeployedFunction,
                     layout: Layout) -> dict[str, str]:
    """The child's environment: the function's variables, the runtime's reserved ones,
    the caller's credentials, ``TDV_BUNDLE_DIR`` (where a dependency bundle is
    extracted, Lambda's ``/tmp``) and, for an emulator, ``AWS_ENDPOINT_URL``.

    :param clients: boto3 clients (their credentials and endpoint are passed on).
    :param function: the deployed function.
    :param layout: the laid-out function.
    """
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    task, opt = str(layout.task_dir), str(layout.opt_dir)
    env = dict(function.environment)
    env.update({
        "AWS_REGION": function.region,
        "AWS_DEFAULT_REGION": function.region,
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{function.runtime}",
        "AWS_LAMBDA_FUNCTION_NAME": function.function_name,
        "AWS_LAMBDA_FUNCTION_VERSION": function.version,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_size),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function.function_name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": f"local/[{function.version}]{uuid.uuid4().hex}",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_EC2_METADATA_DISABLED": "true",
        "LAMBDA_TASK_ROOT": task,
        "LAMBDA_RUNTIME_DIR": str(layout.runtime_dir),
        "_HANDLER": function.handler,
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "PATH": os.pathsep.join([f"{opt}/bin", os.environ.get("PATH", "/usr/bin:/bin")]),
        "LD_LIBRARY_PATH": os.pathsep.join([f"{task}/lib", f"{opt}/lib"]),
        "PYTHONPATH": os.pathsep.join([task, f"{opt}/python/lib/{version}/site-packages",
                                       f"{opt}/python", str(layout.runtime_dir)]),
    })
    # Lambda's /tmp for a dependency bundle (lambda_src/tdv_bundle.py): the caller's
    # TDV_BUNDLE_DIR, else a folder of the layout cache (bundles are kept by digest).
    env["TDV_BUNDLE_DIR"] = (os.environ.get("TDV_BUNDLE_DIR")
                             or str(layout.task_dir.parent.parent / "bundles"))
    for name in _PASS_THROUGH_ENV:
        if name in os.environ:
            env[name] = os.environ[name]
    creds = clients.credentials()
    if creds is not None:
        env["AWS_ACCESS_KEY_ID"] = creds.access_key
        env["AWS_SECRET_ACCESS_KEY"] = creds.secret_key
        if creds.token:
            env["AWS_SESSION_TOKEN"] = creds.token
    endpoint = clients.emulator_endpoint
    if endpoint:
        env["AWS_ENDPOINT_URL"] = endpoint
    return env


@dataclass
class Invocation:
    """One invocation's outcome.

    :param response: what API Gateway would answer (a proxy response dict).
    :param duration_ms: the handler's run time in milliseconds.
    :param cold: whether this was the process's first invocation (a cold start).
    :param init_ms: the module import time of a cold start.
    :param error: the function's error (``errorType``, ``errorMessage``, ``stackTrace``),
        if it raised, timed out or crashed.
    :param diagnostics: where the handler and the watched modules were imported from,
        the child's ``sys.path``, working directory and pid.
    :param version: the version that answered (``None`` when none did: no live version).
    """

    response: dict[str, Any]
    duration_ms: float
    cold: bool = False
    init_ms: float | None = None
    error: dict[str, Any] | None = None
    diagnostics: dict[str, Any] = field(default_factory=dict)
    version: str | None = None


class FunctionProcess:
    """One version of a deployed function running in a long-lived local process (a warm
    container).

    ::

        fn = FunctionProcess(clients, "iris", qualifier="3").start()
        fn.invoke_event(event)     # cold
        fn.invoke_event(event)     # warm
        fn.close()

    :param clients: boto3 clients of the stack's account and region.
    :param stack_name: the stack.
    :param qualifier: the version (or alias: its version) to run; ``None``: ``$LATEST``.
    :param invoked_as: the alias the function is invoked through, for its
        ``context.invoked_function_arn`` (default: as ``qualifier``).
    :param workdir: the layout cache (default :func:`default_workdir`).
    :param python: the interpreter to run (default: this one, whose minor version must
        match the function's runtime).
    :param invoke_timeout: seconds an invocation may take (default: the function's
        timeout).
    :param init_timeout: seconds the handler's module may take to import.
    """

    def __init__(self, clients: AwsClients, stack_name: str, *, qualifier: str | None = None,
                 invoked_as: str | None = None, workdir: str | Path | None = None,
                 python: str | None = None, invoke_timeout: float | None = None,
                 init_timeout: float = 60.0) -> None:
        self.clients = clients
        self.stack_name = stack_name
        self.qualifier = qualifier
        self.invoked_as = invoked_as
        self.workdir = Path(workdir) if workdir else default_workdir()
        self.python = python
        self.invoke_timeout = invoke_timeout
        self.init_timeout = init_timeout
        self.function: DeployedFunction | None = None
        self.layout: Layout | None = None
        self._proc: subprocess.Popen[str] | None = None
        self._out: queue.Queue[str | None] = queue.Queue()
        self._stderr_tail: deque[str] = deque(maxlen=200)
        self._lock = threading.Lock()
        self._init_ms: float | None = None
        self._served = 0
        self._init_error: dict[str, Any] | None = None
        self._diagnostics: dict[str, Any] = {}

    # -- lifecycle
    def find(self) -> DeployedFunction:
        """Find the function's configuration (nothing is downloaded)."""
        if self.function is None:
            found = find_function(self.clients, self.stack_name, self.qualifier)
            if self.invoked_as:
                found = replace(found, invoked_arn=(f"{unqualified_arn(found.function_arn)}"
                                                    f":{self.invoked_as}"))
            self.function = found
        return self.function

    def prepare(self) -> Layout:
        """Find the function and lay it out (no process is started)."""
        self.find()
        assert self.function is not None
        if self.layout is None:
            self._check_runtime(self.function)
            self.layout = lay_out(self.clients, self.function, self.workdir)
        return self.layout

    def _check_runtime(self, function: DeployedFunction) -> None:
        if self.python is not None:
            return
        mine = f"python{sys.version_info.major}.{sys.version_info.minor}"
        if function.runtime and function.runtime != mine:
            raise LocalRunError(f"function {function.function_name!r} runs {function.runtime}"
                                f" but this interpreter is {mine}: run tdv-local-run with "
                                f"{function.runtime} (or pass python=...)")

    def start(self) -> FunctionProcess:
        """Lay out the function and start its process (a cold start).

        :raises LocalRunError: when the process does not start.
        """
        layout = self.prepare()
        assert self.function is not None
        if self._proc is not None and self._proc.poll() is None:
            return self
        self._out = queue.Queue()
        self._served = 0
        env = function_environ(self.clients, self.function, layout)
        argv = [self.python or sys.executable, "-I", "-S", str(layout.runner),
                str(layout.task_dir), str(layout.opt_dir), str(layout.runtime_dir),
                self.function.handler]
        started = time.perf_counter()
        self._proc = subprocess.Popen(  # noqa: S603 - our interpreter and runner, no shell
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=env, cwd=layout.task_dir, text=True, encoding="utf-8", bufsize=1)
        assert self._proc.stdout is not None and self._proc.stderr is not None
        threading.Thread(target=self._pump_out, args=(self._proc.stdout, self._out),
                         daemon=True).start()
        threading.Thread(target=self._pump_err, args=(self._proc.stderr,),
                         daemon=True).start()
        ready = self._receive(self.init_timeout)
        if ready is None:
            self._kill()
            raise LocalRunError(f"the function process did not start within "
                                f"{self.init_timeout} s{self._tail()}")
        self._init_ms = float(ready.get("init_ms") or (time.perf_counter() - started) * 1000)
        if ready.get("type") == "init_error":
            self._init_error = ready.get("error")
            self._kill()
        else:
            self._init_error = None
            self._diagnostics = ready.get("diagnostics") or {}
        return self

    def close(self) -> None:
        """Stop the process (it exits when its stdin closes), once its invocation in
        flight, if any, has ended."""
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.stdin:
                proc.stdin.close()
            proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    @property
    def pid(self) -> int | None:
        """The process id of the running function, if any."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    # -- plumbing
    @staticmethod
    def _pump_out(stream: IO[str], out: queue.Queue[str | None]) -> None:
        for line in stream:
            out.put(line)
        out.put(None)

    def _pump_err(self, stream: IO[str]) -> None:
        for line in stream:
            text = line.rstrip("\n")
            self._stderr_tail.append(text)
            function_log.info("%s", text)

    def _tail(self) -> str:
        lines = list(self._stderr_tail)[-20:]
        return (":\n" + "\n".join(lines)) if lines else ""

    def _receive(self, timeout: float) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            try:
                line = self._out.get(timeout=remaining)
            except queue.Empty:
                return None
            if line is None:  # the process ended
                return {"type": "crash"}
            try:
                message = json.loads(line)
            except json.JSONDecodeError:
                function_log.info("%s", line.rstrip("\n"))
                continue
            if isinstance(message, dict):
                return message

    # -- invocations
    def invoke_event(self, event: Mapping[str, Any]) -> Invocation:
        """Run the handler on one event; the process is (re)started when needed.

        :param event: the Lambda event.
        :returns: the invocation's outcome (with the version that ran); a failing
            function gives API Gateway's 502.
        """
        result = self._run(event)
        result.version = self.function.version if self.function is not None else None
        return result

    def _run(self, event: Mapping[str, Any]) -> Invocation:
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self.start()
            assert self.function is not None
            cold = self._served == 0
            self._served += 1
            if self._init_error is not None:
                log.error("the function failed to initialise: %s: %s",
                          self._init_error.get("errorType"),
                          self._init_error.get("errorMessage"))
                error = self._init_error
                self._proc = None
                return Invocation(gateway_error(), 0.0, True, self._init_ms, error)
            timeout = self.invoke_timeout or self.function.timeout
            request_id = str(uuid.uuid4())
            message = {"type": "invoke", "event": event, "request_id": request_id,
                       "function_arn": self.function.invoked_arn or self.function.function_arn,
                       "deadline_ms": time.time() * 1000 + timeout * 1000}
            assert self._proc is not None and self._proc.stdin is not None
            started = time.perf_counter()
            try:
                self._proc.stdin.write(json.dumps(message) + "\n")
                self._proc.stdin.flush()
            except OSError:
                pass  # the process died: reported below
            result = self._receive(timeout)
            elapsed = (time.perf_counter() - started) * 1000
            init_ms = self._init_ms if cold else None
            if result is None:
                self._kill()
                error = {"errorType": "Sandbox.Timedout", "errorMessage":
                         f"Task timed out after {timeout:.2f} seconds"}
                log.error("%s: %s", self.function.function_name, error["errorMessage"])
                return Invocation(gateway_error(), elapsed, cold, init_ms, error)
            if result.get("type") == "crash":
                self._kill()
                error = {"errorType": "Runtime.ExitError",
                         "errorMessage": f"the function process exited{self._tail()}"}
                log.error("%s: %s", self.function.function_name, error["errorMessage"])
                return Invocation(gateway_error(), elapsed, cold, init_ms, error)
            diagnostics = result.get("diagnostics") or self._diagnostics
            duration = float(result.get("duration_ms") or elapsed)
            if result.get("error"):
                err = result["error"]
                log.error("%s raised %s: %s\n%s", self.function.function_name,
                          err.get("errorType"), err.get("errorMessage"),
                          "".join(err.get("stackTrace") or []))
                return Invocation(gateway_error(), duration, cold, init_ms, err, diagnostics)
            response = check_proxy_response(result.get("response"))
            return Invocation(response, duration, cold, init_ms, None, diagnostics)
