"""Who may talk to the UI server, and how actions are protected.

- Bound to loopback (the default) the UI trusts the local user, as `dbt docs serve` and Dagster's
  `dagster dev` do. Any other host needs a token: from `SQLASSETS_UI_TOKEN`, else a random one printed
  once at start. The browser presents it once as `?token=...`; the server answers with an HttpOnly,
  SameSite=Strict cookie and a redirect that drops it from the address bar.
- The Host header must name this server (a DNS-rebinding page cannot reach a loopback UI).
- Actions are POSTs with a JSON body, an `X-CSRF-Token` header that only pages of this server carry
  (a random per-server value), and, when the browser sends one, an Origin of this server.
- `--read-only` refuses every action.
- Every response carries a strict Content-Security-Policy (scripts from this server only).
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode

TOKEN_ENV = "SQLASSETS_UI_TOKEN"
COOKIE = "sqlassets_ui_token"
LOOPBACK = ("127.0.0.1", "localhost", "::1")

CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]


def is_loopback(host: str) -> bool:
    return host in LOOPBACK or host.startswith("127.")


@dataclass
class Guard:
    host: str
    port: int
    token: str | None = None
    read_only: bool = False
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(24))

    def allowed_host(self, header: str) -> bool:
        """The Host header names this server: loopback names, or (bound elsewhere) anything + token."""
        name = header.rsplit(":", 1)[0] if not header.endswith("]") else header
        name = name.strip("[]").lower()
        if is_loopback(name):
            return True
        if self.host in ("0.0.0.0", "::"):
            return True
        return name == self.host.lower()

    def token_ok(self, cookie: str | None, auth: str | None) -> bool:
        if self.token is None:
            return True
        given = cookie or (auth[7:] if auth and auth.lower().startswith("bearer ") else None)
        return given is not None and hmac.compare_digest(given.encode(), self.token.encode())

    def csrf_ok(self, header: str | None) -> bool:
        return header is not None and hmac.compare_digest(header.encode(), self.csrf.encode())


class GuardMiddleware:
    """Pure ASGI middleware: host check, token (cookie / bearer / one-time query), CSRF on POST, headers."""

    def __init__(self, app, guard: Guard) -> None:
        self.app = app
        self.guard = guard

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        g = self.guard
        if not g.allowed_host(headers.get("host", "")):
            await _plain(send, 400, "unexpected Host header; open the UI at the address `sqlassets ui` printed")
            return
        query = scope.get("query_string", b"").decode("latin-1")
        cookie = _cookie(headers.get("cookie", ""), COOKIE)
        if g.token is not None:
            params = parse_qsl(query, keep_blank_values=True)
            given = next((v for k, v in params if k == "token"), None)
            if given is not None and scope["method"] == "GET":
                if hmac.compare_digest(given.encode(), g.token.encode()):
                    rest = urlencode([(k, v) for k, v in params if k != "token"])
                    location = scope["path"] + (f"?{rest}" if rest else "")
                    await send({"type": "http.response.start", "status": 303, "headers": [
                        (b"location", location.encode()),
                        (b"set-cookie", f"{COOKIE}={g.token}; HttpOnly; SameSite=Strict; Path=/".encode()),
                        *HEADERS]})
                    await send({"type": "http.response.body", "body": b""})
                    return
            if not g.token_ok(cookie, headers.get("authorization")):
                await _plain(send, 401, "this UI needs its token: open the URL `sqlassets ui` printed "
                                        "(…/?token=...) or set the SQLASSETS_UI_TOKEN you started it with")
                return
        if scope["method"] not in ("GET", "HEAD"):
            if scope["method"] != "POST":
                await _plain(send, 405, "method not allowed")
                return
            origin = headers.get("origin")
            if origin is not None and origin.split("://", 1)[-1].lower() != headers.get("host", "").lower():
                await _plain(send, 403, "cross-origin request refused")
                return
            if not g.csrf_ok(headers.get("x-csrf-token")):
                await _plain(send, 403, "missing or wrong CSRF token; reload the page")
                return
            if not headers.get("content-type", "").startswith("application/json"):
                await _plain(send, 415, "actions take a JSON body")
                return

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *HEADERS]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        k, _, v = part.strip().partition("=")
        if k == name:
            return v
    return None


async def _plain(send, status: int, text: str) -> None:
    body = (text + "\n").encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"), *HEADERS]})
    await send({"type": "http.response.body", "body": body})
