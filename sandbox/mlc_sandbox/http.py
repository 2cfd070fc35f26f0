"""A small threaded HTTP/1.1 server with keep-alive, shared by the stand-ins.

A stand-in is a function Request → Response; this module only moves bytes. Responses can also misbehave on purpose
(drop the connection, send a truncated body), which is how stand-ins inject network faults.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


@dataclass
class Request:
    method: str
    path: str  # as sent, still percent-encoded
    query: str  # as sent, without the '?'
    headers: Message
    body: bytes
    client: tuple

    @property
    def target(self) -> str:
        return self.path + (f"?{self.query}" if self.query else "")


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)
    drop: bool = False  # close the connection without any answer
    truncate: bool = False  # answer with only the first half of the body
    content_length: int | None = None  # what Content-Length says when it is not the body's length (HEAD of a file)


Handler = Callable[[Request], Response]


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    disable_nagle_algorithm = True
    server: "_Server"

    def log_message(self, format, *args):  # the stand-ins keep their own request log
        pass

    def _handle(self) -> None:
        path, _, query = self.path.partition("?")
        if (self.headers.get("Transfer-Encoding") or "").lower() == "chunked":
            body = self._read_chunked()
        else:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
        request = Request(self.command, path, query, self.headers, body, self.client_address)
        try:
            response = self.server.app(request)
        except Exception as exc:  # a bug in a stand-in must still answer, and say what went wrong
            import traceback

            traceback.print_exc()
            response = Response(500, f'{{"error": {{"code": "SANDBOX_BUG", "message": {str(exc)!r}}}}}'.encode())
        if response.drop:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        payload = response.body
        if response.truncate:
            payload = payload[: max(1, len(payload) // 2)]
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(response.content_length if response.content_length is not None
                                               else len(payload)))
        for name, value in response.headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _read_chunked(self) -> bytes:
        """A body sent in chunks (a client streaming an upload of unknown length), trailers skipped."""
        chunks = []
        while True:
            size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            chunks.append(self.rfile.read(size))
            self.rfile.readline()  # the CRLF after each chunk

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = do_HEAD = _handle


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    allow_reuse_address = True

    def __init__(self, address, app: Handler):
        self.app = app
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _RequestHandler)

    def process_request_thread(self, request, client_address):
        with self.connections_lock:
            self.connections.add(request)
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self.connections_lock:
                self.connections.discard(request)


class Server:
    """Serves `app` on host:port (port 0 picks a free one) until stopped."""

    def __init__(self, app: Handler, host: str = "127.0.0.1", port: int = 0):
        self._server = _Server((host, port), app)
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return self._server.server_address[0]

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def start(self) -> "Server":
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name=f"http-{self.port}", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever(poll_interval=0.2)

    def stop(self) -> None:
        self._server.shutdown()
        with self._server.connections_lock:
            open_connections = list(self._server.connections)
        for connection in open_connections:  # idle keep-alive connections would otherwise linger
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
