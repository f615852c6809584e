"""dashboards/grafana.json queries only metrics and labels the code exports, and shows
every metric it exports."""

from __future__ import annotations

import json
import pathlib
import re
from typing import Any

import prometheus_client as prom

from adaptive_router.observe.metrics import PREFIX, PrometheusMetrics

DASHBOARD = pathlib.Path(__file__).resolve().parent.parent / "dashboards" / "grafana.json"
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def _exported() -> tuple[set[str], set[str], set[str]]:
    """(series names a scrape shows, their families, every label name) from a registry."""
    registry = prom.CollectorRegistry()
    PrometheusMetrics(registry)
    names: set[str] = set()
    families: set[str] = set()
    labels: set[str] = {"le"}
    for family in registry.collect():
        families.add(family.name)
        names.update(family.name + s for s in SUFFIXES[family.type])
    for collector in list(registry._names_to_collectors.values()):
        labels.update(getattr(collector, "_labelnames", ()))
    return names, families, labels


def _queries(node: Any) -> list[str]:
    """Every PromQL expression in the dashboard (panel targets and template variables)."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if (key in ("expr", "definition") and isinstance(value, str)) or (
                key == "query" and isinstance(value, str) and PREFIX in value
            ):
                found.append(value)
            else:
                found += _queries(value)
    elif isinstance(node, list):
        for item in node:
            found += _queries(item)
    return found


def test_every_query_uses_exported_metric_and_label_names() -> None:
    dash = json.loads(DASHBOARD.read_text())
    queries = _queries(dash)
    assert len(queries) >= 17
    names, families, labels = _exported()
    used: set[str] = set()
    for q in queries:
        metrics = set(re.findall(rf"\b{PREFIX}[a-z_]+", q))
        assert metrics, q
        assert metrics <= names, (q, metrics - names)
        used |= metrics
        grouped = {
            label.strip()
            for clause in re.findall(r"\b(?:by|ignoring|on|without)\s*\(([^)]*)\)", q)
            for label in clause.split(",")
            if label.strip()
        }
        matched = set(re.findall(r"[{,]\s*([a-z_]+)\s*(?:=~|!=|!~|=)", q))
        matched |= set(re.findall(r"label_values\([^,]+,\s*([a-z_]+)\)", q))
        assert grouped | matched <= labels, (q, (grouped | matched) - labels)
    # Every exported family has a panel.
    shown = {
        f for f in families if any(u == f or (u.startswith(f + "_") and u in names) for u in used)
    }
    assert shown == families


def test_the_check_can_fail() -> None:
    names, _, labels = _exported()
    assert "adaptive_router_requests_total" in names and "adaptive_router_requests" not in names
    assert "adaptive_router_latency_seconds_bucket" in names and "path" in labels
    assert "adaptive_router_request_total" not in names  # a typo would be caught
