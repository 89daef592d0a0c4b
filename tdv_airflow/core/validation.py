"""Checks of user input, run before anything is created in AWS.

Each check raises :class:`~tdv_airflow.exceptions.InvalidInputError` naming the value
and the rule it broke.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from collections.abc import Callable, Mapping
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


#: Besides letters (Unicode L*), separators (Z*) and numbers (N*), the characters IAM and
#: CloudWatch Logs accept in tags: CloudFormation copies the stack's tags to the role, the
#: log groups, the function and the API, so one tag those services refuse fails the stack.
TAG_PUNCTUATION = "_.:/=+-@"
#: Longest tag key and value (IAM, CloudWatch Logs and CloudFormation agree).
TAG_KEY_MAX, TAG_VALUE_MAX = 128, 256
#: CloudFormation takes at most 50 stack tags.
STACK_TAGS_MAX = 50
_TAG_RULE = ("letters, digits, spaces and _ . : / = + - @ (the tag characters IAM and "
             "CloudWatch Logs accept: CloudFormation copies the stack's tags to the "
             "function's role and log groups)")


def _tag_text(text: Any) -> str | None:
    """``text`` as a tag's text: a string, or a number written out; ``None`` otherwise."""
    if isinstance(text, str):
        return text
    if isinstance(text, int | float) and not isinstance(text, bool):
        return str(text)
    return None


def refused_tag_characters(text: str) -> str:
    """The characters of ``text`` a tag may not hold, each once, in order (an invisible
    one as its code point, e.g. ``U+000A``); empty when every character is allowed.

    :param text: a tag key or value.
    """
    bad = [c for c in text
           if unicodedata.category(c)[0] not in "LZN" and c not in TAG_PUNCTUATION]
    return " ".join(dict.fromkeys(
        repr(c) if c.isprintable() and unicodedata.category(c)[0] != "M"
        else f"U+{ord(c):04X}" for c in bad))


def check_tag(key: Any, value: Any, what: str | None = None) -> tuple[str, str]:
    """Return ``(key, value)`` if they can tag the stack and every resource it creates.

    A key holds 1 to 128, a value 1 to 256 letters, digits, spaces and ``_.:/=+-@``
    (IAM's and CloudWatch Logs' pattern ``[\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]``; CloudFormation
    refuses an empty value); a key may not start with ``aws:``. A number is written out.

    :param key: the tag key.
    :param value: the tag value.
    :param what: the argument the value comes from, for the message (e.g.
        ``"model_s3_key"``); ``None`` for a tag given as such.
    :raises InvalidInputError: naming the tag, its value and the rule it breaks.
    """
    origin = f" (from {what})" if what else ""
    text_key = key if isinstance(key, str) else None
    text_value = _tag_text(value)
    if text_key is None or text_value is None:
        raise InvalidInputError(
            f"invalid stack tag {key!r}: {value!r}{origin}: expected a string key and a "
            "string (or number) value")
    problems = []
    if not 1 <= len(text_key) <= TAG_KEY_MAX:
        problems.append(f"a key holds 1 to {TAG_KEY_MAX} characters, this one "
                        f"{len(text_key)}")
    if text_key.lower().startswith("aws:"):
        problems.append("a key may not start with 'aws:' (reserved for AWS)")
    if not 1 <= len(text_value) <= TAG_VALUE_MAX:
        problems.append(f"a value holds 1 to {TAG_VALUE_MAX} characters (CloudFormation "
                        f"refuses an empty one), this one {len(text_value)}")
    for part, text in (("key", text_key), ("value", text_value)):
        refused = refused_tag_characters(text)
        if refused:
            problems.append(f"the {part} holds {refused}, which a tag may not hold")
    if problems:
        raise InvalidInputError(
            f"invalid stack tag {text_key!r}: {text_value!r}{origin}: "
            + "; ".join(problems) + f"; expected {_TAG_RULE}")
    return text_key, text_value


def check_stack_tags(tags: Any, origins: Mapping[str, str] | None = None,
                     limit: int = STACK_TAGS_MAX) -> dict[str, str]:
    """Return ``tags`` as ``{key: value}`` strings if every one can tag the stack.

    :param tags: a mapping of tag keys to values (``None``: no tags).
    :param origins: for tags derived from an argument, that argument's name by tag key
        (e.g. ``{"tdv-airflow:model": "model_s3_key"}``), for the message.
    :param limit: how many tags fit (CloudFormation takes :data:`STACK_TAGS_MAX`, less
        the tags added later).
    :raises InvalidInputError: naming the first bad tag and the rule, or when there are
        more than ``limit``.
    """
    if tags is None:
        return {}
    if not isinstance(tags, Mapping):
        raise InvalidInputError(f"invalid tags {tags!r}: expected a mapping of tag keys to "
                                "values, e.g. {'team': 'fraud'}")
    if len(tags) > limit:
        raise InvalidInputError(
            f"{len(tags)} stack tags ({sorted(map(str, tags))}): at most {limit} fit "
            f"(CloudFormation takes {STACK_TAGS_MAX} stack tags, tdv-airflow's own included)")
    return dict(check_tag(k, v, (origins or {}).get(k)) for k, v in tags.items())


#: Template parameters whose value caps traffic, and the smallest value that lets any
#: through: a reservation of 0 never runs the function, a throttling limit of 0 refuses
#: every request. ``ReservedConcurrency`` also takes -1 (no reservation).
CAPACITY_MINIMUMS = {"ReservedConcurrency": 1, "ThrottlingBurstLimit": 1,
                     "ThrottlingRateLimit": 1, "UsagePlanBurstLimit": 1,
                     "UsagePlanRateLimit": 1, "UsagePlanQuotaLimit": 1}
_INTEGER_CAPACITIES = frozenset({"ReservedConcurrency", "ThrottlingBurstLimit",
                                 "UsagePlanBurstLimit", "UsagePlanQuotaLimit"})


def check_capacity_parameters(parameters: Any) -> None:
    """Fail when a stack parameter would block all traffic: ``ReservedConcurrency`` 0 (or
    below -1), or a throttling or usage plan limit below 1.

    A reservation must also leave at least 100 concurrent executions unreserved in the
    account and region (Lambda refuses it otherwise); that depends on the account and is
    left to Lambda.

    :param parameters: the stack parameters given by the caller (``None``: none).
    :raises InvalidInputError: naming the parameter, its value and what is expected.
    """
    for name, minimum in CAPACITY_MINIMUMS.items():
        if not isinstance(parameters, Mapping) or parameters.get(name) is None:
            continue
        raw = parameters[name]
        try:
            value = float(raw) if not isinstance(raw, bool) else None
        except (TypeError, ValueError):
            value = None
        integral = value is not None and value.is_integer()
        if name == "ReservedConcurrency" and value == -1:
            continue
        if (value is None or value < minimum
                or (name in _INTEGER_CAPACITIES and not integral)):
            extra = (" or -1 for no reservation (0 would stop the function from ever running;"
                     " a reservation must also leave 100 unreserved in the account)"
                     if name == "ReservedConcurrency" else
                     " (0 refuses every request)")
            kind = "an integer" if name in _INTEGER_CAPACITIES else "a number"
            raise InvalidInputError(
                f"invalid stack parameter {name}={raw!r}: expected {kind} of at least "
                f"{minimum}{extra}")
