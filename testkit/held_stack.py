"""Stacks held in CREATE_IN_PROGRESS on the moto emulator, released on demand.

moto keeps a stack in CREATE_IN_PROGRESS while a custom resource (whose ServiceToken
is a Lambda function) has not answered; a PUT to
``{endpoint}/cloudformation_{region}/cfnresponse?stack=<StackId>`` with an empty
Content-Type answers SUCCESS for it (DESIGN.md section 5).
"""

from __future__ import annotations

import io
import json
import threading
import time
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

HOLD_ID = "Hold"
_HOLDER_FUNCTION = "tdv-test-holder"


def hold_resource(service_token: Any) -> dict[str, Any]:
    """A custom resource that holds its stack until released."""
    return {"Type": "Custom::Hold", "Properties": {"ServiceToken": service_token}}


def deployment_template_with_hold(dest: Path) -> Path:
    """The shipped deployment template plus a hold on its function; written to ``dest``."""
    from tdv_airflow.core.resources import default_template_path

    body = json.loads(default_template_path().read_text())
    body["Resources"][HOLD_ID] = hold_resource({"Fn::GetAtt": ["PredictFunction", "Arn"]})
    dest.write_text(json.dumps(body, indent=1))
    return dest


def holder_function_arn(session: Any, endpoint_url: str) -> str:
    """A Lambda function to serve as ServiceToken (created once per emulator reset)."""
    lam = session.client("lambda", endpoint_url=endpoint_url)
    try:
        return str(lam.get_function(FunctionName=_HOLDER_FUNCTION)["Configuration"]["FunctionArn"])
    except lam.exceptions.ResourceNotFoundException:
        pass
    iam = session.client("iam", endpoint_url=endpoint_url)
    role = iam.create_role(RoleName=_HOLDER_FUNCTION, AssumeRolePolicyDocument="{}")
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as zf:
        zf.writestr("holder.py", "def handler(event, context):\n    return None\n")
    return str(lam.create_function(
        FunctionName=_HOLDER_FUNCTION, Runtime="python3.11", Role=role["Role"]["Arn"],
        Handler="holder.handler", Code={"ZipFile": code.getvalue()})["FunctionArn"])


def create_held_stack(session: Any, endpoint_url: str, stack_name: str) -> str:
    """A small stack (outputs ApiName, ApiEndpoint) held in CREATE_IN_PROGRESS; its id."""
    template = {
        "Resources": {HOLD_ID: hold_resource(holder_function_arn(session, endpoint_url))},
        "Outputs": {
            "ApiName": {"Value": f"{stack_name}-api"},
            "ApiEndpoint": {"Value": f"https://{stack_name}.example.com/prod/predict"},
        },
    }
    cfn = session.client("cloudformation", endpoint_url=endpoint_url)
    return str(cfn.create_stack(StackName=stack_name, TemplateBody=json.dumps(template))["StackId"])


def release(endpoint_url: str, stack_id: str, region: str = "us-east-1") -> float:
    """Answer SUCCESS for the hold; return the time (``time.time()``) it was sent."""
    body = json.dumps({"Status": "SUCCESS", "StackId": stack_id, "LogicalResourceId": HOLD_ID,
                       "PhysicalResourceId": "hold", "RequestId": "release", "Data": {}})
    request = urllib.request.Request(
        f"{endpoint_url}/cloudformation_{region}/cfnresponse?stack={stack_id}",
        data=body.encode(), method="PUT", headers={"Content-Type": ""})
    sent = time.time()
    with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 - loopback
        if answer.status != 200:
            raise RuntimeError(f"release of {stack_id} answered {answer.status}")
    return sent


class Releaser(threading.Thread):
    """Waits for ``stack_name`` to be in CREATE_IN_PROGRESS, holds it ``hold_for`` s, releases.

    :param cfn: a CloudFormation client on the emulator.
    :param endpoint_url: the emulator.
    :param stack_name: the stack to release.
    :param hold_for: seconds to keep it in progress after it appeared.
    :param timeout: seconds to wait for it to appear.
    """

    def __init__(self, cfn: Any, endpoint_url: str, stack_name: str, hold_for: float,
                 timeout: float = 300.0) -> None:
        super().__init__(daemon=True)
        self.cfn, self.endpoint_url, self.stack_name = cfn, endpoint_url, stack_name
        self.hold_for, self.timeout = hold_for, timeout
        self.released_at: float | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            deadline = time.monotonic() + self.timeout
            while time.monotonic() < deadline:
                stacks = [s for s in self.cfn.list_stacks()["StackSummaries"]
                          if s["StackName"] == self.stack_name
                          and s["StackStatus"] == "CREATE_IN_PROGRESS"]
                if stacks:
                    time.sleep(self.hold_for)
                    self.released_at = release(self.endpoint_url, stacks[0]["StackId"])
                    return
                time.sleep(0.2)
            raise TimeoutError(f"stack {self.stack_name} never appeared in progress")
        except BaseException as exc:  # reported by the test through .error
            self.error = exc
