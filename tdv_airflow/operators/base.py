"""What every tdv-airflow task shares: the AWS connection arguments, the hook and the
core's clients, its template fields, and the test of whether an argument is known when
the DAG is parsed.

Cheap to import (a DAG file pays for it): the hook, boto3 and the core load inside
``execute``.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from tdv_airflow.hooks.connection import ConnectionArguments
from tdv_airflow.links import STACK_ID_XCOM_KEY

if TYPE_CHECKING:
    from tdv_airflow.core.clients import AwsClients
    from tdv_airflow.hooks.deployment import TdvDeploymentHook
    from tdv_airflow.triggers.deployment import StackStatusTrigger

#: The connection arguments that are templated on every task.
_AWS_TEMPLATED = ("aws_conn_id", "region_name", "verify")


def aws_template_fields(*fields: str) -> tuple[str, ...]:
    """A task's ``template_fields``: its own, then ``aws_conn_id``, ``region_name`` and
    ``verify`` (the Amazon provider's helper of the same name, keeping the given order).

    :param fields: the task's own templated arguments.
    :raises TypeError: when one is not a string.
    """
    if not all(isinstance(f, str) for f in fields):
        raise TypeError(f"template fields must be strings, got {fields!r}")
    return tuple(dict.fromkeys((*fields, *_AWS_TEMPLATED)))


def is_literal(value: Any) -> bool:
    """Whether ``value`` is known when the DAG is parsed: neither a Jinja template nor an
    XComArg, nor a list or dict holding one (they are only known when the task runs, and
    checked then).

    :param value: a task argument as given to the constructor.
    """
    if isinstance(value, str):
        return "{{" not in value and "{%" not in value
    if isinstance(value, list | tuple | set | frozenset):
        return all(is_literal(v) for v in value)
    if isinstance(value, dict):
        return all(is_literal(v) for v in value.values())
    return not hasattr(value, "resolve")


def described_stack(clients: AwsClients, stack_name: str) -> dict[str, Any]:
    """The stack's ``describe_stacks`` entry.

    :param clients: the task's clients.
    :param stack_name: the stack.
    :raises StackNotFoundError: when it does not exist.
    """
    from tdv_airflow.core.stacks import describe
    from tdv_airflow.exceptions import StackNotFoundError

    stack = describe(clients.cloudformation, stack_name)
    if stack is None:
        raise StackNotFoundError(stack_name)
    return stack


class AwsConnectionMixin(BaseOperator, ConnectionArguments):
    """Adds ``aws_conn_id``, ``region_name``, ``verify`` and ``botocore_config``.

    Mix it in before the Airflow base class (``class S(AwsConnectionMixin,
    BaseSensorOperator)``). It derives from ``BaseOperator`` so that Airflow's metaclass
    sees these arguments: ``default_args`` and ``.partial()`` apply to them too. The
    hook is built on first use inside ``execute`` (never at DAG parse time), and boto3
    is imported only then. Tasks pass :attr:`connection_kwargs` on to their triggers
    (:class:`~tdv_airflow.hooks.connection.ConnectionArguments`, shared with them).

    :param aws_conn_id: the Airflow AWS connection; ``None`` uses boto3's default chain.
    :param region_name: the region; the connection's ``region_name`` extra when ``None``.
    :param verify: whether to verify TLS certificates, or a CA bundle path.
    :param botocore_config: botocore client configuration as a dict, e.g.
        ``{"retries": {"mode": "standard", "max_attempts": 10}}``.
    """

    def __init__(
        self,
        *,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.set_connection(aws_conn_id, region_name, verify, botocore_config)

    @cached_property
    def hook(self) -> TdvDeploymentHook:
        """The hook for this task's connection (checked when first built)."""
        from tdv_airflow.hooks.deployment import check_connection

        hook = self.connection_hook()
        check_connection(hook, self.aws_conn_id)
        return hook

    @cached_property
    def clients(self) -> AwsClients:
        """The core's clients for this task's connection. The hook is built (and the
        connection checked) when the core first asks for a client, so the core checks
        the task's arguments before the connection is touched."""
        from tdv_airflow.hooks.deployment import ConnectionClients

        return ConnectionClients(lambda: self.hook, self.region_name)

    def stack_trigger(self, stack_name: str, poll_interval: float,
                      max_attempts: int | None = None,
                      not_found_grace_period: float = 0.0,
                      after_event_id: str | None = None,
                      expected_fingerprint: str | None = None) -> StackStatusTrigger:
        """A trigger waiting for ``stack_name`` with this task's connection.

        :param stack_name: the stack name or id.
        :param poll_interval: seconds between polls.
        :param max_attempts: polls before giving up (``None``: the task's timeout decides).
        :param not_found_grace_period: seconds a missing stack is waited for.
        :param after_event_id: the last stack event already logged.
        :param expected_fingerprint: the wanted state (a stack rolled back to it succeeds).
        """
        from tdv_airflow.triggers.deployment import StackStatusTrigger

        return StackStatusTrigger(
            stack_name=stack_name, poll_interval=poll_interval, max_attempts=max_attempts,
            not_found_grace_period=not_found_grace_period, after_event_id=after_event_id,
            expected_fingerprint=expected_fingerprint, **self.connection_kwargs)

    @staticmethod
    def push_stack_id(context: Any, stack_id: str) -> None:
        """Record the stack id for the console link (kept even if the task then fails).

        :param context: the task context.
        :param stack_id: the stack ARN.
        """
        context["ti"].xcom_push(key=STACK_ID_XCOM_KEY, value=stack_id)
