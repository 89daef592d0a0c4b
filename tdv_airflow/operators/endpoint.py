"""The operator that sends a test request to a deployed stack's endpoint and checks the
answer (a smoke test after a deployment).

On AWS the request goes to the stack's endpoint (the ``ApiEndpoint`` of a REST or HTTP
API, the alias ``live``'s function URL) with the authentication its mode needs
(:func:`tdv_airflow.endpoint.client.call_stack_endpoint`: SigV4 for ``execute-api`` or,
for a function URL, ``lambda`` with the connection's credentials, the stack's API key,
or nothing). On an emulator, which runs
no Lambda and routes no API Gateway request, the deployed function runs locally on the
same request, from the code and layers the stack deploys
(:func:`tdv_airflow.local.process.invoke_deployed`). Which of the two is decided in one
place: :attr:`tdv_airflow.core.clients.AwsClients.emulator_endpoint`. The task only
reads, so it is safe to retry.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tdv_airflow.links import ApiEndpointLink
from tdv_airflow.operators.base import (
    AwsConnectionMixin,
    aws_template_fields,
    described_stack,
    is_literal,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

#: How much of an answer's body an error quotes.
_QUOTE_LIMIT = 2000


class EndpointCheckOperator(AwsConnectionMixin):
    """Post a test request to a deployed stack's endpoint; check the status and predictions.

    Returns ``{"stack_name", "api_endpoint", "status", "predictions"}`` (``predictions``
    is ``None`` when the answer holds none). Fails with
    :class:`~tdv_airflow.exceptions.EndpointCheckError`, quoting the answer, when the
    status differs from ``expected_status`` or, when given, the predictions differ from
    ``expected_predictions``.

    :param stack_name: the deployed stack, e.g. the sensor's ``stack_name`` (templated).
    :param payload: the request's JSON body (a ``str`` or ``bytes`` is sent as it is)
        (templated).
    :param expected_predictions: the predictions the answer must hold (its
        ``"predictions"``), or ``None`` to accept any (templated).
    :param expected_status: the HTTP status the answer must have.
    :param tolerance: how far a predicted number may be from the expected one.
    """

    template_fields: Sequence[str] = aws_template_fields("stack_name", "payload",
                                                         "expected_predictions")
    operator_extra_links = (ApiEndpointLink(),)
    ui_color = "#e1d5e7"

    def __init__(
        self,
        *,
        stack_name: str,
        payload: Any,
        expected_predictions: list[Any] | None = None,
        expected_status: int = 200,
        tolerance: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        from tdv_airflow.core.validation import check_stack_name
        from tdv_airflow.operators import checks

        if is_literal(stack_name):
            check_stack_name(stack_name)
        if is_literal(expected_predictions):
            checks.check_expected_predictions(expected_predictions)
        checks.check_status_and_tolerance(expected_status, tolerance)
        self.stack_name = stack_name
        self.payload = payload
        self.expected_predictions = expected_predictions
        self.expected_status = expected_status
        self.tolerance = float(tolerance)

    def execute(self, context: Context) -> dict[str, Any]:
        """Send the request, check the answer, return what was checked.

        :param context: the task context.
        """
        from tdv_airflow.core.clients import aws_reachable
        from tdv_airflow.core.front_door_aws import with_url_endpoint
        from tdv_airflow.core.stacks import outputs_of
        from tdv_airflow.core.validation import check_stack_name
        from tdv_airflow.operators.checks import check_expected_predictions, predictions_of

        stack_name = check_stack_name(self.stack_name)
        expected = check_expected_predictions(self.expected_predictions)
        clients = self.clients
        with aws_reachable(f"test request to the endpoint of stack {stack_name!r}"):
            stack = described_stack(clients, stack_name)
            endpoint = with_url_endpoint(lambda: clients.lambda_, {
                "stack_name": stack_name, "outputs": outputs_of(stack),
                "api_endpoint": outputs_of(stack).get("ApiEndpoint")})["api_endpoint"]
            status, body = self._call(clients, stack)
        answer = {"stack_name": stack_name, "api_endpoint": endpoint,
                  "status": status, "predictions": predictions_of(body)}
        self._check(answer, body, expected)
        self.log.info("stack %s answered %s with predictions %s", stack_name, status,
                      answer["predictions"])
        return answer

    def _call(self, clients: Any, stack: dict[str, Any]) -> tuple[int, str]:
        """The answer's status and body (see :func:`tdv_airflow.local.request.request_stack`)."""
        from tdv_airflow.local.request import request_stack

        hook = self.hook
        answer = request_stack(clients, stack, self.payload,
                               session=hook.get_session(region_name=hook.conn_region_name))
        if answer.reason:  # e.g. no live version yet: API Gateway's body says only 500
            self.log.error("stack %s: %s", stack["StackName"], answer.reason)
            return answer.status, f"{answer.body} ({answer.reason})"
        return answer.status, answer.body

    def _check(self, answer: dict[str, Any], body: str, expected: list[Any] | None) -> None:
        """Raise :class:`EndpointCheckError` quoting the answer when it is not the one
        expected."""
        from tdv_airflow.exceptions import EndpointCheckError
        from tdv_airflow.operators.checks import answer_problems

        problems = answer_problems(answer, self.expected_status, expected, self.tolerance)
        if problems:
            quoted = body if len(body) <= _QUOTE_LIMIT else body[:_QUOTE_LIMIT] + "..."
            raise EndpointCheckError(
                f"the endpoint of stack {answer['stack_name']!r} "
                f"({answer['api_endpoint']}) answered wrongly: {'; '.join(problems)}; "
                f"its answer: {quoted}")
