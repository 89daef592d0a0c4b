"""One request to a deployed stack, wherever it runs.

On AWS the request goes through the stack's API with the authentication its mode needs
(:func:`tdv_airflow.endpoint.client.call_stack_endpoint`). An emulator runs no Lambda
and routes no API Gateway request, so there the deployed function runs locally from the
code and layers the stack deploys (:func:`tdv_airflow.local.process.invoke_deployed`).
Which of the two is decided in one place,
:attr:`tdv_airflow.core.clients.AwsClients.emulator_endpoint`. Smoke tests
(``EndpointCheckOperator``) and the real-account acceptance script both use it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tdv_airflow.core.clients import AwsClients

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StackAnswer:
    """What a stack answered: the HTTP status, the body as text, and how it was asked.

    :param status: the HTTP status.
    :param body: the body, decoded as UTF-8 (undecodable bytes replaced).
    :param emulator: the emulator's endpoint when the function ran locally, else ``None``.
    """

    status: int
    body: str
    emulator: str | None


def request_stack(clients: AwsClients, stack: Mapping[str, Any], payload: Any, *,
                  session: Any = None) -> StackAnswer:
    """POST ``payload`` to the stack: through its API on AWS, to its function run locally
    on an emulator.

    :param clients: clients of the stack's account and region.
    :param stack: the stack's ``describe_stacks`` entry.
    :param payload: the request body (``bytes``/``str`` as they are, else JSON).
    :param session: a boto3 Session whose credentials sign an ``iam`` request on AWS
        (default: the clients' credentials).
    """
    emulator = clients.emulator_endpoint
    if emulator is not None:
        from tdv_airflow.local.process import invoke_deployed

        log.info("%s is an emulator, which runs no Lambda: running the deployed function of "
                 "stack %s locally", emulator, stack["StackName"])
        response = invoke_deployed(clients, stack["StackName"], payload)
        return StackAnswer(int(response["statusCode"]), str(response.get("body") or ""),
                           emulator)
    from tdv_airflow.endpoint.client import call_stack_endpoint

    answer = call_stack_endpoint(clients, stack, payload, session=session)
    return StackAnswer(answer.status, answer.body.decode("utf-8", errors="replace"), None)
