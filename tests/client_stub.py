"""A loopback HTTP server that answers from a script: how the client's retries are tested
against failures the real service cannot be made to produce on cue (a 503 with a
Retry-After, a connection closed after the request arrived)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# one scripted answer: (status, headers, JSON body), or DROP to close without answering
DROP = "drop"
Answer = tuple[int, dict[str, str], dict] | str


class ScriptedServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, answers: list[Answer]):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.answers = list(answers)
        self.seen: list[tuple[float, str, str]] = []  # (monotonic time, method, path)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: ScriptedServer

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.server.seen.append((time.monotonic(), self.command, self.path))
        answer = self.server.answers.pop(0)
        if answer == DROP:
            self.close_connection = True
            self.connection.shutdown(2)  # the request arrived; no answer ever will
            return
        status, headers, body = answer
        payload = json.dumps(body).encode()
        self.send_response(status)
        for name, value in {**headers, "Content-Type": "application/json"}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, *_: object) -> None:
        pass


@contextmanager
def scripted(answers: list[Answer]) -> Iterator[ScriptedServer]:
    server = ScriptedServer(answers)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
