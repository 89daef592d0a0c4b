"""What every tdv-airflow task shares: the AWS connection arguments and the hook."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from tdv_airflow.links import STACK_ID_XCOM_KEY

if TYPE_CHECKING:
    from tdv_airflow.hooks.deployment import TdvDeploymentHook
    from tdv_airflow.triggers.deployment import StackStatusTrigger

#: Templated connection arguments, added to each task's ``template_fields``.
AWS_TEMPLATE_FIELDS: tuple[str, ...] = ("aws_conn_id", "region_name")


class AwsConnectionMixin(BaseOperator):
    """Adds ``aws_conn_id``, ``region_name``, ``verify`` and ``botocore_config``.

    Mix it in before the Airflow base class (``class S(AwsConnectionMixin,
    BaseSensorOperator)``). It derives from ``BaseOperator`` so that Airflow's metaclass
    sees these arguments: ``default_args`` and ``.partial()`` apply to them too. The
    hook is built on first use inside ``execute`` (never at DAG parse time), and boto3
    is imported only then.

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
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.verify = verify
        self.botocore_config = botocore_config

    @cached_property
    def hook(self) -> TdvDeploymentHook:
        """The hook for this task's connection."""
        from tdv_airflow.hooks.deployment import TdvDeploymentHook

        return TdvDeploymentHook(aws_conn_id=self.aws_conn_id, region_name=self.region_name,
                                 verify=self.verify, config=self.botocore_config)

    def stack_trigger(self, stack_name: str, poll_interval: float,
                      max_attempts: int | None = None,
                      not_found_grace_period: float = 0.0,
                      after_event_id: str | None = None) -> StackStatusTrigger:
        """A trigger waiting for ``stack_name`` with this task's connection.

        :param stack_name: the stack name or id.
        :param poll_interval: seconds between polls.
        :param max_attempts: polls before giving up (``None``: the task's timeout decides).
        :param not_found_grace_period: seconds a missing stack is waited for.
        :param after_event_id: the last stack event already logged.
        """
        from tdv_airflow.triggers.deployment import StackStatusTrigger

        return StackStatusTrigger(
            stack_name=stack_name, poll_interval=poll_interval, max_attempts=max_attempts,
            not_found_grace_period=not_found_grace_period, after_event_id=after_event_id,
            aws_conn_id=self.aws_conn_id,
            region_name=self.region_name, verify=self.verify,
            botocore_config=self.botocore_config)

    @staticmethod
    def push_stack_id(context: Any, stack_id: str) -> None:
        """Record the stack id for the console link (kept even if the task then fails).

        :param context: the task context.
        :param stack_id: the stack ARN.
        """
        context["ti"].xcom_push(key=STACK_ID_XCOM_KEY, value=stack_id)
