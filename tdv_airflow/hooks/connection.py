"""The four AWS connection arguments every tdv-airflow task and trigger takes, declared
once: the operators' mixin and the triggers' base both hold them through
:class:`ConnectionArguments`. Cheap to import (no boto3): the hook is built on demand.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tdv_airflow.hooks.deployment import TdvDeploymentHook


class ConnectionArguments:
    """``aws_conn_id``, ``region_name``, ``verify`` and ``botocore_config``, and the hook
    they make.

    :param aws_conn_id: the Airflow AWS connection; ``None`` uses boto3's default chain.
    :param region_name: the region; the connection's ``region_name`` extra when ``None``.
    :param verify: whether to verify TLS certificates, or a CA bundle path.
    :param botocore_config: botocore client configuration as a dict, e.g.
        ``{"retries": {"mode": "standard", "max_attempts": 10}}``.
    """

    aws_conn_id: str | None
    region_name: str | None
    verify: bool | str | None
    botocore_config: dict[str, Any] | None

    def set_connection(self, aws_conn_id: str | None, region_name: str | None,
                       verify: bool | str | None, botocore_config: dict[str, Any] | None
                       ) -> None:
        """Hold the connection arguments (the parameters are the class's).

        :param aws_conn_id: the Airflow AWS connection.
        :param region_name: the region.
        :param verify: the TLS verification setting.
        :param botocore_config: botocore client configuration as a dict.
        """
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.verify = verify
        self.botocore_config = botocore_config

    @property
    def connection_kwargs(self) -> dict[str, Any]:
        """The connection arguments, as a trigger's constructor takes them."""
        return {"aws_conn_id": self.aws_conn_id, "region_name": self.region_name,
                "verify": self.verify, "botocore_config": self.botocore_config}

    def connection_hook(self) -> TdvDeploymentHook:
        """A new hook for these arguments (imports boto3)."""
        from tdv_airflow.hooks.deployment import TdvDeploymentHook

        return TdvDeploymentHook(aws_conn_id=self.aws_conn_id, region_name=self.region_name,
                                 verify=self.verify, config=self.botocore_config)
