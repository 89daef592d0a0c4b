"""The operator that sends a test request to a deployed stack's endpoint and checks the
answer (a smoke test after a deployment).

On AWS the request goes to the stack's ``ApiEndpoint`` with the authentication its mode
needs (:func:`tdv_airflow.endpoint.client.call_stack_endpoint`: SigV4 with the
connection's credentials, the stack's API key, or nothing). On an emulator, which runs
no Lambda and routes no API Gateway request, the deployed function runs locally on the
same request, from the code and layers the stack deploys
(:func:`tdv_airflow.local.process.invoke_deployed`). Which of the two is decided in one
place: :attr:`tdv_airflow.core.clients.AwsClients.emulator_endpoint`. The task only
reads, so it is safe to retry.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tdv_airflow.links import ApiEndpointLink
from tdv_airflow.operators.base import AwsConnectionMixin, aws_template_fields, is_literal

if TYPE_CHECKING:
    from airflow.sdk import Context

#: How much of an answer's body an error quotes.
_QUOTE_LIMIT = 2000


def check_expected_predictions(expected: Any) -> list[Any] | None:
    """``expected`` as a list (JSON text of a list is parsed), or ``None``.

    :param expected: the predictions the endpoint must answer, or ``None`` (any).
    :raises InvalidInputError: when it is neither a list nor ``None``.
    """
    value = expected
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            pass
    if value is None or isinstance(value, list | tuple):
        return None if value is None else list(value)
    from tdv_airflow.exceptions import InvalidInputError

    raise InvalidInputError(f"invalid expected_predictions {expected!r}: expected a list of "
                            "predictions, e.g. [0, 2], or None to accept any")


def _check_status_and_tolerance(expected_status: Any, tolerance: Any) -> None:
    from tdv_airflow.exceptions import InvalidInputError

    if isinstance(expected_status, bool) or not isinstance(expected_status, int) \
            or not 100 <= expected_status <= 599:
        raise InvalidInputError(f"invalid expected_status {expected_status!r}: expected an "
                                "HTTP status code, an int from 100 to 599, e.g. 200")
    if isinstance(tolerance, bool) or not isinstance(tolerance, int | float) \
            or not 0 <= tolerance < math.inf:
        raise InvalidInputError(f"invalid tolerance {tolerance!r}: expected a number >= 0 "
                                "(how far a predicted number may be from the expected one)")


def same_prediction(got: Any, want: Any, tolerance: float) -> bool:
    """Whether a prediction matches the expected one.

    Numbers match within ``tolerance``; a string never equals a number (``"2"`` is not
    ``2``), a bool only equals a bool; lists and dicts match item by item.

    :param got: what the endpoint answered.
    :param want: what was expected.
    :param tolerance: the largest difference allowed between two numbers.
    """
    if isinstance(want, bool) or isinstance(got, bool):
        return type(got) is type(want) and got == want
    if isinstance(want, int | float) and isinstance(got, int | float):
        return math.isclose(got, want, rel_tol=0.0, abs_tol=tolerance) or got == want
    if isinstance(want, list | tuple) and isinstance(got, list | tuple):
        return len(got) == len(want) and all(
            same_prediction(g, w, tolerance) for g, w in zip(got, want, strict=True))
    if isinstance(want, dict) and isinstance(got, dict):
        return got.keys() == want.keys() and all(
            same_prediction(got[k], want[k], tolerance) for k in want)
    return type(got) is type(want) and got == want


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

        if is_literal(stack_name):
            check_stack_name(stack_name)
        if is_literal(expected_predictions):
            check_expected_predictions(expected_predictions)
        _check_status_and_tolerance(expected_status, tolerance)
        self.stack_name = stack_name
        self.payload = payload
        self.expected_predictions = expected_predictions
        self.expected_status = expected_status
        self.tolerance = float(tolerance)

    def execute(self, context: Context) -> dict[str, Any]:
        """Send the request, check the answer, return what was checked.

        :param context: the task context.
        """
        from tdv_airflow.core.retention import aws_reachable
        from tdv_airflow.core.stacks import describe, outputs_of
        from tdv_airflow.core.validation import check_stack_name
        from tdv_airflow.exceptions import StackNotFoundError

        stack_name = check_stack_name(self.stack_name)
        expected = check_expected_predictions(self.expected_predictions)
        clients = self.clients
        with aws_reachable(f"test request to the endpoint of stack {stack_name!r}"):
            stack = describe(clients.cloudformation, stack_name)
            if stack is None:
                raise StackNotFoundError(stack_name)
            status, body = self._call(clients, stack)
        answer = {"stack_name": stack_name,
                  "api_endpoint": outputs_of(stack).get("ApiEndpoint"),
                  "status": status, "predictions": _predictions(body)}
        self._check(answer, body, expected)
        self.log.info("stack %s answered %s with predictions %s", stack_name, status,
                      answer["predictions"])
        return answer

    def _call(self, clients: Any, stack: dict[str, Any]) -> tuple[int, str]:
        """The answer's status and body, from the endpoint (AWS) or the function run
        locally (an emulator)."""
        emulator = clients.emulator_endpoint
        if emulator is not None:
            from tdv_airflow.local.process import invoke_deployed

            self.log.info("%s is an emulator, which runs no Lambda: running the deployed "
                          "function of stack %s locally", emulator, stack["StackName"])
            response = invoke_deployed(clients, stack["StackName"], self.payload)
            return int(response["statusCode"]), str(response.get("body") or "")
        from tdv_airflow.endpoint.client import call_stack_endpoint

        hook = self.hook
        answer = call_stack_endpoint(clients, stack, self.payload,
                                     session=hook.get_session(region_name=hook.conn_region_name))
        return answer.status, answer.body.decode("utf-8", errors="replace")

    def _check(self, answer: dict[str, Any], body: str, expected: list[Any] | None) -> None:
        """Raise :class:`EndpointCheckError` quoting the answer when it is not the one
        expected."""
        from tdv_airflow.exceptions import EndpointCheckError

        problems = []
        if answer["status"] != self.expected_status:
            problems.append(f"status {answer['status']}, expected {self.expected_status}")
        if expected is not None and not same_prediction(answer["predictions"], expected,
                                                        self.tolerance):
            within = f" (within {self.tolerance:g})" if self.tolerance else ""
            problems.append(f"predictions {json.dumps(answer['predictions'])}, expected "
                            f"{json.dumps(expected)}{within}")
        if problems:
            quoted = body if len(body) <= _QUOTE_LIMIT else body[:_QUOTE_LIMIT] + "..."
            raise EndpointCheckError(
                f"the endpoint of stack {answer['stack_name']!r} "
                f"({answer['api_endpoint']}) answered wrongly: {'; '.join(problems)}; "
                f"its answer: {quoted}")


def _predictions(body: str) -> Any:
    """The ``predictions`` of a JSON answer (``None`` when there are none)."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    return parsed.get("predictions") if isinstance(parsed, dict) else None
