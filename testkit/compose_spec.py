"""Read and check docker-compose.yml (Docker cannot run here, so it is checked statically).

:func:`problems` lists what is wrong with a parsed Compose file; the tests assert it is
empty for the real file and that it catches each kind of breakage. :func:`airflow_env`
gives the settings the native distributed test reuses.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"

#: Airflow service -> the command it must run.
AIRFLOW_SERVICES = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
    "airflow-worker": "celery worker",
    "airflow-init": None,
}
OTHER_SERVICES = ("postgres", "redis", "local-aws")
#: Settings every Airflow service must share.
SHARED_ENV = (
    "AIRFLOW__CORE__EXECUTOR",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
    "AIRFLOW__CELERY__BROKER_URL",
    "AIRFLOW__CELERY__RESULT_BACKEND",
    "AIRFLOW__CORE__FERNET_KEY",
    "AIRFLOW__API_AUTH__JWT_SECRET",
    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
    "AIRFLOW_CONN_AWS_DEFAULT",
)


def load(path: Path = COMPOSE) -> dict[str, Any]:
    """The parsed Compose file (anchors and merge keys resolved)."""
    return yaml.safe_load(path.read_text())


def _dockerfile_problems(dockerfile: Path, context: Path) -> list[str]:
    found = []
    text = dockerfile.read_text()
    for line in text.splitlines():
        m = re.match(r"\s*COPY\s+(?:--\S+\s+)*(.+)", line)
        if m:
            for src in m.group(1).split()[:-1]:
                if not (context / src).exists():
                    found.append(f"Dockerfile COPY source {src!r} does not exist")
    pins = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    airflow_pin = next(p for p in pins if p.startswith("apache-airflow>="))
    wanted = re.search(r">=(\d+\.\d+)", airflow_pin)
    version = re.search(r"ARG AIRFLOW_VERSION=(\S+)", text)
    if not version or not wanted or not version.group(1).startswith(wanted.group(1)):
        found.append(f"Dockerfile's AIRFLOW_VERSION does not match pyproject's {airflow_pin!r}")
    if "FROM apache/airflow:${AIRFLOW_VERSION}" not in text:
        found.append("Dockerfile is not based on the official apache/airflow image")
    if "/opt/tdv-airflow" not in text or "pip install" not in text:
        found.append("Dockerfile does not install the provider from the repository")
    return found


def problems(spec: dict[str, Any], root: Path = ROOT) -> list[str]:
    """Everything wrong with a parsed Compose file.

    :param spec: the parsed file.
    :param root: the folder relative paths are resolved from.
    """
    services = spec.get("services") or {}
    found = [f"service {name!r} is missing" for name in (*AIRFLOW_SERVICES, *OTHER_SERVICES)
             if name not in services]
    for name, command in AIRFLOW_SERVICES.items():
        svc = services.get(name)
        if svc is None:
            continue
        if command and svc.get("command") != command:
            found.append(f"service {name!r} runs {svc.get('command')!r}, expected {command!r}")
        build = svc.get("build") or {}
        context = root / build.get("context", ".")
        dockerfile = context / build.get("dockerfile", "Dockerfile")
        if not dockerfile.is_file():
            found.append(f"service {name!r} builds from missing {dockerfile.relative_to(root)}")
        for volume in svc.get("volumes") or []:
            host = str(volume).split(":", 1)[0]
            if host.startswith(".") and not (root / host).exists():
                found.append(f"service {name!r} mounts missing path {host!r}")
        for dep in svc.get("depends_on") or {}:
            if dep not in services:
                found.append(f"service {name!r} depends on unknown service {dep!r}")
    present = [services[n] for n in AIRFLOW_SERVICES if n in services]
    for key in SHARED_ENV:
        values = {str((svc.get("environment") or {}).get(key)) for svc in present}
        if len(values) != 1 or values == {"None"}:
            found.append(f"services disagree on {key}: {sorted(values)}")
    env = (present[0].get("environment") or {}) if present else {}
    if env.get("AIRFLOW__CORE__EXECUTOR") != "CeleryExecutor":
        found.append("the executor is not CeleryExecutor")
    for key, host in [("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "@postgres"),
                      ("AIRFLOW__CELERY__BROKER_URL", "@redis:"),
                      ("AIRFLOW_CONN_AWS_DEFAULT", "local-aws")]:
        if host not in str(env.get(key, "")):
            found.append(f"{key} does not point at the {host.strip('@:')} service")
    first_build = next((s.get("build") for s in present if s.get("build")), None)
    if first_build:
        context = root / first_build.get("context", ".")
        dockerfile = context / first_build.get("dockerfile", "Dockerfile")
        if dockerfile.is_file():
            found += _dockerfile_problems(dockerfile, context)
    return found


def airflow_env() -> dict[str, str]:
    """The environment the Compose file gives every Airflow service."""
    spec = load()
    return {k: str(v) for k, v in spec["services"]["airflow-scheduler"]["environment"].items()}
