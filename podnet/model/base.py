"""Base classes for resource values: frozen, strict, camelCase on the wire.

Field names are snake_case in Python and camelCase in manifests, exactly as the Kubernetes and
Calico APIs spell them. Unknown fields are errors (like ``kubectl --validate=strict``).
"""

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from . import validation as v


class Model(BaseModel):
    """A frozen API value; serialises back to the manifest's camelCase form."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        populate_by_name=True,
        alias_generator=to_camel,
        validate_default=False,
        # Validators are built on a class's first use, not at import: importing every kind's
        # schema cost each process ~1 s of its start (a restarted loop's convergence), and most
        # processes use a few kinds. pydantic 2.14 builds under a lock, so threads may race.
        defer_build=True,
    )

    def to_dict(self) -> dict[str, Any]:
        """The manifest form: camelCase keys, unset optional fields left out."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class ObjectMeta(Model):
    """metadata: what users write plus what the server sets (kept as given on apply)."""

    name: str = ""
    generate_name: str | None = None
    namespace: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    uid: str | None = None
    resource_version: str | None = None
    generation: int | None = None
    creation_timestamp: str | None = None
    deletion_timestamp: str | None = None
    deletion_grace_period_seconds: int | None = None
    owner_references: list[dict[str, Any]] | None = None
    finalizers: list[str] | None = None
    managed_fields: list[dict[str, Any]] | None = None
    self_link: str | None = None

    _check_labels = v.field_check("labels", v.check_labels)
    _check_annotations = v.field_check("annotations", v.check_annotations)


class Resource(Model):
    """A top-level object: apiVersion, kind, metadata, and whatever the kind adds."""

    API_VERSION: ClassVar[str] = ""
    KIND: ClassVar[str] = ""
    PLURAL: ClassVar[str] = ""
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ()
    NAMESPACED: ClassVar[bool] = True
    #: How ``metadata.name`` must look: "dns1123-subdomain" (most kinds), "dns1123-label"
    #: (Namespace) or "dns1035-label" (Service); see validation.NAME_CHECKS.
    NAME_RULE: ClassVar[str] = "dns1123-subdomain"

    api_version: str
    kind: str
    metadata: ObjectMeta

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def namespace(self) -> str | None:
        return self.metadata.namespace

    @property
    def labels(self) -> dict[str, str]:
        return self.metadata.labels

    @property
    def ref(self) -> str:
        """``ns/name`` for namespaced objects, ``name`` otherwise."""
        ns = self.metadata.namespace
        return f"{ns}/{self.metadata.name}" if self.NAMESPACED and ns else self.metadata.name

    @classmethod
    def group(cls) -> str:
        """The API group ("" for core v1)."""
        return cls.API_VERSION.rpartition("/")[0]

    @classmethod
    def resource_name(cls) -> str:
        """kubectl's ``plural.group`` form, e.g. ``networkpolicies.networking.k8s.io``."""
        group = cls.group()
        return f"{cls.PLURAL}.{group}" if group else cls.PLURAL

    def with_meta(self, **changes: Any) -> "Resource":
        """A copy with metadata fields replaced (values stay frozen)."""
        return self.model_copy(update={"metadata": self.metadata.model_copy(update=changes)})
