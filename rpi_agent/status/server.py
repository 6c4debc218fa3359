"""The status page's HTTP server: standard library only, on its own thread.

Routes: ``/`` (the page), ``/page.css`` and ``/page.js`` (its assets), ``/api/status`` (JSON),
``/frame/<camera>.jpg`` (latest frame with boxes) and ``/event/<n>.jpg`` (a listed event's face).

Access: with a token configured every route but the two assets needs it, as ``Authorization:
Bearer <token>``, ``?token=<token>`` (which also sets an HttpOnly cookie, so the page's own requests
carry it) or that cookie; anything else gets 401. Bound to an address other than loopback the server
refuses to start without a token.

Example:
    >>> server = StatusServer(config.status, board)  # doctest: +SKIP
    >>> server.start(); server.url  # doctest: +SKIP
    'http://127.0.0.1:8080/'
"""

from __future__ import annotations

import hmac
import json
import logging
import socket
import threading
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote, urlsplit

from rpi_agent.config.status import StatusConfig
from rpi_agent.credentials import Secret, read_secret
from rpi_agent.errors import ConfigError
from rpi_agent.status.board import StatusBoard
from rpi_agent.status.page import CSS, JS, render_html

log = logging.getLogger(__name__)

COOKIE = "faceagent_status"
SECURITY_HEADERS = {
    # Everything the page needs comes from this server; nothing may frame it.
    "Content-Security-Policy": "default-src 'self'; img-src 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def resolve_token(config: StatusConfig) -> Secret | None:
    """The access token, or ``None`` when the page is on loopback without one.

    Raises:
        ConfigError: Bound beyond loopback with no token anywhere.
    """
    token = read_secret(credential=config.token_credential, env_var=config.token_env, inline=config.token)
    if token is None and not config.loopback:
        raise ConfigError(
            f"status.host: {config.host!r} is reachable from other machines, so the page needs a token: set "
            f"${config.token_env} or the credential {config.token_credential!r} (or listen on 127.0.0.1)")
    return token


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        path = url.path
        if path in ("/page.css", "/page.js"):
            body = (CSS if path.endswith(".css") else JS).encode()
            self._send(HTTPStatus.OK, "text/css" if path.endswith(".css") else "text/javascript", body)
            return
        query = parse_qs(url.query)
        given = self._given_token(query)
        if not self.server.allows(given):
            self._send(HTTPStatus.UNAUTHORIZED, "text/plain; charset=utf-8", b"401: a valid token is needed\n",
                       extra={"WWW-Authenticate": 'Bearer realm="faceagent"'})
            return
        extra = {}
        if "token" in query and given is not None:
            extra["Set-Cookie"] = f"{COOKIE}={quote(given, safe='')}; HttpOnly; SameSite=Strict; Path=/"
        self._route(path, extra)

    def _route(self, path: str, extra: dict[str, str]) -> None:
        board = self.server.board
        if path in ("/", "/index.html"):
            self._send(HTTPStatus.OK, "text/html; charset=utf-8",
                       render_html(refresh_seconds=self.server.config.refresh_seconds), extra=extra)
        elif path == "/api/status":
            self._send(HTTPStatus.OK, "application/json", json.dumps(board.view()).encode(), extra=extra)
        elif path.startswith("/frame/") and path.endswith(".jpg"):
            camera = unquote(path[len("/frame/"):-len(".jpg")])
            self._image(board.frame_jpeg(camera, quality=self.server.config.quality), extra)
        elif path.startswith("/event/") and path.endswith(".jpg"):
            serial = path[len("/event/"):-len(".jpg")]
            jpeg = board.thumb_jpeg(int(serial), quality=self.server.config.quality) if serial.isdigit() else None
            # A listed event's face never changes: the browser may keep it.
            self._image(jpeg, {**extra, "Cache-Control": "private, max-age=3600"})
        else:
            self._send(HTTPStatus.NOT_FOUND, "text/plain; charset=utf-8", b"404: no such page\n", extra=extra)

    def _image(self, jpeg: bytes | None, extra: dict[str, str]) -> None:
        if jpeg is None:
            self._send(HTTPStatus.NOT_FOUND, "text/plain; charset=utf-8", b"404: no picture\n", extra=extra)
        else:
            self._send(HTTPStatus.OK, "image/jpeg", jpeg, extra=extra)

    def _given_token(self, query: dict[str, list[str]]) -> str | None:
        header = self.headers.get("Authorization", "")
        if header.lower().startswith("bearer "):
            return header[7:].strip()
        if query.get("token"):
            return query["token"][0]
        try:
            morsel = SimpleCookie(self.headers.get("Cookie", "")).get(COOKIE)
        except CookieError:
            return None
        return unquote(morsel.value) if morsel is not None else None

    def _send(self, status: HTTPStatus, kind: str, body: bytes, *, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        for name, value in {**SECURITY_HEADERS, **(extra or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("status page: %s %s", self.address_string(), format % args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, config: StatusConfig, board: StatusBoard, token: Secret | None) -> None:
        self.config = config
        self.board = board
        self._token = token.reveal().encode() if token is not None else None
        if ":" in config.host:
            self.address_family = socket.AF_INET6
        super().__init__((config.host, config.port), _Handler)

    def allows(self, given: str | None) -> bool:
        if self._token is None:
            return True
        return given is not None and hmac.compare_digest(given.encode(), self._token)


class StatusServer:
    """Serves the page for one :class:`StatusBoard` until :meth:`close`.

    Args:
        config: The ``[status]`` section.
        board: What to show.

    Raises:
        ConfigError: No token where one is required, or the address cannot be bound.
    """

    def __init__(self, config: StatusConfig, board: StatusBoard) -> None:
        token = resolve_token(config)
        try:
            self._server = _Server(config, board, token)
        except OSError as exc:
            raise ConfigError(f"status.port: cannot listen on {config.host}:{config.port}: "
                              f"{exc.strerror or exc}") from None
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.5},
                                        name="status-page", daemon=True)
        self.protected = token is not None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = self._server.config.host
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}/"

    def start(self) -> None:
        self._thread.start()
        log.info("status page on %s (%s)", self.url, "token required" if self.protected else "no token, loopback")

    def close(self) -> None:
        """Stop serving and release the port; idempotent."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(5)
        self._server.server_close()
