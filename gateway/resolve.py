"""Which model group serves a requested model name that is not a group itself.

Three kinds of names, after the plain group names (a dict lookup, the hot path):

* ``model_group_alias``: ``{"gpt-4": "chat"}`` serves ``gpt-4`` from ``chat``;
  answers say ``gpt-4``. A ``hidden`` alias is served but not listed.
* fine-tuned models, ``ft:<base>:<suffix>:<id>``: served by group ``<base>``'s
  deployments with failover, the name sent to the backend as it is (the
  inference server finds the adapter by it) and kept in the answer.
* wildcard groups (``model_name: "*"``, ``"groq/*"``): a name the pattern
  matches is served by that group, the ``*`` of the deployment's model filled
  with what the pattern's ``*`` matched (``openai/*`` asks for the name
  itself). The most specific pattern wins.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

FT_PREFIX = "ft:"


@dataclass(frozen=True, slots=True)
class Target:
    """A requested name that is not a plain group: where it goes and what it is called."""

    group: str  # the group whose deployments serve it
    shown: str  # the name answers carry: the one the client asked for
    model: str | None = None  # sent to every deployment as is (a fine-tuned model)
    fill: tuple[str, ...] = ()  # a wildcard's matches, for the deployment's ``*``

    def sent(self, deployment_model: str) -> str:
        """The model name to ask a deployment serving ``deployment_model`` for."""
        if self.model is not None:
            return self.model
        if not self.fill or "*" not in deployment_model:
            return deployment_model
        parts = deployment_model.split("*")
        out = [parts[0]]
        for i, rest in enumerate(parts[1:]):
            out.append(self.fill[min(i, len(self.fill) - 1)])
            out.append(rest)
        return "".join(out)


def _pattern(group: str) -> re.Pattern[str]:
    return re.compile("(.+)".join(re.escape(part) for part in group.split("*")), re.DOTALL)


class Resolver:
    """Aliases, fine-tuned names and wildcard patterns over a config's groups."""

    def __init__(self, groups: Iterable[str], aliases: Mapping[str, tuple[str, bool]]) -> None:
        names = list(groups)
        self.groups = frozenset(n for n in names if "*" not in n)
        self.aliases = {alias: group for alias, (group, _) in aliases.items()}
        self.listed_aliases = tuple(a for a, (_, hidden) in aliases.items() if not hidden)
        wildcards = [n for n in names if "*" in n]
        wildcards.sort(key=lambda n: len(n.replace("*", "")), reverse=True)
        self.wildcards = tuple((_pattern(n), n) for n in wildcards)

    def resolve(self, model: str) -> Target | None:
        """The target serving ``model`` (not a plain group), or None when nothing does."""
        group = self.aliases.get(model)
        if group is not None:
            return Target(group, model)
        if model.startswith(FT_PREFIX):
            parts = model.split(":")
            base = parts[1] if len(parts) >= 3 else ""
            base = self.aliases.get(base, base)
            if base in self.groups:
                return Target(base, model, model=model)
        for pattern, group in self.wildcards:
            match = pattern.fullmatch(model)
            if match is not None:
                return Target(group, model, fill=match.groups())
        return None

    @staticmethod
    def base_of(model: str) -> str | None:
        """The base group named by a fine-tuned model's name."""
        if not model.startswith(FT_PREFIX):
            return None
        parts = model.split(":")
        return parts[1] if len(parts) >= 3 else None
