"""Immutable Lambda versions of a deployment's function: publish, find, list, retire.

CloudFormation owns the function's ``$LATEST`` configuration (the *candidate*: code,
layers, environment); the core publishes it as an immutable version once the stack
update is complete, and only the ``live`` alias (:mod:`tdv_airflow.core.rollout`) decides
which versions answer. The template declares no ``AWS::Lambda::Version``: a stack update
never replaces or deletes a version (see ``docs/rollout.md``).

A version records where it came from:

- its own environment (immutable once published) names the model and pickle keys, their
  SHA-256 digests, and the code and layer keys and digests;
- its ``Description`` holds a compact JSON object: ``id`` (the :func:`function_identity`
  of the stack parameters it was published from), ``run`` (the DAG run or caller that
  published it) and ``at`` (when, ISO 8601 UTC).

The identity is what makes a re-run cheap and safe: a deployment whose identity is
already published is not deployed again (:func:`find_version`), and publishing twice
returns the same version (:func:`publish_candidate`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tdv_airflow.exceptions import InvalidInputError, RolloutError, UnknownVersionError

log = logging.getLogger(__name__)

#: The alias API Gateway invokes (the template's ``LiveAlias`` output).
LIVE_ALIAS = "live"

#: Stack parameters that make up a published version (code, layers, environment and
#: the function settings a version freezes). Others (the API, alarms, concurrency,
#: the role's scope) do not change what a version runs.
IDENTITY_PARAMETERS = (
    "ArtifactBucket", "ModelKey", "ModelSha256", "PreproKey", "PreproSha256", "CodeKey",
    "CodeSha256", "LayerKey", "LayerSha256", "DepsLayerKey", "DepsLayerSha256",
    "ExtraLayerArns", "Runtime", "Architecture", "PicklePythonVersion", "DillVersion",
    "MemorySize", "Timeout", "EphemeralStorageSize", "SnapStart", "DepsBundleKey",
    "DepsBundleSha256",
)

#: Lambda's limit on a version's description.
_DESCRIPTION_LIMIT = 256


def parameter_defaults(template_body: Mapping[str, Any]) -> dict[str, str]:
    """The template's parameter defaults, as CloudFormation reports them back (strings).

    :param template_body: the parsed template.
    """
    declared = template_body.get("Parameters") or {}
    return {name: ",".join(map(str, spec["Default"])) if isinstance(spec["Default"], list)
            else str(spec["Default"]) for name, spec in declared.items()
            if isinstance(spec, Mapping) and "Default" in spec}


def function_identity(parameters: Mapping[str, Any] | Sequence[Mapping[str, str]],
                      defaults: Mapping[str, str] | None = None) -> str:
    """A short digest of what a version published from these stack parameters runs.

    A described stack reports every parameter, the defaulted ones too; the parameters a
    deployment sends leave them out: give the template's ``defaults``
    (:func:`parameter_defaults`) so that both give the same identity.

    :param parameters: ``{key: value}`` or CloudFormation's ``[{"ParameterKey", ...}]``.
    :param defaults: the template's defaults, for the parameters not given.
    :returns: 16 lowercase hex characters.
    """
    if not isinstance(parameters, Mapping):
        parameters = {p["ParameterKey"]: p.get("ParameterValue", "") for p in parameters}
    parameters = {**(defaults or {}), **parameters}
    picked = {}
    for name in IDENTITY_PARAMETERS:
        value = parameters.get(name)
        if isinstance(value, (list, tuple)):
            value = ",".join(map(str, value))
        if value not in (None, ""):
            picked[name] = str(value)
    blob = json.dumps(picked, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def with_served_function(parameters: Sequence[Mapping[str, str]], stack: Mapping[str, Any],
                         computed: Iterable[str] = ()) -> list[dict[str, str]]:
    """``parameters`` with the function's own (:data:`IDENTITY_PARAMETERS`) and the
    ``computed`` ones replaced by what ``stack`` has now.

    When the stack's fingerprint equals the fingerprint of these parameters (with the
    wanted template, tags but the model tag, and role), the stack already has everything
    the deployment wants but the function: a published version with the wanted identity
    then serves it without a stack update. Anything else that changed (the template, the
    API's auth or throttling, alarm thresholds, tags, the role) still needs the update.

    :param parameters: the parameters the deployment would send.
    :param stack: the stack's ``describe_stacks`` entry.
    :param computed: parameters the core derives from the stack (e.g. the role's
        retained artifacts, which already cover every published version).
    """
    served = {p["ParameterKey"]: p.get("ParameterValue", "")
              for p in stack.get("Parameters") or []}
    swapped = {*IDENTITY_PARAMETERS, *computed}
    return [{"ParameterKey": p["ParameterKey"],
             "ParameterValue": served.get(p["ParameterKey"], "")
             if p["ParameterKey"] in swapped else p["ParameterValue"]} for p in parameters]


def check_identity(identity: Any) -> str:
    """Return ``identity`` if it is a :func:`function_identity` (16 lowercase hex).

    :param identity: the create step's ``identity``.
    :raises InvalidInputError: otherwise.
    """
    if not isinstance(identity, str) or len(identity) != 16 \
            or any(c not in "0123456789abcdef" for c in identity):
        raise InvalidInputError(f"invalid identity {identity!r}: expected the create task's "
                                "identity, 16 lowercase hex characters (e.g. "
                                "create.output['identity'])")
    return identity


def check_version(version: Any, *, allow_previous: bool = False) -> str:
    """Return ``version`` as Lambda writes it (``"7"``) if it names a published version.

    :param version: a positive integer, or its decimal string.
    :param allow_previous: also accept ``"previous"`` (the version live before this one).
    :raises InvalidInputError: for anything else (``$LATEST`` and alias names included).
    """
    text = str(version).strip() if isinstance(version, (int, str)) else None
    if allow_previous and text == "previous":
        return text
    if isinstance(version, bool) or not text or not text.isdigit() or int(text) < 1:
        wanted = "a published version number (1, 2, ...)"
        if allow_previous:
            wanted += " or 'previous'"
        raise InvalidInputError(f"invalid version {version!r}: expected {wanted}; $LATEST "
                                "and aliases are not immutable versions")
    return str(int(text))


@dataclass(frozen=True)
class VersionRecord:
    """One published version and where it came from.

    :param version: the version number, as Lambda writes it.
    :param identity: the :func:`function_identity` it was published for (``None`` when
        not published by tdv-airflow).
    :param run_id: who published it (a DAG run id), cut to fit the description.
    :param published_at: when (ISO 8601 UTC), from the description.
    :param environment: the version's environment variables.
    :param code_sha256: Lambda's ``CodeSha256`` of the version (base64).
    """

    version: str
    identity: str | None
    run_id: str | None
    published_at: str | None
    environment: Mapping[str, str] = field(default_factory=dict)
    code_sha256: str | None = None

    @property
    def model_key(self) -> str | None:
        """The S3 key of the model this version serves."""
        return self.environment.get("TDV_MODEL_KEY")

    @property
    def model_sha256(self) -> str | None:
        """The SHA-256 of the model this version serves."""
        return self.environment.get("TDV_MODEL_SHA256")

    def artifacts(self) -> list[tuple[str, str]]:
        """``(bucket, key)`` of the model, pickle and dependency bundle this version reads."""
        bucket = self.environment.get("TDV_BUCKET")
        keys = [self.environment.get(name) for name in (
            "TDV_MODEL_KEY", "TDV_PREPRO_KEY", "TDV_DEPS_BUNDLE_KEY")]
        return [(bucket, key) for key in keys if bucket and key]

    def as_dict(self) -> dict[str, Any]:
        """The record as JSON-serialisable values (an XCom)."""
        env = self.environment
        return {"version": self.version, "identity": self.identity, "run_id": self.run_id,
                "published_at": self.published_at, "model_s3_key": env.get("TDV_MODEL_KEY"),
                "model_sha256": env.get("TDV_MODEL_SHA256"),
                "prepro_s3_key": env.get("TDV_PREPRO_KEY"),
                "prepro_sha256": env.get("TDV_PREPRO_SHA256"),
                "code_sha256": env.get("TDV_CODE_SHA256")}


def describe_origin(identity: str, run_id: str | None, at: dt.datetime | None = None) -> str:
    """The description a version is published with (JSON, at most 256 characters).

    :param identity: the version's :func:`function_identity`.
    :param run_id: who publishes it; cut so that the whole fits.
    :param at: when (default: now).
    """
    when = (at or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    record = {"id": identity, "at": when, "run": ""}
    room = _DESCRIPTION_LIMIT - len(json.dumps(record, separators=(",", ":")))
    run = str(run_id or "")
    while run and len(json.dumps(run)) - 2 > room:
        run = run[:-1]
    record["run"] = run
    return json.dumps(record, separators=(",", ":"))


def record_of(config: Mapping[str, Any]) -> VersionRecord:
    """A version's record from its configuration (``get_function_configuration`` or a
    ``list_versions_by_function`` entry).

    :param config: the configuration.
    """
    try:
        origin = json.loads(config.get("Description") or "{}")
    except ValueError:
        origin = {}
    if not isinstance(origin, dict):
        origin = {}
    env = dict((config.get("Environment") or {}).get("Variables") or {})
    return VersionRecord(version=str(config["Version"]), identity=origin.get("id"),
                         run_id=origin.get("run") or None,
                         published_at=origin.get("at"), environment=env,
                         code_sha256=config.get("CodeSha256"))


def list_versions(lam: Any, function_name: str) -> list[VersionRecord]:
    """Every published version of the function, oldest first (``$LATEST`` left out);
    empty when the function does not exist.

    :param lam: a Lambda client.
    :param function_name: the function.
    """
    records = []
    try:
        for page in lam.get_paginator("list_versions_by_function").paginate(
                FunctionName=function_name):
            records += [record_of(c) for c in page.get("Versions") or []
                        if c.get("Version") != "$LATEST"]
    except lam.exceptions.ResourceNotFoundException:
        return []
    return sorted(records, key=lambda r: int(r.version))


def find_version(lam: Any, function_name: str, identity: str) -> VersionRecord | None:
    """The newest version published for ``identity``, if one still exists.

    :param lam: a Lambda client.
    :param function_name: the function.
    :param identity: a :func:`function_identity`.
    """
    found = [r for r in list_versions(lam, function_name) if r.identity == identity]
    return found[-1] if found else None


def get_version(lam: Any, function_name: str, version: str) -> VersionRecord:
    """One version's record.

    :param lam: a Lambda client.
    :param function_name: the function.
    :param version: the version number.
    :raises UnknownVersionError: when the function has no such version.
    """
    try:
        config = lam.get_function_configuration(FunctionName=function_name,
                                                Qualifier=check_version(version))
    except lam.exceptions.ResourceNotFoundException:
        raise UnknownVersionError(
            f"function {function_name!r} has no version {version!r} (retired, or never "
            "published); list them with aws lambda list-versions-by-function") from None
    return record_of(config)


def publish_candidate(lam: Any, function_name: str, identity: str,
                      stack_identity: str, run_id: str | None = None) -> VersionRecord:
    """Publish the function's ``$LATEST`` as the candidate version for ``identity``, or
    return the version already published for it (nothing is published twice).

    :param lam: a Lambda client.
    :param function_name: the function.
    :param identity: the identity the caller deployed (the create task's result).
    :param stack_identity: the identity of the stack's current parameters: it must equal
        ``identity``, else another deployment changed the function in between.
    :param run_id: who publishes (recorded in the description).
    :raises RolloutError: when the stack no longer deploys ``identity``.
    """
    existing = find_version(lam, function_name, identity)
    if existing is not None:
        log.info("version %s of %s is already published for identity %s (run %s)",
                 existing.version, function_name, identity, existing.run_id)
        wait_active(lam, function_name, existing.version)
        return existing
    if stack_identity != identity:
        raise RolloutError(
            f"function {function_name!r} now runs the deployment {stack_identity}, not the "
            f"candidate {identity} this task was given: another run updated the stack in "
            "between; re-run this deployment's create task")
    latest = lam.get_function_configuration(FunctionName=function_name)
    guard = {"RevisionId": latest["RevisionId"]} if latest.get("RevisionId") else {}
    try:
        published = lam.publish_version(FunctionName=function_name,
                                        CodeSha256=latest["CodeSha256"],
                                        Description=describe_origin(identity, run_id),
                                        **guard)
    except (lam.exceptions.PreconditionFailedException,
            lam.exceptions.InvalidParameterValueException) as exc:
        raise RolloutError(
            f"function {function_name!r} changed between reading and publishing it (its "
            f"code or configuration is no longer the candidate {identity}): nothing was "
            f"published; re-run this deployment's create task ({exc})") from exc
    record = record_of(published)
    if record.identity != identity:  # Lambda found nothing changed since that version
        log.info("Lambda returned version %s (published for %s): the candidate's code and "
                 "configuration are identical to it", record.version, record.identity)
    else:
        log.info("published version %s of %s for identity %s", record.version,
                 function_name, identity)
    if published.get("State", "Active") != "Active":
        wait_active(lam, function_name, record.version)
    return record


def wait_active(lam: Any, function_name: str, version: str, timeout: float = 900.0,
                poll: float = 5.0) -> None:
    """Wait until a published version can be invoked: Lambda keeps it ``Pending`` while it
    takes a SnapStart snapshot (minutes), and refuses invocations until then.

    :param lam: a Lambda client.
    :param function_name: the function.
    :param version: the version.
    :param timeout: the longest wait, in seconds.
    :param poll: seconds between two reads.
    :raises RolloutError: when the version fails (with Lambda's reason) or stays pending.
    """
    import time

    deadline = time.monotonic() + timeout
    while True:
        conf = lam.get_function_configuration(FunctionName=function_name, Qualifier=version)
        state = conf.get("State", "Active")
        if state == "Active":
            return
        if state == "Failed" or time.monotonic() >= deadline:
            raise RolloutError(
                f"version {version} of {function_name!r} is {state}, not Active "
                f"({conf.get('StateReasonCode')}: {conf.get('StateReason')}); the alias was "
                "not moved")
        log.info("version %s of %s is %s (%s): waiting", version, function_name, state,
                 conf.get("StateReasonCode"))
        time.sleep(poll)


def retained_artifacts(lam: Any, function_name: str) -> list[tuple[str, str]]:
    """``(bucket, key)`` of every artifact a published version still reads.

    :param lam: a Lambda client.
    :param function_name: the function (none yet: nothing).
    """
    seen: dict[tuple[str, str], None] = {}
    for record in list_versions(lam, function_name):
        seen.update(dict.fromkeys(record.artifacts()))
    return list(seen)


def prune(lam: Any, function_name: str, keep: int, protect: Iterable[str]) -> list[str]:
    """Delete all but the newest ``keep`` versions, never one in ``protect`` (the alias's
    versions and the previous one). Safe to retry.

    :param lam: a Lambda client.
    :param function_name: the function.
    :param keep: how many of the newest versions stay (at least 1).
    :param protect: versions never deleted, whatever their age.
    :returns: the versions deleted.
    :raises InvalidInputError: for ``keep`` < 1.
    """
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise InvalidInputError(f"invalid keep_versions {keep!r}: expected an integer >= 1 "
                                "(the live and previous versions are kept anyway)")
    protected = {str(v) for v in protect if v}
    records = list_versions(lam, function_name)
    doomed = [r.version for r in records[:-keep] if r.version not in protected]
    retired: list[str] = []
    for version in doomed:
        try:
            lam.delete_function(FunctionName=function_name, Qualifier=version)
        except lam.exceptions.ResourceNotFoundException:
            pass  # retired by an earlier try
        except lam.exceptions.ResourceConflictException:
            log.info("version %s of %s is still routed to by an alias: kept", version,
                     function_name)
            continue
        log.info("retired version %s of %s", version, function_name)
        retired.append(version)
    return retired
