"""API keys: hashed at rest, compared in constant time, with a user and an admin role.

The key file holds one key per line, never the key itself::

    # recog API keys: sha256:<hex digest of the key> <role> <name>
    sha256:4f3c...e1 admin ops
    sha256:9a0b...77 user  web-page

Create entries with ``recog api-key add FILE --name NAME [--admin]`` (or
:func:`add_key`), which prints the new key once. Keys are 256-bit random
tokens, so a plain SHA-256 is a sound hash for them (a slow password hash
is for low-entropy secrets). Clients send ``Authorization: Bearer KEY`` or
``X-API-Key: KEY``.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from recog.errors import AuthError, ConfigError, ForbiddenError

ROLES = ("user", "admin")
_LINE = re.compile(r"^sha256:([0-9a-f]{64})\s+(user|admin)\s+(\S+)\s*$")


def hash_key(key: str) -> str:
    """``sha256:<hex>`` of a key, as stored in the key file."""
    return "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    digest: bytes
    role: str
    name: str


class KeyStore:
    """The parsed key file. :meth:`check` compares against every entry, in constant time."""

    def __init__(self, keys: list[ApiKey]) -> None:
        if not keys:
            raise ConfigError("the API key file holds no keys.",
                              hint="add one with `recog api-key add FILE --name NAME`")
        self.keys = keys

    @classmethod
    def from_file(cls, path: str | Path) -> "KeyStore":
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: no such API key file.",
                              hint=f"create it with `recog api-key add {path} --name NAME`")
        keys = []
        for n, line in enumerate(path.read_text().splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            m = _LINE.match(line)
            if not m:
                raise ConfigError(f"{path}:{n}: expected 'sha256:<64 hex> user|admin NAME', got a line that "
                                  "is not in that form (plain keys are never stored).",
                                  hint="recreate the entry with `recog api-key add`")
            keys.append(ApiKey(bytes.fromhex(m.group(1)), m.group(2), m.group(3)))
        return cls(keys)

    def check(self, presented: str | None) -> ApiKey:
        """The entry matching ``presented``.

        Raises:
            AuthError: no key, or a key that matches no entry (401).
        """
        if not presented:
            raise AuthError("this service needs an API key and the request carried none.",
                            hint="send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'")
        digest = hashlib.sha256(presented.encode("utf-8")).digest()
        found: ApiKey | None = None
        for key in self.keys:  # no early exit: the time taken does not depend on which entry matched
            if hmac.compare_digest(digest, key.digest):
                found = key
        if found is None:
            raise AuthError("the API key is not valid.", hint="check the key, or ask for a new one")
        return found


def presented_key(headers) -> str | None:
    """The key from ``Authorization: Bearer`` or ``X-API-Key`` headers, if any."""
    auth = headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return headers.get("x-api-key") or None


def require_admin(store: KeyStore | None, headers) -> ApiKey:
    """The caller's key if it has the admin role.

    Raises:
        ForbiddenError: admin operations are off (no key file) or the key is not an admin key.
        AuthError: no or invalid key.
    """
    if store is None:
        raise ForbiddenError("admin operations need an admin API key, and this service runs without keys.",
                             hint="start it with --api-keys FILE holding a key made by "
                                  "`recog api-key add FILE --name NAME --admin`")
    key = store.check(presented_key(headers))
    if key.role != "admin":
        raise ForbiddenError(f"key {key.name!r} is a user key; this operation needs an admin key.")
    return key


def add_key(path: str | Path, *, name: str, role: str = "user") -> str:
    """Generate a key, append its hash to ``path`` (mode 0600), and return the key (shown once)."""
    if role not in ROLES:
        raise ConfigError(f"role must be one of {', '.join(ROLES)}, got {role!r}.")
    if not re.fullmatch(r"\S+", name):
        raise ConfigError(f"key name must be one word without spaces, got {name!r}.")
    path = Path(path)
    key = "rk_" + secrets.token_urlsafe(32)
    new = not path.exists()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a") as fh:
        if new:
            fh.write("# recog API keys: sha256:<hex digest of the key> <role> <name>\n")
        fh.write(f"{hash_key(key)} {role} {name}\n")
    return key
