"""Model groups, their deployments, and the order a request tries them in.

Deployments are tried by ascending ``order``; within one order the router's
``routing_strategy`` ranks them: ``simple-shuffle`` (weighted random, by
``weight``, else ``rpm``, else ``tpm``), ``least-busy`` (fewest requests in
flight), ``latency-based-routing`` (lowest smoothed time to the response
head, random among those within ``lowest_latency_buffer``) and
``usage-based-routing(-v2)`` (fewest tokens this minute). Failover moves on
down that list, then down the orders. Deployments out of rotation come last
(a stale view never fails a request alone); deployments at their
``rpm``/``tpm``/``max_parallel_requests`` limit are not tried at all, and when
every deployment of a group is, the request gets 429.

A group whose orders hold one deployment each, with no limits, is served
from a prepared tuple: the hot path pays nothing for the strategies.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence

from gateway.backends import Backend, Cooldown, Deployment
from gateway.config import DeploymentSpec, GatewayConfig
from gateway.metrics import GatewayMetrics
from p2.core.errors import APIError


class NoCapacity(APIError):
    """Every deployment of the group is at its rpm/tpm/max_parallel_requests limit."""

    status_code = 429
    error_type = "rate_limit_error"


TRACKED = frozenset({"least-busy", "usage-based-routing", "usage-based-routing-v2"})


class Registry:
    """Model groups → deployments in priority order; the backends behind them."""

    def __init__(
        self,
        config: GatewayConfig,
        metrics: GatewayMetrics,
        connect_timeout: float,
        probe_failures: int = 3,
    ) -> None:
        self.router = config.router
        self.strategy = config.router.routing_strategy
        self.latency_based = self.strategy == "latency-based-routing"
        self.backends: dict[tuple[str, bool | str], Backend] = {}
        self.cooldowns: dict[str, Cooldown] = {}
        self.groups: dict[str, tuple[Deployment, ...]] = {}
        self._tiers: dict[str, tuple[tuple[Deployment, ...], ...]] = {}
        self._simple: set[str] = set()
        track = self.strategy in TRACKED
        names: set[str] = set()
        for group, specs in config.groups().items():
            deployments = []
            for spec in specs:
                backend = None
                if not spec.native:
                    backend = self._backend(spec, metrics, connect_timeout, probe_failures, names)
                cooldown = self.cooldowns.setdefault(
                    spec.deployment_id, Cooldown(spec.deployment_id)
                )
                deployments.append(Deployment(spec, backend, cooldown, self.router, track=track))
            self.groups[group] = tuple(deployments)
            tiers: dict[int, list[Deployment]] = {}
            for deployment in deployments:
                tiers.setdefault(deployment.order, []).append(deployment)
            self._tiers[group] = tuple(tuple(t) for _, t in sorted(tiers.items()))
            if all(len(t) == 1 for t in tiers.values()) and not any(d.limited for d in deployments):
                self._simple.add(group)

    def _backend(
        self,
        spec: DeploymentSpec,
        metrics: GatewayMetrics,
        timeout: float,
        probe_failures: int,
        names: set[str],
    ) -> Backend:
        key = (spec.api_base, spec.ssl_verify)
        backend = self.backends.get(key)
        if backend is None:
            name = spec.name
            if name in names:
                name = f"{name}#{len(self.backends)}"
            names.add(name)
            backend = Backend(
                name, spec, metrics, timeout, probe_failures, self.router.cooldown_time or 5.0
            )
            self.backends[key] = backend
        return backend

    def deployments(self) -> list[Deployment]:
        return [d for group in self.groups.values() for d in group]

    def candidates(self, group: str) -> Sequence[Deployment]:
        """The group's deployments in the order to try them: see the module's docstring."""
        deployments = self.groups[group]
        now = time.monotonic()
        if group in self._simple:
            for deployment in deployments:
                if not deployment.in_rotation(now):
                    break
            else:
                return deployments
        ready: list[Deployment] = []
        resting: list[Deployment] = []
        limited = False
        for tier in self._tiers[group]:
            up = []
            for deployment in tier:
                if not deployment.has_capacity(now):
                    limited = True
                elif deployment.in_rotation(now):
                    up.append(deployment)
                else:
                    resting.append(deployment)
            ready.extend(self._rank(up) if len(up) > 1 else up)
        if not ready and not resting and limited:
            raise NoCapacity(
                f"Every deployment of model '{group.lstrip(chr(0))}' is at its rate limit.",
                code="rate_limit_exceeded",
                headers={"Retry-After": "1"},
            )
        return ready + resting

    def _rank(self, tier: list[Deployment]) -> list[Deployment]:
        strategy = self.strategy
        if strategy == "least-busy":
            return sorted(tier, key=lambda d: (d.in_flight, random.random()))
        if strategy == "latency-based-routing":
            ranked = sorted(tier, key=lambda d: d.latency)
            buffer = self.router.lowest_latency_buffer
            if buffer > 0:
                best = ranked[0].latency * (1 + buffer)
                near = [d for d in ranked if d.latency <= best]
                first = random.choice(near)
                ranked.remove(first)
                ranked.insert(0, first)
            return ranked
        if strategy.startswith("usage-based-routing"):
            return sorted(tier, key=lambda d: (d.tokens, d.requests, random.random()))
        # simple-shuffle: weighted random order (Efraimidis-Spirakis keys)
        return sorted(tier, key=lambda d: random.random() ** (1.0 / d.weight), reverse=True)

    def close(self) -> None:
        for backend in self.backends.values():
            backend.pool.close()
