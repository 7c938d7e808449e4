"""Who may call which gateway route, and who may see the backends behind it.

The key check itself is P2's shared one (``p2.core.auth.RequireKey``); this
module is the gateway's data for it. Every route needs a user key, except
``GATEWAY_OPEN_PATHS`` (no key) and the RAG service's writes passed through
the gateway (an admin key). Backend details (addresses, last errors) are
shown to admin keys only; with no key configured at all the gateway is open
and everyone counts as admin, as on every open P2 port.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from starlette.types import Scope

from p2.core.auth import bearer_token, caller_of
from p2.core.keys import Access, AccessPolicy, Keyring, rule

# RAG's management API through the gateway: indexing, deleting and dropping need admin;
# so does deleting a fine-tuned model.
ADMIN_RULES = (
    rule("/v1/rag/collections*", Access.ADMIN, "POST", "PUT", "PATCH", "DELETE"),
    rule("/index", Access.ADMIN, "POST"),
    rule("/v1/models/*", Access.ADMIN, "DELETE"),
)
_CACHED = 64  # (method, path) pairs remembered: the API's own routes, not every path tried


@dataclass(frozen=True)
class CachedPolicy(AccessPolicy):
    """An ``AccessPolicy`` that remembers its answers for the paths it sees most: the key
    check of a chat completion is then one dict lookup, not a walk over every rule."""

    _seen: dict[tuple[str, str], Access] = field(default_factory=dict, compare=False, repr=False)

    def required(self, method: str, path: str) -> Access:
        key = (method, path)
        need = self._seen.get(key)
        if need is None:
            need = super().required(method, path)
            if len(self._seen) < _CACHED:
                self._seen[key] = need
        return need


def access_policy(open_paths: Iterable[str]) -> AccessPolicy:
    """Admin rules first (no open path can open them), then ``GATEWAY_OPEN_PATHS``
    (no key, any method; a trailing ``*`` makes a prefix), then a user key."""
    opened = tuple(rule(path, Access.OPEN) for path in open_paths)
    return CachedPolicy((*ADMIN_RULES, *opened))


class Visibility:
    """Whether a request may see backend details."""

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring

    def admin(self, scope: Scope) -> bool:
        if self.keyring.open:
            return True
        caller = caller_of(scope)
        if caller is None:  # an open path: the key check did not run, so look ourselves
            token = bearer_token(scope)
            caller = self.keyring.caller(token) if token is not None else None
        return caller is not None and caller.access >= Access.ADMIN
