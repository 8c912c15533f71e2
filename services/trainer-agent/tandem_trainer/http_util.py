"""Small JSON-over-HTTP helpers shared by the reward server and the test
receiver (stdlib ``http.server`` only: nothing to install in the trainer
image, and threads, not an event loop, because the work is blocking)."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional
from urllib.parse import parse_qs, urlparse


class HttpError(Exception):
    """Answered as ``status`` with a JSON body."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body


class JsonHandler(BaseHTTPRequestHandler):
    """Base handler: JSON bodies in and out, quiet logs, HTTP/1.1 keep-alive."""

    protocol_version = "HTTP/1.1"
    max_body_bytes = 16 * 1024 * 1024

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        return  # access logs would drown the structured logs

    @property
    def path_only(self) -> str:
        return urlparse(self.path).path

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlparse(self.path).query)

    def parse_request(self) -> bool:
        # One handler instance serves every request of a keep-alive
        # connection: forget the previous request's body.
        self._body: Optional[bytes] = None
        return super().parse_request()

    def read_body(self) -> bytes:
        """The request body, read once. Every POST handler must consume it:
        with keep-alive, unread bytes would be parsed as the next request
        (Node's fetch sends ``{}`` even to routes that ignore the body)."""
        cached = self._body
        if cached is not None:
            return cached
        length = int(self.headers.get("content-length") or 0)
        if length > self.max_body_bytes:
            self.close_connection = True  # the unread body makes the stream unusable
            raise HttpError(413, {"error": f"body of {length} bytes exceeds {self.max_body_bytes}"})
        body = self.rfile.read(length) if length else b""
        self._body = body
        return body

    def read_json(self, *, allow_empty: bool = False) -> Any:
        raw = self.read_body()
        if not raw.strip():
            if allow_empty:
                return {}
            raise HttpError(400, {"error": "request body is empty; expected a JSON object"})
        try:
            return json.loads(raw)
        except ValueError as err:
            raise HttpError(400, {"error": f"request body is not valid JSON: {err}"}) from err

    def send_json(self, status: int, body: Any, headers: Optional[dict[str, str]] = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if body is not None:
            self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)


class QuietServer(ThreadingHTTPServer):
    """Threading server whose handler threads do not keep the process alive."""

    daemon_threads = True
    allow_reuse_address = True
