"""Where a run writes: a local (or PVC) directory, mirrored to an s3:// prefix when the output is one.

With an s3:// output the trainer works in a local directory (MEDLLAMA_WORK_DIR, else the cache) and
pushes each checkpoint, then the exported model and metrics, under the prefix. A checkpoint's COMPLETE
marker is uploaded last, after every node uploaded its shards, so a new pod (any node) resumes only from
a checkpoint that is whole in S3.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from pathlib import Path

import torch.distributed as dist

from medllama import storage
from medllama.train import checkpoint

log = logging.getLogger(__name__)


def _node_leader() -> bool:
    return int(os.environ.get("LOCAL_RANK", 0)) == 0


class Output:
    def __init__(self, uri: str):
        self.uri = uri.rstrip("/")
        self.remote = storage.is_s3(uri)
        if self.remote:
            work = os.environ.get("MEDLLAMA_WORK_DIR")
            digest = hashlib.sha256(uri.encode()).hexdigest()[:16]
            self.local = Path(work) if work else storage.CACHE_DIR / "runs" / digest
        else:
            self.local = Path(uri)
        self.local.mkdir(parents=True, exist_ok=True)

    def pull_latest_checkpoint(self) -> None:
        """Make the latest checkpoint complete in S3 the latest one here (every rank calls this)."""
        if self.remote and _node_leader():
            self._pull()
        dist.barrier()

    def _remote_steps(self) -> list[str]:
        try:
            keys = storage.expand(f"{self.uri}/checkpoints/")
        except storage.StorageError:
            return []
        prefix = f"{self.uri}/checkpoints/"
        return sorted({k[len(prefix):].split("/")[0] for k in keys if k.endswith(f"/{checkpoint.COMPLETE}")})

    def _pull(self) -> None:
        steps = self._remote_steps()
        root = checkpoint.checkpoints_dir(self.local)
        for local in root.glob("step-*") if root.is_dir() else []:
            if not steps or local.name > steps[-1]:  # newer here than in S3: never fully pushed
                shutil.rmtree(local, ignore_errors=True)
        if not steps or (root / steps[-1] / checkpoint.COMPLETE).is_file():
            return
        bucket, key = storage.split_s3(f"{self.uri}/checkpoints/{steps[-1]}")
        client = storage.s3_client()
        target = root / steps[-1]
        for obj in storage.expand(f"{self.uri}/checkpoints/{steps[-1]}/"):
            okey = storage.split_s3(obj)[1]
            dest = target / okey[len(key):].lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            client.download_file(bucket, okey, str(dest))
        log.info("pulled checkpoint %s from %s", steps[-1], self.uri)

    def push_checkpoint(self, path: Path, keep_last: int) -> None:
        """Upload a saved checkpoint (every rank calls this); COMPLETE last; prune old ones in S3."""
        if not self.remote:
            return
        remote = f"{self.uri}/checkpoints/{path.name}"
        if _node_leader():
            client = storage.s3_client()
            bucket, key = storage.split_s3(remote)
            for f in sorted(p for p in path.rglob("*") if p.is_file() and p.name != checkpoint.COMPLETE):
                client.upload_file(str(f), bucket, f"{key}/{f.relative_to(path).as_posix()}")
        dist.barrier()
        if dist.get_rank() == 0:
            storage.publish(path / checkpoint.COMPLETE, f"{remote}/{checkpoint.COMPLETE}")
            self._prune_remote(keep_last)
        if _node_leader():  # S3 holds them now; other nodes' copies carry no COMPLETE marker to prune by
            for old in checkpoint.checkpoints_dir(self.local).glob("step-*"):
                if old.name < path.name:
                    shutil.rmtree(old, ignore_errors=True)
        dist.barrier()

    def _prune_remote(self, keep_last: int) -> None:
        client = storage.s3_client()
        for step in self._remote_steps()[:-keep_last]:
            bucket, key = storage.split_s3(f"{self.uri}/checkpoints/{step}/")
            keys = [storage.split_s3(o)[1] for o in storage.expand(f"{self.uri}/checkpoints/{step}/")]
            marker = f"{key}{checkpoint.COMPLETE}"
            client.delete_object(Bucket=bucket, Key=marker)  # first, so a half-deleted checkpoint never looks whole
            rest = [{"Key": k} for k in keys if k != marker]
            for i in range(0, len(rest), 1000):
                client.delete_objects(Bucket=bucket, Delete={"Objects": rest[i:i + 1000]})

    def push_results(self, names: list[str]) -> None:
        """Rank 0: upload the exported model and reports (`model`, `metrics.json`, ...)."""
        if not self.remote:
            return
        for name in names:
            path = self.local / name
            if path.exists():
                storage.publish(path, f"{self.uri}/{name}")
        log.info("published %s to %s", ", ".join(names), self.uri)
