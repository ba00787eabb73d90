"""The gate's configuration: a YAML file, then `MEDLLAMA_GATE_*` environment variables over it.

Secrets (the admin token, a database password) come only from the environment or a file the
operator points to; they are never defaults in code and never logged (`GateConfig.__repr__` hides them).
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

ENV_PREFIX = "MEDLLAMA_GATE_"


class GateConfigError(ValueError):
    """A configuration that cannot be used; the message names the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FormField(_Strict):
    name: str = Field(..., pattern=r"^[a-z][a-z0-9_]*$")
    label: str
    kind: Literal["text", "email", "textarea"] = "text"
    required: bool = True


class Agreement(_Strict):
    id: str = Field(..., pattern=r"^[a-z0-9][a-z0-9\-]*$")
    version: int = Field(..., ge=1)
    title: str
    text: str = Field("", description="markdown; or text_file")
    text_file: str | None = Field(None, description="markdown file; relative paths are read beside the config")
    fields: list[FormField]
    approval: Literal["auto", "manual"] = "manual"


class KeyPolicy(_Strict):
    default_days: int = Field(90, ge=1)
    max_days: int = Field(365, ge=1)
    requests_per_minute: int = Field(60, ge=1)
    tokens_per_day: int = Field(200_000, ge=1)


class RegistryLookup(_Strict):
    """Where a model's required agreement is read when `models` does not name it."""

    tracking_uri: str | None = None
    cache_seconds: float = Field(60.0, ge=0)


class GateConfig(_Strict):
    database_url: str = "sqlite:///.medllama/gate.db"
    admin_token: SecretStr | None = Field(None, description="from MEDLLAMA_GATE_ADMIN_TOKEN; never in the file")
    meter_token: SecretStr | None = Field(None, description="from MEDLLAMA_GATE_METER_TOKEN; never in the file: "
                                          "lets model servers report usage and nothing else")
    upstream: str | None = Field(None, description="model server base URL for the reverse proxy")
    public_url: str = Field("", description="how users reach the gate (shown with a new key); '' = the request's URL")
    agreements: list[Agreement] = Field(default_factory=list)
    models: dict[str, str] = Field(default_factory=dict, description='model name -> "agreement-id@min-version"')
    registry: RegistryLookup = Field(default_factory=RegistryLookup)
    keys: KeyPolicy = Field(default_factory=KeyPolicy)
    migrate_on_start: bool = True
    flush_seconds: float = Field(0.1, gt=0, le=3600, description="audit rows, request counts and usage are written "
                                 "in batches this often and at shutdown; a crash loses at most this long's")

    @field_validator("models")
    @classmethod
    def _requirement_format(cls, models: dict[str, str]) -> dict[str, str]:
        for model, req in models.items():
            parse_requirement(req, f"models.{model}")
        return models

    def agreement(self, agreement_id: str) -> Agreement | None:
        """The newest configured version of `agreement_id` (the one new acceptances sign)."""
        found = [a for a in self.agreements if a.id == agreement_id]
        return max(found, key=lambda a: a.version) if found else None


def parse_requirement(text: str, where: str = "requirement") -> tuple[str, int]:
    """`"me-llama-dua@2"` -> ("me-llama-dua", 2)."""
    agreement, sep, version = text.strip().rpartition("@")
    if not sep or not agreement or not version.isdigit():
        raise GateConfigError(f'{where}: {text!r} is not "<agreement id>@<minimum version>"')
    return agreement, int(version)


def default_agreements() -> list[Agreement]:
    """The bundled Me-LLaMA data-use agreement (PhysioNet-style, manual approval)."""
    text = resources.files("medllama.gate").joinpath("agreements/me-llama-dua.md").read_text(encoding="utf-8")
    return [Agreement(
        id="me-llama-dua", version=1, title="Me-LLaMA data use agreement", text=text, approval="manual",
        fields=[FormField(name="name", label="Full name"), FormField(name="email", label="Email", kind="email"),
                FormField(name="affiliation", label="Affiliation"),
                FormField(name="training_certificate", label="Human-subjects training certificate id"),
                FormField(name="intended_use", label="Intended use", kind="textarea")],
    )]


def load_config(path: str | Path | None = None, environ: dict[str, str] | None = None) -> GateConfig:
    """Read `path` (or $MEDLLAMA_GATE_CONFIG; none = defaults), then apply MEDLLAMA_GATE_* variables."""
    env = os.environ if environ is None else environ
    path = path or env.get(ENV_PREFIX + "CONFIG")
    raw: dict = {}
    base = Path.cwd()
    if path:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"gate config {p} not found")
        raw = yaml.safe_load(p.read_text()) or {}
        if not isinstance(raw, dict):
            raise GateConfigError(f"{p}: expected a mapping at the top level")
        for secret in ("admin_token", "meter_token"):
            if secret in raw:
                raise GateConfigError(f"{p}: {secret} must come from ${ENV_PREFIX}{secret.upper()}, not the file")
        base = p.resolve().parent
    for field in ("database_url", "admin_token", "meter_token", "upstream", "public_url"):
        if env.get(ENV_PREFIX + field.upper()):
            raw[field] = env[ENV_PREFIX + field.upper()]
    if env.get(ENV_PREFIX + "TRACKING_URI"):
        raw.setdefault("registry", {})["tracking_uri"] = env[ENV_PREFIX + "TRACKING_URI"]
    try:
        config = GateConfig.model_validate(raw)
    except ValidationError as e:
        raise GateConfigError(f"gate config: {e}") from None
    if not config.agreements:
        config.agreements = default_agreements()
    for a in config.agreements:
        if a.text_file:
            a.text = (base / a.text_file).read_text(encoding="utf-8")
        if not a.text.strip():
            raise GateConfigError(f"agreement {a.id}@{a.version}: set text or text_file")
    for model, req in config.models.items():
        agreement_id, _ = parse_requirement(req)
        if config.agreement(agreement_id) is None:
            raise GateConfigError(f"models.{model}: agreement {agreement_id!r} is not configured")
    if config.keys.default_days > config.keys.max_days:
        raise GateConfigError("keys.default_days is longer than keys.max_days")
    return config
