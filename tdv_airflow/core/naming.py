"""Names derived from Airflow runs: model versions, stack names, idempotency tokens.

Airflow run ids hold characters that CloudFormation rejects (``manual__2025-01-01T02:00:00+00:00``),
and in Airflow 3 a manually triggered run may have no ``logical_date`` at all. Everything
here is deterministic, so a retried task computes the same names as its first try.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from tdv_airflow.core.validation import check_stack_name
from tdv_airflow.exceptions import InvalidInputError

#: CloudFormation's longest stack name.
MAX_STACK_NAME = 128
_NOT_NAME_CHARS = re.compile(r"[^A-Za-z0-9]+")
_VERSION_FORMAT = "%Y%m%dT%H%M%S"


def _slug(text: str) -> str:
    """Letters and digits of ``text``, other runs of characters turned into one hyphen."""
    return _NOT_NAME_CHARS.sub("-", text).strip("-")


def _digest(text: str, length: int = 8) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def _shorten(name: str, limit: int, source: str) -> str:
    """``name`` cut to ``limit`` characters, with a digest of ``source`` keeping it unique."""
    if len(name) <= limit:
        return name
    suffix = _digest(source)
    return f"{name[: limit - len(suffix) - 1].rstrip('-')}-{suffix}"


def model_version(logical_date: datetime | None, run_id: str | None) -> str:
    """The version naming a model trained by one DAG run.

    A run with a logical date (scheduled runs, backfills, most manual runs) gets it as
    ``YYYYMMDDTHHMMSS`` in UTC, like ``{{ ts_nodash }}``; a run without one (Airflow 3
    manual runs may have ``logical_date=None``) gets its run id with every character that
    is not a letter or digit turned into ``-``, e.g. ``manual-2025-01-01T02-00-00-00-00``.

    :param logical_date: the run's logical date (aware or naive UTC), or ``None``.
    :param run_id: the run id, used when there is no logical date.
    :raises InvalidInputError: when both are missing.
    """
    if logical_date is not None:
        if logical_date.tzinfo is not None:
            from datetime import UTC

            logical_date = logical_date.astimezone(UTC)
        return logical_date.strftime(_VERSION_FORMAT)
    slug = _slug(run_id or "")
    if not slug:
        raise InvalidInputError(
            f"cannot name a model version: the run has no logical date and its run id "
            f"{run_id!r} holds no letters or digits")
    return _shorten(slug, 100, run_id or "")


def model_version_from_context(context: Mapping[str, Any]) -> str:
    """:func:`model_version` of the running task's DAG run.

    :param context: the Airflow task context (``logical_date`` may be absent or ``None``).
    """
    return model_version(context.get("logical_date"), context.get("run_id"))


def stack_name_from(*parts: object, max_length: int = MAX_STACK_NAME) -> str:
    """A valid CloudFormation stack name built from ``parts`` (e.g. a prefix and a run id).

    Characters other than letters and digits become hyphens, a name that would not start
    with a letter gets the prefix ``s-``, and a name longer than ``max_length`` is cut and
    given a digest of the full text so that distinct inputs keep distinct names.

    >>> stack_name_from("tdv", "manual__2025-01-01T02:00:00+00:00")
    'tdv-manual-2025-01-01T02-00-00-00-00'

    :param parts: the pieces, joined with hyphens (``None`` and empty pieces are skipped).
    :param max_length: the longest name wanted (at most 128).
    :raises InvalidInputError: when no piece holds a letter or digit.
    """
    if not 1 <= max_length <= MAX_STACK_NAME:
        raise InvalidInputError(f"max_length must be between 1 and {MAX_STACK_NAME}, "
                                f"got {max_length!r}")
    source = "-".join(str(p) for p in parts if p is not None and str(p) != "")
    name = _slug(source)
    if not name:
        raise InvalidInputError(f"cannot build a stack name from {parts!r}: no letters or digits")
    if not name[0].isalpha():
        name = f"s-{name}"
    return check_stack_name(_shorten(name, max_length, source))


def client_request_token(dag_id: str, run_id: str, stack_name: str) -> str:
    """The base of the ``ClientRequestToken`` of one DAG run's stack operations.

    The same for every try of the task and distinct across DAGs, runs and stacks. Matches
    ``[a-zA-Z][-a-zA-Z0-9]*`` and has 68 characters. Each request sends
    :func:`operation_token` of it, which also folds in what the request wants and the
    state of the stack it starts from.

    :param dag_id: the DAG id.
    :param run_id: the run id.
    :param stack_name: the stack name.
    """
    source = "\n".join((dag_id, run_id, stack_name))
    return f"tdv-{hashlib.sha256(source.encode()).hexdigest()}"


#: CloudFormation's longest ``ClientRequestToken``.
MAX_TOKEN = 128


def operation_token(run_token: str, operation: str, *state: object) -> str:
    """The ``ClientRequestToken`` of one stack request: ``{run_token}-{operation}-{digest}``.

    ``digest`` covers ``state``: the wanted state (a fingerprint) and the starting state of
    the stack (its id, last update time, status). The same request resent (e.g. by a task
    retry before the stack changed) keeps its token, so CloudFormation recognises it; a new
    attempt once the stack has changed (e.g. after an update rolled back) gets a new one,
    which CloudFormation does not take for the old request. At most 128 characters;
    ``run_token`` is cut to fit.

    :param run_token: the run's token (:func:`client_request_token`) or the caller's own.
    :param operation: the request, e.g. ``"created"`` or ``"updated"`` (letters only).
    :param state: the values the token depends on (``None`` allowed).
    """
    digest = _digest("\n".join(str(part) for part in state), 16)
    head = run_token[: MAX_TOKEN - len(operation) - len(digest) - 2]
    return f"{head}-{operation}-{digest}"
