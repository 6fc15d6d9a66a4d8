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


def dashboard(spec):
    panels = []
    next_id = 1
    y = 0
    for section in spec["sections"]:
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
