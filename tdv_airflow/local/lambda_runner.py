"""The child process of :mod:`tdv_airflow.local.process`: one warm Lambda execution environment.

This file is copied next to the laid-out function and run as
``python -I -S _lambda_runner.py TASK_DIR OPT_DIR RUNTIME_DIR HANDLER``. It uses the
standard library only and never imports ``tdv_airflow`` (which is not importable here:
``-I -S`` leaves out the current directory, ``PYTHONPATH`` and every site-packages).

``sys.path`` is set as in the Lambda Python runtime: the task dir (the function code),
``OPT/python/lib/python3.X/site-packages`` and ``OPT/python`` (the layers, extracted in
order into one folder), then RUNTIME_DIR (boto3 and its dependencies, which the Lambda
runtime provides), then the standard library.

Protocol: one JSON object per line. The runner first writes ``{"type": "ready", ...}``
(or ``{"type": "init_error", ...}``) once the handler's module is imported, then, for
each ``{"type": "invoke", "event": ..., "request_id": ..., "deadline_ms": ...}`` line
read on stdin, writes ``{"type": "result", "response": ...}`` or ``{"type": "result",
"error": {...}}``. Anything the function prints goes to stderr (its log), never to the
protocol channel.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import os
import sys
import time
import traceback
from typing import Any

#: Modules whose origin the runner reports, to show where each was imported from.
_WATCHED = ("dill", "sklearn", "numpy", "scipy", "joblib", "boto3", "botocore")


class LambdaContext:
    """The ``context`` argument of a Lambda handler.

    :param request_id: the invocation's request id.
    :param deadline_ms: epoch milliseconds at which the invocation times out.
    :param env: the function's environment.
    :param function_arn: the invoked function's ARN.
    """

    def __init__(self, request_id: str, deadline_ms: float, env: dict[str, str],
                 function_arn: str) -> None:
        self.aws_request_id = request_id
        self.function_name = env.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = env.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.invoked_function_arn = function_arn
        self.memory_limit_in_mb = env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        self.log_group_name = env.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = env.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.identity = None
        self.client_context = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the invocation times out."""
        return max(0, int(self._deadline_ms - time.time() * 1000))


def _error(exc: BaseException, error_type: str | None = None) -> dict[str, Any]:
    return {
        "errorType": error_type or type(exc).__name__,
        "errorMessage": str(exc),
        "stackTrace": traceback.format_exception(type(exc), exc, exc.__traceback__),
    }


def _diagnostics(handler_module: Any) -> dict[str, Any]:
    modules = {}
    for name in _WATCHED:
        module = sys.modules.get(name)
        modules[name] = getattr(module, "__file__", None) if module else None
    return {
        "handler_file": getattr(handler_module, "__file__", None),
        "sys_path": list(sys.path),
        "cwd": os.getcwd(),
        "modules": modules,
        "tdv_airflow_importable": importlib.util.find_spec("tdv_airflow") is not None,
        "python": sys.version.split()[0],
        "pid": os.getpid(),
    }


def _setup_logging() -> None:
    class _RequestIdFilter(logging.Filter):
        request_id = ""

        def filter(self, record: logging.LogRecord) -> bool:
            record.aws_request_id = self.request_id
            return True

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(
        "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s",
        "%Y-%m-%dT%H:%M:%S"))
    handler.addFilter(_RequestIdFilter())
    logging.Formatter.converter = time.gmtime
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(os.environ.get("AWS_LAMBDA_LOG_LEVEL", "WARNING").upper())


def _set_request_id(request_id: str) -> None:
    for handler in logging.getLogger().handlers:
        for flt in handler.filters:
            if hasattr(flt, "request_id"):
                flt.request_id = request_id


def main(argv: list[str]) -> int:
    """Run the function: import its handler, then answer invocations from stdin.

    :param argv: ``[TASK_DIR, OPT_DIR, RUNTIME_DIR, HANDLER]``.
    """
    task_dir, opt_dir, runtime_dir, handler_spec = argv
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    stdlib = [p for p in sys.path if p and os.path.abspath(p) != os.path.dirname(
        os.path.abspath(__file__))]
    sys.path[:] = [task_dir, os.path.join(opt_dir, "python", "lib", version, "site-packages"),
                   os.path.join(opt_dir, "python"), runtime_dir, *stdlib]
    os.chdir(task_dir)
    # The protocol keeps the real stdout; the function's own prints go to stderr.
    channel = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    _setup_logging()

    def send(message: dict[str, Any]) -> None:
        channel.write(json.dumps(message, default=str) + "\n")
        channel.flush()

    started = time.perf_counter()
    module_name, _, function_name = handler_spec.rpartition(".")
    try:
        module = importlib.import_module(module_name.replace("/", "."))
        function = getattr(module, function_name)
    except Exception as exc:
        error_type = ("Runtime.HandlerNotFound" if isinstance(exc, AttributeError)
                      else "Runtime.ImportModuleError")
        send({"type": "init_error", "error": _error(exc, error_type),
              "init_ms": (time.perf_counter() - started) * 1000})
        return 1
    send({"type": "ready", "init_ms": (time.perf_counter() - started) * 1000,
          "diagnostics": _diagnostics(module)})
    env = dict(os.environ)
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        request_id = str(request.get("request_id", ""))
        _set_request_id(request_id)
        context = LambdaContext(request_id, float(request.get("deadline_ms", 0)), env,
                                str(request.get("function_arn", "")))
        t0 = time.perf_counter()
        result: dict[str, Any] = {"type": "result"}
        try:
            response = function(request.get("event"), context)
        except Exception as exc:
            result["error"] = _error(exc)
        else:
            try:  # Lambda serialises the result as JSON: fail as it would
                result["response"] = json.loads(json.dumps(response))
            except (TypeError, ValueError) as exc:
                result["error"] = _error(exc, "Runtime.MarshalError")
        result["duration_ms"] = (time.perf_counter() - t0) * 1000
        result["diagnostics"] = _diagnostics(module)
        _set_request_id("")
        send(result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
