"""``tdv-local-run``: run a deployed function locally from the shell.

::

    tdv-local-run invoke --stack iris --payload '{"features": [[5.1, 3.5, 1.4, 0.2]]}'
    tdv-local-run serve --stack iris --port 8080      # then: curl -d '{...}' \\
                                                      #   http://127.0.0.1:8080/predict

``--endpoint-url http://127.0.0.1:PORT`` points every client at the local emulator.
Requests reach what the stack's API invokes: its ``live`` alias (each request to one of
the alias's versions, by their weights) when the stack has a ``LiveAlias`` output, else
``$LATEST``; ``--qualifier 3`` (a version, ``$LATEST`` or an alias) runs that instead.
``invoke`` prints the proxy response (exit status 1 for an HTTP error status, 2 when the
function cannot be found or run) and, on stderr, the version that answered; ``serve``
answers HTTP requests through one warm process per version
(:mod:`tdv_airflow.local.server`) until interrupted, as the stack's front door does
(``FrontDoor``: a REST API's ``POST /predict``, an HTTP API's ``POST /predict`` with the
payload 2.0 event, a function URL's any path, also ``/``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from tdv_airflow.core.clients import AwsClients
from tdv_airflow.exceptions import LocalRunError, TdvError
from tdv_airflow.local.layout import default_workdir
from tdv_airflow.local.process import LocalFunction, invoke_once


def clients_for(region: str | None = None, endpoint_url: str | None = None,
                profile: str | None = None) -> AwsClients:
    """Clients from boto3's default chain (``AWS_ENDPOINT_URL`` is honoured).

    :param region: the region (default: the profile's or ``AWS_DEFAULT_REGION``).
    :param endpoint_url: an endpoint for every service, e.g. an emulator's.
    :param profile: a named profile.
    """
    import boto3

    session = boto3.Session(profile_name=profile, region_name=region)
    region_name = session.region_name
    if not region_name:
        raise LocalRunError("no region: pass --region or set AWS_DEFAULT_REGION")

    def factory(service: str) -> Any:
        return session.client(service, region_name=region_name, endpoint_url=endpoint_url)

    return AwsClients(factory, region_name)


def _cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tdv-local-run",
        description="Run a deployed tdv-airflow function locally, from its deployed "
                    "code and layers.")
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--stack", required=True, help="the stack's name")
    common.add_argument("--region", default=None, help="AWS region")
    common.add_argument("--endpoint-url", default=None,
                        help="endpoint of every service (e.g. the local emulator)")
    common.add_argument("--profile", default=None, help="AWS profile")
    common.add_argument("--qualifier", default=None,
                        help="a version number, $LATEST or an alias to run (default: what "
                             "the stack's API invokes: its live alias, else $LATEST)")
    common.add_argument("--workdir", type=Path, default=None,
                        help=f"layout cache (default {default_workdir()})")
    common.add_argument("-v", "--verbose", action="store_true",
                        help="show the function's log")
    inv = sub.add_parser("invoke", parents=[common], help="send one request, print the answer")
    body = inv.add_mutually_exclusive_group(required=True)
    body.add_argument("--payload", help="the request body (JSON text)")
    body.add_argument("--payload-file", type=Path, help="a file holding the body ('-': stdin)")
    inv.add_argument("--method", default="POST")
    inv.add_argument("--header", action="append", default=[], metavar="NAME:VALUE")
    srv = sub.add_parser("serve", parents=[common],
                         help="answer HTTP requests on 127.0.0.1 through the function")
    srv.add_argument("--host", default="127.0.0.1")
    srv.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(message)s" if args.verbose else "%(levelname)s %(message)s")
    try:
        clients = clients_for(args.region, args.endpoint_url, args.profile)
        if args.command == "invoke":
            if args.payload_file is not None:
                text = (sys.stdin.read() if str(args.payload_file) == "-"
                        else args.payload_file.read_text(encoding="utf-8"))
            else:
                text = args.payload
            headers = dict(h.split(":", 1) for h in args.header)
            headers = {k.strip(): v.strip() for k, v in headers.items()}
            result = invoke_once(clients, args.stack, text, method=args.method,
                                 headers=headers or None, workdir=args.workdir,
                                 qualifier=args.qualifier)
            response = result.response
            print(json.dumps(response, indent=2))
            print(f"answered by version {result.version}" if result.version else
                  f"no version answered: {(result.error or {}).get('errorMessage')}",
                  file=sys.stderr)
            return 0 if int(response.get("statusCode", 500)) < 400 else 1
        from tdv_airflow.local.server import serve

        serve(LocalFunction(clients, args.stack, qualifier=args.qualifier,
                            workdir=args.workdir), args.host, args.port)
        return 0
    except TdvError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def main() -> None:
    """Console entry point of ``tdv-local-run``."""
    raise SystemExit(_cli())


if __name__ == "__main__":
    main()
