"""What tdv-airflow's triggers share: the AWS connection arguments and the client."""

from __future__ import annotations

from typing import Any

from airflow.triggers.base import BaseTrigger

from tdv_airflow.hooks.connection import ConnectionArguments


class StackTriggerBase(BaseTrigger, ConnectionArguments):
    """A trigger watching one stack through an Airflow AWS connection.

    The connection arguments are declared here only: subclasses take them as
    ``**connection`` and pass them on, and list their own arguments in
    :meth:`own_kwargs`; :meth:`serialize` adds the connection arguments. Operators build
    triggers with their ``connection_kwargs``.

    :param stack_name: the stack name or id.
    :param poll_interval: seconds between polls.
    :param aws_conn_id: the Airflow AWS connection.
    :param region_name: the region (the connection's when ``None``).
    :param verify: TLS verification setting of the hook.
    :param botocore_config: botocore client configuration as a dict.
    """

    def __init__(
        self,
        *,
        stack_name: str,
        poll_interval: float = 30.0,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.stack_name = stack_name
        self.poll_interval = poll_interval
        self.set_connection(aws_conn_id, region_name, verify, botocore_config)

    def own_kwargs(self) -> dict[str, Any]:
        """The subclass's own constructor arguments, for :meth:`serialize`."""
        return {}

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """The classpath and keyword arguments that rebuild this trigger."""
        return (f"{type(self).__module__}.{type(self).__qualname__}", {
            "stack_name": self.stack_name,
            "poll_interval": self.poll_interval,
            **self.own_kwargs(),
            **self.connection_kwargs,
        })

    def _cloudformation(self) -> Any:
        """A CloudFormation client (blocking: call it in a worker thread)."""
        return self.connection_hook().conn
