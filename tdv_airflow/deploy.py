"""``Deploy``: the framework-free API of the original easyTDV spec.

::

    from tdv_airflow import Deploy
    from tdv_airflow import UserAwsAuth

    d = Deploy(bucket="my-models", model_s3_key="iris/v3/model.pkl", prepro_fn=prepare,
               auth_object=boto3.Session(), region="eu-west-1", stack_name="iris")
    resp = d.prepare_deployment()
    print(d.deploy(resp, invoke_mode=0))   # {"api_name": ..., "api_endpoint": ...}
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tdv_airflow.core import deployment, stacks
from tdv_airflow.core.clients import AwsClients, UserAwsAuth
from tdv_airflow.core.function_options import FunctionOptions, stamp_architecture
from tdv_airflow.core.naming import stack_name_from
from tdv_airflow.core.pickling import resolve_callable
from tdv_airflow.core.release import release as release_stack
from tdv_airflow.core.rollout import describe_live, rollback, target_of
from tdv_airflow.core.validation import (
    check_capacity_parameters,
    check_endpoint_auth,
    check_invoke_mode,
    check_region,
    check_role_arn,
    check_stack_name,
)
from tdv_airflow.exceptions import StackNotFoundError

log = logging.getLogger(__name__)

__all__ = ["Deploy", "UserAwsAuth"]


class Deploy:
    """Deploy a trained model as Lambda + API Gateway, without Airflow.

    :param bucket: bucket holding the model; the artifacts are uploaded there too.
    :param model_s3_key: the trained model's key.
    :param prepro_fn: preprocessing function (or ``"pkg.module:function"``) applied to the
        request's JSON before ``model.predict``; pickled by value.
    :param auth_object: a boto3 ``Session`` or a :class:`UserAwsAuth`; ``None`` uses
        boto3's default credential chain.
    :param template_stack_local_path: a custom CloudFormation template (default: shipped).
    :param deployment_lbd_local_path: a custom request processor (default: shipped).
    :param layer_zip_local_path: a ready-made dill layer zip (default: built from the
        installed dill).
    :param workdir: a folder where a copy of each built artifact is written (for
        inspection); nothing is written when ``None``.
    :param region: the AWS region.
    :param stack_name: the stack name (default: ``tdv-`` and the letters and digits of
        ``model_s3_key``, e.g. ``tdv-iris-v3-model-pkl``).
    :param s3_prefix: prefix of the artifact keys.
    :param poll_interval: seconds between status polls in synchronous mode.
    :param max_attempts: polls before synchronous mode gives up.
    :param stack_parameters: further template parameters (e.g. ``{"StageName": "v1"}``).
    :param by_value_modules: further modules whose functions are pickled by value.
    :param dependencies: the model's libraries, shipped as a dependency layer: a
        :class:`~tdv_airflow.core.layers.Dependencies` (``requirements=[...]`` installed by pip
        for Lambda's platform, or ``from_installed=["sklearn", ...]`` copied from this
        Linux environment), a dict of its fields, or a list of requirement lines.
    :param extra_layer_arns: existing Lambda layer version ARNs attached after
        tdv-airflow's layers, in order (at most 5 layers in all).
    :param endpoint_auth: how callers of the endpoint authenticate: ``"iam"`` (default:
        SigV4-signed requests, see :func:`tdv_airflow.endpoint.client.call_endpoint`),
        ``"api_key"`` (an API key with a usage plan; its value from
        :func:`tdv_airflow.endpoint.client.api_key_value`) or ``"none"`` (public, logged
        as a warning).
    :param role_arn: a CloudFormation service role that creates the stack's resources
        (see ``docs/iam.md``); ``None`` lets CloudFormation use the caller's permissions.
    :param function_options: how the function runs: a
        :class:`~tdv_airflow.core.function_options.FunctionOptions` or a dict of its fields,
        e.g. ``{"architecture": "arm64", "memory_size": 2048, "timeout": 20,
        "ephemeral_storage": 1024, "provisioned_concurrency": 2, "snap_start": False,
        "front_door": "http"}``; checked alone and together (with ``endpoint_auth``,
        ``stack_parameters`` and this worker's Python) here, before anything is uploaded.
    """

    def __init__(
        self,
        bucket: str,
        model_s3_key: str,
        prepro_fn: Callable[..., Any] | str,
        auth_object: Any = None,
        template_stack_local_path: str | Path | None = None,
        deployment_lbd_local_path: str | Path | None = None,
        layer_zip_local_path: str | Path | None = None,
        workdir: str | Path | None = None,
        region: str = "us-west-1",
        *,
        stack_name: str | None = None,
        s3_prefix: str = "tdv-airflow",
        poll_interval: float = 5.0,
        max_attempts: int = 360,
        stack_parameters: Mapping[str, Any] | None = None,
        by_value_modules: Iterable[str] = (),
        dependencies: Any = None,
        extra_layer_arns: Sequence[str] | str | None = None,
        endpoint_auth: str = "iam",
        role_arn: str | None = None,
        function_options: FunctionOptions | Mapping[str, Any] | None = None,
    ) -> None:
        self.bucket = bucket
        self.model_s3_key = model_s3_key
        self.prepro_fn = resolve_callable(prepro_fn)
        self.template_stack_local_path = template_stack_local_path
        self.deployment_lbd_local_path = deployment_lbd_local_path
        self.layer_zip_local_path = layer_zip_local_path
        self.workdir = Path(workdir) if workdir else None
        self.region = check_region(region, "region")
        self.stack_name = check_stack_name(stack_name or stack_name_from("tdv", model_s3_key))
        self.s3_prefix = s3_prefix
        self.poll_interval = poll_interval
        self.max_attempts = max_attempts
        self.stack_parameters = dict(stack_parameters or {})
        check_capacity_parameters(self.stack_parameters)  # before any upload
        self.by_value_modules = tuple(by_value_modules)
        self.dependencies = dependencies
        self.extra_layer_arns = extra_layer_arns
        self.endpoint_auth = check_endpoint_auth(endpoint_auth)
        self.role_arn = check_role_arn(role_arn)
        self.function_options = FunctionOptions.coerce(function_options).check(
            endpoint_auth=self.endpoint_auth, region=self.region, extra=self.stack_parameters)
        self.clients = AwsClients.from_auth(auth_object, region)
        self.last_prepare: deployment.PrepareResult | None = None

    def prepare_deployment(self) -> dict[str, Any]:
        """Upload the layer, the pickled function, the template and the function code.

        Keys are content-addressed: a second call with unchanged inputs uploads nothing.

        :returns: ``s3_lbd_key``, ``url_s3_stack_template``, ``s3_prepro_fn_location`` and
            the rest of the prepare contract.
        """
        options = self.function_options
        options.check_template(self.template_stack_local_path)
        result = deployment.prepare(
            self.clients, self.bucket, self.model_s3_key, self.prepro_fn,
            self.template_stack_local_path, self.deployment_lbd_local_path,
            self.layer_zip_local_path, self.s3_prefix, self.by_value_modules,
            dependencies=options.dependencies_for(self.dependencies),
            extra_layer_arns=self.extra_layer_arns,
        )
        self.last_prepare = result
        if self.workdir:
            self._save_copies(result.response)
        return stamp_architecture(result.response, options)

    def _save_copies(self, response: Mapping[str, Any]) -> None:
        assert self.workdir is not None
        self.workdir.mkdir(parents=True, exist_ok=True)
        for key in (response["s3_lbd_key"], response["s3_layer_key"],
                    response["s3_prepro_fn_location"], response["s3_template_key"],
                    response.get("s3_deps_layer_key"),
                    (response.get("deps_bundle") or {}).get("key")):
            if not key:
                continue
            self.clients.s3.download_file(self.bucket, key,
                                          str(self.workdir / key.rsplit("/", 1)[-1]))

    def create_stack(self, prepare_env_response: Mapping[str, Any], invoke_mode: int = 0,
                     stack_name: str | None = None) -> dict[str, Any]:
        """Create (or update) the deployment stack.

        A stack whose last update rolled back (UPDATE_ROLLBACK_COMPLETE) to exactly what
        is asked now (e.g. re-deploying the version it serves) is a success; a stack whose
        update to what is asked rolled back is a failure, naming the reason.

        :param prepare_env_response: what :meth:`prepare_deployment` returned.
        :param invoke_mode: 0 waits until the stack is complete (raising if it fails) and
            returns ``stack_id`` and ``stack_name``; 1 returns at once with the status.
        :param stack_name: overrides the instance's stack name.
        :returns: ``stack_id``, ``stack_name``, ``stack_status``, ``fingerprint`` (of the
            wanted state), ``operation`` and ``identity`` (of the function's version).
        """
        mode = check_invoke_mode(invoke_mode)
        created = deployment.create_stack(
            self.clients, prepare_env_response, stack_name or self.stack_name,
            parameters=self.stack_parameters,
            poll_interval=self.poll_interval, endpoint_auth=self.endpoint_auth,
            role_arn=self.role_arn, function_options=self.function_options)
        if mode == 1:
            return created
        stack = stacks.wait_for_stack(self.clients.cloudformation, created["stack_id"],
                                      self.poll_interval, self.max_attempts,
                                      expected_fingerprint=created["fingerprint"])
        return {**stacks.summary(stack), "fingerprint": created["fingerprint"],
                "operation": created["operation"], "identity": created["identity"]}

    def get_clf_stack_status(self, stack_name: str | None = None) -> str:
        """The stack's status, e.g. ``CREATE_COMPLETE``, as CloudFormation reports it.

        ``UPDATE_ROLLBACK_COMPLETE`` is a stable state: the stack serves the configuration
        it had before its last update. After :meth:`create_stack` or :meth:`deploy`
        succeeded, it serves what they asked for (its last update, another one, rolled
        back to exactly that).

        :param stack_name: the stack (default: the instance's).
        :raises StackNotFoundError: when the stack does not exist.
        """
        return str(self._stack(stack_name)["StackStatus"])

    def _stack(self, stack_name: str | None) -> dict[str, Any]:
        """The stack's description (default: the instance's stack).

        :raises StackNotFoundError: when it does not exist.
        """
        name = stack_name or self.stack_name
        stack = stacks.describe(self.clients.cloudformation, name)
        if stack is None:
            raise StackNotFoundError(name)
        return stack

    def deploy(self, prepare_env_response: Mapping[str, Any] | None = None,
               invoke_mode: int = 0) -> dict[str, Any]:
        """Create the stack and return the API's name and endpoint.

        With ``invoke_mode=0`` the new configuration is then published as a version and
        the ``live`` alias moved to it (all at once, no validation: a DAG validates first
        with ``ValidateCandidateOperator``), so the endpoint answers with it.

        :param prepare_env_response: what :meth:`prepare_deployment` returned (prepared
            now when ``None``).
        :param invoke_mode: 0 waits for the stack and makes it live; 1 returns at once,
            and the endpoint is then ``None`` until the stack completes (promote it with
            :meth:`release`).
        :returns: ``api_name``, ``api_endpoint``, plus ``stack_name``, ``stack_status``,
            the stack ``outputs`` and, with ``invoke_mode=0``, ``live`` (which version and
            model answer; ``None`` for a template without the ``LiveAlias`` output, whose
            API invokes ``$LATEST``).
        """
        check_invoke_mode(invoke_mode)
        response = prepare_env_response or self.prepare_deployment()
        created = self.create_stack(response, invoke_mode)
        stack = stacks.describe(self.clients.cloudformation, created["stack_id"])
        if stack is None:
            raise StackNotFoundError(created["stack_name"])
        endpoint = deployment.endpoint_of(stack)
        if invoke_mode == 1:
            return endpoint
        if "LiveAlias" not in endpoint["outputs"]:
            log.warning("stack %s's template has no LiveAlias output: its API invokes "
                        "$LATEST, which serves the new configuration already (no version "
                        "is published; the shipped template gates it)", stack["StackName"])
            return {**endpoint, "live": None}
        return {**endpoint, "live": release_stack(self.clients, stack, created.get("identity"))}

    def release(self, stack_name: str | None = None) -> dict[str, Any]:
        """Publish the stack's current configuration and make it live at once.

        :param stack_name: the stack (default: the instance's).
        :returns: which versions and models answer now.
        """
        return release_stack(self.clients, self._stack(stack_name))

    def rollback(self, to: str | int = "previous", stack_name: str | None = None
                 ) -> dict[str, Any]:
        """Move the ``live`` alias to version ``to`` (or the previous one) in one change.

        :param to: a version number or ``"previous"``.
        :param stack_name: the stack (default: the instance's).
        :returns: which versions and models answer now.
        """
        target = target_of(self._stack(stack_name))
        alias, _ = rollback(self.clients.lambda_, target.function_name, to)
        return describe_live(self.clients.lambda_, target.function_name, alias,
                             front_door=target.front_door)
