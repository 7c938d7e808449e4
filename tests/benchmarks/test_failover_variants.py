"""The failover benchmark's variants: the configs the gateway is given, and the summary lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.failover import (
    CLOUD_KEY,
    VARIANTS,
    combine,
    last_line,
    parse_variants,
    summary_line,
    variant_config,
)
from gateway.config import parse
from gateway.providers import Probe
from p2.core.litellm_config import DEFAULT_ROUTER, config, deployment


def test_http_variant_is_the_config_of_earlier_runs() -> None:
    expected = config(
        [
            deployment("chat", "http://127.0.0.1:9001/v1", "primary", 1),
            deployment("chat", "http://127.0.0.1:9002/v1", "secondary", 2),
        ]
    )
    assert variant_config(VARIANTS["http"], (9001, 9002)) == expected


def test_https_variant_verifies_both_backends_against_the_ca(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not parsed here")
    specs = parse(variant_config(VARIANTS["https"], (9001, 9002), ca)).deployments
    assert [s.api_base for s in specs] == ["https://127.0.0.1:9001/v1", "https://127.0.0.1:9002/v1"]
    assert [s.ssl_verify for s in specs] == [str(ca), str(ca)]
    assert [s.probe for s in specs] == [Probe.HEALTH, Probe.HEALTH]
    with pytest.raises(ValueError, match="CA bundle"):
        variant_config(VARIANTS["https"], (9001, 9002))


def test_passive_variant_times_out_and_retries_only_the_primary() -> None:
    parsed = parse(variant_config(VARIANTS["passive"], (9001, 9002)))
    primary, secondary = parsed.deployments
    assert (primary.probe, primary.timeout, primary.stream_timeout) == (Probe.PASSIVE, 1, 1)
    assert primary.api_key == CLOUD_KEY
    assert (secondary.probe, secondary.timeout, secondary.stream_timeout) == (
        Probe.HEALTH,
        None,
        None,
    )
    assert parsed.router.cooldown_time == 2
    assert parsed.router.allowed_fails == DEFAULT_ROUTER["allowed_fails"]


def test_variants_are_chosen_by_name_in_the_order_given() -> None:
    assert parse_variants("passive, http,passive") == ("passive", "http")
    with pytest.raises(ValueError, match="unknown variants grpc"):
        parse_variants("http,grpc")
    with pytest.raises(ValueError, match="no variant given"):
        parse_variants(" , ")


def _report(errors: int, broken: int, p99: float, back: float) -> dict[str, object]:
    return {
        "client_errors": errors,
        "broken_streams": broken,
        "outage_p99_ms": p99,
        "steady_p99_ms": 137.0,
        "back_on_primary_s": back,
    }


def test_last_line_sums_errors_over_variants_and_keeps_the_first_variants_times() -> None:
    reports = {"http": _report(0, 1, 186.2, 0.351), "passive": _report(2, 0, 1054.0, 1.9)}
    report = combine(reports)
    assert report["client_errors"] == 0  # the top-level keys stay the first variant's
    assert report["variants"]["passive"]["outage_p99_ms"] == 1054.0
    assert last_line(report) == (
        "failover: client errors = 2, broken streams = 1, p99 during outage = 186 ms "
        "(steady 137 ms), back on primary 0.35 s after recovery"
    )
    assert summary_line("failover [passive]", reports["passive"]).startswith(
        "failover [passive]: client errors = 2, broken streams = 0, p99 during outage = 1054 ms"
    )
