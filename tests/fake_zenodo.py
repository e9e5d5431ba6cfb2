"""A local stand-in for Zenodo (files + record API) on 127.0.0.1, for download tests.

The server serves bytes the tests make, under the same paths as Zenodo
(``/records/<id>/files/<name>``, ``/api/records/<id>``); ``mirror=`` points the downloader at
it. Switches make it ignore ``Range`` or cut a response short mid-body, and it logs every
request so tests can check what was asked for.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

RECORD = 4242


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


# ----------------------------------------------------------------------------------------------
# The local server
# ----------------------------------------------------------------------------------------------


@dataclass
class FakeZenodo:
    base: str = ""
    files: dict[str, bytes] = field(default_factory=dict)
    api: dict[str, object] = field(default_factory=dict)
    ignore_range: bool = False
    cut: dict[str, int] = field(default_factory=dict)  # path -> bytes sent before dropping (once)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def publish(self, name: str, data: bytes, *, record: int = RECORD) -> str:
        """Serve ``data`` as a file of ``record``; return its (real, un-mirrored) Zenodo URL."""
        self.files[f"/records/{record}/files/{name}"] = data
        return f"https://zenodo.org/records/{record}/files/{name}"

    def publish_record(self, record: int = RECORD, **overrides: dict) -> None:
        """The record metadata JSON, listing every published file of ``record``."""
        entries = []
        for path, data in self.files.items():
            match = re.fullmatch(rf"/records/{record}/files/(.+)", path)
            if match:
                entry = {"key": match.group(1), "size": len(data), "checksum": f"md5:{md5(data)}"}
                entry.update(overrides.get(match.group(1), {}))
                entries.append(entry)
        self.api[f"/api/records/{record}"] = {"id": record, "files": entries}

    def requests_for(self, name: str) -> list[dict[str, str]]:
        return [headers for path, headers in self.requests if path.endswith("/" + name)]


def _handler(state: FakeZenodo) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # keep pytest output clean
            pass

        def _reply(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            state.requests.append((path, dict(self.headers)))
            if path in state.api:
                self._reply(200, json.dumps(state.api[path]).encode(), {"Content-Type": "application/json"})
                return
            data = state.files.get(path)
            if data is None:
                self._reply(404, b"not found", {})
                return
            status, start, headers = 200, 0, {"Content-Type": "application/octet-stream"}
            wanted = self.headers.get("Range")
            if wanted and not state.ignore_range:
                start = int(re.fullmatch(r"bytes=(\d+)-", wanted).group(1))
                if start >= len(data):
                    self._reply(416, b"", {"Content-Range": f"bytes */{len(data)}"})
                    return
                status = 206
                headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
            body = data[start:]
            cut = state.cut.pop(path, None)
            if cut is None:
                self._reply(status, body, headers)
                return
            # Announce the whole body, send part of it, drop the connection.
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.close_connection = True

    return Handler


@pytest.fixture
def zenodo() -> FakeZenodo:
    state = FakeZenodo()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    state.base = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()
    server.server_close()
