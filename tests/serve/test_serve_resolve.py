"""What `--model` names: a registry version (models:/…, real MLflow server), an s3:// prefix (moto), a folder."""

from __future__ import annotations

import pytest

from medllama.serve import resolve
from medllama.storage import sha256_tree

from .conftest import ALIAS, MODEL


def test_registry_alias_and_version_resolve_to_the_same_version(registered, tiny_served_dir):
    by_alias = resolve(f"models:/{MODEL}@{ALIAS}", registered.tracking_uri)
    by_number = resolve(f"models:/{MODEL}/{registered.version}", registered.tracking_uri)
    assert (by_alias.name, by_alias.version) == (by_number.name, by_number.version) == (MODEL, registered.version)
    assert by_alias.tags["data_use_agreement"] and sha256_tree(by_alias.path) == sha256_tree(tiny_served_dir)


def test_s3_prefix_is_downloaded_and_named_after_its_folder(s3, tiny_served_dir, monkeypatch):
    for key, value in {**s3.env, "AWS_ENDPOINT_URL": s3.endpoint_url}.items():
        monkeypatch.setenv(key, value)
    for f in tiny_served_dir.iterdir():
        s3.client().upload_file(str(f), "mlflow", f"runs/abc/sft-tiny/model/{f.name}")
    served = resolve("s3://mlflow/runs/abc/sft-tiny/model")
    assert served.name == "sft-tiny" and served.version is None
    assert sha256_tree(served.path) == sha256_tree(tiny_served_dir)


@pytest.mark.parametrize("ref, message", [
    ("models:/no-such-model@champion", "no-such-model"),
    ("models:/bad uri", "models:/NAME/VERSION"),
])
def test_a_bad_registry_reference_is_one_clear_error(registered, ref, message):
    with pytest.raises(ValueError, match=message):
        resolve(ref, registered.tracking_uri)


def test_a_folder_without_a_model_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        resolve(str(tmp_path))
