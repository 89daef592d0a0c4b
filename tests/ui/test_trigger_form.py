"""The example DAG through Airflow's UI in headless Chromium, as a new user meets it.

Against api-server, scheduler, dag-processor and triggerer on the local AWS, the test
logs in on the auth manager's page, unpauses ``retrain_and_deploy`` with its switch,
opens the trigger form and finds every Param there with its description. It edits the
Params as a person does: it pastes into the JSON editors (the array ``smoke_expected``
as the lines ``0,`` and ``2`` in brackets, the object ``dependencies``) and types into
text fields. The form refuses, with no run created, the predictions as strings
(``["0", "2"]``, the value that failed a run a minute later before the array had an
item type) and the bucket ``Bad_Bucket!`` (showing S3's rule). The run it then
triggers carries integers and the edited values, and succeeds. On the sensor's task
instance, both extra links lead where they should (the console page of the stack
the emulator holds, the endpoint of its API), and the Logs tab shows the stack events.

Every step leaves a screenshot under the test's ``tmp_path/screenshots``; the test
fails on any browser console error other than the two Airflow itself logs by design
(the UI's config asked before login, the API's refusal of the bad Params).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from testkit.airflow_api import FINISHED_RUN, AirflowApi
from testkit.airflow_ui import AirflowUi
from testkit.browser import Browser
from testkit.example_dag import DAG_BUCKET, DAG_ID
from testkit.local_topology import LocalExecutorTopology

#: The edits: a run with these must succeed and carry them.
EDITED = {"model_prefix": "ui-models",
          "dependencies": {"from_installed": ["scikit-learn"], "packaging": "layer"},
          "smoke_expected": [0, 2]}
#: Console errors Airflow logs by design: the UI's config is asked before login (401),
#: and the API refuses the trigger with bad Params (400).
UI_CONFIG_401 = "/ui/config - Failed to load resource: the server responded with a status of 401"
EXPECTED_CONSOLE = {"login-page": UI_CONFIG_401, "logged-in": UI_CONFIG_401,
                    "refused": "/dagRuns - Failed to load resource: the server responded "
                               "with a status of 400"}


def _unexpected_console_errors(browser: Browser) -> list[dict[str, Any]]:
    """SEVERE console entries, less the expected ones of their step."""
    return [e for e in browser.errors()
            if EXPECTED_CONSOLE.get(str(e["step"]).split(":")[0], "\0") not in e["message"]]


def _refused(ui: AirflowUi, api: AirflowApi, browser: Browser, what: str,
             expected: list[str]) -> str:
    """Submit the form; its alert must hold ``expected`` and no run may exist."""
    ui.submit_trigger()
    alert = ui.alert_text(expected[0])
    browser.shot(f"refused:{what}")
    for text in expected:
        assert text in alert, f"the form's alert does not say {text!r}:\n{alert}"
    assert ui.form_open(), "the form closed after a refused trigger"
    assert api.dag_runs(DAG_ID) == [], "a refused trigger created a run"
    return alert


def _wait_for_run(api: AirflowApi, services: LocalExecutorTopology,
                  timeout: float = 300.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        services.check_alive()
        runs = api.dag_runs(DAG_ID)
        if runs and runs[0]["state"] in FINISHED_RUN or time.monotonic() > deadline:
            assert len(runs) == 1, [r["dag_run_id"] for r in runs]
            return runs[0]
        time.sleep(3.0)


@pytest.mark.ui
def test_a_user_triggers_the_example_dag_from_the_form_and_follows_its_links(
        services: LocalExecutorTopology, browser: Browser, tmp_path: Path) -> None:
    started = time.monotonic()
    api = services.api()
    params = api.wait_for_dag(DAG_ID)["params"]
    ui = AirflowUi(browser, services.api_url)

    ui.login("admin", services.admin_password)
    ui.open_dag(DAG_ID)
    assert not ui.pause_switch().is_selected(), "the example DAG is not paused at creation"
    ui.unpause()
    browser.shot("unpaused")
    assert api.call("GET", f"/dags/{DAG_ID}")["is_paused"] is False

    # Every Param renders, with its description.
    ui.open_trigger_form()
    browser.shot("form")
    rows = ui.param_rows()
    for name, spec in params.items():
        assert name in rows, f"Param {name!r} is not in the form: {sorted(rows)}"
        assert spec["description"] and spec["description"] in rows[name], (name, rows[name])
    assert '{"requirements": [...], "packaging": "bundle"}' in rows["dependencies"]

    # Predictions as strings: the form sends them, the API refuses them, nothing runs.
    assert ui.paste_json("smoke_expected", '["0", "2"]') == '[\n  "0",\n  "2"\n]'
    _refused(ui, api, browser, "strings", [
        "Invalid input for param smoke_expected", "is not of type 'integer'"])
    # The lines 0 and 2 in brackets parse as integers (the form reformats what parsed).
    assert ui.paste_json("smoke_expected", "[\n0,\n2\n]") == "[\n  0,\n  2\n]"

    # A bucket S3 would refuse: refused with the rule, nothing runs.
    ui.type_text("bucket", "Bad_Bucket!")
    alert = _refused(ui, api, browser, "bucket", [
        "Invalid input for param bucket", "'Bad_Bucket!' does not match",
        repr(params["bucket"]["schema"]["pattern"])])
    assert "S3's rule: 3 to 63 lowercase letters" in ui.param_rows()["bucket"], alert

    # The edited run.
    ui.type_text("bucket", DAG_BUCKET)
    ui.type_text("model_prefix", EDITED["model_prefix"])
    shown = ui.paste_json("dependencies", json.dumps(EDITED["dependencies"]))
    assert json.loads(shown) == EDITED["dependencies"], shown
    browser.shot("edited")
    ui.submit_trigger()
    run = _wait_for_run(api, services)
    browser.shot("triggered")
    run_id = run["dag_run_id"]
    for name, value in EDITED.items():
        assert run["conf"][name] == value, (name, run["conf"][name])
    assert all(type(v) is int for v in run["conf"]["smoke_expected"]), run["conf"]
    failed = [(t["task_id"], t["state"]) for t in api.task_instances(DAG_ID, run_id=run_id)
              if t["state"] not in ("success", "skipped")]
    assert run["state"] == "success", f"{failed}\n{services.diagnostics()}"
    assert api.xcom(DAG_ID, run_id, "train_model", "model_s3_key").startswith("ui-models/iris/")
    assert api.xcom(DAG_ID, run_id, "validate_candidate")["answers"][0]["predictions"] == [0, 2]
    endpoint = api.xcom(DAG_ID, run_id, "wait_for_stack")

    # The sensor's extra links, and where each goes.
    ui.open_task_instance(DAG_ID, run_id, "wait_for_stack", "Details")
    links = ui.extra_links()
    browser.shot("task-details")
    assert set(links) == {"CloudFormation stack", "API endpoint"}, links
    assert links["API endpoint"] == endpoint["api_endpoint"], links
    opened = {name: ui.follow(name) for name in links}
    assert opened == links, opened
    console = urlsplit(opened["CloudFormation stack"])
    assert console.netloc == "us-east-1.console.aws.amazon.com", console
    assert parse_qs(console.query) == {"region": ["us-east-1"]}, console
    stack_id = unquote(console.fragment.split("stackId=", 1)[1])
    stack = services.boto3_client("cloudformation").describe_stacks(
        StackName=stack_id)["Stacks"][0]
    assert (stack["StackName"], stack["StackId"]) == (endpoint["stack_name"], stack_id)
    api_host = urlsplit(opened["API endpoint"]).netloc
    assert api_host.endswith(".execute-api.us-east-1.amazonaws.com"), api_host
    rest_api = services.boto3_client("apigateway").get_rest_api(
        restApiId=api_host.split(".", 1)[0])
    assert rest_api["name"] == endpoint["api_name"], rest_api

    # The stack events in the log view.
    ui.open_task_instance(DAG_ID, run_id, "wait_for_stack", "Logs")
    log = ui.log_text("stack event:")
    browser.shot("task-log")
    assert f"{endpoint['stack_name']} (AWS::CloudFormation::Stack) CREATE_COMPLETE" in log, log
    assert f"stack '{endpoint['stack_name']}' is CREATE_COMPLETE" in log, log

    errors = _unexpected_console_errors(browser)
    assert errors == [], f"browser console errors: {errors}"
    shots = sorted(p.name for p in (tmp_path / "screenshots").glob("*.png"))
    assert len(shots) >= 10, shots
    print(f"\nUI test: {time.monotonic() - started:.0f} s after the services started; "
          f"screenshots in {tmp_path / 'screenshots'}")
