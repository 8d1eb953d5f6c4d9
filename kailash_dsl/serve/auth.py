"""API keys and roles, shared by REST and MCP.

The keys file (``--api-keys FILE``) stores only hashes of the keys::

    {"keys": [
      {"name": "ops-bot", "hash": "sha256:3f1c…", "roles": ["ops"]},
      {"name": "admin",   "hash": "sha256:9a0b…", "roles": ["*"], "rate_limit": "100/s"}
    ]}

A key is a random token (``kf_`` + 43 url-safe characters, 256 bits), so one SHA-256 is
enough to store it safely: there is nothing to brute-force the way there is with
passwords, and checking a request stays a dictionary lookup. ``kflow serve --new-key
NAME --role ops --api-keys FILE`` makes a key, appends its hash and prints the key once.

A request carries its key as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``
(WebSocket clients that cannot set headers may use ``?api_key=``). A workflow with
``@api(roles: [...])`` needs a key holding one of those roles; the role ``*`` holds every
role. Access to a run is access to its workflow. Without ``--api-keys`` the server is open
(meant for loopback development): every caller may do everything.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import StartupError
from .ratelimit import Rate, parse_rate

KEY_PREFIX = "kf_"


def hash_key(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class Principal:
    """Who is calling: a key's name and roles (or the open/anonymous caller)."""

    name: str
    roles: frozenset[str] = frozenset()
    all_access: bool = False
    #: which token bucket the caller spends from
    bucket: str = ""
    rate: Rate | None = None

    def may(self, roles: tuple[str, ...] | list[str] | None) -> bool:
        if not roles or self.all_access or "*" in self.roles:
            return True
        return any(r in self.roles for r in roles)


#: the caller over stdio (`kflow mcp`): the local user who started the process
STDIO = Principal("stdio", all_access=True, bucket="stdio")


@dataclass
class KeyEntry:
    name: str
    hash: str
    roles: list[str] = field(default_factory=list)
    rate: Rate | None = None


class Auth:
    """Authenticates requests from their headers; ``enabled`` is False without keys."""

    def __init__(self, entries: list[KeyEntry] | None = None) -> None:
        self.entries = entries or []
        self.enabled = entries is not None
        self._by_hash: dict[str, Principal] = {}
        self._anonymous: dict[str, Principal] = {}
        for e in self.entries:
            self._by_hash[e.hash] = Principal(e.name, frozenset(e.roles), "*" in e.roles,
                                              bucket=f"key:{e.name}", rate=e.rate)

    @classmethod
    def from_file(cls, path: str | os.PathLike | None) -> Auth:
        if path is None:
            return cls(None)
        return cls(load_keys(path))

    def principal(self, key: str | None, client: str = "") -> Principal | None:
        """The caller for ``key``; None when auth is on and the key is missing or unknown.

        Without keys every caller is anonymous, with a token bucket per client address.
        """
        if not self.enabled:
            p = self._anonymous.get(client)
            if p is None:
                if len(self._anonymous) > 10_000:
                    self._anonymous.clear()
                p = self._anonymous[client] = Principal("anonymous", all_access=True,
                                                        bucket=f"ip:{client}")
            return p
        if not key:
            return None
        return self._by_hash.get(hash_key(key))


def key_from_headers(headers: Any, query: Any = None) -> str | None:
    """The API key of a request: ``Authorization: Bearer``, ``X-API-Key`` or ``?api_key=``."""
    auth = headers.get("authorization")
    if auth:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    k = headers.get("x-api-key")
    if k:
        return k.strip()
    if query is not None:
        k = query.get("api_key")
        if k:
            return k
    return None


def _bad(path, msg: str) -> StartupError:
    return StartupError(f"--api-keys {path}: {msg}")


def load_keys(path: str | os.PathLike) -> list[KeyEntry]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise _bad(path, "no such file (make a key with `kflow serve --new-key NAME "
                         f"--api-keys {path}`)") from None
    except OSError as exc:
        raise _bad(path, f"cannot read it: {exc.strerror}") from None
    try:
        data = json.loads(text) if text.strip() else {"keys": []}
    except json.JSONDecodeError as exc:
        raise _bad(path, f"not valid JSON: {exc.msg} at line {exc.lineno} "
                         f"column {exc.colno}") from None
    if isinstance(data, dict):
        data = data.get("keys")
    if not isinstance(data, list):
        raise _bad(path, 'expected {"keys": [{"name": ..., "hash": "sha256:...", '
                         '"roles": [...]}, ...]}')
    out: list[KeyEntry] = []
    seen: set[str] = set()
    for i, e in enumerate(data):
        where = f"keys[{i}]"
        if not isinstance(e, dict):
            raise _bad(path, f"{where} must be an object")
        unknown = set(e) - {"name", "hash", "roles", "rate_limit", "comment"}
        if unknown:
            raise _bad(path, f"{where} has unknown field `{sorted(unknown)[0]}` (fields: "
                             "name, hash, roles, rate_limit, comment)")
        name = e.get("name")
        if not isinstance(name, str) or not name:
            raise _bad(path, f"{where}.name must be a non-empty string")
        h = e.get("hash")
        if not isinstance(h, str) or not h.startswith("sha256:") or len(h) != 71 \
                or any(c not in "0123456789abcdef" for c in h[7:]):
            raise _bad(path, f"{where}.hash must be \"sha256:\" and 64 lowercase hex digits "
                             "(the hash of the key, never the key itself)")
        roles = e.get("roles", [])
        if not isinstance(roles, list) or not all(isinstance(r, str) and r for r in roles):
            raise _bad(path, f"{where}.roles must be a list of role names")
        rate = None
        if e.get("rate_limit") is not None:
            try:
                rate = parse_rate(str(e["rate_limit"]))
            except ValueError as exc:
                raise _bad(path, f"{where}.rate_limit: {exc}") from None
        if name in seen:
            raise _bad(path, f"two keys are named `{name}`")
        seen.add(name)
        out.append(KeyEntry(name, h, list(roles), rate))
    return out


def add_key(path: str | os.PathLike, name: str, roles: list[str],
            rate_limit: str | None = None) -> str:
    """Make a key, append its hash to the keys file (created if missing); return the key."""
    p = Path(path)
    entries: list[dict] = []
    if p.exists():
        existing = load_keys(p)
        if any(e.name == name for e in existing):
            raise _bad(path, f"a key named `{name}` already exists")
        entries = json.loads(p.read_text(encoding="utf-8") or '{"keys": []}')
        entries = entries.get("keys", []) if isinstance(entries, dict) else entries
    if rate_limit is not None:
        try:
            parse_rate(rate_limit)
        except ValueError as exc:
            raise StartupError(f"--rate-limit: {exc}") from None
    key = new_key()
    entry: dict[str, Any] = {"name": name, "hash": hash_key(key), "roles": list(roles)}
    if rate_limit:
        entry["rate_limit"] = rate_limit
    entries.append(entry)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(json.dumps({"keys": entries}, indent=2) + "\n", encoding="utf-8")
    os.chmod(tmp, 0o600)
    tmp.replace(p)
    return key
