"""Operators that prepare a deployment and create (or update) its stack.

Both are thin: they check their arguments, call the core (:mod:`tdv_airflow.core.deployment`)
through :class:`~tdv_airflow.hooks.deployment.TdvDeploymentHook`, and return JSON dicts.
Both are safe to retry: artifacts are content-addressed (nothing is uploaded twice) and
a stack already carrying the wanted template, parameters and tags is left alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tdv_airflow.lineage import OpenLineageMixin, of_create, of_prepare
from tdv_airflow.links import CloudFormationStackLink
from tdv_airflow.operators.base import AwsConnectionMixin, aws_template_fields, is_literal
from tdv_airflow.operators.config import default_deferrable, default_poll_interval

if TYPE_CHECKING:
    from airflow.sdk import Context

#: The keys of the create contract. ``operation`` (created, updated ...) is only logged:
#: it differs between a first try and its retry. ``fingerprint`` identifies the wanted
#: state: pass it to :class:`~tdv_airflow.sensors.StackStatusSensor` as
#: ``expected_fingerprint`` so that a stack rolled back to exactly that state succeeds.
#: ``identity`` names the function version this deployment runs: pass it to
#: :class:`~tdv_airflow.operators.ValidateCandidateOperator`.
CREATE_KEYS = ("stack_id", "stack_name", "stack_status", "fingerprint", "identity")


class PrepareDeploymentOperator(OpenLineageMixin, AwsConnectionMixin):
    """Build the deployment artifacts and upload those S3 does not hold yet.

    Returns the prepare contract (``s3_lbd_key``, ``url_s3_stack_template``,
    ``s3_prepro_fn_location``, ``bucket``, ``model_s3_key``, ``s3_layer_key``, the
    SHA-256 of every artifact ...), identical on every retry.

    :param bucket: the bucket holding the model; artifacts go there too (templated).
    :param model_s3_key: the trained model's key, e.g. ``train.output`` (templated).
    :param prepro_fn: the preprocessing function, or its import path
        ``"package.module:function"``; it is pickled by value with its helpers.
    :param template_stack_local_path: a custom CloudFormation template (templated).
    :param deployment_lbd_local_path: a custom request processor, ``.py`` or ``.zip``
        (templated).
    :param layer_zip_local_path: a ready-made dill layer zip (templated).
    :param s3_prefix: the prefix of the artifact keys; the core's default when ``None``
        (templated).
    :param by_value_modules: further modules whose functions travel by value.
    :param dependencies: the model's libraries as a dependency layer: a dict of
        :class:`tdv_airflow.core.layers.Dependencies` fields (``{"requirements": [...]}`` or
        ``{"from_installed": [...]}``) or a list of requirement lines (templated).
    :param extra_layer_arns: existing Lambda layer ARNs attached after tdv-airflow's
        layers (templated).
    :param function_options: how the function runs, the dict of
        :class:`tdv_airflow.core.function_options.FunctionOptions` fields (templated): its
        ``architecture`` builds the dependency layer (and must agree with theirs); all of it
        is checked here, before anything is uploaded. Give the same to
        :class:`CreateStackOperator`.

    When ``bucket`` and ``model_s3_key`` are literal (known when the DAG is parsed), the
    model's asset ``s3://{bucket}/{model_s3_key}`` (:func:`tdv_airflow.assets.model_asset`)
    is added to the task's ``inlets``.
    """

    template_fields: Sequence[str] = aws_template_fields(
        "bucket", "model_s3_key", "s3_prefix", "template_stack_local_path",
        "deployment_lbd_local_path", "layer_zip_local_path", "dependencies",
        "extra_layer_arns", "function_options")
    ui_color = "#d5e8d4"

    def __init__(
        self,
        *,
        bucket: str,
        model_s3_key: str,
        prepro_fn: Callable[..., Any] | str,
        template_stack_local_path: str | None = None,
        deployment_lbd_local_path: str | None = None,
        layer_zip_local_path: str | None = None,
        s3_prefix: str | None = None,
        by_value_modules: Sequence[str] = (),
        dependencies: Mapping[str, Any] | Sequence[str] | None = None,
        extra_layer_arns: Sequence[str] | str | None = None,
        function_options: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if is_literal(bucket) and is_literal(model_s3_key) and bucket and model_s3_key:
            from tdv_airflow.assets import model_asset, with_asset

            kwargs["inlets"] = with_asset(kwargs.get("inlets"), model_asset(bucket, model_s3_key))
        super().__init__(**kwargs)
        if is_literal(function_options):
            _checked_options(function_options)
        if not callable(prepro_fn) and not isinstance(prepro_fn, str):
            from tdv_airflow.exceptions import InvalidInputError

            raise InvalidInputError(
                f"prepro_fn must be a callable or an import path such as "
                f"'my_pkg.features:prepare', got {type(prepro_fn).__name__}")
        self.bucket = bucket
        self.model_s3_key = model_s3_key
        self.prepro_fn = prepro_fn
        self.template_stack_local_path = template_stack_local_path
        self.deployment_lbd_local_path = deployment_lbd_local_path
        self.layer_zip_local_path = layer_zip_local_path
        self.s3_prefix = s3_prefix
        self.by_value_modules = tuple(by_value_modules)
        self.dependencies = dependencies
        self.extra_layer_arns = extra_layer_arns
        self.function_options: Any = function_options

    def execute(self, context: Context) -> dict[str, Any]:
        """Prepare the artifacts; return the prepare contract.

        :param context: the task context.
        """
        from tdv_airflow.core import deployment
        from tdv_airflow.core.clients import aws_reachable
        from tdv_airflow.core.function_options import stamp_architecture
        from tdv_airflow.core.pickling import resolve_callable

        options = _checked_options(self.function_options)
        options.check_template(self.template_stack_local_path or None)
        optional = {"s3_prefix": self.s3_prefix} if self.s3_prefix else {}
        with aws_reachable(f"prepare of s3://{self.bucket}/{self.model_s3_key}"):
            result = deployment.prepare(
                self.clients, bucket=self.bucket, model_s3_key=self.model_s3_key,
                prepro_fn=resolve_callable(self.prepro_fn),
                template_stack_local_path=self.template_stack_local_path or None,
                deployment_lbd_local_path=self.deployment_lbd_local_path or None,
                layer_zip_local_path=self.layer_zip_local_path or None,
                by_value_modules=self.by_value_modules,
                dependencies=options.dependencies_for(self.dependencies or None),
                extra_layer_arns=self.extra_layer_arns or None, **optional,
            )
        self.log.info("uploaded %s (%d bytes); every other artifact was already in S3",
                      result.uploaded or "nothing", result.bytes_sent)
        response = stamp_architecture(result.response, options)
        self._lineage = of_prepare(response)  # the model in, the artifacts out
        return response


class CreateStackOperator(OpenLineageMixin, AwsConnectionMixin):
    """Create the deployment stack, or bring an existing one up to date.

    Returns ``{"stack_id", "stack_name", "stack_status", "fingerprint", "identity"}``
    (``identity``: the function version this deployment runs, also pushed under its own
    key; when a published version already runs it, e.g. an old run cleared to deploy its
    model again, the stack is not updated and that version is validated and promoted
    again). A retry sends
    nothing when the stack already carries this template, parameters and tags (it is
    tagged with their ``fingerprint``), so it returns the same dict once the stack has
    settled. The ``ClientRequestToken`` is derived from the DAG id, run id and stack
    name, the wanted state and the stack's state when the request is sent
    (:func:`tdv_airflow.core.naming.operation_token`). A stack in progress is waited for
    first; a stack in ``ROLLBACK_COMPLETE`` is deleted and created again (logged as a
    warning); an update that changes nothing counts as success, also on a stack whose
    last update rolled back (``UPDATE_ROLLBACK_COMPLETE``) to exactly this state: give
    ``fingerprint`` to the sensor (``expected_fingerprint=create.output["fingerprint"]``:
    it is also pushed under its own XCom key)
    so that it succeeds too.

    :param prepare_env_response: the prepare contract, e.g. ``prepare.output`` (templated).
    :param stack_name: the stack name, ``^[A-Za-z][A-Za-z0-9-]{0,127}$`` (templated); build
        one from a run id with :func:`tdv_airflow.core.naming.stack_name_from`.
    :param deployment: the deployment (model) this stack serves, e.g. ``"tdv-iris"``: the
        stack is tagged with it (``tdv-airflow:deployment``) so that
        :class:`~tdv_airflow.operators.RetireVersionsOperator` finds the deployment's
        version stacks; the stack's own name when ``None`` (templated).
    :param on_exists: ``"update"``, ``"skip"`` or ``"fail"`` when the stack exists (templated).
    :param wait_for_completion: wait until the stack is complete (in the task, or on the
        triggerer when deferrable).
    :param deferrable: wait on the triggerer (frees the worker slot); ``True`` also asks
        to wait. Default ``[operators] default_deferrable``, which only decides how a task
        that waits does it: it never makes the task wait by itself.
    :param poll_interval: seconds between status polls; default
        ``[tdv_airflow] poll_interval`` (30).
    :param max_attempts: polls before giving up when waiting.
    :param tags: stack tags (templated).
    :param stack_parameters: further template parameters, e.g. ``{"StageName": "v1"}``
        (templated).
    :param endpoint_auth: who may call the endpoint: ``"iam"`` (default, SigV4-signed
        requests), ``"api_key"`` (``x-api-key`` header, with a usage plan) or ``"none"``
        (public; logged as a warning) (templated).
    :param role_arn: a CloudFormation service role that creates the resources, so the
        connection's identity needs only ``iam:PassRole`` on it (templated).
    :param function_options: how the function runs (memory, timeout, ephemeral storage,
        provisioned concurrency on the alias ``live``, SnapStart, front door): the dict of
        :class:`tdv_airflow.core.function_options.FunctionOptions` fields (templated),
        checked with ``endpoint_auth`` and ``stack_parameters`` at construction when
        literal, else first thing in :meth:`execute`.
    """

    template_fields: Sequence[str] = aws_template_fields(
        "prepare_env_response", "stack_name", "deployment", "on_exists", "tags",
        "stack_parameters", "endpoint_auth", "role_arn", "function_options")
    operator_extra_links = (CloudFormationStackLink(),)
    ui_color = "#dae8fc"

    def __init__(
        self,
        *,
        prepare_env_response: Mapping[str, Any] | str,
        stack_name: str,
        deployment: str | None = None,
        on_exists: str = "update",
        wait_for_completion: bool = False,
        deferrable: bool | None = None,
        poll_interval: float | None = None,
        max_attempts: int = 120,
        tags: Mapping[str, str] | None = None,
        stack_parameters: Mapping[str, Any] | None = None,
        endpoint_auth: str = "iam",
        role_arn: str | None = None,
        function_options: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        from tdv_airflow.core import validation
        from tdv_airflow.operators.checks import check_deployment

        checks: list[tuple[Any, Callable[[Any], Any]]] = [
            (stack_name, validation.check_stack_name), (on_exists, validation.check_on_exists),
            (endpoint_auth, validation.check_endpoint_auth),
            (role_arn or None, validation.check_role_arn)]
        if deployment is not None:
            checks.append((deployment, check_deployment))
        if tags is not None:
            checks.append((tags, validation.check_stack_tags))
        for value, check in checks:
            if is_literal(value):
                check(value)
        if all(is_literal(v) for v in (function_options, endpoint_auth, stack_parameters)):
            _checked_options(function_options, endpoint_auth, stack_parameters)
        self.function_options: Any = function_options
        self.prepare_env_response: Any = prepare_env_response  # checked by the core
        self.stack_name = stack_name
        self.deployment = deployment
        self.on_exists = on_exists
        self.endpoint_auth = endpoint_auth
        self.role_arn = role_arn
        # deferrable=True asks to wait (on the triggerer); the configured default only
        # decides how a task that waits does it, so it never makes create wait by itself.
        self.wait_for_completion = wait_for_completion or deferrable is True
        self.deferrable = default_deferrable(deferrable)
        self.poll_interval = validation.check_positive(default_poll_interval(poll_interval),
                                                       "poll_interval")
        self.max_attempts = int(validation.check_positive(max_attempts, "max_attempts"))
        self.tags = tags
        self.stack_parameters = stack_parameters

    def execute(self, context: Context) -> dict[str, Any]:
        """Create or update the stack; wait or defer if asked.

        Its arguments are checked by the core (:func:`tdv_airflow.core.deployment.create_stack`)
        before the connection is touched.

        :param context: the task context.
        """
        from tdv_airflow.core.clients import aws_reachable
        from tdv_airflow.core.stacks import classify

        with aws_reachable(f"create or update of stack {self.stack_name!r}"):
            summary = self._apply(context)
        self.push_stack_id(context, summary["stack_id"])
        self._lineage = of_create(self.prepare_env_response, summary)
        context["ti"].xcom_push(key="fingerprint", value=summary["fingerprint"])
        context["ti"].xcom_push(key="identity", value=summary["identity"])
        if self.wait_for_completion and classify(summary["stack_status"]) == "in_progress":
            if self.deferrable:
                self.defer(trigger=self.stack_trigger(
                    summary["stack_id"], self.poll_interval, self.max_attempts,
                    expected_fingerprint=summary["fingerprint"]),
                    method_name="execute_complete")
            else:
                with aws_reachable(f"wait for stack {self.stack_name!r}"):
                    summary = {**self._wait(summary["stack_id"], summary["fingerprint"]),
                               "identity": summary["identity"]}
        return summary

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None
                         ) -> dict[str, Any]:
        """Resume after the trigger fired: the create contract, or the stack's failure.

        :param context: the task context.
        :param event: the trigger's payload.
        """
        from tdv_airflow.triggers.deployment import result_from_event

        stack = {**result_from_event(event), "fingerprint": (event or {}).get("fingerprint"),
                 "identity": context["ti"].xcom_pull(task_ids=self.task_id, key="identity")}
        self._lineage = of_create(self.prepare_env_response, stack)
        return {key: stack[key] for key in CREATE_KEYS}

    def _apply(self, context: Context) -> dict[str, Any]:
        """Send the create or update unless an earlier try (or run) already did."""
        from tdv_airflow.core import deployment
        from tdv_airflow.core.naming import client_request_token
        from tdv_airflow.core.retention import DEPLOYMENT_TAG
        from tdv_airflow.operators.checks import check_deployment

        _checked_options(self.function_options, self.endpoint_auth, self.stack_parameters)
        tags = dict(self.tags or {})
        if self.deployment is not None:
            tags[DEPLOYMENT_TAG] = check_deployment(self.deployment)
        token = client_request_token(context["ti"].dag_id, context["run_id"],
                                     str(self.stack_name))
        result = deployment.create_stack(
            self.clients, self.prepare_env_response, self.stack_name,
            parameters=self.stack_parameters, tags=tags, on_exists=self.on_exists,
            client_request_token=token, poll_interval=self.poll_interval,
            endpoint_auth=self.endpoint_auth, role_arn=self.role_arn or None,
            function_options=self.function_options)
        self.log.info("stack %s %s (%s)", self.stack_name, result["operation"],
                      result["stack_status"])
        return {key: result[key] for key in CREATE_KEYS}

    def _wait(self, stack_id: str, fingerprint: str) -> dict[str, Any]:
        """Poll until the stack is complete, logging its new events."""
        from tdv_airflow.core import stacks
        from tdv_airflow.core.stack_events import EventTail, format_event

        cfn = self.hook.conn
        tail = EventTail(cfn, stack_id)

        def log_progress(stack: Mapping[str, Any]) -> None:
            for event in tail.poll():
                self.log.info("stack event: %s", format_event(event))

        stack = stacks.wait_for_stack(cfn, stack_id, poll_interval=self.poll_interval,
                                      max_attempts=self.max_attempts, on_poll=log_progress,
                                      expected_fingerprint=fingerprint)
        return {**stacks.summary(stack), "fingerprint": fingerprint}


def _checked_options(options: Any, endpoint_auth: Any = None,
                     stack_parameters: Any = None) -> Any:
    """The task's function options, checked alone and with the endpoint's auth mode and
    the stack parameters (:meth:`tdv_airflow.core.function_options.FunctionOptions.check`).

    :raises InvalidInputError: naming the bad value and what is expected.
    """
    from tdv_airflow.core.function_options import FunctionOptions
    from tdv_airflow.core.validation import check_endpoint_auth

    auth = check_endpoint_auth(endpoint_auth) if endpoint_auth is not None else None
    extra = stack_parameters if isinstance(stack_parameters, Mapping) else None
    return FunctionOptions.coerce(options).check(endpoint_auth=auth, extra=extra)
