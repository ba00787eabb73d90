"""Validate custom resources against the openAPIV3Schema of the upstream CRDs vendored in tests/crds/.

The API server's strict field validation (`kubectl apply --validate=strict`, the default since 1.27)
rejects a field the schema does not declare; jsonschema does not, so the CRD schema is first turned into
a strict JSON schema the way the API server reads a structural schema:
- an object without `x-kubernetes-preserve-unknown-fields` accepts only its `properties` (or, for a map,
  its `additionalProperties` schema);
- `x-kubernetes-int-or-string` accepts an integer or a string;
- `x-kubernetes-embedded-resource` implies apiVersion, kind and metadata;
- `nullable` accepts null;
- the top-level metadata is an ObjectMeta (its fields from the kubernetes client's V1ObjectMeta).
Not checked: CEL rules (`x-kubernetes-validations`), list-map key uniqueness, formats (the API server
checks few of them).
"""

from __future__ import annotations

import functools
import gzip
import re
from pathlib import Path
from typing import Any

import jsonschema
import yaml

CRD_DIR = Path(__file__).parent / "crds"


class CustomResourceInvalid(ValueError):
    """The object does not match its CRD's schema; `path` is the dotted path of the first error."""

    def __init__(self, path: str, message: str):
        super().__init__(f"{path}: {message}")
        self.path = path


def _object_meta_schema() -> dict:
    from kubernetes.client import V1ObjectMeta

    fields: dict[str, Any] = {name: {} for name in V1ObjectMeta.attribute_map.values()}
    string_map = {"type": "object", "additionalProperties": {"type": "string"}}
    fields.update(name={"type": "string"}, namespace={"type": "string"}, generateName={"type": "string"},
                  labels=string_map, annotations=string_map, finalizers={"type": "array", "items": {"type": "string"}})
    return {"type": "object", "properties": fields, "additionalProperties": False}


def strict_schema(schema: dict, top_level: bool = True) -> dict:
    """A JSON schema that accepts what the API server accepts for this CRD schema with strict field validation."""
    s = {k: v for k, v in schema.items() if not k.startswith("x-kubernetes-") and k not in ("nullable",)}
    if schema.get("x-kubernetes-int-or-string"):
        s.pop("type", None)
        s["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    for key in ("properties", "patternProperties"):
        if key in s:
            s[key] = {name: strict_schema(sub, False) for name, sub in s[key].items()}
    for key in ("items", "not"):
        if isinstance(s.get(key), dict):
            s[key] = strict_schema(s[key], False)
    for key in ("allOf", "anyOf", "oneOf"):
        if key in s and not schema.get("x-kubernetes-int-or-string"):
            s[key] = [strict_schema(sub, False) for sub in s[key]]
    if isinstance(s.get("additionalProperties"), dict):
        s["additionalProperties"] = strict_schema(s["additionalProperties"], False)
    if schema.get("x-kubernetes-embedded-resource") or top_level:
        props = s.setdefault("properties", {})
        props.setdefault("apiVersion", {"type": "string"})
        props.setdefault("kind", {"type": "string"})
        props["metadata"] = _object_meta_schema()  # the API server checks ObjectMeta itself
    if s.get("type") == "object" and "additionalProperties" not in s \
            and not schema.get("x-kubernetes-preserve-unknown-fields"):
        s["additionalProperties"] = False
    for bound in ("Minimum", "Maximum"):  # OpenAPI 3.0's boolean exclusive bounds are numbers in JSON Schema
        if s.get(f"exclusive{bound}") is True:
            s[f"exclusive{bound}"] = s.pop(bound.lower())
        elif s.get(f"exclusive{bound}") is False:
            del s[f"exclusive{bound}"]
    if schema.get("nullable"):
        s = {"anyOf": [{"type": "null"}, s]}
    return s


@functools.cache
def _crd_files() -> dict[tuple[str, str], Path]:
    """(group, kind) -> the vendored CRD file, read from its header (parsing all of them takes seconds)."""
    found = {}
    for path in sorted([*CRD_DIR.rglob("*.yaml"), *CRD_DIR.rglob("*.yaml.gz")]):
        head = _read(path)[:4000]
        group, kind = re.search(r"^  group: (\S+)$", head, re.M), re.search(r"^    kind: (\S+)$", head, re.M)
        if "kind: CustomResourceDefinition" in head and group and kind:
            found[(group[1], kind[1])] = path
    return found


def _read(path: Path) -> str:
    """A vendored CRD's text; the two biggest (2-3 MB) are stored gzipped."""
    return gzip.decompress(path.read_bytes()).decode() if path.suffix == ".gz" else path.read_text()


@functools.cache
def _validator(api_version: str, kind: str) -> jsonschema.protocols.Validator:
    group, _, version = api_version.rpartition("/")
    path = _crd_files().get((group, kind))
    if path is None:
        known = ", ".join(sorted(f"{k} ({g})" for g, k in _crd_files()))
        raise KeyError(f"no vendored CRD for {kind} {api_version}; known: {known}")
    spec = yaml.load(_read(path), Loader=yaml.CSafeLoader)["spec"]
    versions = {v["name"]: v["schema"]["openAPIV3Schema"] for v in spec["versions"]}
    if version not in versions:
        raise KeyError(f"{kind}: the vendored CRD serves {sorted(versions)}, not {version!r}")
    return jsonschema.Draft202012Validator(strict_schema(versions[version]))


def _dotted(path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<root>"


def _first(errors) -> jsonschema.ValidationError:
    """The error earliest in the document; through `nullable`'s anyOf to the error of the non-null branch."""
    error = min(errors, key=lambda e: [str(p) for p in e.absolute_path])
    if error.validator == "anyOf" and {"type": "null"} in error.validator_value:
        inner = [e for e in error.context if e.schema != {"type": "null"}]
        return _first(inner) if inner else error
    return error


def validate_custom_resource(obj: dict) -> None:
    """Raise CustomResourceInvalid (path of the first error) unless `obj` matches its CRD's schema."""
    errors = list(_validator(obj.get("apiVersion", ""), obj.get("kind", "")).iter_errors(obj))
    if not errors:
        return
    error = _first(errors)
    path = list(error.absolute_path)
    if error.validator == "additionalProperties" and error.validator_value is False:
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        raise CustomResourceInvalid(_dotted(path + extra[:1]), f"unknown field {extra[0]!r}")
    raise CustomResourceInvalid(_dotted(path), error.message)
