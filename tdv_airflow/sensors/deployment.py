"""The sensor that waits for a deployment stack and returns its endpoint."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue
from airflow.sdk.exceptions import AirflowFailException

from tdv_airflow.links import ApiEndpointLink, CloudFormationStackLink
from tdv_airflow.operators.base import AwsConnectionMixin, aws_template_fields, is_literal
from tdv_airflow.operators.config import (
    default_deferrable,
    default_poll_interval,
    default_sensor_mode,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

    from tdv_airflow.core.stack_events import EventTail


class StackStatusSensor(AwsConnectionMixin, BaseSensorOperator):
    """Wait until the stack is complete; return its endpoint.

    Succeeds on CREATE_COMPLETE, UPDATE_COMPLETE and IMPORT_COMPLETE with the sensor
    contract (``stack_name``, ``stack_id``, ``stack_status``, ``api_name``,
    ``api_endpoint``, ``outputs``). For a function URL (``FrontDoor`` ``URL``)
    ``api_endpoint`` is the URL of the alias ``live`` (read with
    ``lambda:GetFunctionUrlConfig``), and ``api_endpoint_reason`` is added: ``None``, or
    why there is no URL yet (it is created on the alias ``live`` at the first promotion,
    so it appears after the promote task). Fails at once, without retries, on any failure state
    (CREATE_FAILED, ROLLBACK_IN_PROGRESS, ROLLBACK_COMPLETE, UPDATE_ROLLBACK_IN_PROGRESS,
    UPDATE_ROLLBACK_COMPLETE, DELETE_FAILED ...) with the status, its reason and the first
    failed resource of the latest operation. With ``expected_fingerprint``, a stack in
    UPDATE_ROLLBACK_COMPLETE (or IMPORT_ROLLBACK_COMPLETE) that serves exactly the wanted
    state (it carries that fingerprint: e.g. the version this run re-deployed, which a
    failed update of another run rolled back to) succeeds; one whose own update rolled
    back still fails. New stack events are logged as they arrive. Waits in ``poke`` or
    ``reschedule`` mode, or on the triggerer with ``deferrable=True``.

    :param stack_name: the stack name or id (templated).
    :param expected_fingerprint: the ``fingerprint`` of the create step's result, e.g.
        ``create.output["fingerprint"]`` (templated); ``None`` treats every rolled-back
        stack as a failure.
    :param deferrable: wait on the triggerer (frees the worker slot between polls);
        default ``[operators] default_deferrable``.
    :param not_found_grace_period: seconds a missing stack is waited for (it may not be
        created yet) before the sensor fails.
    :param poke_interval: seconds between polls; default ``[tdv_airflow] poll_interval`` (30).
    :param mode: ``"poke"`` or ``"reschedule"``; default ``[tdv_airflow] sensor_mode``
        (``poke``).
    """

    template_fields: Sequence[str] = aws_template_fields("stack_name", "expected_fingerprint")
    operator_extra_links = (CloudFormationStackLink(), ApiEndpointLink())
    ui_color = "#fff2cc"

    def __init__(
        self,
        *,
        stack_name: str,
        expected_fingerprint: str | None = None,
        deferrable: bool | None = None,
        not_found_grace_period: float = 60.0,
        poke_interval: timedelta | float | None = None,
        mode: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            poke_interval=default_poll_interval(None) if poke_interval is None else poke_interval,
            mode=default_sensor_mode(mode), **kwargs)
        self.stack_name = stack_name
        if expected_fingerprint is not None and is_literal(expected_fingerprint):
            from tdv_airflow.core.watch import check_fingerprint

            check_fingerprint(expected_fingerprint)
        self.expected_fingerprint = expected_fingerprint
        self.deferrable = default_deferrable(deferrable)
        if isinstance(not_found_grace_period, bool) or not isinstance(
                not_found_grace_period, int | float) or not_found_grace_period < 0:
            from tdv_airflow.exceptions import InvalidInputError

            raise InvalidInputError(f"not_found_grace_period must be a number of seconds >= 0, "
                                    f"got {not_found_grace_period!r}")
        self.not_found_grace_period = float(not_found_grace_period)
        self._first_poke_at: datetime | None = None
        self._tail: EventTail | None = None
        self._stack_id_pushed = False

    def execute(self, context: Context) -> Any:
        """Poke once; when the stack is still in progress, wait as configured.

        :param context: the task context.
        """
        if not self.deferrable:
            return super().execute(context)
        endpoint = self._check(context)
        if endpoint is not None:
            return endpoint
        elapsed = (datetime.now(UTC) - self._started_at(context)).total_seconds()
        self.defer(
            trigger=self.stack_trigger(
                self.stack_name, self.poke_interval,
                not_found_grace_period=max(0.0, self.not_found_grace_period - elapsed),
                after_event_id=self._tail.last_event_id if self._tail else None,
                expected_fingerprint=self._expected()),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        """Resume after the trigger fired: the endpoint, or the stack's failure.

        :param context: the task context.
        :param event: the trigger's payload.
        """
        from tdv_airflow.exceptions import StackFailedError
        from tdv_airflow.triggers.deployment import result_from_event

        try:
            return self._with_endpoint(result_from_event(event))
        except StackFailedError as exc:
            raise AirflowFailException(str(exc)) from exc

    def poke(self, context: Context) -> bool | PokeReturnValue:
        """Check the stack once; done (with the endpoint as XCom) when it is complete.

        :param context: the task context.
        :raises AirflowFailException: when the stack is in a failure state.
        :raises StackNotFoundError: when it is still absent after the grace period.
        """
        endpoint = self._check(context)
        return False if endpoint is None else PokeReturnValue(is_done=True, xcom_value=endpoint)

    def _check(self, context: Context) -> dict[str, Any] | None:
        """One poll (:func:`tdv_airflow.core.watch.poll_stack`): the sensor contract once
        the stack is complete, ``None`` while it is not."""
        from tdv_airflow.core.stack_events import EventTail
        from tdv_airflow.core.watch import poll_stack
        from tdv_airflow.exceptions import StackFailedError

        if self._tail is None:
            # A rescheduled poke runs in a fresh process: skip what earlier pokes logged.
            rescheduled = self.reschedule and context["ti"].get_first_reschedule_date(context)
            since = (datetime.now(UTC) - timedelta(seconds=self.poke_interval + 10)
                     if rescheduled else None)
            self._tail = EventTail(self._cfn, self.stack_name, not_before=since)
        waited = (datetime.now(UTC) - self._started_at(context)).total_seconds()
        poll = poll_stack(self._cfn, self.stack_name, self._tail, waited=waited,
                          not_found_grace_period=self.not_found_grace_period,
                          expected_fingerprint=self._expected())
        if poll.state == "missing":
            self.log.info("%s; failing after %.0f s more", poll.message,
                          self.not_found_grace_period - waited)
            return None
        if poll.stack_id is not None and not self._stack_id_pushed:
            self.push_stack_id(context, poll.stack_id)
            self._stack_id_pushed = True
        for line in poll.events:
            self.log.info("stack event: %s", line)
        self.log.info("%s", poll.message)
        try:
            poll.raise_for_state()
        except StackFailedError as exc:
            raise AirflowFailException(str(exc)) from exc
        return None if poll.result is None else self._with_endpoint(poll.result)

    def _with_endpoint(self, result: dict[str, Any]) -> dict[str, Any]:
        """The contract with a function URL's endpoint, or why it has none yet."""
        from tdv_airflow.core.front_door_aws import with_url_endpoint

        return with_url_endpoint(lambda: self.clients.lambda_, result)

    @cached_property
    def _cfn(self) -> Any:
        return self.hook.conn

    def _expected(self) -> str | None:
        """The rendered ``expected_fingerprint``, checked (``None`` when empty)."""
        from tdv_airflow.core.watch import check_fingerprint

        return check_fingerprint(self.expected_fingerprint)

    def _started_at(self, context: Context) -> datetime:
        """When this sensor began waiting (across reschedules)."""
        if self.reschedule:
            first = context["ti"].get_first_reschedule_date(context)
            if first is not None:
                return first
        if self._first_poke_at is None:
            self._first_poke_at = datetime.now(UTC)
        return self._first_poke_at
