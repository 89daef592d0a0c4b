"""Checks of the task arguments the core does not see, and the comparison of an
endpoint's answer with the one expected.

Loaded when a task checks a literal argument (DAG parse) or runs, never by the import of
the operators. Each check raises :class:`~tdv_airflow.exceptions.InvalidInputError`
naming the value and what was expected.
"""

from __future__ import annotations

import json
import math
from typing import Any

from tdv_airflow.exceptions import InvalidInputError


#: An AWS tag value (letters, digits, spaces and ``_.:/=+-@``, at most 256 characters).
def check_deployment(deployment: Any) -> str:
    """Return ``deployment`` if it can be the value of the ``tdv-airflow:deployment`` tag
    (the core's tag rule, :func:`tdv_airflow.core.validation.check_tag`).

    :param deployment: the deployment's name, e.g. ``"tdv-iris"``.
    :raises InvalidInputError: naming the value and the rule.
    """
    from tdv_airflow.core.retention import DEPLOYMENT_TAG
    from tdv_airflow.core.validation import check_tag

    if isinstance(deployment, str):
        try:
            return check_tag(DEPLOYMENT_TAG, deployment)[1]
        except InvalidInputError as exc:
            raise InvalidInputError(f"invalid deployment {deployment!r}: {exc}") from exc
    raise InvalidInputError(
        f"invalid deployment {deployment!r}: expected the name of the deployment, a string "
        f"that can be the value of the stack tag tdv-airflow:deployment, e.g. 'tdv-iris'")


def keep_count(keep_versions: Any) -> int:
    """``keep_versions`` as a whole number >= 1; a string of digits (a rendered template)
    counts as its number.

    :param keep_versions: an int, or a string of digits such as ``"3"``.
    :raises InvalidInputError: for anything else (``0``, ``True``, ``"abc"``, ``2.5`` ...).
    """
    value = keep_versions
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInputError(
            f"invalid keep_versions {keep_versions!r}: expected a whole number of version "
            "stacks to keep, at least 1 (an int, or a string of digits such as '3')")
    return value


def stack_names(names: Any, what: str = "exclude") -> tuple[str, ...]:
    """``names`` as a tuple of stack names; one string counts as one name.

    :param names: a string, or a sequence of strings.
    :param what: the argument's name, for the message.
    :raises InvalidInputError: when an entry is not a non-empty string.
    """
    items = (names,) if isinstance(names, str) else tuple(names or ())
    bad = [n for n in items if not isinstance(n, str) or not n]
    if bad:
        raise InvalidInputError(f"invalid {what} {names!r}: expected stack names (non-empty "
                                f"strings), got {bad!r}")
    return items


def check_expected_predictions(expected: Any) -> list[Any] | None:
    """``expected`` as a list (JSON text of a list is parsed), or ``None``.

    :param expected: the predictions the endpoint must answer, or ``None`` (any).
    :raises InvalidInputError: when it is neither a list nor ``None``.
    """
    value = expected
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            pass
    if value is None:
        return None
    if isinstance(value, list | tuple):
        return list(value)
    raise InvalidInputError(f"invalid expected_predictions {expected!r}: expected a list of "
                            "predictions, e.g. [0, 2], or None to accept any")


def check_status_and_tolerance(expected_status: Any, tolerance: Any) -> None:
    """Check an expected HTTP status (an int from 100 to 599) and a tolerance (>= 0).

    :param expected_status: the status the answer must have.
    :param tolerance: how far a predicted number may be from the expected one.
    :raises InvalidInputError: naming the bad one.
    """
    if isinstance(expected_status, bool) or not isinstance(expected_status, int) \
            or not 100 <= expected_status <= 599:
        raise InvalidInputError(f"invalid expected_status {expected_status!r}: expected an "
                                "HTTP status code, an int from 100 to 599, e.g. 200")
    if isinstance(tolerance, bool) or not isinstance(tolerance, int | float) \
            or not 0 <= tolerance < math.inf:
        raise InvalidInputError(f"invalid tolerance {tolerance!r}: expected a number >= 0 "
                                "(how far a predicted number may be from the expected one)")


def same_prediction(got: Any, want: Any, tolerance: float) -> bool:
    """Whether a prediction matches the expected one.

    Numbers match within ``tolerance``; a string never equals a number (``"2"`` is not
    ``2``), a bool only equals a bool; lists and dicts match item by item.

    :param got: what the endpoint answered.
    :param want: what was expected.
    :param tolerance: the largest difference allowed between two numbers.
    """
    if isinstance(want, bool) or isinstance(got, bool):
        return type(got) is type(want) and got == want
    if isinstance(want, int | float) and isinstance(got, int | float):
        return got == want or math.isclose(got, want, rel_tol=0.0, abs_tol=tolerance)
    if isinstance(want, list | tuple) and isinstance(got, list | tuple):
        return len(got) == len(want) and all(
            same_prediction(g, w, tolerance) for g, w in zip(got, want, strict=True))
    if isinstance(want, dict) and isinstance(got, dict):
        return got.keys() == want.keys() and all(
            same_prediction(got[k], want[k], tolerance) for k in want)
    return type(got) is type(want) and got == want


def predictions_of(body: str) -> Any:
    """The ``predictions`` of a JSON answer (``None`` when there are none).

    :param body: the answer's body.
    """
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    return parsed.get("predictions") if isinstance(parsed, dict) else None


def answer_problems(answer: dict[str, Any], expected_status: int,
                    expected: list[Any] | None, tolerance: float) -> list[str]:
    """What is wrong with an answer (empty when it is the one expected).

    :param answer: ``status`` and ``predictions`` of the answer.
    :param expected_status: the status it must have.
    :param expected: the predictions it must hold (``None``: any).
    :param tolerance: how far a predicted number may be from the expected one.
    """
    problems = []
    if answer["status"] != expected_status:
        problems.append(f"status {answer['status']}, expected {expected_status}")
    if expected is not None and not same_prediction(answer["predictions"], expected, tolerance):
        within = f" (within {tolerance:g})" if tolerance else ""
        problems.append(f"predictions {json.dumps(answer['predictions'])}, expected "
                        f"{json.dumps(expected)}{within}")
    return problems
