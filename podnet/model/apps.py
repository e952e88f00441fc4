"""apps/v1 Deployment: replicas of a pod template."""
from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from . import validation as v
from .base import Model, ObjectMeta, Resource
from .core import PodSpec
from .selectors import LabelSelector


class PodTemplateSpec(Model):
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: PodSpec


class DeploymentSpec(Model):
    selector: LabelSelector
    template: PodTemplateSpec
    replicas: v.Int32 = 1
    strategy: dict[str, Any] | None = None
    min_ready_seconds: v.Int32 | None = None
    revision_history_limit: v.Int32 | None = None
    progress_deadline_seconds: v.Int32 | None = None
    paused: bool | None = None

    @model_validator(mode="after")
    def _selector_matches_template(self) -> "DeploymentSpec":
        if self.replicas < 0:
            raise ValueError("replicas: must be greater than or equal to 0")
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
