"""What a container asks of its kubelet: probes, lifecycle hooks and environment variables.

Shaped and validated as the API server does (one handler per probe or hook, non-negative
timings, successThreshold 1 for liveness and startup); the kubelet's defaults are properties,
so a manifest round-trips exactly as written.
"""

from typing import Any, Literal, cast

from pydantic import Field, model_validator

from . import validation as v
from .base import Model

#: the fieldRef paths the kubelet resolves for ``env`` (the API server's supported values)
FIELD_PATHS = ("metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName",
               "spec.serviceAccountName", "status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs")
FIELD_PATH_PREFIXES = ("metadata.labels['", "metadata.annotations['")


class ExecAction(Model):
    command: list[str] = Field(default_factory=list)


class HTTPHeader(Model):
    name: str
    value: str


class HTTPGetAction(Model):
    port: int | str
    path: str | None = None
    host: str | None = None
    scheme: Literal["HTTP", "HTTPS"] = "HTTP"
    http_headers: list[HTTPHeader] | None = None

    _check_port = v.field_check("port", v.check_int_or_port_name)


class TCPSocketAction(Model):
    port: int | str
    host: str | None = None

    _check_port = v.field_check("port", v.check_int_or_port_name)


class GRPCAction(Model):
    port: int
    service: str | None = None

    _check_port = v.field_check("port", v.check_port_number)


class SleepAction(Model):
    seconds: int

    @model_validator(mode="after")
    def _non_negative(self) -> "SleepAction":
        if self.seconds < 0:
            raise ValueError("seconds: must be greater than or equal to 0")
        return self


Handler = ExecAction | HTTPGetAction | TCPSocketAction | GRPCAction | SleepAction
PROBE_HANDLERS = ("exec", "http_get", "tcp_socket", "grpc")
HOOK_HANDLERS = ("exec", "http_get", "tcp_socket", "sleep")


def _one_handler(model: Model, allowed: tuple[str, ...]) -> None:
    given = [name for name in allowed if getattr(model, name) is not None]
    if not given:
        raise ValueError("must specify a handler type")
    if len(given) > 1:
        raise ValueError("may not specify more than 1 handler type")


class Probe(Model):
    exec: ExecAction | None = None
    http_get: HTTPGetAction | None = None
    tcp_socket: TCPSocketAction | None = None
    grpc: GRPCAction | None = None
    initial_delay_seconds: int | None = None
    timeout_seconds: int | None = None
    period_seconds: int | None = None
    success_threshold: int | None = None
    failure_threshold: int | None = None
    termination_grace_period_seconds: int | None = None

    @model_validator(mode="after")
    def _rules(self) -> "Probe":
        _one_handler(self, PROBE_HANDLERS)
        for name in ("initial_delay_seconds", "timeout_seconds", "period_seconds", "success_threshold",
                     "failure_threshold"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{_camel(name)}: must be greater than or equal to 0")
        if self.termination_grace_period_seconds is not None and self.termination_grace_period_seconds < 1:
            raise ValueError("terminationGracePeriodSeconds: must be greater than 0")
        return self

    # The kubelet's defaults (the API server writes them into the object; 0 means the default).
    @property
    def handler(self) -> Handler:
        return cast(Handler, next(getattr(self, n) for n in PROBE_HANDLERS if getattr(self, n) is not None))

    @property
    def delay(self) -> int:
        return self.initial_delay_seconds or 0

    @property
    def timeout(self) -> int:
        return self.timeout_seconds or 1

    @property
    def period(self) -> int:
        return self.period_seconds or 10

    @property
    def successes(self) -> int:
        return self.success_threshold or 1

    @property
    def failures(self) -> int:
        return self.failure_threshold or 3


class LifecycleHandler(Model):
    exec: ExecAction | None = None
    http_get: HTTPGetAction | None = None
    tcp_socket: TCPSocketAction | None = None
    sleep: SleepAction | None = None

    @model_validator(mode="after")
    def _rules(self) -> "LifecycleHandler":
        _one_handler(self, HOOK_HANDLERS)
        return self

    @property
    def handler(self) -> Handler:
        return cast(Handler, next(getattr(self, n) for n in HOOK_HANDLERS if getattr(self, n) is not None))


class Lifecycle(Model):
    post_start: LifecycleHandler | None = None
    pre_stop: LifecycleHandler | None = None
    stop_signal: str | None = None


class ObjectFieldSelector(Model):
    field_path: str
    api_version: str | None = None

    @model_validator(mode="after")
    def _supported(self) -> "ObjectFieldSelector":
        if self.field_path not in FIELD_PATHS and not (self.field_path.startswith(FIELD_PATH_PREFIXES)
                                                        and self.field_path.endswith("']")):
            supported = ", ".join(f'"{p}"' for p in FIELD_PATHS)
            raise ValueError(f'fieldPath: Unsupported value: "{self.field_path}": supported values: {supported}, '
                             "\"metadata.labels['KEY']\", \"metadata.annotations['KEY']\"")
        return self


class EnvVarSource(Model):
    field_ref: ObjectFieldSelector | None = None
    resource_field_ref: dict[str, Any] | None = None
    config_map_key_ref: dict[str, Any] | None = None
    secret_key_ref: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _one_source(self) -> "EnvVarSource":
        given = [n for n in ("field_ref", "resource_field_ref", "config_map_key_ref", "secret_key_ref")
                 if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("may not have more than one field specified at a time" if given
                             else "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` "
                                  "or `secretKeyRef`")
        return self


class EnvVar(Model):
    name: str
    value: str | None = None
    value_from: EnvVarSource | None = None

    @model_validator(mode="after")
    def _rules(self) -> "EnvVar":
        if not self.name or "=" in self.name:
            raise ValueError(f"name: Invalid value: {self.name!r}: a valid environment variable name must "
                             "not be empty or contain '='")
        if self.value and self.value_from is not None:
            raise ValueError("valueFrom: may not be specified when `value` is not empty")
        return self


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)
