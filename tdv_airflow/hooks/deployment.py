"""The hook that turns an Airflow AWS connection into the clients the core uses.

It adds one thing only: tdv-airflow's default botocore configuration (retry mode and
attempts, timeouts) under the connection's and the task's. Credentials, region,
``endpoint_url`` (e.g. a local emulator), ``verify`` and botocore settings all come from
the Amazon provider's
:class:`~airflow.providers.amazon.aws.hooks.base_aws.AwsBaseHook` and the connection's
extras. Importing this module imports boto3 (through the Amazon provider); DAG files
never need to: the operators build the hook inside ``execute``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

from tdv_airflow.core.clients import AwsClients, botocore_config

if TYPE_CHECKING:
    from botocore.config import Config


def check_connection(hook: AwsBaseHook, aws_conn_id: str | None) -> None:
    """Fail early and clearly on an unknown connection, a malformed region or missing
    credentials (instead of a botocore error in the middle of a deployment).

    :param hook: a task's hook.
    :param aws_conn_id: the connection id it was built from (``None``: default chain).
    :raises InvalidInputError: naming the value and the rule.
    """
    from airflow.sdk import BaseHook

    from tdv_airflow.core.validation import check_region
    from tdv_airflow.exceptions import InvalidInputError

    if aws_conn_id is not None:
        try:
            BaseHook.get_connection(aws_conn_id)
        except Exception as exc:  # AirflowNotFoundException, across Airflow versions
            raise InvalidInputError(
                f"aws_conn_id {aws_conn_id!r} is not a defined Airflow connection: define "
                f"it (UI, CLI or AIRFLOW_CONN_{aws_conn_id.upper()}) or pass "
                f"aws_conn_id=None for boto3's default credential chain ({exc})") from exc
    region = hook.conn_region_name
    if region is not None:
        check_region(region)
    if hook.get_session(region_name=region).get_credentials() is None:
        raise InvalidInputError(
            f"no AWS credentials found for aws_conn_id {aws_conn_id!r}: give the connection "
            f"a key pair or role, or configure boto3's default credential chain")


class TdvDeploymentHook(AwsBaseHook):
    """Boto3 clients for a deployment (S3, CloudFormation, Lambda) from one connection.

    Its own ``conn`` is the CloudFormation client; :meth:`clients` gives every client the
    core needs, all with the same session, region, endpoint and botocore config.

    :param aws_conn_id: the Airflow connection (``aws`` type); ``None`` uses boto3's
        default credential chain.
    :param region_name: the region; the connection's ``region_name`` extra when ``None``.
    :param verify: whether to verify TLS certificates (or a CA bundle path).
    :param config: botocore client configuration (a ``Config`` or a dict), overlaid on the
        connection's ``config_kwargs`` extra, itself overlaid on
        :data:`~tdv_airflow.core.clients.DEFAULT_BOTOCORE_CONFIG` (``retries`` merged key
        by key): see :attr:`config`.
    """

    hook_name = "tdv-airflow deployment (AWS)"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["client_type"] = "cloudformation"
        # Not passed on: the provider's connection wrapper reads the connection's
        # ``config_kwargs`` only when the hook has no config of its own.
        self._task_config = kwargs.pop("config", None)
        super().__init__(*args, **kwargs)

    @property
    def config(self) -> Config:
        """The botocore configuration of every client of this hook (the provider's
        ``get_client_type``/``conn`` and :meth:`get_client` both read it):
        :data:`~tdv_airflow.core.clients.DEFAULT_BOTOCORE_CONFIG`, overlaid by the
        connection's ``config_kwargs`` extra, overlaid by the hook's ``config``.
        """
        return botocore_config(self.conn_config.botocore_config, self._task_config)

    def get_client(self, service: str) -> Any:
        """A boto3 client for ``service`` configured exactly like the hook's own client.

        :param service: a boto3 service name (``"s3"``, ``"lambda"`` ...).
        """
        if service == self.client_type:
            return self.conn
        session = self.get_session(region_name=self.region_name)
        return session.client(
            service_name=service,
            endpoint_url=self.conn_config.get_service_endpoint_url(service_name=service),
            config=self._get_config(),
            verify=self.verify,
        )

    @property
    def endpoint_url(self) -> str | None:
        """The connection's ``endpoint_url`` extra (``None`` means the real AWS)."""
        return self.conn_config.endpoint_url

    def clients(self) -> AwsClients:
        """The core's clients, made lazily from this connection."""
        return AwsClients(self.get_client, self.conn_region_name)


class ConnectionClients(AwsClients):
    """The core's clients for a task, from a hook that is built on first use.

    Nothing reads the connection (nor checks it) until the core asks for a client or for
    the region, so the core's checks of a task's arguments run before any of that.

    :param hook: returns the task's hook (built and checked on the first call).
    :param region_name: the task's own region; the connection's when ``None``.
    """

    def __init__(self, hook: Callable[[], TdvDeploymentHook], region_name: str | None) -> None:
        self._hook = hook
        super().__init__(lambda service: hook().get_client(service), region_name or "")

    @property
    def region_name(self) -> str:
        """The task's region, else the connection's (reading it builds the hook)."""
        return self._region or self._hook().conn_region_name

    @region_name.setter
    def region_name(self, value: str) -> None:
        self._region = value
