"""The deployment core shared by the ``Deploy`` class and the Airflow operators.

:func:`prepare` checks every input, builds the artifacts and uploads what S3 does not
hold yet; :func:`create_stack` turns its result into a stack; :func:`endpoint_of` reads
the endpoint back. Nothing here imports Airflow.
"""

from __future__ import annotations

import hashlib
import logging
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tdv_airflow.core import artifacts, layers, stacks, versions
from tdv_airflow.core import store as s3_store
from tdv_airflow.core.clients import AwsClients
from tdv_airflow.core.encryption import bucket_encryption
from tdv_airflow.core.function_scope import DEFAULT_ARCHITECTURE, check_declared, scope_parameters
from tdv_airflow.core.iam import BOUNDARY_PARAMETER, check_permissions_boundary_arn
from tdv_airflow.core.resources import default_lambda_source_path, default_template_path
from tdv_airflow.core.retention import DEPLOYMENT_TAG
from tdv_airflow.core.template import build_parameters, read_template, with_api_revision
from tdv_airflow.core.validation import (
    ENDPOINT_AUTH_MODES,
    STACK_TAGS_MAX,
    check_bucket_name,
    check_callable,
    check_capacity_parameters,
    check_endpoint_auth,
    check_on_exists,
    check_role_arn,
    check_s3_key,
    check_stack_name,
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
    :param dependencies: the model's libraries as a dependency layer (a
        :class:`~tdv_airflow.core.layers.Dependencies`, a dict of its fields, or requirement
        lines), uploaded content-addressed and attached after the dill layer.
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
    layers.check_layer_options(template_body, deps, layer_arns)
    if deps is not None:
        built.append(deps.build())
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


def function_name_for(stack_name: str) -> str:
    """A Lambda function name (at most 64 characters) derived from the stack name.

    :param stack_name: a valid stack name.
    """
    if len(stack_name) <= 64:
        return stack_name
    digest = hashlib.sha256(stack_name.encode()).hexdigest()[:8]
    return f"{stack_name[:55]}-{digest}"


def stack_parameters(response: Mapping[str, Any], stack_name: str,
                     extra: Mapping[str, Any] | None = None, *,
                     endpoint_auth: str = "iam",
                     permissions_boundary_arn: str | None = None,
                     stack: Mapping[str, Any] | None = None,
                     retained: Sequence[tuple[str, str]] = (),
                     region: str = "us-east-1") -> list[dict[str, str]]:
    """The CloudFormation parameters for a prepare result.

    :param response: the prepare result.
    :param stack_name: the stack name.
    :param extra: further template parameters (e.g. ``{"StageName": "v1"}``); an
        ``EndpointAuth`` here wins over ``endpoint_auth``.
    :param endpoint_auth: how callers authenticate: ``"iam"`` (SigV4, the default),
        ``"api_key"`` or ``"none"`` (public); becomes the ``EndpointAuth`` parameter.
    :param permissions_boundary_arn: the function role's permissions boundary; becomes the
        ``PermissionsBoundaryArn`` parameter (``extra`` may set it too).
    :param stack: the existing stack (``describe_stacks`` entry) this updates, ``None`` to
        create: the role keeps reading what it served (see
        :mod:`tdv_airflow.core.function_scope`, with the architecture and KMS key).
    :param retained: ``(bucket, key)`` of the artifacts the function's published versions
        read: its role keeps reading them (:func:`tdv_airflow.core.versions.list_versions`).
    :param region: the stack's region (the partition of the role's object ARNs).
    :raises InvalidInputError: for another ``endpoint_auth``, or a non-default one with a
        template that does not declare ``EndpointAuth``; for a boundary that is not a
        policy ARN or a template that does not declare ``PermissionsBoundaryArn``.
    """
    mode = check_endpoint_auth(endpoint_auth)
    digests = response["sha256"]
    values: dict[str, Any] = {
        "ArtifactBucket": response["bucket"],
        "ModelKey": response["model_s3_key"],
        "ModelSha256": digests["model"],
        "PreproKey": response["s3_prepro_fn_location"],
        "PreproSha256": digests["prepro_fn"],
        "CodeKey": response["s3_lbd_key"],
        "CodeSha256": digests["lambda_code"],
        "LayerKey": response["s3_layer_key"],
        "LayerSha256": digests["layer"],
        "Runtime": response["runtime"],
        "PicklePythonVersion": response["python_version"],
        "DillVersion": response["dill_version"],
        "FunctionName": function_name_for(stack_name),
    }
    if response.get("s3_deps_layer_key"):
        values["DepsLayerKey"] = response["s3_deps_layer_key"]
        values["DepsLayerSha256"] = digests[layers.DEPS_LAYER_KIND]
    if response.get("extra_layer_arns"):
        values["ExtraLayerArns"] = list(response["extra_layer_arns"])
    if "EndpointAuth" in response["template_parameters"]:
        values["EndpointAuth"] = ENDPOINT_AUTH_MODES[mode]
    elif mode != "iam":
        raise InvalidInputError(
            f"endpoint_auth={endpoint_auth!r} needs a template that declares the parameter "
            "'EndpointAuth' (see the shipped templates/stack_template.json); this one does not, "
            "so its own settings decide how the endpoint is authenticated")
    if permissions_boundary_arn is not None:
        if BOUNDARY_PARAMETER not in response["template_parameters"]:
            raise InvalidInputError(
                f"permissions_boundary_arn={permissions_boundary_arn!r} needs a template that "
                f"declares the parameter {BOUNDARY_PARAMETER!r} (see the shipped "
                "templates/stack_template.json); this one does not")
        values[BOUNDARY_PARAMETER] = permissions_boundary_arn
    values.update(scope_parameters(response, stack, retained, region))
    values.update(extra or {})
    check_permissions_boundary_arn(values.get(BOUNDARY_PARAMETER) or None)
    declared: dict[str, Any] = {name: {} for name in response["template_parameters"]}
    return build_parameters({"Parameters": declared}, values)


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


def create_stack(
    clients: AwsClients,
    prepare_response: Mapping[str, Any],
    stack_name: str,
    parameters: Mapping[str, Any] | None = None,
    tags: Mapping[str, str] | None = None,
    on_exists: str = "update",
    client_request_token: str | None = None,
    poll_interval: float = 5.0,
    *,
    endpoint_auth: str = "iam",
    role_arn: str | None = None,
    permissions_boundary_arn: str | None = None,
) -> dict[str, Any]:
    """Create or update the deployment stack (does not wait for it to finish).

    Safe to retry: the stack is tagged with a fingerprint of the template, parameters and
    tags it was given (:func:`tdv_airflow.core.stacks.fingerprint`); when a stack that has not
    failed already carries the wanted fingerprint, nothing is sent (``operation`` is
    ``"unchanged"``), also when it rolled back to exactly that state
    (UPDATE_ROLLBACK_COMPLETE, :func:`tdv_airflow.core.stacks.state_of`): pass the result's
    ``fingerprint`` to whoever waits for the stack.

    :param clients: boto3 clients.
    :param prepare_response: the prepare result.
    :param stack_name: the stack name.
    :param parameters: further template parameters.
    :param tags: stack tags; ``tdv-airflow:deployment`` (default: the stack name) groups
        the per-version stacks of one model for retention.
    :param on_exists: ``"update"``, ``"skip"`` or ``"fail"`` when the stack exists.
    :param client_request_token: idempotency token.
    :param poll_interval: seconds between polls while a stack in progress is waited for.
    :param endpoint_auth: ``"iam"`` (default: callers sign with SigV4), ``"api_key"`` (an
        API key with a usage plan; its id is the ``ApiKeyId`` output) or ``"none"`` (a
        public endpoint, logged as a warning).
    :param role_arn: the CloudFormation service role that creates the resources
        (``RoleARN``); ``None`` lets CloudFormation act with the caller's permissions.
    :param permissions_boundary_arn: the managed policy that bounds the function role
        (``PermissionsBoundaryArn``); the published service role policy creates roles only
        with it (``docs/iam.md``).
    :returns: the create contract (``stack_id``, ``stack_name``, ``stack_status``,
        ``fingerprint``), ``operation`` (``"existing_version"`` when a published version
        already runs this deployment: the stack is left as it is), ``identity`` (of the
        function's version, :func:`tdv_airflow.core.versions.function_identity`) and
        ``candidate_version`` (that version, ``None`` until one is published).
    """
    check_stack_name(stack_name)
    check_on_exists(on_exists)
    check_role_arn(role_arn)
    check_permissions_boundary_arn(permissions_boundary_arn)
    check_capacity_parameters(parameters)
    response = check_prepare_response(prepare_response)
    existing = stacks.describe(clients.cloudformation, stack_name)
    function_name = function_name_for(stack_name)
    published = versions.list_versions(clients.lambda_, function_name) if existing else []
    params = stack_parameters(response, stack_name, parameters, endpoint_auth=endpoint_auth,
                              permissions_boundary_arn=permissions_boundary_arn, stack=existing,
                              retained=[a for r in published for a in r.artifacts()],
                              region=clients.region_name)
    if any(p["ParameterKey"] == "EndpointAuth" and p["ParameterValue"] == "NONE"
           for p in params):
        log.warning("!!! stack %s: endpoint_auth='none' makes POST /predict PUBLIC: anyone "
                    "who knows the URL can call it (and run up the bill); use 'iam' or "
                    "'api_key' unless that is what you want", stack_name)
    all_tags = stack_tags(response["model_s3_key"], stack_name, tags)
    wanted = stacks.fingerprint(response["url_s3_stack_template"], params, all_tags, role_arn)
    identity = versions.function_identity(params, response.get("template_defaults"))
    same = [r.version for r in published if r.identity == identity]
    candidate = {"identity": identity, "candidate_version": same[-1] if same else None}
    applied = stacks.find_applied(clients.cloudformation, stack_name, wanted, stack=existing)
    if applied is not None:
        log.info("stack %s (%s) already has this template, parameters and tags: nothing to "
                 "send", stack_name, applied["StackStatus"])
        return {**stacks.summary(applied), "fingerprint": wanted, "operation": "unchanged",
                **candidate}
    if same and existing is not None and on_exists == "update" and _only_function_differs(
            existing, params, response, all_tags, role_arn, parameters):
        log.info("version %s of %s already runs this deployment (identity %s): it is "
                 "promoted again, the stack is not redeployed", same[-1], function_name,
                 identity)
        return {**stacks.summary(existing), "operation": "existing_version", **candidate,
                "fingerprint": stacks.tags_of(existing).get(stacks.FINGERPRINT_TAG)}
    return {**stacks.create_or_update(
        clients.cloudformation, stack_name, response["url_s3_stack_template"], params,
        tags=all_tags, on_exists=on_exists,
        client_request_token=client_request_token, poll_interval=poll_interval,
        role_arn=role_arn, stack=existing,
    ), **candidate}


def _only_function_differs(stack: Mapping[str, Any], params: Sequence[Mapping[str, str]],
                           response: Mapping[str, Any], tags: Mapping[str, str],
                           role_arn: str | None, given: Mapping[str, Any] | None) -> bool:
    """Whether ``stack`` has everything the deployment wants but the function's own
    parameters (:func:`tdv_airflow.core.versions.with_served_function`)."""
    computed = set() if "RetainedArtifactArns" in (given or {}) else {"RetainedArtifactArns"}
    as_served = versions.with_served_function(params, stack, computed)
    served_tags = {**tags, MODEL_TAG: stacks.tags_of(stack).get(MODEL_TAG, "")}
    return stacks.tags_of(stack).get(stacks.FINGERPRINT_TAG) == stacks.fingerprint(
        response["url_s3_stack_template"], as_served, served_tags, role_arn)


def endpoint_of(stack: Mapping[str, Any]) -> dict[str, Any]:
    """The sensor contract of a finished stack.

    :param stack: a ``describe_stacks`` entry.
    """
    outputs = stacks.outputs_of(stack)
    return {
        "stack_name": stack["StackName"],
        "stack_id": stack["StackId"],
        "stack_status": stack["StackStatus"],
        "api_name": outputs.get("ApiName"),
        "api_endpoint": outputs.get("ApiEndpoint"),
        "outputs": outputs,
    }
