"""Tasks of a safe rollout: validate the candidate version before it takes traffic,
and roll the ``live`` alias back on demand (the promotion itself waits between steps, so
it is a sensor: :class:`tdv_airflow.sensors.rollout.PromoteSensor`).

Each task reads the stack's outputs (``FunctionName``, ``LiveAlias``, ``ApiId``,
``AlarmNames``) and calls the core (:mod:`tdv_airflow.core.versions`,
:mod:`tdv_airflow.core.rollout`). See ``docs/rollout.md`` for the mechanism.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import AssetAlias
from airflow.sdk.exceptions import AirflowFailException

from tdv_airflow.assets import ENDPOINT_ALIAS, announce_live, with_asset
from tdv_airflow.lineage import OpenLineageMixin, of_promote
from tdv_airflow.links import CloudFormationStackLink
from tdv_airflow.operators.base import (
    AwsConnectionMixin,
    aws_template_fields,
    described_stack,
    is_literal,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

    from tdv_airflow.core.clients import AwsClients

#: How much of an answer's body an error quotes.
_QUOTE_LIMIT = 2000


def check_requests(requests: Any) -> list[dict[str, Any]]:
    """``requests`` as a non-empty list of ``{"payload", "expected_predictions",
    "expected_status"}`` (the last two optional).

    :param requests: the validation requests.
    :raises InvalidInputError: naming the bad entry.
    """
    from tdv_airflow.exceptions import InvalidInputError
    from tdv_airflow.operators.checks import check_expected_predictions, check_status_and_tolerance

    if not isinstance(requests, list | tuple) or not requests:
        raise InvalidInputError(f"invalid requests {requests!r}: expected a non-empty list of "
                                "{'payload': ..., 'expected_predictions': [...]} dicts")
    checked = []
    for i, request in enumerate(requests):
        if not isinstance(request, dict) or "payload" not in request \
                or set(request) - {"payload", "expected_predictions", "expected_status"}:
            raise InvalidInputError(
                f"invalid requests[{i}] {request!r}: expected a dict with 'payload' and "
                "optionally 'expected_predictions' and 'expected_status'")
        status = request.get("expected_status", 200)
        check_status_and_tolerance(status, 0)
        checked.append({"payload": request["payload"], "expected_status": int(status),
                        "expected_predictions": check_expected_predictions(
                            request.get("expected_predictions"))})
    return checked


class ValidateCandidateOperator(AwsConnectionMixin):
    """Publish the stack's candidate as an immutable version (once) and send it the
    validation requests before any traffic reaches it.

    Each request goes to the candidate version itself: on AWS an invoke of the qualified
    version with an API Gateway event, on the embedded AWS the local runner on that
    version's artifacts (:func:`tdv_airflow.local.request.request_version`). The status and
    predictions are checked (exactly, within ``tolerance``, and by ``check`` when given).
    On failure the ``live`` alias is not touched and the task fails quoting the answer.
    Returns ``{"stack_name", "version", "identity", "candidate": {...}, "answers": [...]}``
    and pushes ``version`` under its own key (``validate.output["version"]``). Safe to
    retry: the version is published once per identity.

    :param stack_name: the stack (templated).
    :param identity: the create task's ``identity`` (templated), e.g.
        ``create.output["identity"]``.
    :param requests: the requests: ``[{"payload": ..., "expected_predictions": [...],
        "expected_status": 200}]`` (templated).
    :param tolerance: how far a predicted number may be from the expected one.
    :param check: a callable given each answer (``{"status", "predictions", "body"}``)
        that returns a problem (a string) or ``None``; e.g. a range check.
    """

    template_fields: Sequence[str] = aws_template_fields("stack_name", "identity", "requests")
    operator_extra_links = (CloudFormationStackLink(),)
    ui_color = "#dae8fc"

    def __init__(self, *, stack_name: str, identity: str, requests: list[dict[str, Any]],
                 tolerance: float = 0.0,
                 check: Callable[[dict[str, Any]], str | None] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        from tdv_airflow.core.validation import check_stack_name
        from tdv_airflow.exceptions import InvalidInputError
        from tdv_airflow.operators.checks import check_status_and_tolerance

        if is_literal(stack_name):
            check_stack_name(stack_name)
        if is_literal(requests):
            check_requests(requests)
        if is_literal(identity):
            from tdv_airflow.core.versions import check_identity

            check_identity(identity)
        check_status_and_tolerance(200, tolerance)
        if check is not None and not callable(check):
            raise InvalidInputError(f"invalid check {check!r}: expected a callable taking an "
                                    "answer dict and returning a problem string or None")
        self.stack_name = stack_name
        self.identity = identity
        self.requests = requests
        self.tolerance = float(tolerance)
        self.check = check

    def execute(self, context: Context) -> dict[str, Any]:
        """Publish (or find) the candidate, send it every request, check the answers.

        :param context: the task context.
        """
        from tdv_airflow.core.clients import aws_reachable
        from tdv_airflow.core.rollout import target_of
        from tdv_airflow.core.validation import check_stack_name
        from tdv_airflow.core.versions import check_identity, function_identity, publish_candidate
        from tdv_airflow.exceptions import CandidateRejectedError

        stack_name = check_stack_name(self.stack_name)
        requests = check_requests(self.requests)
        identity = check_identity(self.identity)
        clients = self.clients
        with aws_reachable(f"validation of the candidate of stack {stack_name!r}"):
            stack = described_stack(clients, stack_name)
            target = target_of(stack)
            record = publish_candidate(clients.lambda_, target.function_name,
                                       identity,
                                       function_identity(stack.get("Parameters") or []),
                                       run_id=context["run_id"])
            self.log.info("candidate: version %s of %s serves model %s (sha256 %s)",
                          record.version, target.function_name, record.model_key,
                          record.model_sha256)
            try:
                answers = [self._ask(clients, stack, record.version, r) for r in requests]
            except CandidateRejectedError as error:  # a wrong answer is not retried
                raise AirflowFailException(str(error)) from error
        self.log.info("version %s answered all %d validation request(s) as expected; the "
                      "live alias was not moved", record.version, len(answers))
        context["ti"].xcom_push(key="version", value=record.version)
        return {"stack_name": stack_name, "version": record.version,
                "identity": record.identity, "candidate": record.as_dict(),
                "answers": answers}

    def _ask(self, clients: AwsClients, stack: dict[str, Any], version: str,
             request: dict[str, Any]) -> dict[str, Any]:
        """Send one request to the version; raise quoting the answer when it is wrong."""
        from tdv_airflow.exceptions import CandidateRejectedError
        from tdv_airflow.local.request import request_version
        from tdv_airflow.operators.checks import answer_problems, predictions_of

        got = request_version(clients, stack, version, request["payload"])
        answer = {"status": got.status, "predictions": predictions_of(got.body)}
        problems = answer_problems(answer, request["expected_status"],
                                   request["expected_predictions"], self.tolerance)
        if self.check is not None and not problems:
            problem = self.check({**answer, "body": got.body})
            problems += [str(problem)] if problem else []
        if problems:
            body = got.body if len(got.body) <= _QUOTE_LIMIT else got.body[:_QUOTE_LIMIT] + "..."
            raise CandidateRejectedError(
                f"candidate version {version} of stack {stack['StackName']!r} answered "
                f"wrongly, so it takes no traffic (the live alias still serves what it "
                f"served): {'; '.join(problems)}; its answer: {body}",
                stack_name=stack["StackName"], version=version, request=request,
                answer={**answer, "body": body}, problems=problems)
        self.log.info("version %s answered %s with predictions %s", version, got.status,
                      answer["predictions"])
        return answer


class RollbackOperator(OpenLineageMixin, AwsConnectionMixin):
    """Move all of the ``live`` alias's traffic to an earlier version, in one alias change
    (no code, layer, API or stack redeploy).

    Returns ``{"stack_name", "changed", "live": {...}}`` where ``live`` says which
    versions and models answer now. Retrying the same task instance changes nothing, even
    with ``to="previous"`` (the alias records the rollback's operation).

    :param stack_name: the stack (templated).
    :param to: a version number or ``"previous"`` (the version live before) (templated).
    :param endpoint_alias: the asset alias through which the endpoint's asset event is
        added after the rollback (as :class:`~tdv_airflow.operators.PromoteOperator`
        does: :mod:`tdv_airflow.assets`); ``None``: no event.
    """

    template_fields: Sequence[str] = aws_template_fields("stack_name", "to")
    operator_extra_links = (CloudFormationStackLink(),)
    ui_color = "#f8cecc"

    def __init__(self, *, stack_name: str, to: str | int = "previous",
                 endpoint_alias: str | None = ENDPOINT_ALIAS, **kwargs: Any) -> None:
        if endpoint_alias:
            kwargs["outlets"] = with_asset(kwargs.get("outlets"), AssetAlias(endpoint_alias))
        super().__init__(**kwargs)
        from tdv_airflow.core.validation import check_stack_name
        from tdv_airflow.core.versions import check_version

        if is_literal(stack_name):
            check_stack_name(stack_name)
        if is_literal(to):
            check_version(to, allow_previous=True)
        self.stack_name = stack_name
        self.to = to
        self.endpoint_alias = endpoint_alias

    def execute(self, context: Context) -> dict[str, Any]:
        """Roll back, log what answers now, return it.

        :param context: the task context.
        """
        from tdv_airflow.core.clients import aws_reachable
        from tdv_airflow.core.rollout import describe_live, rollback, target_of
        from tdv_airflow.core.validation import check_stack_name
        from tdv_airflow.core.versions import check_version

        stack_name = check_stack_name(self.stack_name)
        to = check_version(self.to, allow_previous=True)
        ti = context["ti"]
        operation = f"{ti.dag_id}/{ti.run_id}/{ti.task_id}"
        clients = self.clients
        with aws_reachable(f"rollback of stack {stack_name!r}"):
            stack = described_stack(clients, stack_name)
            target = target_of(stack)
            alias, changed = rollback(clients.lambda_, target.function_name, to, operation)
            live = describe_live(clients.lambda_, target.function_name, alias,
                                 front_door=target.front_door)
        self.log.info("%s: alias live of %s -> version %s (model %s)",
                      "rolled back" if changed else "already rolled back by this task",
                      target.function_name, alias.version,
                      [s.get("model_s3_key") for s in live["serving"]])
        if self.endpoint_alias:
            announce_live(context, self.endpoint_alias, clients, stack, live)
        self._lineage = of_promote(stack, {"version": alias.version, "live": live})
        return {"stack_name": stack_name, "changed": changed, "live": live}
