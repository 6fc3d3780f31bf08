"""Just enough PromQL reading for tests: the metric names a query selects."""

from __future__ import annotations

import json
import re
from pathlib import Path

DASHBOARD = Path(__file__).resolve().parents[1] / "deployments" / "grafana" / "tuneserve.json"
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or"}
KEYWORDS |= {"unless", "offset", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """Names of the series a PromQL expression reads (not functions, labels or keywords)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges and subqueries
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w$.])([a-zA-Z_:][\w:]*)(\s*\()?", text):
        name, call = match.group(1), match.group(2)
        if call or name.lower() in KEYWORDS:
            continue
        names.add(name)
    return names


def dashboard_queries(dashboard: dict | None = None) -> list[str]:
    """Every PromQL expression of the dashboard: panels, variables and annotations."""
    dashboard = dashboard or json.loads(DASHBOARD.read_text())
    queries = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            queries.append(variable["definition"])
    queries += [a["expr"] for a in dashboard["annotations"]["list"] if "expr" in a]
    return queries


def runnable(expr: str) -> str:
    """A dashboard query as Prometheus takes it: Grafana's variables filled in."""
    expr = expr.replace("$__rate_interval", "1m").replace('=~"$model"', '=~".*"')
    label_values = re.fullmatch(r"label_values\((\w+), (\w+)\)", expr)
    return f"group by ({label_values[2]}) ({label_values[1]})" if label_values else expr
