"""The prepare step: check every input, build the artifacts, upload what S3 lacks.

:func:`prepare` is shared by the ``Deploy`` class and ``PrepareDeploymentOperator``; its
result (:data:`PREPARE_KEYS`, checked by :func:`check_prepare_response`) is what
:func:`tdv_airflow.core.deployment.create_stack` turns into a stack. Nothing here imports
Airflow; :mod:`tdv_airflow.core.deployment` re-exports every name.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tdv_airflow.core import artifacts, bundle, layers, versions
from tdv_airflow.core import store as s3_store
from tdv_airflow.core.clients import AwsClients
from tdv_airflow.core.encryption import bucket_encryption
from tdv_airflow.core.function_scope import DEFAULT_ARCHITECTURE, check_declared
from tdv_airflow.core.resources import default_lambda_source_path, default_template_path
from tdv_airflow.core.retention import DEPLOYMENT_TAG
from tdv_airflow.core.template import read_template, with_api_revision
from tdv_airflow.core.validation import (
    STACK_TAGS_MAX,
    check_bucket_name,
    check_callable,
    check_s3_key,
    check_stack_tags,
    lambda_runtime,
)
from tdv_airflow.exceptions import InvalidInputError

log = logging.getLogger(__name__)

#: Keys every prepare result carries (the seed's three first).
PREPARE_KEYS = ("s3_lbd_key", "url_s3_stack_template", "s3_prepro_fn_location", "bucket",
                "model_s3_key", "s3_layer_key", "sha256", "runtime", "python_version",
                "dill_version", "template_parameters")


@dataclass
class PrepareResult:
    """What :func:`prepare` did.

    :param response: the prepare contract (JSON-serialisable, the same on every retry).
    :param uploaded: the artifact kinds whose bytes were sent this time.
    :param bytes_sent: how many bytes were uploaded this time.
    """

    response: dict[str, Any]
    uploaded: list[str] = field(default_factory=list)
    bytes_sent: int = 0


def prepare(
    clients: AwsClients,
    bucket: str,
    model_s3_key: str,
    prepro_fn: Callable[..., Any],
    template_stack_local_path: str | Path | None = None,
    deployment_lbd_local_path: str | Path | None = None,
    layer_zip_local_path: str | Path | None = None,
    s3_prefix: str = s3_store.DEFAULT_PREFIX,
    by_value_modules: Iterable[str] = (),
    dependencies: layers.Dependencies | Mapping[str, Any] | Sequence[str] | None = None,
    extra_layer_arns: Sequence[str] | str | None = None,
) -> PrepareResult:
    """Check the inputs, build the artifacts and upload those S3 does not hold yet.

    Every check runs before the first upload, so bad input leaves nothing behind.

    :param clients: boto3 clients.
    :param bucket: the bucket holding the model; artifacts go there too.
    :param model_s3_key: the trained model's key.
    :param prepro_fn: the preprocessing function (pickled by value).
    :param template_stack_local_path: a custom CloudFormation template.
    :param deployment_lbd_local_path: a custom request processor (``.py`` or ``.zip``).
    :param layer_zip_local_path: a ready-made dill layer zip.
    :param s3_prefix: the prefix of the artifact keys.
    :param by_value_modules: further modules whose functions are pickled by value.
    :param dependencies: the model's libraries (a
        :class:`~tdv_airflow.core.layers.Dependencies`, a dict of its fields, or requirement
        lines), uploaded content-addressed and attached after the dill layer, or as a
        bundle fetched into ``/tmp`` at start (its ``packaging``, see
        :func:`tdv_airflow.core.bundle.choose`; the log says which and why).
    :param extra_layer_arns: existing layer version ARNs attached after tdv-airflow's
        layers, in order.
    """
    import dill

    check_bucket_name(bucket)
    check_s3_key(model_s3_key, "model_s3_key")
    stack_tags(model_s3_key)  # the key becomes a stack tag: refuse it now, not in the stack
    check_callable(prepro_fn)
    runtime = lambda_runtime()
    template_bytes, template_body = with_api_revision(*read_template(
        template_stack_local_path or default_template_path()))
    built = [
        artifacts.build_layer(layer_zip_local_path),
        artifacts.build_prepro_fn(prepro_fn, by_value_modules),
        artifacts.build_lambda_code(deployment_lbd_local_path or default_lambda_source_path()),
        artifacts.build_template(template_bytes),
    ]
    deps = layers.Dependencies.coerce(dependencies)
    layer_arns = layers.check_layer_arns(extra_layer_arns)
    declared = template_body.get("Parameters") or {}
    packaging = deps.packaging if deps is not None else "layer"
    bundle.check_template(declared, packaging)
    layers.check_layer_options(template_body, deps if packaging == "layer" else None,
                               layer_arns)
    packed = bundle.choose(packaging, deps.build() if deps is not None else None,
                           layers.check_function_size(built), declared)
    if packed.choice == "layer":
        layers.check_layer_options(template_body, deps, layer_arns)
    if packed.artifact is not None:
        built.append(packed.artifact)
        log.info("dependencies: %s", packed.reason)
    unzipped = layers.check_function_size(built)
    s3_store.check_bucket(clients.s3, bucket, clients.region_name)
    model_sha256 = s3_store.object_sha256(clients.s3, bucket, model_s3_key)
    architecture = deps.architecture if deps is not None else DEFAULT_ARCHITECTURE
    encryption = bucket_encryption(clients, bucket)  # uploads follow the bucket's own
    check_declared(template_body.get("Parameters") or {}, architecture, encryption.kms_key_arn)

    result = PrepareResult(response={})
    keys: dict[str, str] = {}
    for artifact in built:
        key, sent = s3_store.upload_artifact(clients.s3, bucket, s3_prefix, artifact,
                                             encryption.put_args())
        keys[artifact.kind] = key
        if sent:
            result.uploaded.append(artifact.kind)
            result.bytes_sent += len(artifact.data)
        log.info("%s: s3://%s/%s (%s)", artifact.kind, bucket, key,
                 "uploaded" if sent else "already there, not sent again")
    result.response = {
        "s3_lbd_key": keys["lambda_code"],
        "url_s3_stack_template": s3_store.template_url(bucket, keys["template"],
                                                       clients.region_name),
        "s3_prepro_fn_location": keys["prepro_fn"],
        "bucket": bucket,
        "model_s3_key": model_s3_key,
        "s3_layer_key": keys["layer"],
        "s3_template_key": keys["template"],
        "sha256": {"model": model_sha256, **{a.kind: a.sha256 for a in built}},
        "runtime": runtime,
        "python_version": f"{sys.version_info.major}.{sys.version_info.minor}",
        "dill_version": dill.__version__,
        "template_parameters": sorted(template_body.get("Parameters") or {}),
        "template_defaults": versions.parameter_defaults(template_body),
        "s3_deps_layer_key": keys.get(layers.DEPS_LAYER_KIND),
        "deps_packaging": packed.choice,
        "deps_bundle": bundle.bundle_response(packed, keys.get(bundle.BUNDLE_KIND)),
        "extra_layer_arns": layer_arns,
        "unzipped_bytes": unzipped,
        "architecture": architecture,
        "kms_key_arn": encryption.kms_key_arn,
    }
    return result


def check_prepare_response(response: Any) -> Mapping[str, Any]:
    """Return ``response`` if it is a prepare result.

    :param response: what the prepare step returned (e.g. through XCom).
    :raises InvalidInputError: when it is not a mapping with the prepare keys.
    """
    if not isinstance(response, Mapping):
        raise InvalidInputError(
            f"prepare_env_response must be the dict returned by prepare_deployment() "
            f"(or PrepareDeploymentOperator's XCom), got {type(response).__name__}")
    missing = [k for k in PREPARE_KEYS if k not in response]
    if missing:
        raise InvalidInputError(f"prepare_env_response lacks the keys {missing}; pass the "
                                "dict returned by prepare_deployment() unchanged")
    return response


#: The stack tag naming the model a stack serves (its key, cut to 256 characters).
MODEL_TAG = "tdv-airflow:model"


def stack_tags(model_s3_key: str, stack_name: str | None = None,
               tags: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The stack's tags but the fingerprint, checked against what every tagged resource
    accepts (:func:`~tdv_airflow.core.validation.check_tag`): the deployment (the stack
    name), the model key, then ``tags`` (which win).

    :param model_s3_key: the model's key (its first 256 characters tag the stack).
    :param stack_name: the stack; ``None`` leaves the deployment tag out (prepare knows
        no stack yet and checks the model's tag alone, before any upload).
    :param tags: the user's tags.
    :raises InvalidInputError: naming the bad tag, its value and the rule.
    """
    user = check_stack_tags(tags)
    derived = {DEPLOYMENT_TAG: stack_name} if stack_name else {}
    derived[MODEL_TAG] = str(model_s3_key)[:256]
    origins = {} if MODEL_TAG in user else {MODEL_TAG: "model_s3_key"}
    return check_stack_tags({**derived, **user}, origins, limit=STACK_TAGS_MAX - 1)
