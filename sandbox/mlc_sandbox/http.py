"""A small threaded HTTP/1.1 server with keep-alive, shared by the stand-ins, optionally over TLS.

A stand-in is a function Request → Response; this module only moves bytes. Responses can also misbehave on purpose
(drop the connection, send a truncated body), which is how stand-ins inject network faults; over TLS they misbehave
the same way (the TCP connection is cut under the TLS session, as a failing load balancer does).
"""

from __future__ import annotations

import socket
import ssl
import threading
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

TLS_HANDSHAKE_TIMEOUT = 30  # seconds a new connection may take to finish its TLS handshake


class TlsConfigError(ValueError):
    """A certificate or key file the server cannot use (one line, naming the file)."""


def server_tls_context(cert_file: str | Path, key_file: str | Path) -> ssl.SSLContext:
    """What a stand-in serves HTTPS with: `cert_file` (PEM: the server certificate, then any intermediates) and its
    private key; TLS 1.2 or later, as every real service the stand-ins play requires."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    for label, path in (("certificate", cert_file), ("key", key_file)):
        if not Path(path).is_file():
            raise TlsConfigError(f"TLS {label} file {str(path)!r} does not exist")
    try:
        context.load_cert_chain(str(cert_file), str(key_file))
    except ssl.SSLError as exc:
        raise TlsConfigError(f"TLS certificate {str(cert_file)!r} and key {str(key_file)!r} cannot be used together "
                             f"(PEM certificate chain and its unencrypted private key expected): {exc.reason or exc}"
                             ) from None
    return context


def trusting_certificate(cert_file: str | Path) -> ssl.SSLContext:
    """A client context that trusts exactly the certificate(s) in `cert_file` (what a stand-in serves), so its own
    admin client needs no CA file: partial-chain verification accepts a served leaf as its own trust anchor."""
    context = ssl.create_default_context(cafile=str(cert_file))
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    return context


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

    def __init__(self, address, app: Handler, tls: ssl.SSLContext | None = None):
        self.app = app
        self.tls = tls
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _RequestHandler)

    def process_request_thread(self, request, client_address):
        if self.tls is not None:
            # the handshake runs in the connection's own thread: a slow or silent client never holds up accept()
            request = self._tls_handshake(request)
            if request is None:
                return
        with self.connections_lock:
            self.connections.add(request)
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self.connections_lock:
                self.connections.discard(request)

    def _tls_handshake(self, connection: socket.socket) -> ssl.SSLSocket | None:
        """The connection wrapped in TLS, or None (and closed) when the client refused the certificate, spoke plain
        HTTP or went silent: as a real server, nothing to answer and nothing to log."""
        try:
            connection.settimeout(TLS_HANDSHAKE_TIMEOUT)
            wrapped = self.tls.wrap_socket(connection, server_side=True)
            wrapped.settimeout(None)
            return wrapped
        except (ssl.SSLError, OSError):
            connection.close()
            return None


class Server:
    """Serves `app` on host:port (port 0 picks a free one) until stopped; over TLS given a certificate and its key."""

    def __init__(self, app: Handler, host: str = "127.0.0.1", port: int = 0, *,
                 tls_cert: str | Path | None = None, tls_key: str | Path | None = None):
        if (tls_cert is None) != (tls_key is None):
            raise TlsConfigError("TLS needs both a certificate file and its key file")
        tls = server_tls_context(tls_cert, tls_key) if tls_cert is not None else None
        self._server = _Server((host, port), app, tls)
        self._thread: threading.Thread | None = None
        self.scheme = "https" if tls is not None else "http"
        # absolute URLs the stand-in writes (next links, webhook URLs, issuers) follow the scheme it serves
        app.scheme = self.scheme
        app.host_port = f"{host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

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
