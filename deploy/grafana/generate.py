#!/usr/bin/env python3
"""Writes recserve-dashboard.json (a Grafana dashboard) from dashboard/queries.json, the one
source of the PromQL that the embedded dashboard and Grafana share.

    python3 deploy/grafana/generate.py          # rewrite the JSON
    python3 deploy/grafana/generate.py --check  # exit 1 when the committed JSON is stale

Only the standard library: it runs wherever python3 does.
"""

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
QUERIES = HERE.parent.parent / "dashboard" / "queries.json"
OUT = HERE / "recserve-dashboard.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
PANEL_W, PANEL_H = 12, 8


def timeseries(panel_id, panel, x, y):
    stacked = bool(panel.get("stack"))
    return {
        "id": panel_id,
        "type": "timeseries",
        "title": panel["title"],
        "description": f"recserve dashboard panel `{panel['id']}` (dashboard/queries.json)",
        "datasource": DATASOURCE,
        "gridPos": {"h": PANEL_H, "w": PANEL_W, "x": x, "y": y},
        "fieldConfig": {
            "defaults": {
                "unit": panel["unit"],
                "min": 0,
                "custom": {
                    "drawStyle": "line",
                    "lineWidth": 1,
                    "fillOpacity": 30 if stacked else 8,
                    "showPoints": "never",
                    "spanNulls": False,
                    "stacking": {"mode": "normal" if stacked else "none", "group": "A"},
                },
            },
            "overrides": [],
        },
        "options": {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True, "calcs": ["lastNotNull"]},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
        "targets": [
            {
                "refId": chr(ord("A") + i),
                "datasource": DATASOURCE,
                "editorMode": "code",
                "range": True,
                "expr": t["expr"],
                "legendFormat": t.get("legend", ""),
            }
            for i, t in enumerate(panel["targets"])
        ],
    }


# Per-replica panels, Grafana only (recserve's embedded dashboard shows one replica): a
# collapsed row after the first section, so its panels sit in the row's own `panels` list and
# the top-level panels stay exactly those of queries.json.
REPLICAS_ROW = "Replicas"
REPLICA_PANELS = [
    {
        "id": "replica_throughput",
        "title": "Requests per second by replica",
        "unit": "reqps",
        "targets": [
            {"expr": 'sum by (instance) (rate(recserve_requests_total{instance=~"$instance"}[1m]))', "legend": "{{instance}}"}
        ],
    },
    {
        "id": "replica_p99",
        "title": "p99 latency by replica",
        "unit": "s",
        "targets": [
            {
                "expr": 'histogram_quantile(0.99, sum by (instance, le) (rate(recserve_request_duration_seconds_bucket{instance=~"$instance"}[1m])))',
                "legend": "{{instance}}",
            }
        ],
    },
    {
        "id": "replica_errors",
        "title": "Error ratio by replica",
        "unit": "percentunit",
        "targets": [
            {
                "expr": 'sum by (instance) (rate(recserve_requests_total{instance=~"$instance",outcome!="ok"}[1m])) / sum by (instance) (rate(recserve_requests_total{instance=~"$instance"}[1m]))',
                "legend": "{{instance}}",
            }
        ],
    },
    {
        "id": "replica_in_flight",
        "title": "In-flight requests by replica (the autoscaler's metric)",
        "unit": "short",
        "targets": [
            {"expr": 'sum by (instance) (recserve_in_flight_requests{instance=~"$instance"})', "legend": "{{instance}}"}
        ],
    },
]


def replicas_row(row_id, y):
    """The collapsed per-replica row at height y, its panels numbered from row_id + 1."""
    nested = []
    for i, panel in enumerate(REPLICA_PANELS):
        p = timeseries(row_id + 1 + i, panel, (i % 2) * PANEL_W, y + 1 + (i // 2) * PANEL_H)
        p["description"] = f"`{panel['id']}`: per replica (the `instance` label); Grafana only (deploy/grafana/generate.py)"
        nested.append(p)
    row = {
        "id": row_id,
        "type": "row",
        "title": REPLICAS_ROW,
        "collapsed": True,
        "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
        "panels": nested,
    }
    return row, row_id + 1 + len(nested)


def dashboard(spec):
    """Rows and panels of queries.json in order, the collapsed Replicas row after the first section."""
    panels = []
    next_id = 1
    y = 0
    for n, section in enumerate(spec["sections"]):
        if n == 1:
            row, next_id = replicas_row(next_id, y)
            panels.append(row)
            y += 1
        panels.append(
            {
                "id": next_id,
                "type": "row",
                "title": section["title"],
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "panels": [],
            }
        )
        next_id += 1
        y += 1
        for i, panel in enumerate(section["panels"]):
            x = (i % 2) * PANEL_W
            panels.append(timeseries(next_id, panel, x, y))
            next_id += 1
            if i % 2 == 1 or i == len(section["panels"]) - 1:
                y += PANEL_H
    if len(spec["sections"]) < 2:
        panels.append(replicas_row(next_id, y)[0])
    var = spec["variables"]["instance"]
    definition = f"label_values({var['metric']}, {var['label']})"
    return {
        "uid": "recserve",
        "title": "recserve",
        "description": "Serving and pipeline health of recserve replicas; the same PromQL as recserve's embedded dashboard.",
        "tags": ["recserve"],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-15m", "to": "now"},
        "refresh": "5s",
        "timepicker": {"refresh_intervals": ["5s", "10s", "30s", "1m", "5m"]},
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Data source",
                    "type": "datasource",
                    "query": "prometheus",
                    "refresh": 1,
                    "regex": "",
                    "hide": 0,
                    "current": {},
                },
                {
                    "name": var["label"],
                    "label": "Instance",
                    "type": "query",
                    "datasource": DATASOURCE,
                    "definition": definition,
                    "query": {"query": definition, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
                    "refresh": 2,
                    "sort": 1,
                    "multi": True,
                    "includeAll": True,
                    "allValue": var["all"],
                    "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
                    "hide": 0,
                    "regex": "",
                    "options": [],
                },
            ]
        },
        "panels": panels,
    }


def render():
    spec = json.loads(QUERIES.read_text())
    return json.dumps(dashboard(spec), indent=2, ensure_ascii=False) + "\n"


def main():
    text = render()
    if "--check" in sys.argv[1:]:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT} is stale: run python3 deploy/grafana/generate.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
