"""What the emulator holds: live stacks, every object, the model key each stack serves."""

from __future__ import annotations

from typing import Any


def live_stacks(cfn: Any) -> list[str]:
    """Names of the emulator's stacks that are not deleted.

    :param cfn: a CloudFormation client.
    """
    return sorted(s["StackName"] for s in cfn.describe_stacks()["Stacks"]
                  if s["StackStatus"] != "DELETE_COMPLETE")


def all_objects(s3: Any) -> set[str]:
    """``bucket/key`` of every object on the emulator.

    :param s3: an S3 client.
    """
    found = set()
    for b in s3.list_buckets().get("Buckets", []):
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=b["Name"]):
            found |= {f"{b['Name']}/{o['Key']}" for o in page.get("Contents", [])}
    return found


def model_keys_of_stacks(boto_session: Any, endpoint_url: str, cfn: Any,
                         prefix: str) -> dict[str, str]:
    """``TDV_MODEL_KEY`` of what every live stack whose name starts with ``prefix`` serves:
    the version behind its alias ``live`` (``$LATEST`` before the first release), by stack
    name. A re-run that brings back a version already published moves the alias to it
    without touching ``$LATEST``.

    :param boto_session: a boto3 session on the emulator.
    :param endpoint_url: the emulator's URL.
    :param cfn: a CloudFormation client.
    :param prefix: the stack name prefix.
    """
    from tdv_airflow.core.stacks import outputs_of

    lam = boto_session.client("lambda", endpoint_url=endpoint_url)
    found = {}
    for stack in cfn.describe_stacks()["Stacks"]:
        if stack["StackStatus"] == "DELETE_COMPLETE" or not stack["StackName"].startswith(
                prefix):
            continue
        function = outputs_of(stack)["FunctionName"]
        try:
            qualifier = lam.get_alias(FunctionName=function, Name="live")["FunctionVersion"]
        except lam.exceptions.ResourceNotFoundException:
            qualifier = "$LATEST"
        config = lam.get_function_configuration(FunctionName=function, Qualifier=qualifier)
        found[stack["StackName"]] = config["Environment"]["Variables"]["TDV_MODEL_KEY"]
    return found
