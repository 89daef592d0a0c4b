"""The function's runtime options: CPU architecture, memory, timeout, ephemeral storage,
provisioned concurrency, SnapStart and the front door.

One frozen value, :class:`FunctionOptions`, given to ``Deploy(function_options=...)``, to
the prepare and create operators, or built from the example DAG's Params with
:meth:`FunctionOptions.coerce`. Every value is checked on its own when the value is
made, and in combination by :meth:`FunctionOptions.check` (SnapStart, the front door's
integration timeout, its auth modes), which the callers run before anything is uploaded.
:func:`check_parameter_values` repeats the combination rules on the stack's final
parameters (which ``stack_parameters`` and a dependency bundle may also set).

AWS's limits (see ``docs/aws-behaviour.md``): memory 128 to 10,240 MB, timeout at most
900 s, ephemeral storage (``/tmp``) 512 to 10,240 MB; SnapStart runs on Python 3.12 and
newer and does not support provisioned concurrency, Amazon EFS, ephemeral storage over
512 MB, or the Regions Asia Pacific (New Zealand) and (Taipei)
(https://docs.aws.amazon.com/lambda/latest/dg/snapstart.html#snapstart-runtimes).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from tdv_airflow.core.front_door import (
    AUTH_MODES,
    FRONT_DOORS,
    INTEGRATION_TIMEOUT_SECONDS,
    check_front_door,
    check_front_door_auth,
    max_timeout_seconds,
)
from tdv_airflow.core.layer_build import ARCHITECTURES
from tdv_airflow.core.validation import ENDPOINT_AUTH_MODES
from tdv_airflow.exceptions import InvalidInputError

#: Lambda's memory range, in MB.
MEMORY_MB = (128, 10240)
#: Lambda's timeout range, in seconds.
TIMEOUT_SECONDS = (1, 900)
#: Lambda's ephemeral storage (``/tmp``) range, in MB.
EPHEMERAL_MB = (512, 10240)
#: The oldest Python runtime SnapStart supports.
SNAPSTART_MIN_RUNTIME = (3, 12)
#: The most ephemeral storage SnapStart supports, in MB.
SNAPSTART_MAX_EPHEMERAL_MB = 512
#: Commercial Regions without SnapStart (AWS's list of supported Regions).
SNAPSTART_UNSUPPORTED_REGIONS = {"ap-southeast-6": "Asia Pacific (New Zealand)",
                                 "ap-east-2": "Asia Pacific (Taipei)"}
#: The template parameter each option sets.
PARAMETERS = {"architecture": "Architecture", "memory_size": "MemorySize",
              "timeout": "Timeout", "ephemeral_storage": "EphemeralStorageSize",
              "provisioned_concurrency": "ProvisionedConcurrency",
              "snap_start": "SnapStart", "front_door": "FrontDoor"}
#: ``SnapStart`` parameter values.
SNAPSTART_ON, SNAPSTART_OFF = "PublishedVersions", "None"


def _integer(value: Any, name: str, low: int, high: int | None, unit: str) -> int:
    """``value`` as an int in ``[low, high]`` (a string of digits, e.g. from a form, too)."""
    number = value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        number = int(value.strip())
    if isinstance(number, float) and number.is_integer():
        number = int(number)
    if (isinstance(number, bool) or not isinstance(number, int) or number < low
            or (high is not None and number > high)):
        bound = f"from {low} to {high}" if high is not None else f"of at least {low}"
        raise InvalidInputError(f"invalid {name} {value!r}: expected an integer {bound} "
                                f"({unit})")
    return number


def _boolean(value: Any, name: str) -> bool:
    """``value`` as a bool (``"true"``/``"false"`` from a form too)."""
    text = value.strip().lower() if isinstance(value, str) else value
    if text in (True, "true"):
        return True
    if text in (False, "false"):
        return False
    raise InvalidInputError(f"invalid {name} {value!r}: expected true or false")


@dataclass(frozen=True)
class FunctionOptions:
    """How the function runs. ``None`` keeps the template's default.

    :param architecture: ``"x86_64"`` or ``"arm64"`` (Graviton, about 20 % cheaper); the
        dependency layer is built for it. ``None``: the dependency layer's, else x86_64.
    :param memory_size: memory in MB, 128 to 10240 (CPU grows with it).
    :param timeout: seconds, below the front door's integration timeout (REST API 29 s,
        HTTP API 30 s, function URL: Lambda's 900 s).
    :param ephemeral_storage: ``/tmp`` in MB, 512 to 10240; ``None``: 512, or what a
        dependency bundle needs.
    :param provisioned_concurrency: execution environments kept initialised on the alias
        ``live`` (0: none).
    :param snap_start: SnapStart on published versions (Python 3.12 and newer).
    :param front_door: ``"rest"``, ``"http"`` or ``"url"``.
    :raises InvalidInputError: naming the bad value and what is expected.
    """

    architecture: str | None = None
    memory_size: int | None = None
    timeout: int | None = None
    ephemeral_storage: int | None = None
    provisioned_concurrency: int = 0
    snap_start: bool = False
    front_door: str = "rest"

    def __post_init__(self) -> None:
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        if self.architecture is not None and self.architecture not in ARCHITECTURES:
            raise InvalidInputError(f"invalid architecture {self.architecture!r}: expected "
                                    f"one of {sorted(ARCHITECTURES)}")
        for name, (low, high), unit in (("memory_size", MEMORY_MB, "MB"),
                                        ("timeout", TIMEOUT_SECONDS, "seconds"),
                                        ("ephemeral_storage", EPHEMERAL_MB, "MB")):
            if getattr(self, name) is not None:
                put(name, _integer(getattr(self, name), name, low, high, unit))
        put("provisioned_concurrency", _integer(self.provisioned_concurrency,
                                                "provisioned_concurrency", 0, None,
                                                "execution environments, 0 for none"))
        put("snap_start", _boolean(self.snap_start, "snap_start"))
        put("front_door", check_front_door(self.front_door))

    @classmethod
    def coerce(cls, value: Any) -> FunctionOptions:
        """Options from themselves, a dict of their fields (``None`` values: the default;
        e.g. DAG Params or an XCom), or ``None`` (all defaults).

        :param value: the candidate.
        :raises InvalidInputError: for unknown keys, bad values or another type.
        """
        if value is None:
            return cls()
        if isinstance(value, FunctionOptions):
            return value
        if not isinstance(value, Mapping):
            raise InvalidInputError(f"function_options must be a FunctionOptions or a dict "
                                    f"of its fields, got {type(value).__name__}")
        known = [f.name for f in fields(cls)]
        unknown = sorted(str(k) for k in value if k not in known)
        if unknown:
            raise InvalidInputError(f"function_options: unknown keys {unknown}; expected "
                                    f"some of {known}")
        return cls(**{k: v for k, v in value.items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        """The options as JSON values (for logs and XCom)."""
        return asdict(self)

    def check(self, runtime: str | None = None, endpoint_auth: str | None = None,
              region: str | None = None, extra: Mapping[str, Any] | None = None
              ) -> FunctionOptions:
        """Refuse the combinations AWS does not run; return the options.

        :param runtime: the function's runtime, e.g. ``python3.11``; default: the worker's
            (the pickle fixes it, :func:`tdv_airflow.core.validation.lambda_runtime`),
            asked only when SnapStart is on.
        :param endpoint_auth: a checked ``endpoint_auth``, refused when the front door
            does not offer it (API keys exist only on the REST API).
        :param region: the function's Region (SnapStart is not offered everywhere).
        :param extra: further template parameters the caller gives (they win).
        :raises InvalidInputError: naming the values and the rule.
        """
        if endpoint_auth is not None:
            check_front_door_auth(self.front_door, endpoint_auth)
        values = {**self.to_parameters(), **(extra or {})}
        if values.get("SnapStart") == SNAPSTART_ON and runtime is None:
            from tdv_airflow.core.validation import lambda_runtime

            runtime = lambda_runtime()
        check_parameter_values(values, runtime, region)
        return self

    def to_parameters(self, declared: Collection[str] | None = None) -> dict[str, Any]:
        """The template parameters of the options that are set (defaults are left out,
        so the template's own apply and a template without them keeps working).

        :param declared: the template's parameter names; ``None`` skips the check.
        :raises InvalidInputError: when a set option's parameter is not declared.
        """
        values: dict[str, Any] = {
            "architecture": self.architecture, "memory_size": self.memory_size,
            "timeout": self.timeout, "ephemeral_storage": self.ephemeral_storage,
            "provisioned_concurrency": self.provisioned_concurrency or None,
            "snap_start": SNAPSTART_ON if self.snap_start else None,
            "front_door": FRONT_DOORS[self.front_door] if self.front_door != "rest" else None}
        out = {}
        for option, value in values.items():
            if value is None:
                continue
            parameter = PARAMETERS[option]
            if declared is not None and parameter not in declared:
                raise InvalidInputError(
                    f"{option}={getattr(self, option)!r} needs a template that declares the "
                    f"parameter {parameter!r} (see the shipped templates/stack_template.json);"
                    " this one does not")
            out[parameter] = value
        return out

    def check_template(self, template_path: Any = None) -> None:
        """Refuse options the template cannot take (before anything is uploaded).

        :param template_path: a template file; the shipped one when ``None``.
        :raises InvalidInputError: naming the option and the parameter it needs.
        """
        from tdv_airflow.core.resources import default_template_path
        from tdv_airflow.core.template import read_template

        if not self.to_parameters():
            return
        _, body = read_template(template_path or default_template_path())
        self.to_parameters(body.get("Parameters") or {})

    def dependencies_for(self, dependencies: Any) -> Any:
        """``dependencies`` built for :attr:`architecture` (unchanged when it is ``None``).

        :param dependencies: what ``prepare`` takes (a ``Dependencies``, a dict of its
            fields, requirement lines or ``None``).
        :raises InvalidInputError: when they name another architecture explicitly (a
            ``Dependencies`` value's ``x86_64``, its default, counts as not given).
        """
        from tdv_airflow.core.layers import Dependencies

        wanted = self.architecture
        if wanted is None or dependencies is None:
            return dependencies
        if isinstance(dependencies, Dependencies):
            given = None if dependencies.architecture == "x86_64" else dependencies.architecture
            merged: Any = replace(dependencies, architecture=wanted)
        elif isinstance(dependencies, Mapping):
            given = dependencies.get("architecture")
            merged = {**dependencies, "architecture": wanted}
        elif isinstance(dependencies, list | tuple):
            given, merged = None, {"requirements": list(dependencies), "architecture": wanted}
        else:
            return dependencies  # Dependencies.coerce names the type
        if given is not None and given != wanted:
            raise InvalidInputError(
                f"architecture={wanted!r} disagrees with the dependencies' architecture "
                f"{given!r}: give one architecture (the function and its layers run on it)")
        return merged


def check_parameter_values(values: Mapping[str, Any], runtime: str | None = None,
                           region: str | None = None) -> None:
    """Refuse a combination of template parameter values that AWS does not run.

    :param values: parameter name to value (the options', ``stack_parameters``' and a
        dependency bundle's); the template's defaults apply to those not given.
    :param runtime: the function's runtime (default: ``values["Runtime"]``).
    :param region: the function's Region, if known.
    :raises InvalidInputError: naming the values and the rule.
    """
    door = str(values.get("FrontDoor") or "REST").lower()
    auth = {v: k for k, v in ENDPOINT_AUTH_MODES.items()}.get(str(values.get("EndpointAuth")))
    if door in AUTH_MODES and auth is not None:
        check_front_door_auth(door, auth)
    if door in INTEGRATION_TIMEOUT_SECONDS and values.get("Timeout") is not None:
        timeout = _integer(values["Timeout"], "timeout", *TIMEOUT_SECONDS, "seconds")
        if timeout > max_timeout_seconds(door):
            limit = INTEGRATION_TIMEOUT_SECONDS[door]
            waits = (f"waits {limit} s for the function" if limit is not None
                     else "has no limit of its own; Lambda's is 900 s")
            raise InvalidInputError(
                f"timeout={timeout} s is too long for front_door={door!r}, which {waits}: "
                f"expected at most {max_timeout_seconds(door)} s")
    provisioned = int(values.get("ProvisionedConcurrency") or 0)
    reserved = values.get("ReservedConcurrency")
    if provisioned and reserved is not None and 0 <= int(reserved) < provisioned:
        raise InvalidInputError(
            f"provisioned_concurrency={provisioned} exceeds the reserved concurrency "
            f"{reserved}: Lambda refuses more provisioned than reserved concurrency")
    if values.get("SnapStart") != SNAPSTART_ON:
        return
    runtime = str(runtime or values.get("Runtime") or "")
    version = tuple(int(p) for p in runtime.removeprefix("python").split(".") if p.isdigit())
    if version < SNAPSTART_MIN_RUNTIME:
        raise InvalidInputError(
            f"snap_start=True needs the python3.12 runtime or newer, but this function runs "
            f"{runtime or 'an unknown runtime'}: its preprocessing function is pickled by this "
            "worker's Python, which fixes the runtime; deploy from Python 3.12+ or leave "
            "SnapStart off")
    ephemeral = int(values.get("EphemeralStorageSize") or EPHEMERAL_MB[0])
    problems = []
    if provisioned:
        problems.append(f"provisioned_concurrency={provisioned} (SnapStart does not support "
                        "provisioned concurrency: choose one)")
    if ephemeral > SNAPSTART_MAX_EPHEMERAL_MB:
        problems.append(f"ephemeral storage of {ephemeral} MB (SnapStart supports at most "
                        f"{SNAPSTART_MAX_EPHEMERAL_MB} MB; a dependency bundle may need more)")
    if region in SNAPSTART_UNSUPPORTED_REGIONS:
        problems.append(f"the Region {region} ({SNAPSTART_UNSUPPORTED_REGIONS[region]}), "
                        "where Lambda does not offer SnapStart")
    if problems:
        raise InvalidInputError("snap_start=True cannot run with " + "; ".join(problems))


def stamp_architecture(response: Mapping[str, Any], options: FunctionOptions
                       ) -> dict[str, Any]:
    """The prepare result with the options' architecture when it has no dependency layer
    or bundle (nothing compiled was built for an architecture); unchanged otherwise.

    :param response: the prepare result.
    :param options: the checked options.
    """
    has_deps = bool(response.get("s3_deps_layer_key") or response.get("deps_bundle"))
    if options.architecture is None or has_deps:
        return dict(response)
    return {**response, "architecture": options.architecture}


def check_architecture_of(response: Mapping[str, Any], options: FunctionOptions) -> None:
    """Refuse options whose architecture differs from the prepared dependencies'.

    :param response: the prepare result.
    :param options: the checked options.
    :raises InvalidInputError: naming both architectures.
    """
    built = response.get("architecture") or "x86_64"
    has_deps = bool(response.get("s3_deps_layer_key") or response.get("deps_bundle"))
    if options.architecture is not None and has_deps and built != options.architecture:
        raise InvalidInputError(
            f"architecture={options.architecture!r}, but the dependencies were prepared for "
            f"{built!r}: prepare them again with architecture={options.architecture!r}")


def stack_option_parameters(response: Mapping[str, Any], options: FunctionOptions
                            ) -> dict[str, Any]:
    """The options' template parameters for a prepare result's stack.

    :param response: the prepare result (``template_parameters``, ``architecture``).
    :param options: the checked options.
    :raises InvalidInputError: when the architecture differs from the prepared
        dependencies', or a set option's parameter is not declared by the template.
    """
    check_architecture_of(response, options)
    return options.to_parameters(response["template_parameters"])
