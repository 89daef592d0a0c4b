"""The example DAG's mail, run as a user runs it (``airflow dags test``) on the embedded AWS
with the connection ``smtp_default`` naming a real local SMTP server (aiosmtpd): a
successful promotion and a failed validation each deliver exactly one message saying what
happened. (The rollback message: ``tests/airflow/test_notifications.py``.)"""

from __future__ import annotations

import hashlib
import html
from typing import Any

import pytest

from testkit.example_dag import DAG_ID
from testkit.mailbox import RECIPIENT, SENDER, body_of, local_smtp_server
from tests.dags.test_rollout_gate import STACK, _dag_test, _key, _put_constant_model, _tail

pytestmark = pytest.mark.e2e

GOOD, BAD = "2025-08-11", "2025-08-12"


def test_a_promotion_and_a_rejection_each_mail_one_message_with_the_facts(
        s3: Any, cfn: Any, dag_bucket: str, airflow_env: dict[str, str],
        read_last_run: Any) -> None:
    with local_smtp_server() as mailbox:
        env = {**airflow_env, "AIRFLOW_CONN_SMTP_DEFAULT": mailbox.connection()}
        good = _dag_test(env, GOOD)
        assert good.returncode == 0, _tail(good)
        live = mailbox.wait_for(1)
        assert [m["Subject"] for m in live] == [f"[tdv-airflow] {STACK}: version 1 is live"], \
            _tail(good)

        _put_constant_model(s3, dag_bucket, BAD, 1)
        bad = _dag_test(env, BAD)
        run = read_last_run(DAG_ID)
        assert run["tis"]["validate_candidate"]["state"] == "failed", _tail(bad)
        mails = mailbox.wait_for(2)
    assert [m["Subject"] for m in mails[1:]] == [
        f"[tdv-airflow] {STACK}: candidate version 2 rejected, it answered wrongly"], _tail(bad)
    assert mailbox.envelopes == [(SENDER, [RECIPIENT])] * 2

    body = html.unescape(body_of(mails[0]))
    endpoint = {o["OutputKey"]: o["OutputValue"] for o in cfn.describe_stacks(
        StackName=STACK)["Stacks"][0]["Outputs"]}["ApiEndpoint"]
    model = s3.get_object(Bucket=dag_bucket, Key=_key(GOOD))["Body"].read()
    facts = (endpoint, _key(GOOD), hashlib.sha256(model).hexdigest(),
             "1 (previous: None; strategy all_at_once)", '"sepal_length": 5.1',
             "expected predictions [0, 2]", "got predictions [0, 2] (status 200)",
             f"{DAG_ID} / ")
    assert [f for f in facts if f not in body] == [], body

    body = html.unescape(body_of(mails[1]))
    facts = (f"Stack</th><td><pre style='margin:0;white-space:pre-wrap'>{STACK}<",
             "Candidate version</th><td><pre style='margin:0;white-space:pre-wrap'>2<",
             "predictions [0, 2]", "status 200, predictions [1, 1]",
             "predictions [1, 1], expected [0, 2]", '"sepal_length": 5.1',
             "unchanged: the live alias still serves what it served")
    assert [f for f in facts if f not in body] == [], body
    for mail in mails:
        text = body_of(mail)
        assert airflow_env["AWS_SECRET_ACCESS_KEY"] not in text
        assert "Signature" not in text and "X-Amz" not in text
