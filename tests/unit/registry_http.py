"""A stand-in schema registry over real HTTP, for what confluent-kafka's mock:// cannot do.

It speaks the few REST endpoints newswire uses (register, compatibility) with
scripted answers, so the tests exercise the very client newswire uses for an
``http://`` registry: request paths, basic auth, the error statuses.
"""

from __future__ import annotations

import base64
import contextlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["Registry", "serving"]


class Registry(ThreadingHTTPServer):
    """Speaks the parts of the Schema Registry REST API newswire uses; scripted answers."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[tuple[str, str, str | None, Any]] = []
        self.register_status = 200
        self.compatible: bool | None = True
        self.user_info: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: Registry

    def log_message(self, *args: Any) -> None:  # keep pytest's output clean
        return

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"null")
        auth = self.headers.get("Authorization")
        self.server.requests.append(("POST", self.path, auth, body))
        expected = self.server.user_info
        if expected and auth != "Basic " + base64.b64encode(expected.encode()).decode():
            self._answer(401, {"error_code": 401, "message": "Unauthorized"})
        elif self.path.startswith("/compatibility/"):
            if self.server.compatible is None:
                self._answer(404, {"error_code": 40401, "message": "Subject not found"})
            else:
                self._answer(200, {"is_compatible": self.server.compatible})
        elif self.server.register_status == 409:
            self._answer(
                409, {"error_code": 409, "message": "Schema being registered is incompatible"}
            )
        elif self.server.register_status >= 500:
            self._answer(self.server.register_status, {"error_code": 50001, "message": "down"})
        else:
            self._answer(200, {"id": 77})


@contextlib.contextmanager
def serving() -> Iterator[Registry]:
    """A started stand-in registry, stopped on exit."""
    server = Registry()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
