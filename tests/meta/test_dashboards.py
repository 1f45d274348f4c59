"""The Grafana dashboard and the Prometheus alert rules name only metrics the code exports.

Every PromQL expression is reduced to its metric names (label matchers, ranges, grouping
clauses, strings and function calls removed) and each name is compared with the samples the
worker's registry and the API's collector expose. ``promtool check rules`` runs where it is
installed (``.ci/run`` installs Debian's ``prometheus``).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]  # no types-PyYAML in dev deps

from teledispatch.api.metrics import collect_metrics
from teledispatch.worker.context import Context
from teledispatch.worker.metrics import REGISTRY

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "teledispatch.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
#: Prometheus's own series: ``up`` says whether a scrape target answered.
BUILTIN = {"up"}
#: Sample names per metric type (prometheus_client's family name has no suffix).
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "gauge": ("",),
}
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)  # strings (label values, legend text)
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        after = text[match.end() :].lstrip()
        if after.startswith("(") or match.group() in _KEYWORDS:
            continue  # a function call or an operator
        names.add(match.group())
    return names


def dashboard_exprs() -> list[str]:
    dash: dict[str, Any] = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    for var in dash["templating"]["list"]:
        query = var.get("query")
        if isinstance(query, dict):
            # label_values(metric, label): the metric is its first argument.
            inner = re.match(r"label_values\((\w+)", query["query"])
            assert inner, query
            exprs.append(inner.group(1))
    return exprs


def alert_exprs() -> list[str]:
    rules: dict[str, Any] = yaml.safe_load(ALERTS.read_text())
    return [str(r["expr"]) for g in rules["groups"] for r in g["rules"]]


def exported(ctx: Context) -> set[str]:
    families = [*REGISTRY.collect(), *collect_metrics(ctx.settings)]
    return {f.name + s for f in families for s in SUFFIXES[f.type]}


def test_the_parser_finds_metric_names_only() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, account) (rate(a_bucket{x="y(z)"}[5m])))'
        ' / on (account) b unless absent(up{job="w"} == 1)'
    )
    assert metric_names(expr) == {"a_bucket", "b", "up"}


@pytest.mark.parametrize("source", ["dashboard", "alerts"])
def test_every_metric_named_is_exported(ctx: Context, source: str) -> None:
    exprs = dashboard_exprs() if source == "dashboard" else alert_exprs()
    assert exprs, f"no expressions found in the {source}"
    known = exported(ctx) | BUILTIN
    unknown = {name: e for e in exprs for name in metric_names(e) if name not in known}
    assert not unknown, f"{source} names metrics the code does not export: {unknown}"


def test_every_alert_has_a_summary() -> None:
    rules: dict[str, Any] = yaml.safe_load(ALERTS.read_text())
    for rule in (r for g in rules["groups"] for r in g["rules"]):
        assert rule["annotations"]["summary"], rule["alert"]


def test_promtool_accepts_the_rules() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus)")
    done = subprocess.run(
        [promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_accepts_the_scrape_config() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus)")
    # --syntax-only: the API key file it names exists only where Prometheus runs.
    config = ROOT / "deploy" / "prometheus" / "prometheus.yml"
    done = subprocess.run(
        [promtool, "check", "config", "--syntax-only", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
