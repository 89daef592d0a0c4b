"""Task defaults read from Airflow's configuration when a task is built.

``deferrable`` follows ``[operators] default_deferrable`` as the Amazon provider's
operators do; the poll interval and the sensor's mode come from the provider's own
section ``[tdv_airflow]`` (declared in :mod:`tdv_airflow.provider_info`, set with
``AIRFLOW__TDV_AIRFLOW__POLL_INTERVAL`` / ``AIRFLOW__TDV_AIRFLOW__SENSOR_MODE``). An
argument given to the task, directly or through ``default_args``, always wins.
"""

from __future__ import annotations

from airflow.sdk.configuration import conf

from tdv_airflow.provider_info import CONFIG_SECTION, DEFAULT_POLL_INTERVAL, SENSOR_MODES


def _invalid(option: str, value: object, allowed: str) -> Exception:
    from tdv_airflow.exceptions import InvalidInputError

    return InvalidInputError(
        f"invalid Airflow configuration [{CONFIG_SECTION}] {option} = {value!r} "
        f"(AIRFLOW__{CONFIG_SECTION.upper()}__{option.upper()}): expected {allowed}")


def default_deferrable(deferrable: bool | None) -> bool:
    """``deferrable`` when given, else ``[operators] default_deferrable`` (False if unset).

    :param deferrable: the task's own argument (``None``: not given).
    """
    if deferrable is not None:
        return bool(deferrable)
    return conf.getboolean("operators", "default_deferrable", fallback=False)


def default_poll_interval(poll_interval: float | None) -> float:
    """``poll_interval`` when given, else ``[tdv_airflow] poll_interval`` (30 if unset).

    :param poll_interval: the task's own argument (``None``: not given).
    :raises InvalidInputError: when the configured value is not a number above 0.
    """
    if poll_interval is not None:
        return poll_interval
    raw = conf.get(CONFIG_SECTION, "poll_interval", fallback=None)
    if raw is None or not str(raw).strip():
        return DEFAULT_POLL_INTERVAL
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):
        raise _invalid("poll_interval", raw, "a number of seconds above 0, e.g. 30")
    return value


def default_sensor_mode(mode: str | None) -> str:
    """``mode`` when given, else ``[tdv_airflow] sensor_mode`` (``poke`` if unset).

    :param mode: the sensor's own argument (``None``: not given).
    :raises InvalidInputError: when the configured value is not ``poke`` or ``reschedule``.
    """
    if mode is not None:
        return mode
    raw = conf.get(CONFIG_SECTION, "sensor_mode", fallback=None)
    if raw is None or not str(raw).strip():
        return SENSOR_MODES[0]
    value = str(raw).strip().lower()
    if value not in SENSOR_MODES:
        raise _invalid("sensor_mode", raw, " or ".join(repr(m) for m in SENSOR_MODES))
    return value
