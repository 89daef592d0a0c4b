"""The operator that deletes a deployment stack (teardown of an endpoint).

Deleting is idempotent: an absent stack counts as deleted, so a retry, or a run that
finds the stack already gone, succeeds. A ``DELETE_FAILED`` (a resource AWS could not
remove) is retried once; the second failure fails the task naming what is left.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tdv_airflow.core.validation import check_positive, check_stack_name
from tdv_airflow.exceptions import StackFailedError, StackTimeoutError
from tdv_airflow.operators.base import AWS_TEMPLATE_FIELDS, AwsConnectionMixin
from tdv_airflow.operators.deployment import _is_literal

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
        (:class:`~tdv_airflow.triggers.teardown.StackDeletedTrigger`).
    :param poll_interval: seconds between status polls (> 0).
    :param max_attempts: polls per delete attempt before giving up (> 0).
    """

    template_fields: Sequence[str] = ("stack_name", *AWS_TEMPLATE_FIELDS)
    ui_color = "#f8cecc"

    def __init__(
        self,
        *,
        stack_name: str,
        wait_for_completion: bool = True,
        deferrable: bool = False,
        poll_interval: float = 30.0,
        max_attempts: int = 120,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if _is_literal(stack_name):
            check_stack_name(stack_name)
        self.stack_name = stack_name
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poll_interval = check_positive(poll_interval, "poll_interval")
        self.max_attempts = int(check_positive(max_attempts, "max_attempts"))

    def execute(self, context: Context) -> dict[str, Any]:
        """Delete the stack; wait or defer if asked.

        :param context: the task context.
        """
        from tdv_airflow.core import retention as lifecycle
        from tdv_airflow.core import stacks

        stack_name = check_stack_name(self.stack_name)
        cfn = self.hook.conn
        with lifecycle.aws_reachable(f"delete of stack {stack_name!r}"):
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
            result = lifecycle.teardown(cfn, stack_name, poll_interval=self.poll_interval,
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
        from tdv_airflow.core import retention as lifecycle
        from tdv_airflow.triggers.teardown import DELETE_FAILED, DELETED

        status = (event or {}).get("status")
        if status == DELETED:
            return self._result(True, "DELETE_COMPLETE")
        if status != DELETE_FAILED:
            raise StackTimeoutError(str((event or {}).get("message")
                                        or f"unexpected trigger event {event!r}"))
        cfn = self.hook.conn
        with lifecycle.aws_reachable(f"delete of stack {self.stack_name!r}"):
            if attempt < 2:
                self.log.warning("delete of stack %s failed (attempt 1 of 2): retrying",
                                 self.stack_name)
                cfn.delete_stack(StackName=stack_id)
                self.defer(trigger=self._trigger(stack_id), method_name="execute_complete",
                           kwargs={"stack_id": stack_id, "attempt": attempt + 1})
            left = lifecycle.resources_left(cfn, stack_id)
        raise StackFailedError(self.stack_name, "DELETE_FAILED", "deleted twice without success",
                               "; ".join(left) or None)

    def _trigger(self, stack_id: str) -> StackDeletedTrigger:
        from tdv_airflow.triggers.teardown import StackDeletedTrigger

        return StackDeletedTrigger(
            stack_name=stack_id, poll_interval=self.poll_interval,
            max_attempts=self.max_attempts, aws_conn_id=self.aws_conn_id,
            region_name=self.region_name, verify=self.verify,
            botocore_config=self.botocore_config)

    def _result(self, deleted: bool, status: str) -> dict[str, Any]:
        return {"stack_name": self.stack_name, "deleted": deleted, "stack_status": status}
