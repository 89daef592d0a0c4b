"""The front door: what answers a prediction endpoint's HTTPS requests, and how callers
authenticate with it.

* ``"rest"``: an API Gateway REST API (payload 1.0; IAM, API key or none), the default;
* ``"http"``: an API Gateway HTTP API (payload 2.0; IAM or none), about a third of the
  REST API's price per request;
* ``"url"``: a Lambda function URL on the alias ``live`` (IAM or none), free.

Each becomes the template's ``FrontDoor`` parameter (``REST``, ``HTTP``, ``URL``). The
function's timeout must stay below what the front door waits for it.
"""

from __future__ import annotations

from typing import Any

from tdv_airflow.exceptions import InvalidInputError

#: The template parameter naming the front door.
FRONT_DOOR_PARAMETER = "FrontDoor"
#: The front doors, and their value of the template's ``FrontDoor`` parameter.
FRONT_DOORS = {"rest": "REST", "http": "HTTP", "url": "URL"}
#: The authentication modes (``endpoint_auth``) each front door supports.
AUTH_MODES = {"rest": ("iam", "api_key", "none"), "http": ("iam", "none"), "url": ("iam", "none")}
#: The longest a front door waits for the function, in seconds (``None``: no limit of its
#: own, Lambda's 900 s apply). REST API: 29 s by default; HTTP API: 30 s at most.
INTEGRATION_TIMEOUT_SECONDS: dict[str, int | None] = {"rest": 29, "http": 30, "url": None}
#: Lambda's longest function timeout, in seconds.
LAMBDA_MAX_TIMEOUT_SECONDS = 900


def check_front_door(front_door: Any) -> str:
    """Return ``front_door`` (``"rest"``, ``"http"`` or ``"url"``, any case).

    :param front_door: the candidate.
    :raises InvalidInputError: for anything else.
    """
    value = front_door.lower() if isinstance(front_door, str) else front_door
    if value not in FRONT_DOORS:
        raise InvalidInputError(f"invalid front_door {front_door!r}: expected one of "
                                f"{sorted(FRONT_DOORS)}")
    return str(value)


def check_front_door_auth(front_door: str, endpoint_auth: str) -> None:
    """Refuse an authentication mode the front door does not offer.

    :param front_door: a checked front door.
    :param endpoint_auth: a checked ``endpoint_auth`` (``iam``, ``api_key`` or ``none``).
    :raises InvalidInputError: e.g. for an API key on an HTTP API or a function URL.
    """
    if endpoint_auth not in AUTH_MODES[front_door]:
        raise InvalidInputError(
            f"endpoint_auth={endpoint_auth!r} is not offered by front_door={front_door!r}: "
            f"expected one of {list(AUTH_MODES[front_door])} (API keys exist only on the "
            "REST API)")


def max_timeout_seconds(front_door: str) -> int:
    """The longest function timeout the front door allows: one second under what it waits
    for the function, or Lambda's 900 s for a function URL.

    :param front_door: a checked front door.
    """
    limit = INTEGRATION_TIMEOUT_SECONDS[front_door]
    return LAMBDA_MAX_TIMEOUT_SECONDS if limit is None else limit - 1
