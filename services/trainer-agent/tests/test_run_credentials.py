"""The agent's client presents its run's credential over TLS to the real
control plane (authentication on, a certificate made by the test): its
own run is served; another run, no token, or plain text are refused."""

from __future__ import annotations

import json
import ssl
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import grpc
import pytest

from tandem_trainer.client import TrainerClient
from tandem_trainer.errors import TandemRpcError

from .procs import CONTROL_PLANE_MAIN, Stack, wait_until, _redis_ping

API_TOKEN = "python-test-api-token-0123456789"
SPEC = {
    "model": {"name": "tiny"},
    "dataset": {"source": "builtin", "name": "arithmetic", "size": 10},
    "reward": {"kind": "numeric"},
    "algorithm": {"groupSize": 2, "batchGroups": 2},
    "async": {"maxTrajectoryAgeSteps": 1},
    "maxSteps": 3,
}


def _https(ctx: ssl.SSLContext, method: str, url: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json", "authorization": f"Bearer {API_TOKEN}"})
    with urllib.request.urlopen(req, timeout=10, context=ctx) as r:
        return r.status, json.loads(r.read())


@pytest.fixture
def secured(tmp_path: Path) -> Any:
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "1", "-keyout", str(key), "-out", str(cert),
         "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True, timeout=60,
    )
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(f"tokens:\n  - {{ subject: py, token: {API_TOKEN}, role: editor, namespaces: ['*'] }}\n")
    s = Stack(tmp_path)
    try:
        s.spawn("redis", ["redis-server", "--port", str(s.redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {})
        wait_until(lambda: _redis_ping(s.redis_port), 10, "redis to answer PING")
        cp = s.spawn("control-plane", ["node", str(CONTROL_PLANE_MAIN)], {
            "TANDEM_REDIS_URL": s.redis_url, "TANDEM_HTTP_PORT": "0", "TANDEM_GRPC_PORT": "0", "TANDEM_RUNTIME": "none",
            "TANDEM_AUTH_TOKENS_FILE": str(tokens), "TANDEM_TLS_CERT_FILE": str(cert), "TANDEM_TLS_KEY_FILE": str(key),
        })
        listening = cp.event("listening", 30)
        ctx = ssl.create_default_context(cafile=str(cert))
        creds = {}
        for run_id in ("py-a", "py-b"):
            status, _ = _https(ctx, "POST", f"{listening['httpUrl']}/v1/runs", {"runId": run_id, "spec": SPEC})
            assert status == 201
            creds[run_id] = _https(ctx, "GET", f"{listening['httpUrl']}/v1/runs/{run_id}/credentials")[1]["token"]
        yield {"grpc": listening["grpcAddress"], "ca": str(cert), "creds": creds}
    finally:
        s.close()


def _client(env: dict[str, Any], run_id: str, **kw: Any) -> TrainerClient:
    return TrainerClient(env["grpc"], run_id, "py-trainer", rpc_timeout_s=5.0, **kw)


def test_own_run_is_served_over_tls(secured: Any) -> None:
    c = _client(secured, "py-a", token=secured["creds"]["py-a"], tls=True, ca_file=secured["ca"])
    try:
        assert c.pull_batch(0, 0).state != "run_ended"
    finally:
        c.close()


def test_another_runs_token_is_refused(secured: Any) -> None:
    c = _client(secured, "py-b", token=secured["creds"]["py-a"], tls=True, ca_file=secured["ca"])
    try:
        with pytest.raises(TandemRpcError) as e:
            c.pull_batch(0, 0)
        assert e.value.code == grpc.StatusCode.PERMISSION_DENIED
    finally:
        c.close()


def test_no_token_is_refused(secured: Any) -> None:
    c = _client(secured, "py-a", tls=True, ca_file=secured["ca"])
    try:
        with pytest.raises(TandemRpcError) as e:
            c.pull_batch(0, 0)
        assert e.value.code == grpc.StatusCode.UNAUTHENTICATED
    finally:
        c.close()


def test_plain_text_is_refused(secured: Any) -> None:
    c = _client(secured, "py-a", token=secured["creds"]["py-a"])
    try:
        with pytest.raises(TandemRpcError) as e:
            c.pull_batch(0, 0)
        assert e.value.code == grpc.StatusCode.UNAVAILABLE
    finally:
        c.close()
