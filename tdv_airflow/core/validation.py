"""Checks of user input, run before anything is created in AWS.

Each check raises :class:`~tdv_airflow.exceptions.InvalidInputError` naming the value
and the rule it broke.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from typing import Any

from tdv_airflow.exceptions import InvalidInputError

#: CloudFormation's rule for stack names.
STACK_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,127}$")
#: S3 bucket naming rules (general purpose buckets), without the IP-address form.
BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
#: Python minors that AWS Lambda runs, and the matching runtime identifiers.
LAMBDA_RUNTIMES = {(3, 11): "python3.11", (3, 12): "python3.12", (3, 13): "python3.13"}


def check_stack_name(stack_name: Any) -> str:
    """Return ``stack_name`` if CloudFormation accepts it.

    :param stack_name: the candidate name.
    :raises InvalidInputError: when it breaks ``^[A-Za-z][A-Za-z0-9-]{0,127}$``.
    """
    if not isinstance(stack_name, str) or not STACK_NAME_RE.match(stack_name):
        raise InvalidInputError(
            f"invalid stack name {stack_name!r}: a stack name starts with a letter and "
            "holds only letters, digits and hyphens, at most 128 characters "
            f"(pattern {STACK_NAME_RE.pattern}); use tdv_airflow.core.naming.stack_name_from() "
            "to build one from a run id"
        )
    return stack_name


def check_bucket_name(bucket: Any) -> str:
    """Return ``bucket`` if it is a valid S3 bucket name.

    :param bucket: the candidate name.
    :raises InvalidInputError: when it breaks the S3 naming rules.
    """
    ok = (
        isinstance(bucket, str)
        and BUCKET_RE.match(bucket) is not None
        and ".." not in bucket
        and not re.fullmatch(r"\d+\.\d+\.\d+\.\d+", bucket)
    )
    if not ok:
        raise InvalidInputError(
            f"invalid S3 bucket name {bucket!r}: expected 3-63 characters of lowercase "
            "letters, digits, dots and hyphens, starting and ending with a letter or digit"
        )
    return bucket


def check_s3_key(key: Any, what: str) -> str:
    """Return ``key`` if it is a usable S3 object key.

    :param key: the candidate key.
    :param what: what the key names, for the message (e.g. ``"model_s3_key"``).
    """
    if not isinstance(key, str) or not key or key.startswith("/") or len(key.encode()) > 1024:
        raise InvalidInputError(
            f"invalid {what} {key!r}: expected a non-empty S3 object key of at most 1024 "
            "bytes, without a leading '/'"
        )
    return key


def check_callable(fn: Any, what: str = "prepro_fn") -> Callable[..., Any]:
    """Return ``fn`` if it can be called.

    :param fn: the candidate function.
    :param what: the argument's name, for the message.
    """
    if not callable(fn):
        raise InvalidInputError(
            f"{what} must be a callable (a function taking the request's JSON payload), "
            f"got {fn!r} of type {type(fn).__name__}"
        )
    return fn


def lambda_runtime(version: tuple[int, int] | None = None) -> str:
    """The Lambda runtime matching a Python version (default: this interpreter's).

    A dill pickle only loads on the Python minor that wrote it, so the function must run
    on the worker's own minor version.

    :param version: ``(major, minor)``; this interpreter's when ``None``.
    :raises InvalidInputError: when Lambda has no runtime for that version.
    """
    ver = version or (sys.version_info.major, sys.version_info.minor)
    try:
        return LAMBDA_RUNTIMES[ver]
    except KeyError:
        supported = ", ".join(f"{a}.{b}" for a, b in sorted(LAMBDA_RUNTIMES))
        raise InvalidInputError(
            f"Python {ver[0]}.{ver[1]} has no AWS Lambda runtime supported by tdv-airflow "
            f"(supported: {supported}); the function is pickled with dill, which needs the "
            "same Python minor version in Lambda: run the deployment on a supported Python"
        ) from None


#: What to do when the stack already exists: bring it to the new template and
#: parameters, leave it as it is, or fail.
ON_EXISTS_CHOICES: tuple[str, ...] = ("update", "skip", "fail")


def check_on_exists(on_exists: Any) -> str:
    """Return ``on_exists`` if it is ``"update"``, ``"skip"`` or ``"fail"``.

    :param on_exists: the candidate choice.
    :raises InvalidInputError: for anything else.
    """
    if not isinstance(on_exists, str) or on_exists not in ON_EXISTS_CHOICES:
        raise InvalidInputError(
            f"invalid on_exists {on_exists!r}: expected one of {list(ON_EXISTS_CHOICES)} "
            "('update' brings an existing stack to this deployment, 'skip' leaves it as it "
            "is, 'fail' stops)")
    return on_exists


def check_invoke_mode(invoke_mode: Any) -> int:
    """Return ``invoke_mode`` if it is 0 (synchronous) or 1 (asynchronous).

    :param invoke_mode: the candidate mode.
    """
    if invoke_mode not in (0, 1) or isinstance(invoke_mode, bool):
        raise InvalidInputError(
            f"invalid invoke_mode {invoke_mode!r}: expected 0 (synchronous: wait for the "
            "stack) or 1 (asynchronous: return at once with its status)"
        )
    return int(invoke_mode)


def check_positive(value: Any, what: str) -> float:
    """Return ``value`` if it is a number above zero.

    :param value: the candidate number.
    :param what: the argument's name, for the message.
    """
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise InvalidInputError(f"{what} must be a number above 0, got {value!r}")
    return value


#: ``endpoint_auth`` values and the ``EndpointAuth`` template parameter each selects.
ENDPOINT_AUTH_MODES = {"iam": "AWS_IAM", "api_key": "API_KEY", "none": "NONE"}
#: An IAM role ARN in any partition, e.g. ``arn:aws:iam::123456789012:role/path/name``.
ROLE_ARN_RE = re.compile(
    r"^arn:aws(?:-[a-z]+)*:iam::\d{12}:role/(?:[\x21-\x7e]{1,510}/)?[\w+=,.@-]{1,64}$")


def check_endpoint_auth(endpoint_auth: Any) -> str:
    """Return the endpoint authentication mode: ``"iam"``, ``"api_key"`` or ``"none"``.

    The template's names (``AWS_IAM``, ``API_KEY``, ``NONE``) and any letter case are
    accepted too.

    :param endpoint_auth: the candidate mode.
    :raises InvalidInputError: for anything else.
    """
    if isinstance(endpoint_auth, str):
        value = endpoint_auth.strip().lower()
        value = {"aws_iam": "iam", "apikey": "api_key"}.get(value, value)
        if value in ENDPOINT_AUTH_MODES:
            return value
    raise InvalidInputError(
        f"invalid endpoint_auth {endpoint_auth!r}: expected 'iam' (callers sign requests "
        "with SigV4, the default), 'api_key' (callers send the stack's API key in x-api-key) "
        "or 'none' (a public endpoint: anyone who knows the URL can call it)"
    )


def check_role_arn(role_arn: Any) -> str | None:
    """Return ``role_arn`` (``None`` allowed) if it is an IAM role ARN.

    :param role_arn: the candidate CloudFormation service role ARN.
    :raises InvalidInputError: when it is not ``arn:<partition>:iam::<account>:role/<name>``.
    """
    if role_arn is None:
        return None
    if not isinstance(role_arn, str) or not ROLE_ARN_RE.match(role_arn):
        raise InvalidInputError(
            f"invalid role_arn {role_arn!r}: expected the ARN of the IAM role CloudFormation "
            "assumes to create the stack, e.g. arn:aws:iam::123456789012:role/tdv-cfn-deployer "
            "(see docs/iam.md)"
        )
    return role_arn


#: AWS region names: ``us-east-1``, ``eu-central-2``, ``us-gov-west-1``, ``cn-north-1`` ...
REGION_RE = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d{1,2}$")


def check_region(region_name: Any, what: str = "region_name") -> str:
    """Return ``region_name`` if it has the form of an AWS region name.

    :param region_name: the candidate, e.g. ``"eu-west-1"``.
    :param what: the argument's name, for the message.
    :raises InvalidInputError: when it is not a string like ``eu-west-1``.
    """
    if not isinstance(region_name, str) or not REGION_RE.match(region_name):
        raise InvalidInputError(
            f"invalid {what} {region_name!r}: an AWS region name looks like 'eu-west-1' "
            f"(pattern {REGION_RE.pattern})")
    return region_name
