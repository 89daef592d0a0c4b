"""One builder of stacks deployed on the emulator, and a local server in front of them.

:func:`deploy_stack` uploads a model, prepares, creates and describes one stack through
the seed's ``Deploy`` (what differs between callers is a parameter: the endpoint's auth
mode, a dependency layer, the model, the preprocessing function, the credentials);
:func:`serving` runs a deployed stack's function behind the local stand-in of its API
(``tdv-local-run serve``) for the length of a ``with`` block, in this process, or in
the command's own (:func:`serving_cli`).
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tdv_airflow import Deploy, UserAwsAuth
from tdv_airflow.core.clients import AwsClients
from tdv_airflow.local.aws import FAKE_ACCESS_KEY_ID, FAKE_SECRET_ACCESS_KEY, free_port
from tdv_airflow.local.process import LocalFunction
from tdv_airflow.local.server import serve_in_thread
from testkit.models import MODEL_KEY, REGION, make_deploy, put_model, rows_of


@dataclass
class DeployedStack:
    """A stack :func:`deploy_stack` deployed, and what it was deployed with.

    :param stack_name: the stack.
    :param bucket: the bucket of the model and the artifacts.
    :param auth: the credentials it was deployed with (and the emulator's endpoint).
    :param clients: clients with those credentials.
    :param session: a boto3 Session with those credentials.
    :param s3: an S3 client of that session, on the emulator.
    :param deploy: the ``Deploy`` that deployed it.
    :param prepared: what ``prepare_deployment()`` returned.
    :param created: what ``create_stack(prepared, 0)`` returned.
    :param endpoint: what ``deploy(prepared, 0)`` returned (``outputs`` included).
    """

    stack_name: str
    bucket: str
    auth: UserAwsAuth
    clients: AwsClients
    session: Any
    s3: Any
    deploy: Deploy
    prepared: dict[str, Any]
    created: dict[str, Any]
    endpoint: dict[str, Any]

    @property
    def outputs(self) -> dict[str, str]:
        """The stack's outputs."""
        return dict(self.endpoint["outputs"])


def _ensure_bucket(s3: Any, bucket: str) -> None:
    from botocore.exceptions import ClientError

    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError:
        s3.create_bucket(Bucket=bucket)


def deploy_stack(endpoint_url: str, bucket: str, stack_name: str, *,
                 endpoint_auth: str = "iam", model: bytes | None = None,
                 model_key: str = MODEL_KEY,
                 prepro_fn: Callable[[Any], Any] = rows_of,
                 credentials: tuple[str, str] = (FAKE_ACCESS_KEY_ID, FAKE_SECRET_ACCESS_KEY),
                 **deploy_kw: Any) -> DeployedStack:
    """Deploy one stack on the emulator and wait for it.

    The bucket is created when missing; the model is uploaded to ``model_key``
    (``model``'s bytes, else :func:`testkit.models.sum_model_bytes`).

    :param endpoint_url: the emulator.
    :param bucket: the bucket.
    :param stack_name: the stack.
    :param endpoint_auth: the endpoint's mode (``Deploy``'s default, ``"iam"``: the local
        server verifies the signatures of these credentials).
    :param model: the pickled model (default: a model that sums each row).
    :param model_key: where the model goes.
    :param prepro_fn: the preprocessing function (default: the rows as floats).
    :param credentials: the access key id and secret to deploy with.
    :param deploy_kw: further ``Deploy`` arguments (``dependencies``, ``poll_interval``,
        ``extra_layer_arns`` ...).
    """
    auth = UserAwsAuth(*credentials, endpoint_url=endpoint_url)
    session = auth.session(REGION)
    s3 = session.client("s3", endpoint_url=endpoint_url)
    _ensure_bucket(s3, bucket)
    if model is None:
        put_model(s3, bucket, model_key)
    else:
        s3.put_object(Bucket=bucket, Key=model_key, Body=model)
    deploy = make_deploy(auth, bucket, stack_name, model_s3_key=model_key,
                         prepro_fn=prepro_fn, endpoint_auth=endpoint_auth, **deploy_kw)
    prepared = deploy.prepare_deployment()
    created = deploy.create_stack(prepared, 0)
    endpoint = deploy.deploy(prepared, 0)
    return DeployedStack(stack_name, bucket, auth, AwsClients.from_auth(auth, REGION), session,
                         s3, deploy, prepared, created, endpoint)


@dataclass
class LocalServer:
    """A deployed function behind the local stand-in of its API.

    :param function: the function's local process.
    :param base_url: ``http://127.0.0.1:PORT``.
    :param stage_name: the API's stage.
    """

    function: LocalFunction
    base_url: str
    stage_name: str

    @property
    def url(self) -> str:
        """The ``/{stage}/predict`` URL, as the deployed API's."""
        return f"{self.base_url}/{self.stage_name}/predict"


@contextmanager
def serving(clients: AwsClients, stack_name: str, workdir: Path, auth: Any = None
            ) -> Iterator[LocalServer]:
    """Serve a deployed stack's function locally for the block; stop everything after.

    :param clients: clients of the stack's account (the server's known signer).
    :param stack_name: the stack.
    :param workdir: the layout cache.
    :param auth: an ``EndpointAuthenticator`` (default: the stack's own mode).
    """
    function = LocalFunction(clients, stack_name, workdir=workdir)
    server, thread = serve_in_thread(function, auth=auth)
    try:
        host, port = server.server_address[:2]
        assert function.function is not None
        yield LocalServer(function, f"http://{host!s}:{port}", function.function.stage_name)
    finally:
        server.shutdown()
        server.server_close()
        function.close()
        thread.join(5)


@dataclass
class ServedByCli:
    """``tdv-local-run serve`` running in its own process.

    :param url: its ``/predict`` URL.
    :param stderr: what the command wrote to stderr (once it has stopped).
    """

    url: str
    stderr: str = ""


@contextmanager
def serving_cli(stack_name: str, endpoint_url: str, workdir: Path, region: str = REGION
                ) -> Iterator[ServedByCli]:
    """Run ``tdv-local-run serve`` for the block (until it prints its URL); interrupt it
    after, as a user's Ctrl-C would.

    :param stack_name: the stack.
    :param endpoint_url: the emulator.
    :param workdir: the layout cache.
    :param region: the region.
    """
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tdv_airflow.local.cli", "serve", "--stack", stack_name,
         "--port", str(port), "--region", region, "--endpoint-url", endpoint_url,
         "--workdir", str(workdir)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    served = ServedByCli(f"http://127.0.0.1:{port}/predict")
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert served.url in line, line + (proc.stderr.read() if proc.stderr else "")
        yield served
    finally:
        proc.send_signal(signal.SIGINT)
        _, served.stderr = proc.communicate(timeout=20)
