"""Where bytes live: local paths (a PVC path is one), `s3://` URIs (boto3) and `samples://` (bundled data).

Paths stay strings until the last moment so an `s3://` URI survives every hop. The S3 endpoint and
credentials come from the standard AWS environment (AWS_ENDPOINT_URL / MLFLOW_S3_ENDPOINT_URL,
AWS_ACCESS_KEY_ID, ...), never from a recipe.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

SAMPLES_DIR = Path(__file__).resolve().parent / "samples"
CACHE_DIR = Path(os.environ.get("MEDLLAMA_CACHE", Path.home() / ".cache" / "medllama"))


class StorageError(FileNotFoundError):
    """A URI that cannot be read or written; the message says which and what to check."""


def expand_vars(uri: str) -> str:
    """Expands `${VAR}` from the environment: recipes name locations through variables, never literally."""
    expanded = os.path.expandvars(uri)
    if "${" in expanded or expanded.startswith("$"):
        missing = sorted(set(re.findall(r"\$\{?(\w+)", expanded)))
        raise StorageError(f"{uri}: environment variable(s) {', '.join(missing)} not set; export them to point at your data")
    return expanded


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def split_s3(uri: str) -> tuple[str, str]:
    bucket, _, key = uri[len("s3://"):].partition("/")
    if not bucket:
        raise StorageError(f"{uri}: no bucket in the URI; expected s3://bucket/prefix")
    return bucket, key


def s3_client():
    import boto3

    endpoint = os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("MLFLOW_S3_ENDPOINT_URL")
    return boto3.client("s3", endpoint_url=endpoint)


def local_path(uri: str) -> Path:
    """A local path for a non-S3 URI: `samples://x` → bundled file, `file://x` and plain paths as given."""
    uri = expand_vars(uri)
    if uri.startswith("samples://"):
        return SAMPLES_DIR / uri[len("samples://"):]
    if uri.startswith("file://"):
        return Path(uri[len("file://"):])
    return Path(uri).expanduser()


def expand(uri: str) -> list[str]:
    """All files a source URI names: one file, a directory's files, a glob, or every object under an S3 prefix."""
    uri = expand_vars(uri)
    if is_s3(uri):
        bucket = split_s3(uri)[0]
        return [f"s3://{bucket}/{k}" for k in _s3_objects(uri)]
    path = local_path(uri)
    if path.is_dir():
        files = sorted(str(p) for p in path.rglob("*") if p.is_file())
    elif any(c in str(path) for c in "*?["):
        files = sorted(glob.glob(str(path), recursive=True))
    else:
        files = [str(path)] if path.is_file() else []
    if not files:
        raise StorageError(f"{uri}: no such file or directory")
    return files


def _s3_objects(uri: str) -> dict[str, str]:
    """Key → ETag of every object under an S3 prefix, sorted by key."""
    bucket, prefix = split_s3(uri)
    try:
        pages = s3_client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        found = {o["Key"]: o["ETag"] for page in pages for o in page.get("Contents", []) if not o["Key"].endswith("/")}
    except Exception as e:  # botocore raises many types; all mean "cannot list"
        raise StorageError(f"{uri}: cannot list objects ({e}); check the bucket, prefix and credentials") from None
    if not found:
        raise StorageError(f"{uri}: no objects match; check the prefix and credentials")
    return dict(sorted(found.items()))


def fetch(uri: str) -> Path:
    """A local path holding the URI's content, downloading an S3 object or prefix into the cache once per
    version of its objects (their ETags)."""
    uri = expand_vars(uri)
    if not is_s3(uri):
        path = local_path(uri)
        if not path.exists():
            raise StorageError(f"{uri}: no such file or directory")
        return path
    bucket, key = split_s3(uri)
    objects = _s3_objects(uri)
    # keyed by the objects' ETags too: a rewritten object (or one added under the prefix) is fetched anew
    listing = "\n".join(f"{k}\0{etag}" for k, etag in objects.items())
    dest = CACHE_DIR / "s3" / hashlib.sha256(f"{uri}\n{listing}".encode()).hexdigest()[:16]
    if dest.exists():
        return dest / Path(key).name if (dest / ".single").exists() else dest
    client = s3_client()
    tmp = Path(tempfile.mkdtemp(dir=CACHE_DIR.mkdir(parents=True, exist_ok=True) or CACHE_DIR))
    single = len(objects) == 1 and next(iter(objects)) == key
    for okey in objects:
        rel = Path(okey).name if single else Path(okey[len(key):].lstrip("/"))
        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
        client.download_file(bucket, okey, str(tmp / rel))
    if single:
        (tmp / ".single").touch()
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, dest)  # atomic: a killed download never looks complete
    return dest / Path(key).name if single else dest


def publish(local: str | Path, uri: str) -> str:
    """Copy a local file or directory to `uri` (local path or S3 prefix); returns `uri`."""
    local = Path(local)
    if is_s3(uri):
        bucket, key = split_s3(uri)
        client = s3_client()
        if local.is_file():  # a file goes to exactly `uri`, as it does for a local destination
            client.upload_file(str(local), bucket, key or local.name)
            return uri
        for f in sorted(p for p in local.rglob("*") if p.is_file()):
            rel = f.relative_to(local).as_posix()
            client.upload_file(str(f), bucket, f"{key.rstrip('/')}/{rel}" if key else rel)
        return uri
    dest = local_path(uri)
    if dest.resolve() == local.resolve():
        return uri
    dest.parent.mkdir(parents=True, exist_ok=True)
    if local.is_dir():
        shutil.copytree(local, dest, dirs_exist_ok=True)
    else:
        shutil.copy2(local, dest)
    return uri


def write_json_atomic(path: str | Path, obj, indent: int = 2) -> Path:
    """Write `obj` as JSON to `path` through a temporary file and a rename: a reader (or a run killed
    halfway) never sees a partial file, so its presence can mark a finished step."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=indent) + "\n")
    os.replace(tmp, path)
    return path


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_tree(path: str | Path) -> str:
    """Content hash of a file or a directory (relative names + bytes), stable across machines."""
    path = Path(path)
    if path.is_file():
        return sha256_file(path)
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(f.relative_to(path).as_posix().encode() + b"\0" + sha256_file(f).encode())
    return h.hexdigest()
