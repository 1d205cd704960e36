"""Checks on every request before any route runs: the ``Host`` header, the ``Origin`` of writes, draining.

- **Host** (DNS rebinding): a page on ``evil.example`` whose name the attacker
  re-points at 127.0.0.1 reaches this service from the victim's browser with
  ``Host: evil.example:8000``. Accepted: loopback (``localhost``, 127.0.0.0/8,
  ``::1``), the bound address, any IP literal when bound to a wildcard address
  (0.0.0.0 / ::; a rebinding attack always uses a name), and the names in
  ``allowed_hosts``. Anything else: 400 ``bad_request``. A request without a
  ``Host`` (HTTP/1.0, no browser sends that) passes.
- **Origin** (cross-site writes): a browser's "simple" cross-origin POST
  (multipart, ``text/plain``) is sent without a CORS preflight, so CORS alone
  does not stop a page on another site from enrolling a face. A POST, PUT,
  PATCH or DELETE whose ``Origin`` is neither the service's own (same host and
  port as the ``Host`` header, any scheme: TLS may end at a proxy) nor one of
  ``cors_origins`` is refused with 403 ``forbidden``; so is ``Origin: null``,
  and, without an Origin, a request whose ``Sec-Fetch-Site`` says it came from
  another site. Non-browser clients send no Origin and pass.
- **Draining**: once the service is shutting down (SIGTERM) every response
  carries ``Connection: close``, so keep-alive clients open a new connection
  (to another replica, or get a clean "connection refused") for their next
  request instead of sending it on a connection the server is about to close.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from recog.errors import BadRequestError, ForbiddenError
from recog.serve.problems import PROBLEM_JSON, problem_bytes
from recog.serve.settings import Settings, is_loopback

if TYPE_CHECKING:
    from recog.serve.app import ServiceState

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_WILDCARD_BINDS = {"0.0.0.0", "::", ""}


def split_host(value: str) -> tuple[str, str | None]:
    """``Host`` header → (lower-case host name without brackets, port or None).

    Example:
        >>> split_host("[::1]:8000"), split_host("Example.com")
        (('::1', '8000'), ('example.com', None))
    """
    value = value.strip().lower()
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        return host, rest[1:] if rest.startswith(":") else None
    host, sep, port = value.rpartition(":")
    if not sep or ":" in host:  # no port, or a bare IPv6 address
        return value, None
    return host, port


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class HostPolicy:
    """Which ``Host`` names this service answers to (see the module docstring)."""

    def __init__(self, settings: Settings) -> None:
        self.any = "*" in settings.allowed_hosts
        bound = settings.host.strip("[]").lower()
        self.wildcard = bound in _WILDCARD_BINDS
        self.exact = {bound, *(h.strip("[]") for h in settings.allowed_hosts if not h.startswith("."))}
        self.suffixes = tuple(h for h in settings.allowed_hosts if h.startswith("."))

    def allows(self, host: str) -> bool:
        if self.any or host in self.exact or is_loopback(host):
            return True
        if self.wildcard and _is_ip(host):
            return True
        return any(host.endswith(s) or host == s[1:] for s in self.suffixes)


class GuardMiddleware:
    """Pure ASGI: Host check, Origin check for writes, ``Connection: close`` while draining."""

    def __init__(self, app, *, state: "ServiceState") -> None:
        self.app = app
        self.state = state
        self.hosts = HostPolicy(state.settings)
        self.origins = {o.rstrip("/").lower() for o in state.settings.cors_origins}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {}
        for name, value in scope.get("headers", ()):
            if name in (b"host", b"origin", b"sec-fetch-site"):
                headers.setdefault(name, value.decode("latin-1"))
        host_header = headers.get(b"host")
        if host_header is not None:
            host, _ = split_host(host_header)
            if not self.hosts.allows(host):
                return await _refuse(send, BadRequestError(
                    f"this service does not answer to the host name {host!r}.",
                    hint="use the address it is bound to, or start it with --allowed-host NAME "
                         "(the name clients and proxies use)"))
        if scope["method"] in UNSAFE_METHODS and not self._origin_allowed(headers, host_header):
            origin = headers.get(b"origin")
            return await _refuse(send, ForbiddenError(
                f"cross-origin {scope['method']} from {origin or 'another site'!r} refused.",
                hint="call the API from a server or a CLI, or add the page's origin with --cors-origin"))

        async def send_wrapper(message):
            if message["type"] == "http.response.start" and self.state.draining:
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"connection"]
                message["headers"] = kept + [(b"connection", b"close")]
            await send(message)

        await self.app(scope, receive, send_wrapper)

    def _origin_allowed(self, headers: dict[bytes, str], host_header: str | None) -> bool:
        origin = headers.get(b"origin")
        if origin is None:
            return headers.get(b"sec-fetch-site", "same-origin").lower() in ("same-origin", "none")
        origin = origin.strip().rstrip("/").lower()
        if origin in self.origins:
            return True
        if origin == "null" or host_header is None:
            return False
        parts = urlsplit(origin)
        return parts.scheme in ("http", "https") and parts.netloc == host_header.strip().lower()


async def _refuse(send, exc: BadRequestError | ForbiddenError) -> None:
    body = problem_bytes(exc.http_status, exc.code, str(exc))
    await send({"type": "http.response.start", "status": exc.http_status,
                "headers": [(b"content-type", PROBLEM_JSON.encode()), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
