"""Extra links shown on tdv-airflow tasks: the stack in the console, the live endpoint.

Airflow 3 computes a link on the worker when the task ends and stores the URL in XCom,
so :meth:`get_link` reads what the task pushed: the stack id under
:data:`STACK_ID_XCOM_KEY` (pushed as soon as it is known, so a failed stack gets its
link too) and the endpoint in the task's return value.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey

#: The XCom key under which tasks push the stack id (an ARN) for the console link.
STACK_ID_XCOM_KEY = "tdv_stack_id"

_CONSOLE_DOMAINS = {
    "aws": "console.aws.amazon.com",
    "aws-cn": "console.amazonaws.cn",
    "aws-us-gov": "console.amazonaws-us-gov.com",
}


def stack_console_url(stack_id: str) -> str:
    """The CloudFormation console page of a stack, in the stack's own region and partition.

    :param stack_id: the stack ARN, ``arn:PARTITION:cloudformation:REGION:ACCOUNT:stack/NAME/ID``.
    :returns: the URL, or ``""`` when ``stack_id`` is not a stack ARN.
    """
    parts = str(stack_id).split(":", 5)
    if len(parts) != 6 or parts[0] != "arn" or parts[2] != "cloudformation":
        return ""
    partition, region = parts[1], parts[3]
    domain = _CONSOLE_DOMAINS.get(partition, _CONSOLE_DOMAINS["aws"])
    host = domain if partition == "aws-us-gov" else f"{region}.{domain}"
    return (f"https://{host}/cloudformation/home?region={region}"
            f"#/stacks/stackinfo?stackId={quote(stack_id, safe='')}")


def _xcom(ti_key: Any, key: str) -> Any:
    from airflow.sdk.execution_time.xcom import XCom

    return XCom.get_value(ti_key=ti_key, key=key)


class CloudFormationStackLink(BaseOperatorLink):
    """The stack's page in the AWS CloudFormation console."""

    name: ClassVar[str] = "CloudFormation stack"  # type: ignore[misc]

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        """The console URL of the stack the task worked on (``""`` if none yet).

        :param operator: the task.
        :param ti_key: the task instance.
        """
        stack_id = _xcom(ti_key, STACK_ID_XCOM_KEY)
        if not stack_id:
            result = _xcom(ti_key, "return_value")
            stack_id = result.get("stack_id") if isinstance(result, dict) else None
        return stack_console_url(stack_id) if stack_id else ""


class ApiEndpointLink(BaseOperatorLink):
    """The deployed HTTPS endpoint (``api_endpoint`` of the sensor's return value)."""

    name: ClassVar[str] = "API endpoint"  # type: ignore[misc]

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        """The endpoint URL once the stack is up (``""`` before).

        :param operator: the task.
        :param ti_key: the task instance.
        """
        result = _xcom(ti_key, "return_value")
        endpoint = result.get("api_endpoint") if isinstance(result, dict) else None
        return endpoint if isinstance(endpoint, str) and endpoint.startswith("https://") else ""
