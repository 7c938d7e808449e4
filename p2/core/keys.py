"""API keys, their scopes, and the route table that says which scope each route needs.

``P2_API_KEYS`` are user keys, ``P2_ADMIN_KEYS`` admin keys (an admin key may
do all a user key may), each also from a file with one key per line. With no
key configured a service is open. Which route needs which scope is data: an
``AccessPolicy`` of rules read top to bottom, not checks spread over handlers.
Keys are compared in constant time and never logged.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from p2.core.settings import ServiceSettings


class Access(IntEnum):
    """What a route requires; ordered, so a caller's scope must be at least the route's."""

    OPEN = 0
    USER = 1
    ADMIN = 2


def _split(value: str) -> set[str]:
    return {key.strip() for key in value.split(",") if key.strip()}


def read_key_file(path: Path) -> set[str]:
    """One key per line; blank lines and ``#`` comments are skipped."""
    keys = set()
    for line in path.expanduser().read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keys.add(line)
    return keys


class KeySettings(ServiceSettings):
    """Who may call P2's ports.

    ``P2_API_KEYS`` / ``P2_API_KEYS_FILE``: user keys. ``P2_ADMIN_KEYS`` /
    ``P2_ADMIN_KEYS_FILE``: admin keys. ``P2_SERVICE_KEY``: the key P2's own
    services send each other (``p2 up`` and compose provide it); it has user scope.
    """

    model_config = SettingsConfigDict(env_prefix="P2_", extra="ignore")

    api_keys: str = Field(default="", repr=False)
    api_keys_file: Path | None = None
    admin_keys: str = Field(default="", repr=False)
    admin_keys_file: Path | None = None
    service_key: str | None = Field(default=None, repr=False)

    def keyring(self, extra_admin_keys: Iterable[str] = ()) -> Keyring:
        users = _split(self.api_keys)
        if self.api_keys_file is not None:
            users |= read_key_file(self.api_keys_file)
        if self.service_key:
            users.add(self.service_key)
        admins = _split(self.admin_keys) | {k for k in extra_admin_keys if k}
        if self.admin_keys_file is not None:
            admins |= read_key_file(self.admin_keys_file)
        return Keyring(users, admins)


@dataclass(frozen=True)
class Caller:
    """Who made a request: their scope and a stable, non-secret id of their key."""

    access: Access
    key_id: str


def key_id(key: bytes | str) -> str:
    """A short digest naming a key in logs and job ownership without revealing it."""
    raw = key.encode() if isinstance(key, str) else key
    return hashlib.sha256(raw).hexdigest()[:16]


class Keyring:
    """The configured keys and the scope each grants."""

    def __init__(self, users: Iterable[str] = (), admins: Iterable[str] = ()) -> None:
        admin_set = {k for k in admins if k}
        scoped = [(k, Access.ADMIN) for k in sorted(admin_set)]
        scoped += [(k, Access.USER) for k in sorted(set(users) - admin_set) if k]
        # One Caller per key, made once: a request's check allocates nothing.
        self._keys: tuple[tuple[bytes, Caller], ...] = tuple(
            (key.encode(), Caller(access, key_id(key))) for key, access in scoped
        )

    @property
    def open(self) -> bool:
        """No key configured: every request is allowed."""
        return not self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def caller(self, token: bytes) -> Caller | None:
        """The caller a presented key identifies, or None; every key is compared."""
        found: Caller | None = None
        for key, caller in self._keys:
            if hmac.compare_digest(token, key) and found is None:
                found = caller
        return found


@dataclass(frozen=True)
class Rule:
    """Paths (exact, or a prefix ending in ``*``) and methods (empty: any) needing ``access``."""

    path: str
    access: Access
    methods: frozenset[str] = frozenset()

    def matches(self, method: str, path: str) -> bool:
        if self.methods and method not in self.methods:
            return False
        if self.path.endswith("*"):
            return path.startswith(self.path[:-1])
        return path == self.path


@dataclass(frozen=True)
class AccessPolicy:
    """The first matching rule decides; ``default`` covers every other route."""

    rules: tuple[Rule, ...] = ()
    default: Access = Access.USER

    def required(self, method: str, path: str) -> Access:
        for rule in self.rules:
            if rule.matches(method, path):
                return rule.access
        return self.default


def rule(path: str, access: Access, *methods: str) -> Rule:
    return Rule(path, access, frozenset(m.upper() for m in methods))


# Liveness and scrapes stay open on every service: probes and Prometheus carry no key.
PROBES = (rule("/health", Access.OPEN, "GET"), rule("/metrics", Access.OPEN, "GET"))
