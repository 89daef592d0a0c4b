"""The embedded local AWS starts, answers, resets and stops."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tdv_airflow.local.aws import LocalAws


def test_start_reset_stop(tmp_path: Path) -> None:
    import boto3

    aws = LocalAws().start()
    try:
        s3 = boto3.client("s3", endpoint_url=aws.endpoint_url, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
        s3.create_bucket(Bucket="one")
        assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["one"]
        aws.reset()
        assert s3.list_buckets()["Buckets"] == []
        conn = json.loads(aws.environ()["AIRFLOW_CONN_AWS_DEFAULT"])
        assert conn["extra"]["endpoint_url"] == aws.endpoint_url
    finally:
        pid = aws.pid
        aws.stop()
    assert pid is not None
    try:
        os.kill(pid, 0)
        alive = True
    except ProcessLookupError:
        alive = False
    assert not alive


def test_command_line(tmp_path: Path) -> None:
    cli = Path(sys.executable).with_name("tdv-local-aws")
    state = tmp_path / "state.json"
    started = subprocess.run([str(cli), "start", "--state-file", str(state)],
                             capture_output=True, text=True, check=True)
    endpoint = started.stdout.strip()
    try:
        assert endpoint.startswith("http://127.0.0.1:")
        status = subprocess.run([str(cli), "status", "--state-file", str(state)],
                                capture_output=True, text=True, check=False)
        assert status.returncode == 0 and status.stdout.strip() == endpoint
    finally:
        subprocess.run([str(cli), "stop", "--state-file", str(state)], check=True,
                       capture_output=True)
    status = subprocess.run([str(cli), "status", "--state-file", str(state)],
                            capture_output=True, text=True, check=False)
    assert status.returncode == 1
