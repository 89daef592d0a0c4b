"""A small client of Airflow's REST API v2, used as the UI uses it.

It logs in with ``POST /auth/token`` (the simple auth manager's form) and sends the JWT
as ``Authorization: Bearer`` on every call.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import httpx

#: Dag run and task instance states after which nothing more happens.
FINISHED_RUN = frozenset({"success", "failed"})


class ApiError(RuntimeError):
    """The API answered with an unexpected status."""


class AirflowApi:
    """A logged-in REST API v2 client.

    :param base_url: the api-server, e.g. ``http://127.0.0.1:8080``.
    :param token: a JWT from ``POST /auth/token``.
    """

    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url
        self.client = httpx.Client(base_url=base_url, timeout=60.0,
                                   headers={"Authorization": f"Bearer {token}"})

    @classmethod
    def login(cls, base_url: str, username: str, password: str) -> AirflowApi:
        """Log in as the UI does and return a client carrying the token."""
        answer = httpx.post(f"{base_url}/auth/token", timeout=60.0,
                            json={"username": username, "password": password})
        if answer.status_code != 201:
            raise ApiError(f"login as {username!r}: {answer.status_code} {answer.text}")
        return cls(base_url, answer.json()["access_token"])

    def call(self, method: str, path: str, expect: Iterable[int] = (200,),
             **kwargs: Any) -> Any:
        """One request; its JSON body (``None`` when empty).

        :raises ApiError: when the status is not in ``expect``.
        """
        answer = self.client.request(method, f"/api/v2{path}", **kwargs)
        if answer.status_code not in set(expect):
            raise ApiError(f"{method} {path}: {answer.status_code} {answer.text[:2000]}")
        return answer.json() if answer.content else None

    # ----- DAGs

    def wait_for_dag(self, dag_id: str, timeout: float = 180.0) -> dict[str, Any]:
        """The DAG once the dag-processor has serialized it; fails on import errors."""
        deadline = time.monotonic() + timeout
        while True:
            errors = self.call("GET", "/importErrors")["import_errors"]
            if errors:
                raise ApiError(f"import errors: {errors}")
            answer = self.client.get(f"/api/v2/dags/{dag_id}/details")
            if answer.status_code == 200:
                return dict(answer.json())
            if time.monotonic() > deadline:
                raise ApiError(f"DAG {dag_id} not parsed after {timeout} s: {answer.text}")
            time.sleep(1.0)

    def set_paused(self, dag_id: str, paused: bool) -> dict[str, Any]:
        """Pause or unpause a DAG."""
        return dict(self.call("PATCH", f"/dags/{dag_id}", json={"is_paused": paused}))

    # ----- runs

    def trigger(self, dag_id: str, conf: dict[str, Any], logical_date: datetime | None = None,
                run_id: str | None = None) -> dict[str, Any]:
        """Trigger a run as the UI's Trigger form does."""
        body: dict[str, Any] = {"conf": conf,
                                "logical_date": logical_date.isoformat() if logical_date else None}
        if run_id:
            body["dag_run_id"] = run_id
        return dict(self.call("POST", f"/dags/{dag_id}/dagRuns", json=body))

    def create_backfill(self, dag_id: str, from_date: datetime, to_date: datetime, *,
                        max_active_runs: int, conf: dict[str, Any] | None = None,
                        reprocess_behavior: str = "none") -> dict[str, Any]:
        """``POST /backfills``: one run per schedule date in ``[from_date, to_date]``."""
        return dict(self.call("POST", "/backfills", json={
            "dag_id": dag_id, "from_date": from_date.isoformat(),
            "to_date": to_date.isoformat(), "max_active_runs": max_active_runs,
            "reprocess_behavior": reprocess_behavior, "dag_run_conf": conf or {},
            "run_backwards": False}))

    def backfill(self, backfill_id: int) -> dict[str, Any]:
        """One backfill (``completed_at`` is set when all its runs are done)."""
        return dict(self.call("GET", f"/backfills/{backfill_id}"))

    def dag_runs(self, dag_id: str) -> list[dict[str, Any]]:
        """Every run of a DAG."""
        return list(self.call("GET", f"/dags/{dag_id}/dagRuns",
                              params={"limit": 100})["dag_runs"])

    def task_instances(self, dag_id: str, task_id: str | None = None,
                       run_id: str = "~") -> list[dict[str, Any]]:
        """Task instances of one run, or of every run (``run_id="~"``)."""
        params: dict[str, Any] = {"limit": 1000}
        if task_id:
            params["task_id"] = task_id
        return list(self.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances",
                              params=params)["task_instances"])

    def tries(self, dag_id: str, run_id: str, task_id: str) -> list[dict[str, Any]]:
        """Every try of one task instance (its history)."""
        return list(self.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/"
                                     f"{task_id}/tries")["task_instances"])

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        """An XCom value, deserialized."""
        return self.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/"
                                f"xcomEntries/{key}", params={"deserialize": True})["value"]

    def close(self) -> None:
        """Close the HTTP connections."""
        self.client.close()

