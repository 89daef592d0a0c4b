"""A moto server that enforces IAM, with an administrator (tests only).

moto checks no signature nor policy until it has answered ``INITIAL_NO_AUTH_ACTION_COUNT``
actions; :func:`start_enforcing` starts a server with that count set to the three actions
that make an administrator (an IAM user with ``*`` on ``*`` and an access key). Every
later request must be signed by an IAM identity whose policies allow it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tdv_airflow.local.aws import FAKE_ACCESS_KEY_ID, FAKE_SECRET_ACCESS_KEY, LocalAws

REGION = "us-east-1"
ACCOUNT = "123456789012"
#: The unchecked actions: create the administrator, its policy, its key.
ADMIN_ACTIONS = 3


@dataclass
class IamMoto:
    """A moto server that enforces IAM, and its administrator's boto3 Session."""

    aws: LocalAws
    admin: Any

    def client(self, service: str, session: Any = None) -> Any:
        """A client of ``service`` on this server, as ``session`` (the administrator)."""
        return (session or self.admin).client(service, endpoint_url=self.aws.endpoint_url)

    def user(self, name: str, *documents: dict[str, Any]) -> Any:
        """A boto3 Session of a new IAM user holding ``documents`` as inline policies."""
        import boto3

        iam = self.client("iam")
        iam.create_user(UserName=name)
        for n, document in enumerate(documents):
            iam.put_user_policy(UserName=name, PolicyName=f"policy-{n}",
                                PolicyDocument=json.dumps(document))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return boto3.Session(key["AccessKeyId"], key["SecretAccessKey"], region_name=REGION)


def start_enforcing(log_path: Path, fixes: tuple[str, ...] | None = None) -> IamMoto:
    """Start a moto server that enforces IAM after making its administrator.

    :param log_path: the server's log.
    :param fixes: the fidelity fixes to install (``None``: all, ``()``: moto as it is).
    """
    import boto3

    previous = os.environ.get("INITIAL_NO_AUTH_ACTION_COUNT")
    os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = str(ADMIN_ACTIONS)
    try:
        aws = LocalAws(log_path=log_path, fixes=fixes).start()
    finally:
        if previous is None:
            os.environ.pop("INITIAL_NO_AUTH_ACTION_COUNT")
        else:
            os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = previous
    try:
        root = boto3.Session(FAKE_ACCESS_KEY_ID, FAKE_SECRET_ACCESS_KEY, region_name=REGION)
        iam = root.client("iam", endpoint_url=aws.endpoint_url)
        iam.create_user(UserName="admin")
        iam.put_user_policy(UserName="admin", PolicyName="admin", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
        key = iam.create_access_key(UserName="admin")["AccessKey"]
    except Exception:
        aws.stop()
        raise
    admin = boto3.Session(key["AccessKeyId"], key["SecretAccessKey"], region_name=REGION)
    return IamMoto(aws, admin)
