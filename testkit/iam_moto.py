"""A moto server that enforces IAM, with an administrator, and the calls of a rollout
under the published policy (tests only).

moto checks no signature nor policy until it has answered ``INITIAL_NO_AUTH_ACTION_COUNT``
actions; :func:`start_enforcing` starts a server with that count set to the three actions
that make an administrator (an IAM user with ``*`` on ``*`` and an access key). Every
later request must be signed by an IAM identity whose policies allow it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
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


@dataclass(frozen=True)
class RolloutCall:
    """One call the rollout makes, and the statement of the published policy it needs.

    :param name: what it does.
    :param sid: the statement of :func:`~tdv_airflow.core.iam.airflow_identity_policy`.
    :param call: ``call(lambda_client, cloudwatch_client, function_name, stack_name)``.
    """

    name: str
    sid: str
    call: Callable[[Any, Any, str, str], Any]


#: The Lambda and CloudWatch calls of publishing, validating, promoting, rolling back and
#: retiring versions (``tdv_airflow.core.versions``, ``rollout``, ``alarms``), in order.
ROLLOUT_CALLS = (
    RolloutCall("read $LATEST", "ReadDeployedFunctions",
                lambda lam, cw, fn, stack: lam.get_function_configuration(FunctionName=fn)),
    RolloutCall("publish a version", "PublishVersions",
                lambda lam, cw, fn, stack: lam.publish_version(FunctionName=fn)),
    RolloutCall("list versions", "PublishVersions",
                lambda lam, cw, fn, stack: lam.list_versions_by_function(FunctionName=fn)),
    RolloutCall("read a version", "ReadDeployedFunctions",
                lambda lam, cw, fn, stack: lam.get_function(FunctionName=fn, Qualifier="1")),
    RolloutCall("read its dill layer", "ReadDeployedLayers",
                lambda lam, cw, fn, stack: lam.get_layer_version(LayerName=f"{fn}-dill",
                                                                 VersionNumber=1)),
    RolloutCall("invoke a version", "InvokeVersions",
                lambda lam, cw, fn, stack: lam.invoke(FunctionName=fn, Qualifier="1",
                                                      Payload=b"{}")),
    RolloutCall("create the alias", "MoveLiveAlias",
                lambda lam, cw, fn, stack: lam.create_alias(FunctionName=fn, Name="live",
                                                            FunctionVersion="1")),
    RolloutCall("read the alias", "MoveLiveAlias",
                lambda lam, cw, fn, stack: lam.get_alias(FunctionName=fn, Name="live")),
    RolloutCall("move the alias", "MoveLiveAlias",
                lambda lam, cw, fn, stack: lam.update_alias(
                    FunctionName=fn, Name="live", FunctionVersion="1", Description="{}")),
    RolloutCall("read the alias's policy", "ReadLiveAliasPolicy",
                lambda lam, cw, fn, stack: lam.get_policy(FunctionName=fn, Qualifier="live")),
    RolloutCall("let the API invoke the alias", "LetApiInvokeLiveAlias",
                lambda lam, cw, fn, stack: lam.add_permission(
                    FunctionName=fn, Qualifier="live", StatementId="tdv-airflow-api-live",
                    Action="lambda:InvokeFunction", Principal="apigateway.amazonaws.com",
                    SourceArn=f"arn:aws:execute-api:{REGION}:{ACCOUNT}:api/*/POST/predict")),
    RolloutCall("retire a version", "DeleteOldVersions",
                lambda lam, cw, fn, stack: lam.delete_function(FunctionName=fn,
                                                               Qualifier="99")),
    RolloutCall("read the alarms", "ReadAlarms",
                lambda lam, cw, fn, stack: cw.describe_alarms(
                    AlarmNames=[f"{stack}-live-errors", f"{stack}-api-5xx"])),
)
#: Calls the published policy must refuse even on the deployment's own function.
REFUSED_CALLS = (
    RolloutCall("delete the function", "",
                lambda lam, cw, fn, stack: lam.delete_function(FunctionName=fn)),
    RolloutCall("invoke $LATEST", "",
                lambda lam, cw, fn, stack: lam.invoke(FunctionName=fn, Payload=b"{}")),
    RolloutCall("let another principal invoke the alias", "",
                lambda lam, cw, fn, stack: lam.add_permission(
                    FunctionName=fn, Qualifier="live", StatementId="s3",
                    Action="lambda:InvokeFunction", Principal="s3.amazonaws.com")),
)


def refused(exc: BaseException) -> bool:
    """Whether ``exc`` is an IAM refusal (``AccessDenied``), not another error (a missing
    version, an alias that exists): moto answers Lambda clients in XML, so the code is in
    the text."""
    return "AccessDenied" in str(exc) and "SignatureDoesNotMatch" not in str(exc)


def denied_calls(session: Any, endpoint_url: str, function_name: str, stack_name: str,
                 calls: tuple[RolloutCall, ...] = ROLLOUT_CALLS) -> dict[str, bool]:
    """``{call name: refused?}`` for ``calls`` made as ``session`` on ``function_name``
    (other errors than a refusal count as allowed).

    :param session: the caller's boto3 Session.
    :param endpoint_url: the emulator.
    :param function_name: the function called.
    :param stack_name: the stack (its alarms' names).
    :param calls: the calls.
    """
    lam = session.client("lambda", endpoint_url=endpoint_url)
    cw = session.client("cloudwatch", endpoint_url=endpoint_url)
    out = {}
    for item in calls:
        try:
            item.call(lam, cw, function_name, stack_name)
            out[item.name] = False
        except Exception as exc:  # noqa: BLE001 - any refusal or other error is recorded
            out[item.name] = refused(exc)
    return out
