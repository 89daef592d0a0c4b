"""Notifications a person reads in the morning: what an unattended deploy did.

Three outcomes reach someone, each through Airflow's notifier mechanism (a
:class:`~airflow.sdk.BaseNotifier` given as a task's ``on_success_callback`` or
``on_failure_callback``):

* **a new version is live** (the promotion task succeeded): stack, endpoint, version,
  model key and SHA-256 digest, and the validation figures (each request sent, the
  predictions expected and those the candidate gave);
* **a candidate was rejected** (the validation task failed): which version of which stack
  answered what, to which request, and why that was wrong; the live version is untouched;
* **an automatic rollback** (the promotion task failed on an alarm): the alarm, its reason
  and since when, the version that was rolled back and the version restored.

Any other failure of those two tasks sends a plain "failed" message with the error. The
facts come from the task's XCom and exception (:class:`CandidateRejectedError`,
:class:`AlarmRollbackError`); nothing secret (no credential, key or connection detail) is
put in a message.

How a message travels is a *notifier factory*: a callable given the :class:`Message` that
returns the notifier sending it. The default, :func:`smtp_notifier`, returns the SMTP
provider's :class:`~airflow.providers.smtp.notifications.smtp.SmtpNotifier` on a
connection naming the server (``smtp_default``); any other notifier plugs in the same way,
e.g. ``lambda m: SlackNotifier(text=m.text, channel="#ml")``. The message is final text:
it is not rendered again as a template. Usage::

    notify = deployment_notifiers(to="ml-team@example.com")
    ValidateCandidateOperator(..., on_failure_callback=notify.rejected)
    PromoteOperator(..., on_success_callback=notify.live, on_failure_callback=notify.rolled_back)
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseNotifier

if TYPE_CHECKING:
    from airflow.sdk import Context

log = logging.getLogger(__name__)

#: The connection's extra field read for the recipients when ``to`` is not given.
RECIPIENTS_EXTRA = "notify_to"
#: How much of one value (a payload, an answer, an error) a message quotes.
_QUOTE_LIMIT = 1000


@dataclass(frozen=True)
class Message:
    """One notification: a subject and labelled facts, in order.

    :param outcome: ``"live"``, ``"rejected"``, ``"rolled_back"`` or ``"failed"``.
    :param subject: one line saying what happened.
    :param facts: ``(label, value)`` pairs.
    """

    outcome: str
    subject: str
    facts: tuple[tuple[str, str], ...]

    @property
    def text(self) -> str:
        """The message as plain text."""
        return "\n".join([self.subject, "", *(f"{label}: {value}" for label, value in self.facts)])

    @property
    def html(self) -> str:
        """The message as HTML (a heading and a two-column table)."""
        rows = "".join(f"<tr><th align='left' valign='top'>{html.escape(label)}</th>"
                       f"<td><pre style='margin:0;white-space:pre-wrap'>{html.escape(value)}"
                       "</pre></td></tr>" for label, value in self.facts)
        return f"<h3>{html.escape(self.subject)}</h3><table>{rows}</table>"


#: Gives the notifier that sends a message (``None``: not sent, the factory said why).
NotifierFactory = Callable[[Message], "BaseNotifier | None"]


def _quote(value: Any) -> str:
    """A value as a person reads it: JSON where it is JSON, cut at :data:`_QUOTE_LIMIT`."""
    if isinstance(value, str):
        text = value
    else:
        try:
            text = json.dumps(value, sort_keys=True, default=str)
        except (TypeError, ValueError):
            text = repr(value)
    return text if len(text) <= _QUOTE_LIMIT else text[:_QUOTE_LIMIT] + "..."


def _run_facts(context: Context) -> list[tuple[str, str]]:
    """Where it happened: DAG, run, task and try, and the task's log in the UI."""
    ti = context["ti"]
    facts = [("DAG run", f"{ti.dag_id} / {ti.run_id}"),
             ("Task", f"{ti.task_id} (try {getattr(ti, 'try_number', '?')})")]
    log_url = getattr(ti, "log_url", None)
    return facts + [("Log", str(log_url))] if log_url else facts


def _cause(error: BaseException | str | None, kind: type[BaseException]) -> Any:
    """``error`` or the first exception it was raised from (or during) of type ``kind``
    (the task runner may give a string instead of an exception: then ``None``)."""
    seen: set[int] = set()
    if isinstance(error, str):
        return None
    while error is not None and id(error) not in seen:
        if isinstance(error, kind):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def _failed(context: Context, what: str) -> Message:
    """The message of a failure that is neither a rejection nor a rollback."""
    error = context.get("exception")
    stack = getattr(context.get("task"), "stack_name", None)
    where = f"stack {stack}" if isinstance(stack, str) else context["ti"].dag_id
    facts = [("Error", _quote(f"{type(error).__name__}: {error}" if error else "unknown")),
             *_run_facts(context)]
    return Message("failed", f"[tdv-airflow] {where}: {what} failed", tuple(facts))


def rejected_message(context: Context) -> Message:
    """The message of a failed validation: which version of which stack answered what.

    :param context: the validation task's context (``exception`` set by the task runner).
    """
    from tdv_airflow.exceptions import CandidateRejectedError

    error = _cause(context.get("exception"), CandidateRejectedError)
    if error is None or error.version is None:
        return _failed(context, "validation of the candidate")
    request, answer = error.request or {}, error.answer or {}
    facts = [("Stack", str(error.stack_name)), ("Candidate version", str(error.version)),
             ("Request sent", _quote(request.get("payload"))),
             ("Expected", f"status {request.get('expected_status', 200)}, predictions "
                          f"{_quote(request.get('expected_predictions'))}"),
             ("Got", f"status {answer.get('status')}, predictions "
                     f"{_quote(answer.get('predictions'))}"),
             ("Problems", "; ".join(error.problems)),
             ("Answer", _quote(answer.get("body", ""))),
             ("Live traffic", "unchanged: the live alias still serves what it served"),
             *_run_facts(context)]
    return Message("rejected", f"[tdv-airflow] {error.stack_name}: candidate version "
                   f"{error.version} rejected, it answered wrongly", tuple(facts))


def rollback_message(context: Context) -> Message:
    """The message of an automatic rollback: the alarm, its reason, the version restored.

    :param context: the promotion task's context (``exception`` set by the task runner).
    """
    from tdv_airflow.exceptions import AlarmRollbackError

    error = _cause(context.get("exception"), AlarmRollbackError)
    if error is None or error.restored is None:
        return _failed(context, "promotion")
    alarms = [f"{a.get('name')} in ALARM since {a.get('since')}: {a.get('reason')}"
              for a in error.alarms] or ["(none named)"]
    facts = [("Stack", str(error.stack_name)),
             ("Rolled back", f"version {error.version} (it had taken part of the traffic)"),
             ("Restored", f"version {error.restored} serves all traffic again"),
             *(("Alarm", alarm) for alarm in alarms), *_run_facts(context)]
    return Message("rolled_back", f"[tdv-airflow] {error.stack_name}: version {error.version} "
                   f"rolled back to version {error.restored} on an alarm", tuple(facts))


def _upstream_validation(task: Any) -> Any:
    """The validation task upstream of ``task`` (the nearest), or ``None``."""
    from tdv_airflow.operators.rollout import ValidateCandidateOperator

    if task is None or not task.has_dag():
        return None
    level = list(task.upstream_list)
    seen: set[str] = set()
    while level:
        found = [t for t in level if isinstance(t, ValidateCandidateOperator)]
        if found:
            return found[0]
        seen.update(t.task_id for t in level)
        level = [u for t in level for u in t.upstream_list if u.task_id not in seen]
    return None


def _validation_facts(context: Context) -> tuple[list[tuple[str, str]], dict[str, Any]]:
    """Each validation request of the upstream validation task: sent, expected, got; and
    the candidate's record (model key and digest) from its XCom."""
    validate = _upstream_validation(context.get("task"))
    if validate is None:
        return [("Validation", "no ValidateCandidateOperator upstream")], {}
    result = context["ti"].xcom_pull(task_ids=validate.task_id) or {}
    try:  # the same run's Params and XComs render them as the validation task saw them
        requests = list(validate.render_template(validate.requests, context))
    except Exception as error:  # the mail goes out without the expectations
        requests = []
        log.warning("validation requests not rendered: %s", error)
    facts = []
    for i, answer in enumerate(result.get("answers") or []):
        request = requests[i] if i < len(requests) and isinstance(requests[i], dict) else {}
        facts.append((f"Validation request {i + 1}",
                      f"sent {_quote(request.get('payload', '?'))}\nexpected predictions "
                      f"{_quote(request.get('expected_predictions', '?'))}\ngot predictions "
                      f"{_quote(answer.get('predictions'))} (status {answer.get('status')})"))
    return facts or [("Validation", "no answers recorded")], dict(result.get("candidate") or {})


def _endpoint(task: Any, stack_name: str, live: dict[str, Any]) -> str:
    """The live endpoint: a function URL from the result, else the stack's output."""
    if live.get("endpoint"):
        return str(live["endpoint"])
    try:
        from tdv_airflow.core.front_door_aws import endpoint_status
        from tdv_airflow.core.stacks import outputs_of
        from tdv_airflow.operators.base import described_stack

        clients = task.clients
        endpoint, reason = endpoint_status(clients.lambda_,
                                           outputs_of(described_stack(clients, stack_name)))
    except Exception as error:  # the news that it is live matters more
        return f"unknown (the stack could not be read: {type(error).__name__}: {error})"
    return str(endpoint) if endpoint else f"none ({reason})"


def live_message(context: Context) -> Message:
    """The message of a successful promotion: stack, endpoint, version, model and digest,
    the validation figures.

    :param context: the promotion task's context (its return value in XCom).
    """
    ti = context["ti"]
    result = ti.xcom_pull(task_ids=ti.task_id) or {}
    stack, version = str(result.get("stack_name")), str(result.get("version"))
    live = dict(result.get("live") or {})
    validation, candidate = _validation_facts(context)
    serving = next((s for s in live.get("serving") or [] if str(s.get("version")) == version),
                   candidate)
    facts = [("Stack", stack), ("Endpoint", _endpoint(context.get("task"), stack, live)),
             ("Version", f"{version} (previous: {live.get('previous')}; strategy "
                         f"{result.get('strategy')})"),
             ("Model", str(serving.get("model_s3_key"))),
             ("Model SHA-256", str(serving.get("model_sha256"))),
             *validation,
             ("Retired versions", ", ".join(map(str, result.get("retired") or [])) or "none"),
             *_run_facts(context)]
    return Message("live", f"[tdv-airflow] {stack}: version {version} is live", tuple(facts))


class OutcomeNotifier(BaseNotifier):
    """Build one outcome's :class:`Message` from the task's context and have the notifier
    the factory gives send it.

    :param build: makes the message from the context (e.g. :func:`live_message`).
    :param factory: gives the notifier that sends it (e.g. :func:`smtp_notifier`).
    """

    def __init__(self, build: Callable[[Context], Message], factory: NotifierFactory) -> None:
        super().__init__()
        self.build = build
        self.factory = factory

    def notify(self, context: Context) -> None:
        """Send the message (its text is final: the sender does not render it again).

        :param context: the task's context.
        """
        message = self.build(context)
        sender = self.factory(message)
        if sender is None:
            return
        self.log.info("sending %s: %s", type(sender).__name__, message.subject)
        sender.notify(context)


def _recipients(to: Any) -> str | list[str] | None:
    from tdv_airflow.exceptions import InvalidInputError

    if to is None or (isinstance(to, str) and to.strip()):
        return to
    if isinstance(to, Iterable) and not isinstance(to, str | bytes | dict):
        listed = list(to)
        if listed and all(isinstance(a, str) and a.strip() for a in listed):
            return listed
    raise InvalidInputError(f"invalid to {to!r}: expected an e-mail address, a comma-separated "
                            "string or a non-empty list of addresses, or None (the "
                            f"connection's extra {RECIPIENTS_EXTRA!r})")


def smtp_notifier(*, to: str | list[str] | None = None, smtp_conn_id: str = "smtp_default",
                  from_email: str | None = None) -> NotifierFactory:
    """The default factory: mail through the SMTP provider's ``SmtpNotifier``.

    The connection names the server (host, port, login, ``disable_tls``/``disable_ssl``
    and ``from_email`` in its extra). Without the connection nothing is sent and the task
    log says so (notifications are off until it exists).

    :param to: the recipients; ``None``: the connection's extra ``notify_to``.
    :param smtp_conn_id: the SMTP connection.
    :param from_email: the sender; ``None``: the connection's extra ``from_email``.
    :raises InvalidInputError: on a bad ``to`` or ``smtp_conn_id`` (when the DAG is parsed).
    """
    from tdv_airflow.exceptions import InvalidInputError

    recipients = _recipients(to)
    if not isinstance(smtp_conn_id, str) or not smtp_conn_id.strip():
        raise InvalidInputError(f"invalid smtp_conn_id {smtp_conn_id!r}: expected the id of "
                                "an SMTP connection, e.g. 'smtp_default'")

    def make(message: Message) -> BaseNotifier | None:
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier
        from airflow.sdk import BaseHook
        from airflow.sdk.exceptions import AirflowNotFoundException

        try:
            extra = BaseHook.get_connection(smtp_conn_id).extra_dejson
        except AirflowNotFoundException:
            log.warning(
                "no connection %r: the %r notification is not sent (%s)", smtp_conn_id,
                message.outcome, message.subject)
            return None
        to_now = _recipients(recipients or extra.get(RECIPIENTS_EXTRA))
        if not to_now:
            raise InvalidInputError(
                f"no recipient for the {message.outcome!r} notification: give to=... or set "
                f"the extra {RECIPIENTS_EXTRA!r} of connection {smtp_conn_id!r}")
        return SmtpNotifier(to=to_now, from_email=from_email, subject=message.subject,
                            html_content=message.html, smtp_conn_id=smtp_conn_id)

    return make


@dataclass(frozen=True)
class DeploymentNotifiers:
    """The callbacks of a deployment's outcomes.

    :param live: ``on_success_callback`` of the promotion task.
    :param rejected: ``on_failure_callback`` of the validation task.
    :param rolled_back: ``on_failure_callback`` of the promotion task.
    """

    live: OutcomeNotifier
    rejected: OutcomeNotifier
    rolled_back: OutcomeNotifier


def deployment_notifiers(*, to: str | list[str] | None = None,
                         smtp_conn_id: str = "smtp_default", from_email: str | None = None,
                         notifier_factory: NotifierFactory | None = None) -> DeploymentNotifiers:
    """The three notifications of a deployment, sent by mail unless another factory is given.

    :param to: the recipients (SMTP); ``None``: the connection's extra ``notify_to``.
    :param smtp_conn_id: the SMTP connection naming the server.
    :param from_email: the sender (SMTP); ``None``: the connection's extra ``from_email``.
    :param notifier_factory: gives the notifier sending a :class:`Message` (then ``to``,
        ``smtp_conn_id`` and ``from_email`` are not used).
    :raises InvalidInputError: on a bad argument.
    """
    from tdv_airflow.exceptions import InvalidInputError

    if notifier_factory is None:
        notifier_factory = smtp_notifier(to=to, smtp_conn_id=smtp_conn_id,
                                         from_email=from_email)
    elif not callable(notifier_factory):
        raise InvalidInputError(f"invalid notifier_factory {notifier_factory!r}: expected a "
                                "callable taking a Message and returning a BaseNotifier")
    return DeploymentNotifiers(live=OutcomeNotifier(live_message, notifier_factory),
                               rejected=OutcomeNotifier(rejected_message, notifier_factory),
                               rolled_back=OutcomeNotifier(rollback_message, notifier_factory))
