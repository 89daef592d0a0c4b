"""The task that shifts a validated version into the ``live`` alias, step by step, and
rolls it back by itself when an alarm fires during a bake.

It waits between steps, so it is a sensor: ``poke`` and ``reschedule`` modes, or the
triggerer with ``deferrable=True`` (:class:`tdv_airflow.triggers.rollout.BakeTrigger`).
Every poke reads the alias (whose description holds the rollout's state, see
:mod:`tdv_airflow.core.rollout`) and takes one step: a retried, rescheduled or resumed
task continues where AWS says the rollout is, and a finished one changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import AssetAlias, BaseSensorOperator, PokeReturnValue
from airflow.sdk.exceptions import AirflowFailException

from tdv_airflow.assets import ENDPOINT_ALIAS, announce_live, with_asset
from tdv_airflow.lineage import OpenLineageMixin, of_promote
from tdv_airflow.links import CloudFormationStackLink
from tdv_airflow.operators.base import (
    AwsConnectionMixin,
    aws_template_fields,
    described_stack,
    is_literal,
)
from tdv_airflow.operators.config import (
    default_deferrable,
    default_poll_interval,
    default_sensor_mode,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

    from tdv_airflow.core.rollout import Step, Target


class PromoteOperator(OpenLineageMixin, AwsConnectionMixin, BaseSensorOperator):
    """Promote a validated version: ``all_at_once``, ``canary`` (``canary_weight`` for
    ``bake_seconds``, then all) or ``linear`` (``linear_steps`` equal steps, each baked).

    While the candidate takes a share, the stack's alarms (``AlarmNames`` output, or
    ``alarm_names``) are watched; one in ALARM sets the weights back to the previous
    version and fails the task without retries, naming the alarm, its reason and time.
    Once the candidate takes all traffic, versions beyond the newest ``keep_versions``
    are deleted (never the live or the previous one). Returns ``{"stack_name", "version",
    "strategy", "live": {...}, "retired": [...]}``: ``live`` says which model answers.

    :param stack_name: the stack (templated).
    :param version: the validated version, e.g. ``validate.output["version"]`` (templated).
    :param strategy: ``"all_at_once"``, ``"canary"`` or ``"linear"`` (templated).
    :param canary_weight: the canary's share of traffic, between 0 and 1 exclusive.
    :param linear_steps: the number of equal steps of ``linear``.
    :param bake_seconds: how long each step but the last is watched.
    :param alarm_names: the alarms to watch; ``None``: the stack's own (templated).
    :param keep_versions: how many of the newest versions stay published (templated).
    :param deferrable: wait on the triggerer; default ``[operators] default_deferrable``.
    :param poke_interval: seconds between polls; default ``[tdv_airflow] poll_interval``.
    :param mode: ``"poke"`` or ``"reschedule"``; default ``[tdv_airflow] sensor_mode``.
    :param endpoint_alias: the asset alias through which the endpoint's asset event is
        added once the version is live (:mod:`tdv_airflow.assets`: the asset
        ``tdv-endpoint://{region}/{stack}``, its extra the stack, version, endpoint URL,
        model key and digest); ``None``: no event.
    """

    template_fields: Sequence[str] = aws_template_fields(
        "stack_name", "version", "strategy", "canary_weight", "linear_steps", "bake_seconds",
        "alarm_names", "keep_versions")
    operator_extra_links = (CloudFormationStackLink(),)
    ui_color = "#d5e8d4"

    def __init__(self, *, stack_name: str, version: str | int, strategy: str = "all_at_once",
                 canary_weight: float = 0.1, linear_steps: int = 4,
                 bake_seconds: float = 600.0, alarm_names: list[str] | None = None,
                 keep_versions: int | str = 5, deferrable: bool | None = None,
                 poke_interval: timedelta | float | None = None, mode: str | None = None,
                 endpoint_alias: str | None = ENDPOINT_ALIAS, **kwargs: Any) -> None:
        if endpoint_alias:
            kwargs["outlets"] = with_asset(kwargs.get("outlets"), AssetAlias(endpoint_alias))
        super().__init__(
            poke_interval=default_poll_interval(None) if poke_interval is None else poke_interval,
            mode=default_sensor_mode(mode), **kwargs)
        self.stack_name = stack_name
        self.version = version
        self.strategy = strategy
        self.canary_weight = canary_weight
        self.linear_steps = linear_steps
        self.bake_seconds = bake_seconds
        self.alarm_names = alarm_names
        self.keep_versions = keep_versions
        self.deferrable = default_deferrable(deferrable)
        self.endpoint_alias = endpoint_alias
        self._settings()  # literal arguments are checked when the DAG is parsed

    def _settings(self) -> tuple[list[float], float]:
        """The checked plan and bake time (whatever is known yet)."""
        from tdv_airflow.core.alarms import check_alarm_names
        from tdv_airflow.core.rollout import check_bake, plan
        from tdv_airflow.core.validation import check_stack_name
        from tdv_airflow.core.versions import check_version

        if is_literal(self.stack_name):
            check_stack_name(self.stack_name)
        if is_literal(self.version):
            check_version(self.version)
        if self.alarm_names is not None and is_literal(self.alarm_names):
            check_alarm_names(self.alarm_names)
        if is_literal(self.keep_versions):
            from tdv_airflow.operators.checks import keep_count

            keep_count(self.keep_versions)
        if not (is_literal(self.strategy) and is_literal(self.canary_weight)
                and is_literal(self.linear_steps) and is_literal(self.bake_seconds)):
            return [1.0], 1.0
        return (plan(self.strategy, _number(self.canary_weight), _number(self.linear_steps)),
                check_bake(_number(self.bake_seconds)))

    def execute(self, context: Context) -> Any:
        """Take the first step; wait as configured for the next ones.

        :param context: the task context.
        """
        if not self.deferrable:
            return super().execute(context)
        return self._step_or_defer(context)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        """Resume after a bake: take the next step (or roll back), maybe defer again.

        :param context: the task context.
        :param event: the trigger's payload (the alarms are read again anyway).
        """
        return self._step_or_defer(context)

    def _step_or_defer(self, context: Context) -> Any:
        from tdv_airflow.triggers.rollout import BakeTrigger

        target, step = self._step(context)
        if step.phase == "live":
            return self._finish(context, target, step)
        self.defer(trigger=BakeTrigger(stack_name=target.stack_name,
                                       alarm_names=self._alarms(target),
                                       until=float(step.until or 0),
                                       poll_interval=float(self.poke_interval),
                                       **self.connection_kwargs),
                   method_name="execute_complete",
                   timeout=timedelta(seconds=self.timeout))

    def poke(self, context: Context) -> bool | PokeReturnValue:
        """One step of the promotion; done (with the result as XCom) once live.

        :param context: the task context.
        """
        target, step = self._step(context)
        if step.phase != "live":
            return False
        return PokeReturnValue(is_done=True, xcom_value=self._finish(context, target, step))

    def _alarms(self, target: Target) -> list[str]:
        from tdv_airflow.core.alarms import check_alarm_names

        if self.alarm_names is None:
            return target.alarm_names
        return check_alarm_names(self.alarm_names)

    def _step(self, context: Context) -> tuple[Target, Step]:
        """Read the alias and alarms, take one step, log it; fail on a rollback."""
        from tdv_airflow.core.alarms import firing
        from tdv_airflow.core.clients import aws_reachable
        from tdv_airflow.core.rollout import promote_step, target_of
        from tdv_airflow.core.versions import check_version
        from tdv_airflow.exceptions import AlarmRollbackError

        weights, bake = self._settings()
        version = check_version(self.version)
        clients = self.clients
        with aws_reachable(f"promotion of version {version} of stack {self.stack_name!r}"):
            self._described = described_stack(clients, str(self.stack_name))  # lineage, asset
            target = target_of(self._described)
            alarms = self._alarms(target)
            fired = firing(clients.cloudwatch, alarms) if alarms and len(weights) > 1 else []
            step = promote_step(clients.lambda_, target, version, weights, bake, fired)
        if step.phase == "rolled_back":
            named = "; ".join(f"{a['name']} since {a['since']}: {a['reason']}" for a in fired)
            error = AlarmRollbackError(
                f"alarm(s) in ALARM while version {version} took part of the traffic of "
                f"stack {target.stack_name!r}: {named}; the live alias is back on version "
                f"{step.alias.version} alone", fired, stack_name=target.stack_name,
                version=version, restored=step.alias.version)
            raise AirflowFailException(str(error)) from error
        if step.phase == "baking":
            self.log.info("version %s takes %.0f%% of the traffic; watching %s until %s",
                          version, step.weight * 100, alarms or "no alarm",
                          _iso(step.until))
        return target, step

    def _finish(self, context: Context, target: Target, step: Step) -> dict[str, Any]:
        """Retire old versions; announce the endpoint's asset event; the result."""
        from tdv_airflow.core.rollout import describe_live
        from tdv_airflow.core.versions import prune
        from tdv_airflow.operators.checks import keep_count

        lam = self.clients.lambda_
        retired = prune(lam, target.function_name, keep_count(self.keep_versions),
                        {step.alias.version, step.alias.previous or ""})
        live = describe_live(lam, target.function_name, step.alias,
                             front_door=target.front_door)
        self.log.info("version %s is live (model %s); previous: %s; retired: %s",
                      step.alias.version, [s.get("model_s3_key") for s in live["serving"]],
                      step.alias.previous, retired or "none")
        if self.endpoint_alias:
            announce_live(context, self.endpoint_alias, self.clients, self._described, live)
        result = {"stack_name": target.stack_name, "version": step.alias.version,
                  "strategy": self.strategy, "live": live, "retired": retired}
        self._lineage = of_promote(self._described, result)  # the endpoint at this version
        return result


def _number(value: Any) -> Any:
    """A rendered template's number (``"0.1"`` -> 0.1), anything else as it is."""
    if isinstance(value, str):
        try:
            return int(value) if value.strip().isdigit() else float(value)
        except ValueError:
            return value
    return value


def _iso(epoch: float | None) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch or 0, UTC).isoformat(timespec="seconds")
