"""Every exception tdv-airflow raises.

The core never imports Airflow, so these derive from built-in exceptions; Airflow
fails a task on any exception. Messages name the bad value, the rule it broke and,
where there is one, what to do.
"""

from __future__ import annotations

from typing import Any


class TdvError(Exception):
    """Base class of all tdv-airflow errors."""


class InvalidInputError(TdvError, ValueError):
    """An argument is wrong; raised before anything is created in AWS."""


class ArtifactError(TdvError):
    """A deployment artifact could not be built, pickled or uploaded."""


class TemplateError(InvalidInputError):
    """The CloudFormation template is missing, unreadable or lacks what we need."""


class StackNotFoundError(TdvError):
    """The CloudFormation stack does not exist."""

    def __init__(self, stack_name: str) -> None:
        super().__init__(f"CloudFormation stack {stack_name!r} does not exist")
        self.stack_name = stack_name


class StackFailedError(TdvError):
    """The stack reached a failure state (or one from which only delete is possible)."""

    def __init__(self, stack_name: str, status: str, reason: str | None = None,
                 failed_event: str | None = None) -> None:
        msg = f"CloudFormation stack {stack_name!r} is {status}"
        if reason:
            msg += f": {reason}"
        if failed_event:
            msg += f"; first failed resource: {failed_event}"
        super().__init__(msg)
        self.stack_name = stack_name
        self.status = status
        self.reason = reason
        self.failed_event = failed_event


class StackExistsError(TdvError):
    """The stack exists and the caller asked to fail in that case."""


class StackTimeoutError(TdvError):
    """The stack did not reach a final state in the time allowed."""


class LocalRunError(TdvError):
    """The deployed function cannot be found, fetched, verified or started locally."""


class EndpointAuthError(TdvError):
    """An endpoint cannot be called or served as its authentication mode needs."""


class EndpointCheckError(TdvError):
    """A deployed endpoint answered a test request wrongly (status or predictions)."""


class LocalAwsError(TdvError):
    """The embedded local AWS (moto server) could not be started or reached."""


class AwsUnreachableError(TdvError):
    """An AWS endpoint did not answer (connection refused, reset or timed out).

    Nothing about the request's outcome is known: re-running the task is safe, as every
    tdv-airflow step is idempotent (content-addressed uploads, fingerprinted stacks).
    """

    def __init__(self, endpoint_url: str | None, operation: str, cause: str) -> None:
        where = endpoint_url or "the AWS endpoint"
        super().__init__(f"could not reach {where} during {operation}: {cause}; check that "
                         f"the endpoint is up and reachable, then retry the task (it is "
                         f"safe to retry)")
        self.endpoint_url = endpoint_url
        self.operation = operation


class AwsUnavailableError(AwsUnreachableError):
    """AWS answered, but kept throttling or failing transiently (``Throttling``,
    ``SlowDown``, ``ServiceUnavailable``, HTTP 429/500/502/503/504 ...) until botocore's
    retries were spent.

    Re-running the task later is safe, as for :class:`AwsUnreachableError`.

    :param endpoint_url: the endpoint that answered (``None``: not known).
    :param operation: the step, e.g. ``"prepare of s3://bucket/model.pkl"``.
    :param code: AWS's error code.
    :param status: the HTTP status of the last answer.
    :param attempts: the attempts made (botocore's ``RetryAttempts`` + 1).
    :param message: AWS's error message.
    """

    def __init__(self, endpoint_url: str | None, operation: str, *, code: str,
                 status: int | None, attempts: int, message: str = "") -> None:
        where = endpoint_url or "the AWS endpoint"
        said = f": {message}" if message else ""
        TdvError.__init__(
            self, f"{where} answered {code} (HTTP {status}{said}) during {operation}, after "
            f"{attempts} attempt{'s' if attempts != 1 else ''}: AWS is throttling or "
            f"unavailable; retry the task later (it is safe to retry), or allow more "
            f"attempts (botocore_config={{'retries': {{'max_attempts': N}}}})")
        self.endpoint_url = endpoint_url
        self.operation = operation
        self.code = code
        self.status = status
        self.attempts = attempts


class EmulatedAccessDeniedError(TdvError):
    """Inside the embedded AWS: a call CloudFormation makes with a stack's service role is
    one the role's policies refuse (``tdv_airflow.local.fix_service_role`` turns it into
    the failed resource and rolled-back stack AWS shows; it never reaches a caller)."""

    def __init__(self, logical_id: str, resource_type: str, reason: str) -> None:
        super().__init__(reason)
        self.logical_id = logical_id
        self.resource_type = resource_type
        self.reason = reason


class UnknownVersionError(InvalidInputError):
    """A Lambda version (or ``"previous"``) named by the caller does not exist."""


class CandidateRejectedError(EndpointCheckError):
    """A candidate version answered its validation requests wrongly; the live alias was
    not moved.

    :param stack_name: the stack whose candidate it is.
    :param version: the candidate's version.
    :param request: the request it answered wrongly (payload, expected status and
        predictions).
    :param answer: its answer (status, predictions, the body as quoted).
    :param problems: what was wrong with the answer.
    """

    def __init__(self, message: str, *, stack_name: str | None = None,
                 version: str | None = None, request: dict[str, Any] | None = None,
                 answer: dict[str, Any] | None = None, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.stack_name = stack_name
        self.version = version
        self.request = request
        self.answer = answer
        self.problems = problems or []


class RolloutError(TdvError):
    """A promotion cannot go on (the alias is not the deployment's, or was changed by
    someone else while it was being moved)."""


class AlarmRollbackError(RolloutError):
    """An alarm went into ALARM while a candidate took part of the traffic; the live alias
    was set back to the previous version before this was raised.

    :param alarms: the alarms in ALARM (name, reason, since), as the rollback saw them.
    :param stack_name: the stack.
    :param version: the candidate that took part of the traffic.
    :param restored: the version the live alias serves alone again.
    """

    def __init__(self, message: str, alarms: list[dict[str, str]], *,
                 stack_name: str | None = None, version: str | None = None,
                 restored: str | None = None) -> None:
        super().__init__(message)
        self.alarms = alarms
        self.stack_name = stack_name
        self.version = version
        self.restored = restored
