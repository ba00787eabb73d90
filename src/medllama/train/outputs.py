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
import re
import shutil
from pathlib import Path

import torch.distributed as dist

from medllama import storage
from medllama.train import checkpoint

log = logging.getLogger(__name__)


# files of one rank in a checkpoint: DeepSpeed's ZeRO partitions (zero_pp_rank_R_...) and our RNG states
RANK_FILE = re.compile(r"(?:^|/)(?:zero_pp_rank_|rng-rank)(\d+)[_.]")


def _node_leader() -> bool:
    return int(os.environ.get("LOCAL_RANK", 0)) == 0


def rank_reads(name: str, rank: int, leader: bool) -> bool:
    """Whether `rank` downloads checkpoint file `name`: its own partitions, and the shared files (module
    weights, trainer state) on a node's leader. The COMPLETE marker is fetched apart, last."""
    if name.rsplit("/", 1)[-1] == checkpoint.COMPLETE:
        return False
    m = RANK_FILE.search(name)
    return int(m.group(1)) == rank if m else leader


def download_checkpoint(uri: str, dest: Path, rank: int, leader: bool) -> list[str]:
    """Download the files of checkpoint `uri` (an S3 prefix) that `rank` reads into `dest`; returns them."""
    bucket, key = storage.split_s3(uri)
    client = storage.s3_client()
    names = [storage.split_s3(o)[1][len(key):].lstrip("/") for o in storage.expand(f"{uri}/")]
    mine = [n for n in names if rank_reads(n, rank, leader)]
    for name in mine:
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        client.download_file(bucket, f"{key}/{name}", str(dest / name))
    return mine


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
        """Make the latest checkpoint complete in S3 the latest one here (every rank calls this): each rank
        downloads only its own shards, a node's leader the shared files and, once all are down, COMPLETE."""
        if not self.remote:
            return
        leader, rank = _node_leader(), dist.get_rank()
        steps = self._remote_steps()
        if leader:  # newer here than in S3: never fully pushed
            root = checkpoint.checkpoints_dir(self.local)
            for local in root.glob("step-*") if root.is_dir() else []:
                if not steps or local.name > steps[-1]:
                    shutil.rmtree(local, ignore_errors=True)
        dist.barrier()
        target = checkpoint.checkpoints_dir(self.local) / steps[-1] if steps else None
        pull = target is not None and not (target / checkpoint.COMPLETE).is_file()
        if pull:
            download_checkpoint(f"{self.uri}/checkpoints/{steps[-1]}", target, rank, leader)
        dist.barrier()
        if pull and leader:
            storage.s3_client().download_file(*storage.split_s3(f"{self.uri}/checkpoints/{steps[-1]}/{checkpoint.COMPLETE}"),
                                              str(target / checkpoint.COMPLETE))
            log.info("pulled checkpoint %s from %s", steps[-1], self.uri)
        dist.barrier()

    def _remote_steps(self) -> list[str]:
        try:
            keys = storage.expand(f"{self.uri}/checkpoints/")
        except storage.StorageError:
            return []
        prefix = f"{self.uri}/checkpoints/"
        return sorted({k[len(prefix):].split("/")[0] for k in keys if k.endswith(f"/{checkpoint.COMPLETE}")})

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
