"""Prometheus metrics of one inference server, on its own registry.

Names follow ``p2_inference_<what>_<unit>``; counters get ``_total`` on the wire.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from inference.admission import Admission

_TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_TPS_BUCKETS = (1, 2, 5, 10, 20, 30, 50, 75, 100, 200, 500, 1000)


class InferenceMetrics:
    def __init__(self, admission: Admission, role: str) -> None:
        self.registry = r = CollectorRegistry()
        self.requests = Counter(
            "p2_inference_requests",
            "HTTP requests by route template and status.",
            ["route", "status"],
            registry=r,
        )
        self.prompt_tokens = Counter(
            "p2_inference_prompt_tokens", "Prompt tokens processed.", registry=r
        )
        self.generated_tokens = Counter(
            "p2_inference_generated_tokens", "Tokens generated.", registry=r
        )
        self.rejected = Counter(
            "p2_inference_rejected_requests",
            "Requests refused because the queue was full.",
            registry=r,
        )
        self.cancelled = Counter(
            "p2_inference_cancelled_requests",
            "Generations stopped early because the client went away or the request failed.",
            registry=r,
        )
        self.ttft = Histogram(
            "p2_inference_time_to_first_token_seconds",
            "Time from admission request to first token.",
            buckets=_TTFT_BUCKETS,
            registry=r,
        )
        self.tokens_per_second = Histogram(
            "p2_inference_tokens_per_second",
            "Generation speed per request, after the first token.",
            buckets=_TPS_BUCKETS,
            registry=r,
        )
        queued = Gauge("p2_inference_queued_requests", "Requests waiting for a slot.", registry=r)
        queued.set_function(lambda: admission.waiting)
        in_flight = Gauge(
            "p2_inference_in_flight_requests", "Requests being generated.", registry=r
        )
        in_flight.set_function(lambda: admission.in_use)
        info = Gauge("p2_inference_info", "Static facts about this server.", ["role"], registry=r)
        info.labels(role=role).set(1)
