"""tests/servers.py itself: servers come up, go away completely, and only missing binaries mean a skip."""

from __future__ import annotations

import socket

import pytest

import servers


def _refused(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex((host, port)) != 0


def test_missing_binaries_raise_server_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(servers, "find_pg_bin", lambda name: None)
    monkeypatch.setattr(servers, "venv_bin", lambda name: None)
    for start, needs in ((servers.postgres_server, "initdb"), (servers.moto_s3_server, "moto"),
                         (lambda: servers.mlflow_server("sqlite:///x.db", "s3://b/p"), "mlflow")):
        with pytest.raises(servers.ServerUnavailable, match=needs):
            with start():
                pass


@pytest.mark.local
def test_postgres_and_moto_are_gone_after_exit() -> None:
    try:
        with servers.postgres_server() as pg, servers.moto_s3_server(buckets=("scratch",)) as s3:
            pg.create_database("scratch")
            s3.client().put_object(Bucket="scratch", Key="k", Body=b"x")
            assert s3.keys("scratch") == ["k"]
            moto_port = int(s3.endpoint_url.rsplit(":", 1)[1])
    except servers.ServerUnavailable as e:
        pytest.skip(str(e))
    assert _refused(pg.host, pg.port) and _refused("127.0.0.1", moto_port)
    assert not pg.data_dir.exists()
