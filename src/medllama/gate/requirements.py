"""Which agreement (id, minimum version) a model requires: the gate's config, else the model's registry tag.

Registration tags every model version with `medllama.agreement` ("<id>@<min version>"); the gate reads
the tag of the registered model or of its newest version and caches the answer for a short while.
"""

from __future__ import annotations

import logging
import time

from medllama.gate.config import GateConfig, parse_requirement
from medllama.registry.card import AGREEMENT_TAG

log = logging.getLogger(__name__)


class RegistryUnavailable(RuntimeError):
    """The registry could not be asked; the gate denies rather than guesses."""


class ModelRequirements:
    def __init__(self, config: GateConfig) -> None:
        self.config = config
        self._cache: dict[str, tuple[float, tuple[str, int] | None]] = {}

    def __call__(self, model: str) -> tuple[str, int] | None:
        """(agreement id, min version) for `model`; None when the gate knows of no agreement for it."""
        if model in self.config.models:
            return parse_requirement(self.config.models[model])
        if not self.config.registry.tracking_uri:
            return None
        hit = self._cache.get(model)
        if hit and time.monotonic() - hit[0] < self.config.registry.cache_seconds:
            return hit[1]
        found = self._from_registry(model)
        self._cache[model] = (time.monotonic(), found)
        return found

    def _from_registry(self, model: str) -> tuple[str, int] | None:
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        client = MlflowClient(tracking_uri=self.config.registry.tracking_uri,
                              registry_uri=self.config.registry.tracking_uri)
        try:
            tags = dict(client.get_registered_model(model).tags or {})
            if AGREEMENT_TAG not in tags:
                newest = client.search_model_versions(f"name = '{model.replace(chr(39), '')}'",
                                                      order_by=["version_number DESC"], max_results=1)
                tags = dict(newest[0].tags or {}) if newest else {}
        except MlflowException as e:
            if e.error_code == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise RegistryUnavailable(f"registry lookup of {model!r} failed: {e.error_code}") from None
        except OSError as e:
            raise RegistryUnavailable(f"registry unreachable: {type(e).__name__}") from None
        if AGREEMENT_TAG not in tags:
            log.info("model %s has no %s tag: not offered through the gate", model, AGREEMENT_TAG)
            return None
        return parse_requirement(tags[AGREEMENT_TAG], f"{model} tag {AGREEMENT_TAG}")
