"""The CloudWatch alarms a bake watches.

The stack creates one alarm per signal of the live endpoint (function errors and
throttles and p99 duration on the ``live`` alias, the API's 5xx) and names them in its
``AlarmNames`` output. While a candidate takes a share of traffic, any of them in
``ALARM`` rolls the alias back (:func:`tdv_airflow.core.rollout.advance`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tdv_airflow.exceptions import InvalidInputError

#: The stack output listing the alarms (comma-separated names).
ALARMS_OUTPUT = "AlarmNames"
#: DescribeAlarms accepts at most this many names.
_NAMES_PER_CALL = 100


def alarm_names_of(outputs: Mapping[str, str]) -> list[str]:
    """The alarm names a stack's outputs list (none for a template without alarms).

    :param outputs: the stack's outputs.
    """
    return [n.strip() for n in (outputs.get(ALARMS_OUTPUT) or "").split(",") if n.strip()]


def check_alarm_names(names: Any) -> list[str]:
    """Return ``names`` as a list of alarm names.

    :param names: alarm names (a list of non-empty strings of at most 255 characters).
    :raises InvalidInputError: otherwise.
    """
    if isinstance(names, str) or not isinstance(names, Iterable):
        raise InvalidInputError(f"invalid alarm_names {names!r}: expected a list of alarm "
                                "names")
    checked = list(names)
    for name in checked:
        if not isinstance(name, str) or not name or len(name) > 255:
            raise InvalidInputError(f"invalid alarm name {name!r} in alarm_names: expected "
                                    "a name of 1 to 255 characters")
    return checked


def firing(cloudwatch: Any, names: Iterable[str]) -> list[dict[str, str]]:
    """The alarms among ``names`` that are in ``ALARM`` now.

    :param cloudwatch: a CloudWatch client.
    :param names: the alarms to watch.
    :returns: ``{"name", "reason", "since"}`` for each (``since`` in ISO 8601).
    :raises InvalidInputError: when a named alarm does not exist (a typo would
        otherwise watch nothing).
    """
    wanted = list(dict.fromkeys(names))
    found: dict[str, Mapping[str, Any]] = {}
    for start in range(0, len(wanted), _NAMES_PER_CALL):
        chunk = wanted[start:start + _NAMES_PER_CALL]
        for page in cloudwatch.get_paginator("describe_alarms").paginate(
                AlarmNames=chunk, AlarmTypes=["MetricAlarm", "CompositeAlarm"]):
            for alarm in [*page.get("MetricAlarms", []), *page.get("CompositeAlarms", [])]:
                found[alarm["AlarmName"]] = alarm
    missing = [n for n in wanted if n not in found]
    if missing:
        raise InvalidInputError(f"alarm(s) {missing} do not exist: a bake would watch "
                                "nothing; check the names (the stack lists its own in the "
                                f"{ALARMS_OUTPUT!r} output)")
    out = []
    for name in wanted:
        alarm = found[name]
        if alarm.get("StateValue") == "ALARM":
            since: Any = alarm.get("StateUpdatedTimestamp") or ""
            out.append({"name": name, "reason": str(alarm.get("StateReason") or ""),
                        "since": since.isoformat() if hasattr(since, "isoformat")
                        else str(since)})
    return out
