#!/usr/bin/env python3
"""Per-stage time of `/v1/recommend` from two `GET /metrics` snapshots (before and after a run).

    python3 bench/recommend/stages.py before.txt after.txt [--pipeline home_feed]

Reads the `recserve_stage_duration_seconds` histograms (labels model, version, pipeline, stage),
subtracts `before` from `after`, and prints, per pipeline and stage, the requests counted, the
mean (sum / count) and p50/p99 interpolated linearly inside the Prometheus buckets (so they are
only as fine as the buckets: 0.1, 0.25, 0.5, 1, 2.5, 5, 10 ms, ...). Pipeline series carry the
ranker's model label; V2 traffic (`pipeline="none"`) is left out. Standard library only.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import defaultdict

NAME = "recserve_stage_duration_seconds"
LINE = re.compile(r"^" + NAME + r"_(bucket|sum|count)\{([^}]*)\}\s+(\S+)")
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
ORDER = ["retrieval", "preprocess", "queue", "inference", "ranking", "postprocess"]


def parse(path: str):
    """{(pipeline, stage): {"sum": s, "count": n, "buckets": {le: cumulative}}} summed over models."""
    out: dict = defaultdict(lambda: {"sum": 0.0, "count": 0.0, "buckets": defaultdict(float)})
    with open(path) as f:
        for line in f:
            m = LINE.match(line)
            if not m:
                continue
            kind, labels, value = m.group(1), dict(LABEL.findall(m.group(2))), float(m.group(3))
            pipeline = labels.get("pipeline", "")
            if pipeline in ("", "none"):
                continue
            h = out[(pipeline, labels.get("stage", "?"))]
            if kind == "bucket":
                le = labels["le"]
                h["buckets"][float("inf") if le == "+Inf" else float(le)] += value
            else:
                h[kind] += value
    return out


def quantile(buckets: list[tuple[float, float]], q: float) -> float:
    total = buckets[-1][1]
    if total <= 0:
        return 0.0
    rank = q * total
    lo_le, lo_n = 0.0, 0.0
    for le, n in buckets:
        if n >= rank:
            if le == float("inf"):
                return lo_le
            frac = 0.0 if n == lo_n else (rank - lo_n) / (n - lo_n)
            return lo_le + (le - lo_le) * frac
        lo_le, lo_n = le, n
    return lo_le


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("--pipeline", help="only this pipeline (scenario); default: each, and all together")
    args = ap.parse_args()
    before, after = parse(args.before), parse(args.after)
    rows: dict = defaultdict(lambda: {"sum": 0.0, "count": 0.0, "buckets": defaultdict(float)})
    for key, h in after.items():
        b = before.get(key, {"sum": 0.0, "count": 0.0, "buckets": {}})
        for pipeline in (key[0], "all"):
            r = rows[(pipeline, key[1])]
            r["sum"] += h["sum"] - b["sum"]
            r["count"] += h["count"] - b["count"]
            for le, n in h["buckets"].items():
                r["buckets"][le] += n - b["buckets"].get(le, 0.0)
    if not rows:
        sys.exit(f"no {NAME} series in {args.after} (is this recserve's /metrics with pipelines?)")
    print(f"{'pipeline':<10} {'stage':<12} {'requests':>9} {'mean ms':>8} {'p50 ms':>8} {'p99 ms':>8}")
    pipelines = sorted({p for p, _ in rows if p != "all"}) + ["all"]
    for pipeline in pipelines:
        if args.pipeline and pipeline != args.pipeline:
            continue
        stages = sorted({s for p, s in rows if p == pipeline}, key=lambda s: (ORDER.index(s) if s in ORDER else 99, s))
        for stage in stages:
            r = rows[(pipeline, stage)]
            if r["count"] <= 0:
                continue
            buckets = sorted(r["buckets"].items())
            mean = r["sum"] / r["count"] * 1e3
            p50, p99 = quantile(buckets, 0.5) * 1e3, quantile(buckets, 0.99) * 1e3
            print(f"{pipeline:<10} {stage:<12} {int(r['count']):>9} {mean:>8.3f} {p50:>8.3f} {p99:>8.3f}")


if __name__ == "__main__":
    main()
