"""The Grafana dashboard shipped in docker/grafana: well formed, and every query names a
metric P2 exports (the gateway's from its registry, the others' from docs/metrics.md)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from gateway.metrics import GatewayMetrics

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "docker" / "grafana"
SUFFIXES = ("_bucket", "_count", "_sum")


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((GRAFANA / "dashboards" / "p2.json").read_text())
    return data


def known_metrics() -> set[str]:
    exposition = GatewayMetrics().exposition().decode()
    names = set(re.findall(r"^# TYPE (\S+) ", exposition, re.MULTILINE))
    names |= {f"{n}_total" for n in names}
    names |= set(re.findall(r"`(p2_[a-z_]+)`", (ROOT / "docs" / "metrics.md").read_text()))
    return names


def queries() -> list[str]:
    return [t["expr"] for p in dashboard()["panels"] for t in p.get("targets", [])]


def test_layout_and_datasource() -> None:
    data = dashboard()
    assert data["uid"] == "p2-overview"
    panels = data["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24
        area = {
            (x, y)
            for x in range(pos["x"], pos["x"] + pos["w"])
            for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not area & cells, f"panel {panel['title']} overlaps another"
        cells |= area
    source = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    uid = source["datasources"][0]["uid"]
    for panel in panels:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == uid
            assert panel["targets"] and all(t["datasource"]["uid"] == uid for t in panel["targets"])
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "p2.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


def test_every_query_names_an_exported_metric() -> None:
    known = known_metrics()
    services = set()
    for expr in queries():
        assert expr.count("(") == expr.count(")"), expr
        names = re.findall(r"\b(p2_[a-z_]+)", expr)
        assert names, expr
        for name in names:
            base = next((name[: -len(s)] for s in SUFFIXES if name.endswith(s)), name)
            assert name in known or base in known, f"{name} is not a metric P2 exports"
            services.add(name.split("_")[1])
    assert services >= {"gateway", "inference", "rag", "jobs"}
