"""Emulator fidelity: ``AWS::CloudWatch::Alarm`` in moto's CloudFormation.

On AWS a stack creates, updates and deletes its metric alarms like any other resource:
``Ref`` is the alarm's name, ``Fn::GetAtt Arn`` its ARN, ``DescribeAlarms`` lists it and
``SetAlarmState`` can force it into ``ALARM``. moto 5.2.5 keeps alarms in its CloudWatch
backend but has no CloudFormation model for them: a stack skips the resource, ``Ref``
resolves to nothing, and the alarms a deployment relies on to roll back never exist.
:func:`install` registers a model that goes through the backend's ``put_metric_alarm``
and ``delete_alarms``, as CloudFormation goes through ``PutMetricAlarm`` and
``DeleteAlarms``:

* a created alarm starts in ``INSUFFICIENT_DATA`` ("Unchecked: Initial alarm creation"),
  as ``PutMetricAlarm`` documents (moto's API starts it ``OK``); the emulator never
  evaluates metrics, so only ``SetAlarmState`` moves it;
* an update that keeps the name overwrites the configuration and leaves the state as it
  was (``PutMetricAlarm`` on an existing alarm); a new ``AlarmName`` replaces the alarm:
  the new one is created, the old one deleted. Without ``AlarmName`` the name
  CloudFormation generated stays across updates;
* the stack's delete deletes the alarm (``DeletionPolicy: Retain`` keeps it, by moto).

Single-metric alarms only (``Metrics`` math alarms are refused by name, not skipped).
:mod:`tdv_airflow.local.moto_server` calls :func:`install` before the server starts (moto
caches its map of CloudFormation models on first use). Without moto the module is not
importable (the ``local`` extra).
"""

from __future__ import annotations

from typing import Any

#: The registered model classes. moto finds models through ``__subclasses__()``, which
#: holds classes weakly: keep them alive here.
_MODELS: list[type] = []
#: The state a new alarm has on AWS, and its reason.
INITIAL_STATE = ("INSUFFICIENT_DATA", "Unchecked: Initial alarm creation")
#: Alarm state kept across an update that keeps the name (moto's ``Alarm`` attributes).
_STATE_FIELDS = ("state_value", "state_reason", "state_reason_data",
                 "state_updated_timestamp", "history")


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


def alarm_arguments(name: str, properties: dict[str, Any]) -> dict[str, Any]:
    """The backend's ``put_metric_alarm`` arguments for an alarm's resolved properties.

    :param name: the alarm's name.
    :param properties: the ``AWS::CloudWatch::Alarm`` ``Properties``, intrinsics resolved.
    :raises ValueError: on a math alarm (``Metrics``), or without exactly one of
        ``Statistic`` and ``ExtendedStatistic`` (CloudFormation fails such a resource).
    """
    if properties.get("Metrics"):
        raise ValueError(f"alarm {name!r}: Metrics (math alarms) are not supported by the "
                         "emulator's AWS::CloudWatch::Alarm; use MetricName")
    if bool(properties.get("Statistic")) == bool(properties.get("ExtendedStatistic")):
        raise ValueError(f"alarm {name!r}: exactly one of Statistic and ExtendedStatistic is "
                         f"expected, got {properties.get('Statistic')!r} and "
                         f"{properties.get('ExtendedStatistic')!r}")
    optional = properties.get("DatapointsToAlarm")
    return {
        "name": name,
        "namespace": properties["Namespace"],
        "metric_name": properties["MetricName"],
        "comparison_operator": properties["ComparisonOperator"],
        "evaluation_periods": int(properties["EvaluationPeriods"]),
        "datapoints_to_alarm": None if optional is None else int(optional),
        "period": int(properties.get("Period", 60)),
        "threshold": float(properties["Threshold"]),
        "statistic": properties.get("Statistic"),
        "extended_statistic": properties.get("ExtendedStatistic"),
        "description": properties.get("AlarmDescription", ""),
        "dimensions": [{"Name": d["Name"], "Value": str(d["Value"])}
                       for d in properties.get("Dimensions") or []],
        "alarm_actions": list(properties.get("AlarmActions") or []),
        "ok_actions": list(properties.get("OKActions") or []),
        "insufficient_data_actions": list(properties.get("InsufficientDataActions") or []),
        "unit": properties.get("Unit"),
        "actions_enabled": _truthy(properties.get("ActionsEnabled", True)),
        "treat_missing_data": properties.get("TreatMissingData"),
        "evaluate_low_sample_count_percentile":
            properties.get("EvaluateLowSampleCountPercentile"),
        "tags": list(properties.get("Tags") or []) or None,
    }


def install() -> None:
    """Register the ``AWS::CloudWatch::Alarm`` model (idempotent)."""
    from moto.cloudformation.parsing import get_model_list, get_model_map, get_name_type_map
    from moto.cloudwatch.models import cloudwatch_backends
    from moto.cloudwatch.utils import make_arn_for_alarm
    from moto.core.common_models import CloudFormationModel

    if "AWS::CloudWatch::Alarm" in get_model_map():
        return

    class CfnAlarm(CloudFormationModel):
        """``AWS::CloudWatch::Alarm``: ``Ref`` is the name, ``GetAtt Arn`` the ARN."""

        def __init__(self, name: str, account_id: str, region_name: str) -> None:
            self.name = name
            self.arn = make_arn_for_alarm(region_name, account_id, name)

        @property
        def physical_resource_id(self) -> str:
            return self.name

        @staticmethod
        def cloudformation_name_type() -> str:
            return "AlarmName"

        @staticmethod
        def cloudformation_type() -> str:
            return "AWS::CloudWatch::Alarm"

        @classmethod
        def has_cfn_attr(cls, attr: str) -> bool:
            return attr == "Arn"

        def get_cfn_attribute(self, attribute_name: str) -> str:
            from moto.cloudformation.exceptions import UnformattedGetAttTemplateException

            if attribute_name == "Arn":
                return self.arn
            raise UnformattedGetAttTemplateException()

        @classmethod
        def create_from_cloudformation_json(  # type: ignore[override]
            cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str,
            region_name: str, **kwargs: Any,
        ) -> CfnAlarm:
            backend = cloudwatch_backends[account_id][region_name]
            properties = cloudformation_json.get("Properties") or {}
            alarm = backend.put_metric_alarm(**alarm_arguments(resource_name, properties))
            alarm.state_value, alarm.state_reason = INITIAL_STATE
            return cls(resource_name, account_id, region_name)

        @classmethod
        def update_from_cloudformation_json(  # type: ignore[override]
            cls, original_resource: CfnAlarm, new_resource_name: str,
            cloudformation_json: dict[str, Any], account_id: str, region_name: str,
        ) -> CfnAlarm:
            properties = cloudformation_json.get("Properties") or {}
            name = properties.get("AlarmName") or original_resource.name
            if name != original_resource.name:  # a new name replaces the alarm
                created = cls.create_from_cloudformation_json(
                    name, cloudformation_json, account_id, region_name)
                original_resource.delete(account_id, region_name)
                return created
            backend = cloudwatch_backends[account_id][region_name]
            old = backend.alarms.get(name)
            alarm = backend.put_metric_alarm(**alarm_arguments(name, properties))
            if old is None:
                alarm.state_value, alarm.state_reason = INITIAL_STATE
            else:
                for field in _STATE_FIELDS:
                    setattr(alarm, field, getattr(old, field))
            return cls(name, account_id, region_name)

        def delete(self, account_id: str, region_name: str) -> None:
            cloudwatch_backends[account_id][region_name].delete_alarms([self.name])

        def is_created(self) -> bool:
            return True

    _MODELS.append(CfnAlarm)
    get_model_list.cache_clear()
    get_model_map.cache_clear()
    get_name_type_map.cache_clear()
