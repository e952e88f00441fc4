"""apps/v1 Deployment and ReplicaSet: replicas of a pod template, rolled out by strategy."""

import re
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from . import validation as v
from .base import Model, ObjectMeta, Resource
from .core import PodSpec
from .selectors import LabelSelector


class PodTemplateSpec(Model):
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: PodSpec


IntOrPercent = int | str
_PERCENT = re.compile(r"^[0-9]+%$")


def _check_int_or_percent(name: str, value: IntOrPercent | None) -> None:
    if value is None:
        return
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{name}: must be greater than or equal to 0")
    elif not _PERCENT.match(value):
        raise ValueError(f"{name}: Invalid value: {value!r}: a valid percent string must be a numeric string "
                         "followed by an ending '%' (e.g. '1%',  or '93%')")


def _is_zero(value: IntOrPercent | None) -> bool:
    return value in (0, "0%")


class RollingUpdateDeployment(Model):
    max_surge: IntOrPercent | None = None
    max_unavailable: IntOrPercent | None = None

    @model_validator(mode="after")
    def _rules(self) -> "RollingUpdateDeployment":
        _check_int_or_percent("maxSurge", self.max_surge)
        _check_int_or_percent("maxUnavailable", self.max_unavailable)
        if isinstance(self.max_unavailable, str) and int(self.max_unavailable[:-1]) > 100:
            raise ValueError("maxUnavailable: must not be greater than 100%")
        if _is_zero(self.surge) and _is_zero(self.unavailable):
            raise ValueError("maxUnavailable: may not be 0 when `maxSurge` is 0")
        return self

    @property
    def surge(self) -> IntOrPercent:
        return "25%" if self.max_surge is None else self.max_surge

    @property
    def unavailable(self) -> IntOrPercent:
        return "25%" if self.max_unavailable is None else self.max_unavailable


class DeploymentStrategy(Model):
    type: Literal["RollingUpdate", "Recreate"] = "RollingUpdate"
    rolling_update: RollingUpdateDeployment | None = None

    @model_validator(mode="after")
    def _rules(self) -> "DeploymentStrategy":
        if self.type == "Recreate" and self.rolling_update is not None:
            raise ValueError("rollingUpdate: may not be specified when strategy `type` is 'Recreate'")
        return self

    @property
    def rolling(self) -> RollingUpdateDeployment:
        return self.rolling_update or RollingUpdateDeployment()


class DeploymentSpec(Model):
    selector: LabelSelector
    template: PodTemplateSpec
    replicas: v.Int32 = 1
    strategy: DeploymentStrategy | None = None
    min_ready_seconds: v.Int32 | None = None
    revision_history_limit: v.Int32 | None = None
    progress_deadline_seconds: v.Int32 | None = None
    paused: bool | None = None

    @model_validator(mode="after")
    def _selector_matches_template(self) -> "DeploymentSpec":
        if self.replicas < 0:
            raise ValueError("replicas: must be greater than or equal to 0")
        for name in ("min_ready_seconds", "revision_history_limit"):
            if (getattr(self, name) or 0) < 0:
                raise ValueError(f"{'minReadySeconds' if name == 'min_ready_seconds' else 'revisionHistoryLimit'}: "
                                 "must be greater than or equal to 0")
        if self.progress_deadline_seconds is not None and self.progress_deadline_seconds <= (self.min_ready_seconds or 0):
            raise ValueError("progressDeadlineSeconds: must be greater than minReadySeconds")
        if self.selector.is_empty:
            raise ValueError("selector: empty selector is invalid for a Deployment")
        if self.template.spec.restart_policy not in (None, "Always"):
            raise ValueError(f"template: spec.restartPolicy {self.template.spec.restart_policy!r} is not supported "
                             "in a Deployment: only Always (the default)")
        if not self.selector.matches(self.template.metadata.labels):
            raise ValueError(
                f"selector {self.selector.describe()} does not match template labels "
                f"{self.template.metadata.labels}: make spec.template.metadata.labels carry them"
            )
        return self


class Deployment(Resource):
    API_VERSION: ClassVar[str] = "apps/v1"
    KIND: ClassVar[str] = "Deployment"
    PLURAL: ClassVar[str] = "deployments"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("deploy",)

    api_version: Literal["apps/v1"] = "apps/v1"
    kind: Literal["Deployment"] = "Deployment"
    spec: DeploymentSpec
    status: dict[str, Any] | None = None


class ReplicaSetSpec(Model):
    selector: LabelSelector
    template: PodTemplateSpec | None = None
    replicas: int = 1
    min_ready_seconds: int | None = None

    @model_validator(mode="after")
    def _selector_matches_template(self) -> "ReplicaSetSpec":
        if self.replicas < 0:
            raise ValueError("replicas: must be greater than or equal to 0")
        if self.selector.is_empty:
            raise ValueError("selector: empty selector is invalid for a ReplicaSet")
        if self.template is not None and not self.selector.matches(self.template.metadata.labels):
            raise ValueError(f"selector {self.selector.describe()} does not match template labels "
                             f"{self.template.metadata.labels}: make spec.template.metadata.labels carry them")
        return self


class ReplicaSet(Resource):
    API_VERSION: ClassVar[str] = "apps/v1"
    KIND: ClassVar[str] = "ReplicaSet"
    PLURAL: ClassVar[str] = "replicasets"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("rs",)

    api_version: Literal["apps/v1"] = "apps/v1"
    kind: Literal["ReplicaSet"] = "ReplicaSet"
    spec: ReplicaSetSpec
    status: dict[str, Any] | None = None
