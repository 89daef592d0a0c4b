"""The deployment's notifications, built from real task outcomes on the emulator and sent
through the SMTP provider's notifier to a real local SMTP server (aiosmtpd): a rejected
candidate, an automatic rollback on an alarm, a version gone live; and the rules of the
notifier (no connection: nothing sent; another notifier plugs in; bad arguments refused)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from airflow.sdk import BaseNotifier
from airflow.sdk.exceptions import AirflowFailException

from tdv_airflow.exceptions import AlarmRollbackError, CandidateRejectedError, InvalidInputError
from tdv_airflow.local.aws import FAKE_SECRET_ACCESS_KEY
from tdv_airflow.notifications import Message, deployment_notifiers
from tdv_airflow.operators import PromoteOperator
from testkit.deployed import DeployedStack
from testkit.mailbox import RECIPIENT, SENDER, Mailbox, body_of, local_smtp_server
from testkit.task_context import FakeTaskInstance
from tests.airflow.test_rollout_operators import (  # noqa: F401 - the fixture
    CONNECTION,
    STACK,
    _validate,
    alarm_during_canary,
    candidate,
)


@pytest.fixture
def mailbox(monkeypatch: pytest.MonkeyPatch) -> Any:
    """A local SMTP server, named by the connection ``smtp_default``."""
    with local_smtp_server() as box:
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", box.connection())
        yield box


def _one_mail(mailbox: Mailbox, count: int) -> tuple[str, str]:
    """The ``count``-th mail's subject and body, once it is there (and no more came)."""
    mails = mailbox.wait_for(count)
    assert len(mails) == count, [m["Subject"] for m in mails]
    assert mailbox.envelopes[-1] == (SENDER, [RECIPIENT])
    body = body_of(mails[-1])
    assert FAKE_SECRET_ACCESS_KEY not in body and "smtp" not in body.lower()
    return str(mails[-1]["Subject"]), body


def test_a_candidates_rejection_rollback_and_promotion_each_mail_what_happened(
        candidate: tuple[DeployedStack, dict[str, Any]],  # noqa: F811 - the fixture
        task_context: Callable[..., dict[str, Any]], mailbox: Mailbox) -> None:
    live, created = candidate
    notify = deployment_notifiers()  # recipients: the connection's extra notify_to

    with pytest.raises(AirflowFailException) as rejected:  # a wrong expectation
        _validate(created, [3.0, 7.0]).execute(task_context())
    assert isinstance(rejected.value.__cause__, CandidateRejectedError)
    notify.rejected(task_context(exception=rejected.value))
    subject, body = _one_mail(mailbox, 1)
    assert subject == f"[tdv-airflow] {STACK}: candidate version 2 rejected, it answered wrongly"
    for fact in ("Candidate version</th><td><pre style='margin:0;white-space:pre-wrap'>2<",
                 "[[1, 2], [3, 4]]", "predictions [3.0, 7.0]", "predictions [6.0, 14.0]",
                 "status 200", "predictions [6.0, 14.0], expected [3.0, 7.0]"):
        assert fact in body, (fact, body)

    version = _validate(created, [6.0, 14.0]).execute(task_context())["version"]
    promote, failed = alarm_during_canary(live, version, task_context)
    assert isinstance(failed.__cause__, AlarmRollbackError)
    notify.rolled_back(task_context(exception=failed, task=promote))
    subject, body = _one_mail(mailbox, 2)
    assert subject == f"[tdv-airflow] {STACK}: version 2 rolled back to version 1 on an alarm"
    for fact in (f"{STACK}-api-5xx in ALARM since ", ": Threshold Crossed: 3 datapoints",
                 "version 1 serves all traffic again", "version 2 (it had taken part"):
        assert fact in body, (fact, body)

    cw = live.session.client("cloudwatch", endpoint_url=live.auth.endpoint_url)
    cw.set_alarm_state(AlarmName=f"{STACK}-api-5xx", StateValue="OK", StateReason="quiet")
    ti = FakeTaskInstance(task_id="promote")
    now = PromoteOperator(task_id="promote", stack_name=STACK, version=version, mode="poke",
                          deferrable=False, **CONNECTION)
    ti.xcom_push("return_value", now.execute(task_context(ti)))
    notify.live(task_context(ti, task=now))
    subject, body = _one_mail(mailbox, 3)
    assert subject == f"[tdv-airflow] {STACK}: version 2 is live"
    endpoint = {o["OutputKey"]: o["OutputValue"] for o in live.clients.cloudformation
                .describe_stacks(StackName=STACK)["Stacks"][0]["Outputs"]}["ApiEndpoint"]
    for fact in (endpoint, "models/sec/v2/model.pkl", "2 (previous: 1; strategy all_at_once)",
                 "no ValidateCandidateOperator upstream"):
        assert fact in body, (fact, body)
    assert len(next(line for line in body.split("<tr>") if "SHA-256" in line)) > 64


def _rejection() -> CandidateRejectedError:
    return CandidateRejectedError(
        "candidate version 7 of stack 'tdv-x' answered wrongly", stack_name="tdv-x",
        version="7", request={"payload": {"rows": [[1]]}, "expected_status": 200,
                              "expected_predictions": [1]},
        answer={"status": 200, "predictions": [0], "body": '{"predictions": [0]}'},
        problems=["predictions [0], expected [1]"])


def test_another_notifier_plugs_in_and_gets_the_final_text(
        task_context: Callable[..., dict[str, Any]]) -> None:
    sent: list[Message] = []

    class Collect(BaseNotifier):
        def __init__(self, message: Message) -> None:
            super().__init__()
            self.message = message

        def notify(self, context: Any) -> None:
            sent.append(self.message)

    notify = deployment_notifiers(notifier_factory=Collect)
    notify.rejected(task_context(exception=_rejection()))
    notify.rolled_back(task_context(exception=RuntimeError("AWS said {{ no }}")))
    assert [m.outcome for m in sent] == ["rejected", "failed"]
    assert "Got: status 200, predictions [0]" in sent[0].text
    assert sent[0].subject == "[tdv-airflow] tdv-x: candidate version 7 rejected, it answered " \
                              "wrongly"
    assert "Error: RuntimeError: AWS said {{ no }}" in sent[1].text  # not rendered as Jinja


def test_without_the_connection_nothing_is_sent_and_the_log_says_so(
        task_context: Callable[..., dict[str, Any]], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_SMTP_DEFAULT", raising=False)
    deployment_notifiers(smtp_conn_id="smtp_nowhere").rejected(
        task_context(exception=_rejection()))
    assert "no connection 'smtp_nowhere': the 'rejected' notification is not sent" in caplog.text


def test_without_a_recipient_the_callback_fails_naming_the_extra(
        task_context: Callable[..., dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    with local_smtp_server() as box:
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", box.connection(notify_to=None))
        with pytest.raises(InvalidInputError, match="set the extra 'notify_to' of connection "
                           "'smtp_default'"):
            deployment_notifiers().rejected(task_context(exception=_rejection()))
        assert box.received == []


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"to": []}, r"invalid to \[\]"),
    ({"to": ""}, "invalid to ''"),
    ({"smtp_conn_id": ""}, "invalid smtp_conn_id ''"),
    ({"notifier_factory": 3}, "invalid notifier_factory 3"),
])
def test_bad_arguments_are_refused_when_the_dag_is_parsed(kwargs: dict[str, Any],
                                                          message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        deployment_notifiers(**kwargs)
