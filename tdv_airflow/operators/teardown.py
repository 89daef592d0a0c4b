"""Operators that delete deployment stacks: one stack (teardown of an endpoint), or a
deployment's old version stacks (retention).

Deleting is idempotent: an absent stack counts as deleted, so a retry, or a run that
finds the stack already gone, succeeds. A ``DELETE_FAILED`` (a resource AWS could not
remove) is retried once; the second failure fails the task naming what is left.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tdv_airflow.operators.base import AwsConnectionMixin, aws_template_fields, is_literal
from tdv_airflow.operators.config import default_deferrable, default_poll_interval

if TYPE_CHECKING:
    from airflow.sdk import Context

    from tdv_airflow.triggers.teardown import StackDeletedTrigger


class DeleteStackOperator(AwsConnectionMixin):
    """Delete a CloudFormation stack and (by default) wait until it is gone.

    Returns ``{"stack_name", "deleted", "stack_status"}``; ``deleted`` is False when there
    was no stack to delete.

    :param stack_name: the stack name, ``^[A-Za-z][A-Za-z0-9-]{0,127}$`` (templated).
    :param wait_for_completion: wait in the task until the stack is deleted (with
        :func:`tdv_airflow.core.retention.teardown`); when False (and not deferrable) the
        delete is only requested.
    :param deferrable: wait on the triggerer instead
        (:class:`~tdv_airflow.triggers.teardown.StackDeletedTrigger`); default
        ``[operators] default_deferrable``.
    :param poll_interval: seconds between status polls (> 0); default
        ``[tdv_airflow] poll_interval`` (30).
    :param max_attempts: polls per delete attempt before giving up (> 0).
    """

    template_fields: Sequence[str] = aws_template_fields("stack_name")
    ui_color = "#f8cecc"

    def __init__(
        self,
        *,
        stack_name: str,
        wait_for_completion: bool = True,
        deferrable: bool | None = None,
        poll_interval: float | None = None,
        max_attempts: int = 120,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        from tdv_airflow.core.validation import check_positive, check_stack_name

        if is_literal(stack_name):
            check_stack_name(stack_name)
        self.stack_name = stack_name
        self.wait_for_completion = wait_for_completion
        self.deferrable = default_deferrable(deferrable)
        self.poll_interval = check_positive(default_poll_interval(poll_interval),
                                            "poll_interval")
        self.max_attempts = int(check_positive(max_attempts, "max_attempts"))

    def execute(self, context: Context) -> dict[str, Any]:
        """Delete the stack; wait or defer if asked.

        :param context: the task context.
        """
        from tdv_airflow.core import retention, stacks
        from tdv_airflow.core.clients import aws_reachable
        from tdv_airflow.core.validation import check_stack_name

        # The core's teardown takes names and ids alike: a rendered name is checked here.
        stack_name = check_stack_name(self.stack_name)
        cfn = self.hook.conn
        with aws_reachable(f"delete of stack {stack_name!r}"):
            if self.deferrable or not self.wait_for_completion:
                stack = stacks.describe(cfn, stack_name)
                if stack is None or stack["StackStatus"] == "DELETE_COMPLETE":
                    self.log.info("stack %s does not exist: nothing to delete", stack_name)
                    return self._result(False, "DELETE_COMPLETE")
                cfn.delete_stack(StackName=stack["StackId"])
                if not self.deferrable:
                    self.log.info("asked CloudFormation to delete stack %s", stack_name)
                    return self._result(True, "DELETE_IN_PROGRESS")
                self.defer(trigger=self._trigger(stack["StackId"]),
                           method_name="execute_complete",
                           kwargs={"stack_id": stack["StackId"], "attempt": 1})
            result = retention.teardown(cfn, stack_name, poll_interval=self.poll_interval,
                                        max_attempts=self.max_attempts)
        self.log.info("stack %s: %s", stack_name,
                      "deleted" if result["deleted"] else "already absent")
        return result

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None,
                         stack_id: str = "", attempt: int = 1) -> dict[str, Any]:
        """Resume after the trigger fired: retry one DELETE_FAILED, then fail.

        :param context: the task context.
        :param event: the trigger's payload.
        :param stack_id: the id of the stack being deleted.
        :param attempt: which delete attempt the trigger watched (1 or 2).
        """
        from tdv_airflow.core import retention
        from tdv_airflow.core.clients import aws_reachable
        from tdv_airflow.exceptions import StackFailedError, StackTimeoutError
        from tdv_airflow.triggers.teardown import DELETE_FAILED, DELETED

        status = (event or {}).get("status")
        if status == DELETED:
            return self._result(True, "DELETE_COMPLETE")
        if status != DELETE_FAILED:
            raise StackTimeoutError(str((event or {}).get("message")
                                        or f"unexpected trigger event {event!r}"))
        cfn = self.hook.conn
        with aws_reachable(f"delete of stack {self.stack_name!r}"):
            if attempt < 2:
                self.log.warning("delete of stack %s failed (attempt 1 of 2): retrying",
                                 self.stack_name)
                cfn.delete_stack(StackName=stack_id)
                self.defer(trigger=self._trigger(stack_id), method_name="execute_complete",
                           kwargs={"stack_id": stack_id, "attempt": attempt + 1})
            left = retention.resources_left(cfn, stack_id)
        raise StackFailedError(self.stack_name, "DELETE_FAILED", "deleted twice without success",
                               "; ".join(left) or None)

    def _trigger(self, stack_id: str) -> StackDeletedTrigger:
        from tdv_airflow.triggers.teardown import StackDeletedTrigger

        return StackDeletedTrigger(stack_name=stack_id, poll_interval=self.poll_interval,
                                   max_attempts=self.max_attempts, **self.connection_kwargs)

    def _result(self, deleted: bool, status: str) -> dict[str, Any]:
        return {"stack_name": self.stack_name, "deleted": deleted, "stack_status": status}


class RetireVersionsOperator(AwsConnectionMixin):
    """Delete a deployment's version stacks beyond the newest ``keep_versions``.

    The deployment's stacks are those tagged ``tdv-airflow:deployment = <deployment>``
    (:class:`~tdv_airflow.operators.CreateStackOperator` tags them with its
    ``deployment``); the newest by creation time are kept, and those in ``exclude`` (e.g.
    the deployment's stable stack) are never counted nor deleted. Returns the names
    retired, newest first. Safe to retry: a stack already gone is no longer listed, so a
    retry deletes only what the first try left.

    :param deployment: the deployment, e.g. ``"tdv-iris"`` (templated).
    :param keep_versions: how many of the newest stacks to keep, at least 1; an int or a
        string of digits (templated).
    :param exclude: stack names never deleted (templated).
    :param poll_interval: seconds between polls of each delete; default
        ``[tdv_airflow] poll_interval`` (30).
    :param max_attempts: polls per delete attempt before giving up.
    """

    template_fields: Sequence[str] = aws_template_fields("deployment", "keep_versions",
                                                         "exclude")
    ui_color = "#f8cecc"

    def __init__(
        self,
        *,
        deployment: str,
        keep_versions: int | str = 3,
        exclude: Sequence[str] | str = (),
        poll_interval: float | None = None,
        max_attempts: int = 120,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        from tdv_airflow.core.validation import check_positive
        from tdv_airflow.operators.checks import check_deployment, keep_count, stack_names

        for value, check in ((deployment, check_deployment), (keep_versions, keep_count),
                             (exclude, stack_names)):
            if is_literal(value):
                check(value)
        self.deployment = deployment
        self.keep_versions = keep_versions
        self.exclude = exclude
        self.poll_interval = check_positive(default_poll_interval(poll_interval),
                                            "poll_interval")
        self.max_attempts = int(check_positive(max_attempts, "max_attempts"))

    def execute(self, context: Context) -> list[str]:
        """Delete the stacks beyond the newest ``keep_versions``; return their names.

        :param context: the task context.
        """
        from tdv_airflow.core.clients import aws_reachable
        from tdv_airflow.core.retention import retire
        from tdv_airflow.operators.checks import check_deployment, keep_count, stack_names

        deployment = check_deployment(self.deployment)
        keep = keep_count(self.keep_versions)
        exclude = stack_names(self.exclude)
        with aws_reachable(f"retirement of the old stacks of deployment {deployment!r}"):
            retired = retire(self.hook.conn, deployment, keep, poll_interval=self.poll_interval,
                             max_attempts=self.max_attempts, exclude=exclude)
        self.log.info("deployment %s: kept the newest %d stacks (besides %s), retired %s",
                      deployment, keep, list(exclude) or "none", retired or "none")
        return retired

