"""Read and check docker-compose.yml (Docker cannot run here, so it is checked statically).

:func:`problems` lists what is wrong with a parsed Compose file; the tests assert it is
empty for the real file and that it catches each kind of breakage. :func:`airflow_env`
and :func:`local_bucket` give the settings the native distributed test reuses.
"""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
EXAMPLE_DAG = Path("dags") / "retrain_and_deploy.py"
#: The airflow-init setting naming the bucket it creates on the emulator.
BUCKET_VAR = "TDV_LOCAL_BUCKET"

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
    if str(env.get("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "")).lower() != "true":
        found.append("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE is not true: the sensors would "
                     "hold worker slots instead of deferring to the triggerer")
    found += _bucket_problems(services, root)
    first_build = next((s.get("build") for s in present if s.get("build")), None)
    if first_build:
        context = root / first_build.get("context", ".")
        dockerfile = context / first_build.get("dockerfile", "Dockerfile")
        if dockerfile.is_file():
            found += _dockerfile_problems(dockerfile, context)
    return found


def param_default(dag_file: Path, name: str) -> Any:
    """The default of the Param ``name`` in a DAG file, read without running the file.

    :param dag_file: the DAG file.
    :param name: the key of the Param in the DAG's ``params`` dict.
    :raises KeyError: when the file has no such literal Param.
    """
    for node in ast.walk(ast.parse(dag_file.read_text())):
        if not isinstance(node, ast.Dict):
            continue
        for key, value in zip(node.keys, node.values, strict=True):
            if (isinstance(key, ast.Constant) and key.value == name
                    and isinstance(value, ast.Call) and getattr(value.func, "id", "") == "Param"
                    and value.args):
                return ast.literal_eval(value.args[0])
    raise KeyError(f"no Param {name!r} with a literal default in {dag_file}")


def _bucket_problems(services: dict[str, Any], root: Path) -> list[str]:
    """airflow-init must create the bucket the example DAG's Param ``bucket`` names."""
    init = services.get("airflow-init") or {}
    bucket = (init.get("environment") or {}).get(BUCKET_VAR)
    command = init.get("command")
    script = "\n".join(command) if isinstance(command, list) else str(command or "")
    if not bucket or "create_bucket" not in script or BUCKET_VAR not in script:
        return [f"airflow-init does not create the example DAG's bucket ({BUCKET_VAR})"]
    dag_file = root / EXAMPLE_DAG
    if dag_file.is_file() and param_default(dag_file, "bucket") != bucket:
        return [f"airflow-init creates bucket {bucket!r} but the example DAG's Param "
                f"'bucket' defaults to {param_default(dag_file, 'bucket')!r}"]
    return []


def local_bucket() -> str:
    """The bucket airflow-init creates on the emulator (the example DAG's default)."""
    return str(load()["services"]["airflow-init"]["environment"][BUCKET_VAR])


def airflow_env() -> dict[str, str]:
    """The environment the Compose file gives every Airflow service."""
    spec = load()
    return {k: str(v) for k, v in spec["services"]["airflow-scheduler"]["environment"].items()}
