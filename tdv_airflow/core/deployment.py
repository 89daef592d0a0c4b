"""The deployment core shared by the ``Deploy`` class and the Airflow operators.

:func:`prepare` (in :mod:`tdv_airflow.core.prepare`, re-exported here) checks every
input, builds the artifacts and uploads what S3 does not hold yet; :func:`create_stack`
turns its result into a stack; :func:`endpoint_of` reads the endpoint back.
Nothing here imports Airflow.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from tdv_airflow.core import layers, stacks, versions
from tdv_airflow.core.bundle import bundle_parameters
from tdv_airflow.core.clients import AwsClients
from tdv_airflow.core.function_options import (
    FunctionOptions,
    check_parameter_values,
    stack_option_parameters,
)
from tdv_airflow.core.function_scope import scope_parameters
from tdv_airflow.core.iam import BOUNDARY_PARAMETER, check_permissions_boundary_arn
from tdv_airflow.core.prepare import (  # re-exported: the prepare step lives there
    MODEL_TAG,
    PREPARE_KEYS,
    PrepareResult,
    check_prepare_response,
    prepare,
    stack_tags,
)
from tdv_airflow.core.template import build_parameters
from tdv_airflow.core.validation import (
    ENDPOINT_AUTH_MODES,
    check_capacity_parameters,
    check_endpoint_auth,
    check_on_exists,
    check_role_arn,
    check_stack_name,
)
from tdv_airflow.exceptions import InvalidInputError

__all__ = ["MODEL_TAG", "PREPARE_KEYS", "PrepareResult", "check_prepare_response",
           "create_stack", "endpoint_of", "function_name_for", "prepare", "stack_parameters",
           "stack_tags"]

log = logging.getLogger(__name__)


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
                     region: str = "us-east-1",
                     options: FunctionOptions | None = None) -> list[dict[str, str]]:
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
    :param options: the function's runtime options (``extra`` wins over them); the final
        values are checked together (:func:`~tdv_airflow.core.function_options.
        check_parameter_values`).
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
    values.update(stack_option_parameters(response, options or FunctionOptions()))
    values.update(bundle_parameters(response, (options or FunctionOptions()).ephemeral_storage))
    values.update(extra or {})
    check_parameter_values(values, region=region)
    check_permissions_boundary_arn(values.get(BOUNDARY_PARAMETER) or None)
    declared: dict[str, Any] = {name: {} for name in response["template_parameters"]}
    return build_parameters({"Parameters": declared}, values)




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
    function_options: FunctionOptions | Mapping[str, Any] | None = None,
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
    :param function_options: how the function runs (a
        :class:`~tdv_airflow.core.function_options.FunctionOptions` or a dict of its fields).
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
    options = FunctionOptions.coerce(function_options)
    response = check_prepare_response(prepare_response)
    existing = stacks.describe(clients.cloudformation, stack_name)
    function_name = function_name_for(stack_name)
    published = versions.list_versions(clients.lambda_, function_name) if existing else []
    params = stack_parameters(response, stack_name, parameters, endpoint_auth=endpoint_auth,
                              permissions_boundary_arn=permissions_boundary_arn, stack=existing,
                              retained=[a for r in published for a in r.artifacts()],
                              region=clients.region_name,
                              options=options)
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
