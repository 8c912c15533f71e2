"""Test helpers: child processes (control plane, rollout worker, receivers,
agent) and a real Redis, all on loopback, all bounded in time and killed by
pid at teardown."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable, Optional

HERE = Path(__file__).resolve().parent
PACKAGE_ROOT = HERE.parent
REPO = PACKAGE_ROOT.parent.parent
PYTHON = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
CONTROL_PLANE_MAIN = REPO / "services/control-plane/dist/main.js"
ROLLOUT_WORKER_MAIN = REPO / "services/rollout-worker/dist/main.js"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(cond: Callable[[], Any], timeout_s: float, what: str, interval_s: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(interval_s)


class Proc:
    """A child process whose stdout lines are collected (JSON parsed when
    possible) and whose stdout/stderr are kept in files for diagnosis."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], log_dir: Path, cwd: Optional[Path] = None) -> None:
        self.name = name
        self.stdout_path = log_dir / f"{name}.stdout"
        self.stderr_path = log_dir / f"{name}.stderr"
        self._stderr = open(self.stderr_path, "ab")
        self.lines: list[Any] = []
        self._lock = threading.Lock()
        self.popen = subprocess.Popen(
            cmd, env=env, cwd=str(cwd or PACKAGE_ROOT), stdout=subprocess.PIPE, stderr=self._stderr, start_new_session=True
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        with open(self.stdout_path, "ab") as out:
            for raw in self.popen.stdout:
                out.write(raw)
                out.flush()
                text = raw.decode(errors="replace").strip()
                try:
                    item: Any = json.loads(text)
                except ValueError:
                    item = text
                with self._lock:
                    self.lines.append(item)

    def event(self, name: str, timeout_s: float) -> dict[str, Any]:
        """The first stdout JSON line with ``event == name``."""

        def find() -> Optional[dict[str, Any]]:
            with self._lock:
                for item in self.lines:
                    if isinstance(item, dict) and item.get("event") == name:
                        return item
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.popen.returncode} before '{name}'; stderr tail:\n{self.stderr_tail()}")
            return None

        return wait_until(find, timeout_s, f"{self.name} to print event {name}")

    def stderr_tail(self, n: int = 4000) -> str:
        try:
            return self.stderr_path.read_bytes()[-n:].decode(errors="replace")
        except FileNotFoundError:
            return ""

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, sig)  # the child's own session: only what we started
            except ProcessLookupError:
                pass

    def stop(self, timeout_s: float = 5.0) -> None:
        if self.popen.poll() is None:
            self.kill(signal.SIGTERM)
            try:
                self.popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill(signal.SIGKILL)
                self.popen.wait(timeout_s)
        self._stderr.close()

    def wait(self, timeout_s: float) -> int:
        return self.popen.wait(timeout_s)


def http_json(method: str, url: str, body: Any = None, timeout_s: float = 10.0) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as r:
            raw = r.read()
            return r.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as err:
        raw = err.read()
        try:
            return err.code, json.loads(raw)
        except ValueError:
            return err.code, raw.decode(errors="replace")


class Stack:
    """Redis + control plane (+ whatever a test adds), torn down together."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: list[Proc] = []
        self.redis_port = free_port()
        self.transfer_port = free_port()
        self.redis_url = f"redis://127.0.0.1:{self.redis_port}"
        self.http_url = ""
        self.grpc_address = ""

    def spawn(self, name: str, cmd: list[str], env: dict[str, str]) -> Proc:
        p = Proc(name, cmd, {**os.environ, **env}, self.log_dir)
        self.procs.append(p)
        return p

    def start(self) -> "Stack":
        for main in (CONTROL_PLANE_MAIN, ROLLOUT_WORKER_MAIN):
            if not main.exists():
                raise RuntimeError(f"{main} is missing: build the TypeScript services first (cd {REPO} && npx tsc -b)")
        self.redis = self.spawn(
            "redis", ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {}
        )
        wait_until(lambda: _redis_ping(self.redis_port), 10, "redis to answer PING")
        cp = self.spawn(
            "control-plane",
            ["node", str(CONTROL_PLANE_MAIN)],
            {
                "TANDEM_REDIS_URL": self.redis_url,
                "TANDEM_HTTP_PORT": "0",
                "TANDEM_GRPC_PORT": "0",
                "TANDEM_RUNTIME": "none",
                "TANDEM_TRANSFER_PORT": str(self.transfer_port),
                "TANDEM_GENERATOR_HEALTH_INTERVAL_MS": "1000",
                "TANDEM_MAX_PULL_WAIT_MS": "2000",
                "TANDEM_LOG_LEVEL": "info",
            },
        )
        listening = cp.event("listening", 30)
        self.http_url = listening["httpUrl"]
        self.grpc_address = listening["grpcAddress"]
        return self

    def submit(self, run_id: str, spec: dict[str, Any]) -> dict[str, Any]:
        status, body = http_json("POST", f"{self.http_url}/v1/runs", {"runId": run_id, "spec": spec})
        assert status == 201, f"submit failed: {status} {body}"
        return body

    def run(self, run_id: str) -> dict[str, Any]:
        status, body = http_json("GET", f"{self.http_url}/v1/runs/{run_id}")
        assert status == 200, f"get run failed: {status} {body}"
        return body

    def register_generator(self, run_id: str, gid: str, url: str) -> None:
        status, body = http_json("POST", f"{self.http_url}/v1/runs/{run_id}/generators", {"id": gid, "url": url})
        assert status == 201, f"register generator failed: {status} {body}"

    def generators(self, run_id: str) -> list[dict[str, Any]]:
        return http_json("GET", f"{self.http_url}/v1/runs/{run_id}/generators")[1]["generators"]

    def group_states(self, run_id: str, prefix: str = "tandem") -> dict[str, str]:
        out = subprocess.run(
            ["redis-cli", "-p", str(self.redis_port), "--raw", "HGETALL", f"{prefix}:{{{run_id}}}:gstate"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.split("\n")
        items = [x for x in out if x != ""]
        return dict(zip(items[0::2], items[1::2]))

    def start_receiver(self, name: str, seed: int, packing_placement: str = "init") -> tuple[Proc, str]:
        args = ["--seed", str(seed), "--join-timeout-s", "30", "--update-timeout-s", "30", "--packing-placement", packing_placement]
        p = self.spawn(name, [PYTHON, "-m", "tandem_trainer.receiver", *args], {})
        return p, p.event("listening", 30)["url"]

    def start_worker(self, run_id: str) -> Proc:
        return self.spawn(
            "rollout-worker",
            ["node", str(ROLLOUT_WORKER_MAIN)],
            {
                "TANDEM_REDIS_URL": self.redis_url,
                "TANDEM_RUN_ID": run_id,
                "TANDEM_WORKER_CONCURRENCY": "8",
                "TANDEM_BACKOFF_BASE_MS": "50",
                "TANDEM_BACKOFF_CAP_MS": "500",
                "TANDEM_PROBE_AFTER_MS": "300",
                "TANDEM_REQUEST_TIMEOUT_MS": "20000",
                "TANDEM_MAX_ATTEMPTS": "20",
            },
        )

    def start_agent(self, name: str, run_id: str, checkpoint_dir: Path, step_log: Path, extra: Optional[dict[str, str]] = None) -> Proc:
        env = {
            "TANDEM_SERVER": self.grpc_address,
            "TANDEM_RUN_ID": run_id,
            "TANDEM_TRAINER_ID": name,
            "TANDEM_CHECKPOINT_DIR": str(checkpoint_dir),
            "TANDEM_TRANSFER_BACKEND": "gloo",
            "TANDEM_TRANSFER_LOCAL_ADDRESS": "127.0.0.1",
            "TANDEM_TRANSFER_BUFFER_BYTES": "16384",  # several packed chunks per sync
            "TANDEM_STEP_LOG": str(step_log),
            "TANDEM_PULL_SLICE_MS": "500",
            "TANDEM_SYNC_GRACE_MS": "5000",
            "TANDEM_RECONNECT_INITIAL_MS": "100",
            "TANDEM_RECONNECT_MAX_MS": "1000",
            "TANDEM_RECONNECT_GIVE_UP_MS": "60000",
            **(extra or {}),
        }
        return self.spawn(name, [PYTHON, "-m", "tandem_trainer", "--entry", "tandem_trainer.examples.tiny_grpo:build"], env)

    def close(self) -> None:
        # Reverse order: agents and workers first, Redis last.
        for p in reversed(self.procs):
            try:
                p.stop()
            except Exception:  # teardown must reach every process
                p.kill()


def _redis_ping(port: int) -> bool:
    try:
        r = subprocess.run(["redis-cli", "-p", str(port), "PING"], capture_output=True, text=True, timeout=2)
        return r.stdout.strip() == "PONG"
    except subprocess.TimeoutExpired:
        return False


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
