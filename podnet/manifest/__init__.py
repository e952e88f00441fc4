"""Manifests: YAML/JSON text → validated resources with positions, or every error found.

    load_paths(["policy.yaml", "dir/", "-"], recursive=False) -> list[Loaded]
    load_text(text, "file.yaml") -> list[Loaded]

Each ``Loaded`` is (obj, source, positions): the frozen resource, the location of its document,
and the location of every field path in it. Problems across all inputs are raised together as
``errors.ValidationError`` (file:line:column, field path, what was expected, a hint).
"""
from .loader import SOURCE_ANNOTATION, Loaded, load_paths, load_text, with_source

__all__ = ["SOURCE_ANNOTATION", "Loaded", "load_paths", "load_text", "with_source"]
