"""How tests, benchmarks and the topology drive the example DAG ``dags/retrain_and_deploy.py``.

The DAG has no environment switches of its own: a run is steered by its Params (run conf),
the ``aws_default`` connection and Airflow configuration. This module names those: the
DAG's id, its default bucket (which must exist before a run), the run conf of the
per-version mode, and the configuration that makes its tasks poke, reschedule or defer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

DAG_ID = "retrain_and_deploy"
#: The default of the DAG's ``bucket`` Param: the DAG does not create it.
DAG_BUCKET = "tdv-airflow-models"
#: The Param and value that give each model version its own stack.
STACK_MODE_PARAM, PER_VERSION = "stack_mode", "per_version"
#: How a sensor can wait.
WAIT_MODES = ("poke", "reschedule", "deferrable")


def wait_settings(mode: str, poll_interval: float | None = None) -> dict[str, str]:
    """The Airflow configuration (environment variables) that makes the DAG's tasks wait
    in ``mode``, polling the stack every ``poll_interval`` seconds.

    :param mode: ``poke``, ``reschedule`` or ``deferrable``.
    :param poll_interval: seconds between stack polls; the provider's default when ``None``.
    :raises ValueError: on another mode.
    """
    if mode not in WAIT_MODES:
        raise ValueError(f"wait mode must be one of {WAIT_MODES}, got {mode!r}")
    settings = {
        "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": "true" if mode == "deferrable" else "false",
        "AIRFLOW__TDV_AIRFLOW__SENSOR_MODE": "reschedule" if mode == "reschedule" else "poke",
    }
    if poll_interval is not None:
        settings["AIRFLOW__TDV_AIRFLOW__POLL_INTERVAL"] = f"{poll_interval:g}"
    return settings


def ensure_bucket(s3: Any, bucket: str = DAG_BUCKET) -> str:
    """Create ``bucket`` unless it exists, with the lifecycle rule ``docs/storage.md``
    recommends (incomplete multipart uploads aborted after a day): what a user does before
    the first run.

    :param s3: an S3 client.
    :param bucket: the bucket's name.
    :returns: the name.
    """
    if bucket not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={
            "Rules": [{"ID": "tdv-abort-incomplete-uploads", "Status": "Enabled",
                       "Filter": {"Prefix": ""},
                       "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}}]})
    return bucket


def check_per_version_mode(dag: dict[str, Any]) -> None:
    """Fail unless the DAG (as ``GET /dags/{id}/details`` shows it) offers per-version stacks.

    :param dag: the DAG's details from the REST API.
    """
    param = dag["params"].get(STACK_MODE_PARAM) or {}
    assert PER_VERSION in (param.get("schema") or {}).get("enum", []), (
        f"the example DAG offers no {STACK_MODE_PARAM}={PER_VERSION!r} (one stack per model "
        f"version); its Params: {dag['params']}")


def per_version_conf(template: Path, keep_versions: int) -> dict[str, Any]:
    """Run conf: one stack per version, held by ``template``, ``keep_versions`` kept.

    :param template: a CloudFormation template on the workers.
    :param keep_versions: how many version stacks retention keeps.
    """
    return {"template_path": str(template), STACK_MODE_PARAM: PER_VERSION,
            "keep_versions": keep_versions}
