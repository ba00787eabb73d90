"""Real local servers for tests: PostgreSQL (initdb + pg_ctl), S3 (moto_server) and `mlflow server`.

Each helper is a context manager: it starts the server in a fresh temp dir on a free loopback port,
waits for a health check, yields a small description of it, and tears it down (process group and
files) on exit. Only a missing binary raises `ServerUnavailable`, which fixtures turn into a skip;
anything else that goes wrong fails loudly with the tail of the server's log.
"""

from __future__ import annotations

import contextlib
import glob
import importlib.util
import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

S3_ENV = {  # moto accepts any keys; fixed ones keep boto3 from looking for real credentials
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


class ServerUnavailable(RuntimeError):
    """A binary a server needs is not installed; the message says what to install."""


@dataclass(frozen=True)
class Postgres:
    host: str
    port: int
    user: str
    data_dir: Path
    started_s: float

    def url(self, database: str = "postgres") -> str:
        # postgresql+psycopg2: a plain postgresql:// makes SQLAlchemy 2.1 look for psycopg 3
        return f"postgresql+psycopg2://{self.user}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create database `name` and return its SQLAlchemy URL."""
        import psycopg2

        conn = psycopg2.connect(host=self.host, port=self.port, user=self.user, dbname="postgres")
        try:
            conn.autocommit = True  # CREATE DATABASE cannot run inside a transaction
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()
        return self.url(name)


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str
    buckets: tuple[str, ...]
    started_s: float
    env: dict[str, str] = field(default_factory=lambda: dict(S3_ENV))

    def client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=S3_ENV["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=S3_ENV["AWS_SECRET_ACCESS_KEY"],
            region_name=S3_ENV["AWS_DEFAULT_REGION"],
        )

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


@dataclass(frozen=True)
class MlflowServer:
    url: str
    backend_store_uri: str
    artifacts_destination: str
    started_s: float


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_pg_bin(name: str) -> str | None:
    """`initdb`/`pg_ctl` on PATH, else Debian's /usr/lib/postgresql/<newest>/bin."""
    found = shutil.which(name)
    if found:
        return found
    candidates = glob.glob(f"/usr/lib/postgresql/*/bin/{name}")
    return max(candidates, key=lambda p: int(Path(p).parts[-3])) if candidates else None


def venv_bin(name: str) -> str | None:
    """A console script of this interpreter's environment (the venv), else one on PATH."""
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else shutil.which(name)


def wait_until(check: Callable[[], bool], what: str, timeout: float, proc: subprocess.Popen | None = None,
               log_file: Path | None = None) -> None:
    """Poll `check` until it is true; fail early with the log tail if `proc` exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode} before it was ready{_tail(log_file)}")
        try:
            if check():
                return
        except Exception:  # not up yet: refused connections, 5xx, ...
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{what} not ready after {timeout:.0f} s{_tail(log_file)}")


def _tail(log_file: Path | None, lines: int = 30) -> str:
    if log_file is None or not log_file.exists():
        return ""
    text = log_file.read_text(errors="replace").splitlines()[-lines:]
    return f"; last lines of {log_file}:\n" + "\n".join(text)


@contextlib.contextmanager
def _process_group(cmd: list[str], log_file: Path, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen]:
    """Run `cmd` in its own session so teardown reaches every child it spawns (server workers)."""
    with open(log_file, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        yield proc
    finally:
        _stop_group(proc)


def _stop_group(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM the whole group, wait for every member to go, SIGKILL what is left after `grace`."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and _group_alive(proc.pid):
        proc.poll()  # reap the leader, or its zombie keeps the group "alive"
        time.sleep(0.1)
    if _group_alive(proc.pid):
        log.warning("process group %s ignored SIGTERM for %.0f s; killing it", proc.pid, grace)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _as_user(user: str | None, cmd: list[str]) -> list[str]:
    return ["runuser", "-u", user, "--", *cmd] if user else cmd


@contextlib.contextmanager
def postgres_server(timeout: float = 60.0) -> Iterator[Postgres]:
    """A throw-away PostgreSQL cluster on 127.0.0.1 (trust auth, user `postgres`, fsync off)."""
    initdb, pg_ctl = find_pg_bin("initdb"), find_pg_bin("pg_ctl")
    if not (initdb and pg_ctl):
        raise ServerUnavailable("PostgreSQL not installed (no initdb/pg_ctl on PATH or under "
                                "/usr/lib/postgresql/*/bin); run .ci/install-services or apt-get install postgresql")
    if importlib.util.find_spec("psycopg2") is None:
        raise ServerUnavailable("psycopg2 not installed; pip install psycopg2-binary")
    run_as = None
    if os.geteuid() == 0:  # initdb refuses root: run the cluster as the package's `postgres` user
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            raise RuntimeError("running as root and there is no `postgres` user to own the test cluster; "
                               "install Debian's postgresql package (it creates the user)") from None
        run_as = "postgres"
    t0 = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="medllama-pg-"))
    data, log_file = root / "data", root / "postgres.log"
    if run_as:
        os.chown(root, owner.pw_uid, owner.pw_gid)
    port = free_port()
    started = False
    try:
        _run(_as_user(run_as, [initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
                               "--no-locale", "--no-sync"]), log_file)
        opts = f"-p {port} -c listen_addresses=127.0.0.1 -k {root} -c fsync=off -c full_page_writes=off"
        _run(_as_user(run_as, [pg_ctl, "-D", str(data), "-l", str(log_file), "-o", opts, "-w", "-t",
                               str(int(timeout)), "start"]), log_file)
        started = True
        pg = Postgres("127.0.0.1", port, "postgres", data, time.monotonic() - t0)
        wait_until(lambda: _pg_ready(pg), "PostgreSQL", timeout, log_file=log_file)
        log.info("PostgreSQL on %s:%s ready in %.1f s", pg.host, pg.port, pg.started_s)
        yield pg
    finally:
        if started:
            subprocess.run(_as_user(run_as, [pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"]),
                           capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def _run(cmd: list[str], log_file: Path) -> None:
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({out.returncode}): {out.stderr or out.stdout}{_tail(log_file)}")


def _pg_ready(pg: Postgres) -> bool:
    import psycopg2

    psycopg2.connect(host=pg.host, port=pg.port, user=pg.user, dbname="postgres", connect_timeout=2).close()
    return True


@contextlib.contextmanager
def http_server(cmd: list[str], health_url: str, what: str, env: dict[str, str] | None = None,
                timeout: float = 120.0) -> Iterator[float]:
    """Run `cmd` until `health_url` answers 200; yields the start-up time in seconds; stops its process group."""
    t0 = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix=f"medllama-{what.replace(' ', '-')}-"))
    log_file = root / "server.log"
    try:
        with _process_group(cmd, log_file, env) as proc:
            wait_until(lambda: _http_ok(health_url), what, timeout, proc, log_file)
            started = time.monotonic() - t0
            log.info("%s at %s ready in %.1f s", what, health_url, started)
            yield started
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def moto_s3_server(buckets: tuple[str, ...] = ("mlflow",), timeout: float = 60.0) -> Iterator[S3Server]:
    """moto's S3 on a free loopback port, with `buckets` created."""
    moto = venv_bin("moto_server")
    if moto is None:
        raise ServerUnavailable("moto_server not installed; pip install 'moto[server]'")
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    with http_server([moto, "-H", "127.0.0.1", "-p", str(port)], f"{endpoint}/moto-api/", "moto_server",
                     timeout=timeout) as started:
        s3 = S3Server(endpoint, tuple(buckets), started)
        for b in buckets:
            s3.client().create_bucket(Bucket=b)
        yield s3


@contextlib.contextmanager
def mlflow_server(backend_store_uri: str, artifacts_destination: str, s3: S3Server | None = None,
                  timeout: float = 120.0) -> Iterator[MlflowServer]:
    """`mlflow server` on a free loopback port proxying artifacts to `artifacts_destination`."""
    mlflow = venv_bin("mlflow")
    if mlflow is None:
        raise ServerUnavailable("mlflow not installed in this environment; pip install mlflow")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # no job runner + huey workers
    if s3 is not None:
        env.update(s3.env, MLFLOW_S3_ENDPOINT_URL=s3.endpoint_url)
    cmd = [mlflow, "server", "--backend-store-uri", backend_store_uri, "--artifacts-destination",
           artifacts_destination, "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    with http_server(cmd, f"{url}/health", "mlflow server", env, timeout) as started:
        yield MlflowServer(url, backend_store_uri, artifacts_destination, started)


_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never via an HTTP(S)_PROXY


def _http_ok(url: str) -> bool:
    with _DIRECT.open(url, timeout=2) as r:
        return r.status == 200
