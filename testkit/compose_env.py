"""The environment the Compose file gives a service, for a process on this machine.

Compose variables are resolved with their defaults (:func:`interpolate`), the service host
names become native ``host:port`` pairs (:func:`translate_hosts`), and the container's
``AIRFLOW_HOME`` becomes a native folder (:func:`native_env`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote

from testkit.processes import TopologyError

#: AIRFLOW_HOME inside the Compose containers (the apache/airflow image's).
CONTAINER_HOME = "/opt/airflow"
#: The Compose services that other services reach by host name.
COMPOSE_HOSTS = ("airflow-apiserver", "local-aws", "postgres", "redis")
_COMPOSE_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$\$")


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
