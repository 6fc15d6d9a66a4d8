#!/usr/bin/env python3
"""Trains the demo shop's recommendation models from a `recserve shop export` and writes the
committed artifacts of examples/ecommerce/ (FORMAT.md, section 2).

    python3.11 -m venv .venv-train
    .venv-train/bin/pip install -r examples/ecommerce/requirements.txt
    cargo run --release -p recserve -- shop export --out /tmp/shop-export
    .venv-train/bin/python examples/ecommerce/train.py --data /tmp/shop-export --out examples/ecommerce

What it does, in order:

1. Splits the impressions by time into four windows (cut at the 40th, 60th and 80th percentile
   of the impression timestamps):  A = [0, 40%)  B = [40%, 60%)  C = [60%, 80%)  E = [80%, 100%].
   History features (user category affinities, average clicked price, item CTR, ...) are always
   computed from the windows *before* the one they are used on, so no label leaks into a feature:
     - user tower: features from A, target = the clicks of B (plus the same pair one window
       earlier: features from [0, 20%), target = the clicks of [20%, 40%)); the ridge penalty
       is chosen by Recall@50 on the clicks of C from the A+B features;
     - ranker: trained on the impressions of C, features from A+B;
     - evaluation: the impressions and clicks of E, features from A+B+C — the same tables that
       are committed, so the offline numbers describe exactly what the demo serves.
2. Writes feature_spec.json first, then computes every model input by interpreting it
   (`apply_transforms` and `Context` below): the Rust pipeline interprets the same file, so both get the same rows.
3. Two-tower retrieval without a deep-learning framework: reduced-rank ridge regression from the
   user tower's features to the user's next-window clicks. The fitted user x item score matrix is
   X·B (X = transformed user features with a constant column; each target row is the user's
   click distribution, shrunk toward the shop-wide one); its top-D right singular vectors
   are the item embeddings, and the user tower is the map x -> x·B·V followed by an L2
   normalisation, built as an ONNX graph from basic ops (MatMul, Add, ReduceSumSquare, Sqrt, Div)
   so tract runs it. Cold users (no history) still get an embedding from their profile.
4. Ranker: LightGBM binary classifier on impressions (label = clicked), converted with
   onnxmltools (TreeEnsembleClassifier, no ZipMap).
5. Reference statistics for drift monitoring, validation samples for the serving gate (outputs
   from onnxruntime), and the offline metrics written to metrics.json (README.md quotes them).

Deterministic given its inputs and --seed: single-threaded BLAS, LightGBM and onnxruntime.
"""

from __future__ import annotations

import os

# Single-threaded BLAS: identical floating-point results on every run. Must precede numpy.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import csv  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

EMBEDDING_DIM = 32
# tract reads ai.onnx up to 18; onnxconverter-common (under onnxmltools) writes up to 15.
ONNX_OPSET = 17
MLTOOLS_OPSET = 15
IR_VERSION = 8
SIG_DIGITS = 6  # floats in the CSV tables
QUANTILE_BINS = 10
TARGET_PRIOR_WEIGHT = 0.3
TOWER_L2_GRID = (0.1, 0.3, 1.0, 3.0, 10.0)
FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
MASK64 = (1 << 64) - 1
# Smoothing of the history features (pseudo-counts toward the global rates).
AFF_PRIOR_CLICKS = 2.0
CTR_PRIOR_IMPRESSIONS = 50.0
STRING_OPS = ("vocabulary", "hash", "one_hot")
TOP_SUBCATEGORIES = 3

T0 = time.time()


def log(msg: str) -> None:
    print(f"[{time.time() - T0:6.1f}s] {msg}", flush=True)


# ---------------------------------------------------------------------------------------------
# Tables


class Table:
    """A CSV table held column-wise as strings, with cached numeric views and an id index."""

    def __init__(self, columns: dict[str, list[str]], key: str | None = None):
        self.columns = columns
        self.names = list(columns)
        self.n = len(next(iter(columns.values()))) if columns else 0
        self._num: dict[str, np.ndarray] = {}
        self._str: dict[str, np.ndarray] = {}
        self.index = {v: i for i, v in enumerate(columns[key])} if key else {}

    @staticmethod
    def read(path: Path, key: str | None = None) -> "Table":
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header = next(reader)
            cols: list[list[str]] = [[] for _ in header]
            for row in reader:
                for c, v in zip(cols, row):
                    c.append(v)
        return Table(dict(zip(header, cols)), key)

    def num(self, col: str) -> np.ndarray:
        """The column as f64, NaN where the cell is empty, unparseable or not finite."""
        if col not in self._num:
            if col not in self.columns:
                self._num[col] = np.full(self.n, np.nan)
            else:
                self._num[col] = np.array([parse_number(v) for v in self.columns[col]], dtype=np.float64)
        return self._num[col]

    def str(self, col: str) -> np.ndarray:
        """The column as an object array, None where the cell is empty or the column is absent."""
        if col not in self._str:
            if col not in self.columns:
                self._str[col] = np.full(self.n, None, dtype=object)
            else:
                self._str[col] = np.array([v if v != "" else None for v in self.columns[col]], dtype=object)
        return self._str[col]

    def ids(self, values) -> np.ndarray:
        """Row positions of `values` in the key column, -1 for unknown ids."""
        return np.array([self.index.get(v, -1) for v in values], dtype=np.int64)


def parse_number(v) -> float:
    if v is None:
        return math.nan
    if isinstance(v, (int, float, np.floating, np.integer)):
        x = float(v)
    else:
        s = str(v).strip()
        if s == "":
            return math.nan
        try:
            x = float(s)
        except ValueError:
            return math.nan
    return x if math.isfinite(x) else math.nan


def gather(arr: np.ndarray, idx: np.ndarray, missing) -> np.ndarray:
    """arr[idx] with `missing` where idx == -1."""
    ext = np.empty(len(arr) + 1, dtype=arr.dtype)
    ext[:-1] = arr
    ext[-1] = missing
    return ext[idx]


def fmt(x: float) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return ""
    return format(float(x), f".{SIG_DIGITS}g")


def write_csv(path: Path, columns: dict[str, list]) -> None:
    names = list(columns)
    n = len(columns[names[0]])
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(names)
        for i in range(n):
            w.writerow([columns[c][i] for c in names])


# ---------------------------------------------------------------------------------------------
# Text (FORMAT.md, query.overlap)


def tokenize(text: str) -> list[str]:
    out, cur = [], []
    for ch in text:
        if ch.isalnum():
            cur.append(ch)
        elif cur:
            out.append("".join(cur).lower())
            cur = []
    if cur:
        out.append("".join(cur).lower())
    return out


def query_overlap(query_tokens: list[str], title_tokens: set[str]) -> float:
    if not query_tokens:
        return 0.0
    return sum(1 for t in query_tokens if t in title_tokens) / len(query_tokens)


def fnv1a64(s: str) -> int:
    h = FNV_OFFSET
    for b in s.encode("utf-8"):
        h ^= b
        h = (h * FNV_PRIME) & MASK64
    return h


# ---------------------------------------------------------------------------------------------
# The feature spec interpreter: the one implementation of FORMAT.md's transforms in this script.


def feature_width(feature: dict) -> int:
    ts = feature["transforms"]
    if ts and ts[-1]["op"] == "one_hot":
        return len(ts[-1]["values"])
    return 1


def is_string_feature(feature: dict) -> bool:
    ts = feature["transforms"]
    return bool(ts) and ts[0]["op"] in STRING_OPS


class Context:
    """Everything the sources of one batch of model rows refer to: one entry per row."""

    def __init__(self, users: Table, items: Table | None, user_idx: np.ndarray, item_idx: np.ndarray | None = None,
                 context: dict[str, np.ndarray] | None = None, retrieval_score: np.ndarray | None = None,
                 queries: np.ndarray | None = None):
        self.users, self.items = users, items
        self.user_idx, self.item_idx = user_idx, item_idx
        self.context = context or {}
        self.retrieval_score = retrieval_score
        self.queries = queries
        self.n = len(user_idx)

    def raw(self, source: str, as_string: bool) -> np.ndarray:
        """Raw values of `source`: strings (None = missing) or f64 (NaN = missing)."""
        kind, _, key = source.partition(".")
        if kind == "user":
            if as_string:
                return gather(self.users.str(key), self.user_idx, None)
            return gather(self.users.num(key), self.user_idx, np.nan)
        if kind == "item":
            if as_string:
                return gather(self.items.str(key), self.item_idx, None)
            return gather(self.items.num(key), self.item_idx, np.nan)
        if kind == "context":
            vals = self.context.get(key)
            if vals is None:
                vals = np.full(self.n, None, dtype=object)
            if as_string:
                return np.array([None if v is None or v == "" else str(v) for v in vals], dtype=object)
            return np.array([parse_number(v) for v in vals], dtype=np.float64)
        if as_string:
            raise ValueError(f"source {source} is numeric; string transforms do not apply")
        if source == "retrieval.score":
            return np.asarray(self.retrieval_score, dtype=np.float64)
        if source == "query.overlap":
            return self._query_overlap()
        if source == "cross.category_affinity":
            cats = gather(self.items.str("category"), self.item_idx, None)
            out = np.full(self.n, np.nan)
            for cat in {c for c in cats if c is not None}:
                rows = cats == cat
                out[rows] = gather(self.users.num(f"aff_{cat}"), self.user_idx[rows], np.nan)
            return out
        if source == "cross.price_ratio":
            price = gather(self.items.num("price"), self.item_idx, np.nan)
            avg = gather(self.users.num("avg_price"), self.user_idx, np.nan)
            with np.errstate(divide="ignore", invalid="ignore"):
                r = price / avg
            r[~np.isfinite(r) | (avg == 0)] = np.nan
            return r
        raise ValueError(f"unknown source {source}")

    def _query_overlap(self) -> np.ndarray:
        out = np.zeros(self.n)
        titles = self.items.str("title")
        tok_cache: dict[str, list[str]] = {}
        title_cache: dict[int, set[str]] = {}
        for r in range(self.n):
            q = self.queries[r]
            if not q:
                continue
            qt = tok_cache.get(q)
            if qt is None:
                qt = tok_cache[q] = tokenize(q)
            i = int(self.item_idx[r])
            tt = title_cache.get(i)
            if tt is None:
                tt = title_cache[i] = set(tokenize(titles[i] or "")) if i >= 0 else set()
            out[r] = query_overlap(qt, tt)
        return out


def apply_transforms(feature: dict, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Applies `default` and `transforms` to a raw column. Returns (values [n, width] f64,
    missing mask [n] of the raw values)."""
    ts = feature["transforms"]
    default = feature["default"]
    n = len(raw)
    if is_string_feature(feature):
        missing = np.array([v is None for v in raw], dtype=bool)
        vals = np.array([str(default) if v is None else v for v in raw], dtype=object)
        first, rest = ts[0], ts[1:]
        uniq, inv = np.unique(vals.astype(str), return_inverse=True)
        if first["op"] == "one_hot":
            if rest:
                raise ValueError(f"{feature['name']}: one_hot must be the last transform")
            values = first["values"]
            pos = {v: k for k, v in enumerate(values)}
            out = np.zeros((n, len(values)))
            col = np.array([pos.get(u, -1) for u in uniq])[inv]
            hit = col >= 0
            out[np.nonzero(hit)[0], col[hit]] = 1.0
            return out, missing
        if first["op"] == "vocabulary":
            pos = {v: k for k, v in enumerate(first["values"])}
            x = np.array([pos.get(u, len(first["values"])) for u in uniq], dtype=np.float64)[inv]
        else:  # hash
            x = np.array([fnv1a64(u) % int(first["buckets"]) for u in uniq], dtype=np.float64)[inv]
    else:
        raw = np.asarray(raw, dtype=np.float64)
        missing = np.isnan(raw)
        x = np.where(missing, float(default), raw)
        rest = ts
    for t in rest:
        op = t["op"]
        if op == "clip":
            lo = t.get("min")
            hi = t.get("max")
            if lo is not None:
                x = np.maximum(x, lo)
            if hi is not None:
                x = np.minimum(x, hi)
        elif op == "log1p":
            if np.any(x <= -1):
                raise ValueError(f"{feature['name']}: log1p of a value <= -1; clip first")
            x = np.log1p(x)
        elif op == "standardize":
            x = x - t["mean"]
            if t["std"] != 0:
                x = x / t["std"]
        elif op == "bucketize":
            x = np.searchsorted(np.asarray(t["boundaries"], dtype=np.float64), x, side="right").astype(np.float64)
        else:
            raise ValueError(f"{feature['name']}: transform {op} cannot follow a numeric value")
    return x.reshape(n, 1), missing


def build_matrix(features: list[dict], ctx: Context) -> tuple[np.ndarray, dict[str, dict]]:
    """Model input rows [n, sum of widths] f32, plus per feature its transformed block, raw
    values and missing mask (for the reference statistics)."""
    blocks, info = [], {}
    for f in features:
        raw = ctx.raw(f["source"], is_string_feature(f))
        vals, missing = apply_transforms(f, raw)
        blocks.append(vals)
        info[f["name"]] = {"values": vals, "raw": raw, "missing": missing}
    return np.hstack(blocks).astype(np.float32), info


def column_names(features: list[dict]) -> list[str]:
    names = []
    for f in features:
        if feature_width(f) == 1:
            names.append(f["name"])
        else:
            names += [f"{f['name']}={v}" for v in f["transforms"][-1]["values"]]
    return names


# ---------------------------------------------------------------------------------------------
# Data: export, time windows, history tables


class Interactions:
    def __init__(self, t: Table):
        c = t.columns
        self.request_id = np.array(c["request_id"], dtype=object)
        self.user_id = np.array(c["user_id"], dtype=object)
        self.item_id = np.array(c["item_id"], dtype=object)
        self.ts = np.array(c["ts"], dtype=np.int64)
        self.scenario = np.array(c["scenario"], dtype=object)
        self.query = np.array(c["query"], dtype=object)
        self.position = np.array(c["position"], dtype=np.int64)
        self.clicked = np.array(c["clicked"], dtype=np.int8)
        self.added = np.array(c["added_to_cart"], dtype=np.int8)
        self.purchased = np.array(c["purchased"], dtype=np.int8)
        self.n = len(self.ts)


def time_cuts(ts: np.ndarray) -> tuple[int, int, int, int]:
    """Timestamps at the 20/40/60/80% quantiles of the impressions; a window is [cut, next cut)."""
    s = np.sort(ts)
    return tuple(int(s[min(len(s) - 1, int(len(s) * q))]) for q in (0.2, 0.4, 0.6, 0.8))


def item_log_price_ratio(items: Table) -> np.ndarray:
    """ln(price / median price of the item's subcategory in the catalog)."""
    log_price = np.log(items.num("price"))
    sub = np.array(items.columns["subcategory"], dtype=object)
    out = np.zeros(items.n)
    for s in sorted(set(sub)):
        rows = sub == s
        out[rows] = log_price[rows] - np.median(log_price[rows])
    return out


def history_tables(items: Table, users: Table, inter: Interactions, window: np.ndarray,
                   categories: list[str]) -> tuple[dict[str, list], dict[str, list]]:
    """Item and user tables (FORMAT.md columns + derived history columns) from the impressions in
    `window`, as columns of CSV strings."""
    ii = items.ids(inter.item_id[window])
    uu = users.ids(inter.user_id[window])
    clk = inter.clicked[window].astype(np.float64)
    pur = inter.purchased[window].astype(np.float64)
    price = items.num("price")
    cat_of_item = np.array([categories.index(c) for c in items.columns["category"]])
    known = (ii >= 0) & (uu >= 0)
    ii, uu, clk, pur = ii[known], uu[known], clk[known], pur[known]

    # items
    imp_i = np.bincount(ii, minlength=items.n).astype(np.float64)
    clk_i = np.bincount(ii, weights=clk, minlength=items.n)
    global_ctr = clk.sum() / max(len(clk), 1)
    ctr_i = (clk_i + CTR_PRIOR_IMPRESSIONS * global_ctr) / (imp_i + CTR_PRIOR_IMPRESSIONS)
    item_cols = {k: list(v) for k, v in items.columns.items()}
    item_cols["impressions"] = [str(int(x)) for x in imp_i]
    item_cols["clicks"] = [str(int(x)) for x in clk_i]
    item_cols["ctr"] = [fmt(x) for x in ctr_i]
    item_cols["log_price_ratio"] = [fmt(x) for x in item_log_price_ratio(items)]

    # users
    imp_u = np.bincount(uu, minlength=users.n).astype(np.float64)
    clk_u = np.bincount(uu, weights=clk, minlength=users.n)
    pur_u = np.bincount(uu, weights=pur, minlength=users.n)
    ctr_u = (clk_u + CTR_PRIOR_IMPRESSIONS * global_ctr) / (imp_u + CTR_PRIOR_IMPRESSIONS)
    price_sum = np.bincount(uu, weights=clk * price[ii], minlength=users.n)
    logp_sum = np.bincount(uu, weights=clk * np.log(price[ii]), minlength=users.n)
    with np.errstate(invalid="ignore", divide="ignore"):
        avg_price = np.where(clk_u > 0, price_sum / clk_u, np.nan)
        avg_log_price = np.where(clk_u > 0, logp_sum / clk_u, np.nan)
    # Category click shares, smoothed toward the shop-wide click share of each category.
    cat_clicks = np.zeros((users.n, len(categories)))
    np.add.at(cat_clicks, (uu, cat_of_item[ii]), clk)
    prior = cat_clicks.sum(0) / max(cat_clicks.sum(), 1.0)
    aff = (cat_clicks + AFF_PRIOR_CLICKS * prior) / (clk_u[:, None] + AFF_PRIOR_CLICKS)
    top = np.where(clk_u > 0, np.argmax(cat_clicks, axis=1), -1)
    # A shopper's price level: mean over clicks of the item's log price relative to its
    # subcategory's median — high = clicks the expensive end of what they browse.
    rel_price = item_log_price_ratio(items)
    rel = np.bincount(uu, weights=clk * rel_price[ii], minlength=users.n)
    with np.errstate(invalid="ignore", divide="ignore"):
        price_level = np.where(clk_u > 0, rel / clk_u, np.nan)
    # The shopper's most clicked subcategories (ties: the alphabetically first), for the tower.
    subcats = sorted(set(items.columns["subcategory"]))
    sub_of_item = np.array([subcats.index(s) for s in items.columns["subcategory"]])
    sub_clicks = np.zeros((users.n, len(subcats)))
    np.add.at(sub_clicks, (uu, sub_of_item[ii]), clk)
    top_subs = np.argsort(-sub_clicks, axis=1, kind="stable")[:, :TOP_SUBCATEGORIES]

    user_cols = {k: list(v) for k, v in users.columns.items()}
    user_cols["hist_impressions"] = [str(int(x)) for x in imp_u]
    user_cols["hist_clicks"] = [str(int(x)) for x in clk_u]
    user_cols["hist_purchases"] = [str(int(x)) for x in pur_u]
    user_cols["hist_ctr"] = [fmt(x) for x in ctr_u]
    user_cols["avg_price"] = [fmt(x) for x in avg_price]
    user_cols["avg_log_price"] = [fmt(x) for x in avg_log_price]
    user_cols["price_level"] = [fmt(x) for x in price_level]
    user_cols["top_category"] = [categories[t] if t >= 0 else "" for t in top]
    for k in range(TOP_SUBCATEGORIES):
        user_cols[f"top_subcategory_{k + 1}"] = [
            subcats[top_subs[u, k]] if sub_clicks[u, top_subs[u, k]] > 0 else "" for u in range(users.n)]
    for c, cat in enumerate(categories):
        user_cols[f"aff_{cat}"] = [fmt(x) for x in aff[:, c]]
    return item_cols, user_cols


def as_table(cols: dict[str, list], key: str) -> Table:
    """The table exactly as the pipeline will read it back from CSV (strings, rounded floats)."""
    return Table({k: [str(v) for v in vs] for k, vs in cols.items()}, key)


# ---------------------------------------------------------------------------------------------
# Feature spec


def quantiles(x: np.ndarray, qs) -> list[float]:
    return [float(v) for v in np.quantile(x, qs)]


def round_sig(x: float, digits: int = 6) -> float:
    return float(format(float(x), f".{digits}g"))


def standardize_of(x: np.ndarray) -> dict:
    s = float(np.std(x))
    return {"op": "standardize", "mean": round_sig(np.mean(x)), "std": round_sig(s) if s > 1e-12 else 0.0}


def make_spec(items: Table, users_hist: Table, categories: list[str]) -> dict:
    """Writes the spec from the training tables: vocabularies and standardisation constants come
    from the data the models are trained on."""
    segments = ["bargain_hunter", "brand_loyal", "premium", "casual"]
    ages = ["18-24", "25-34", "35-44", "45-54", "55+"]
    devices = ["mobile", "desktop", "tablet"]

    def num_stats(col: str, table: Table, transform) -> dict:
        x = table.num(col)
        x = x[~np.isnan(x)]
        return standardize_of(transform(x))

    log1p_pos = lambda x: np.log1p(np.maximum(x, 0.0))  # noqa: E731
    global_avg_price = float(np.nanmedian(users_hist.num("avg_price")))
    global_avg_price = round_sig(global_avg_price if math.isfinite(global_avg_price) else 50.0, 4)
    prior_aff = round_sig(1.0 / len(categories), 4)
    # Shop-wide click-through rate: the default CTR of a shopper or an item the tables lack.
    base_ctr = round_sig(float(np.nanmedian(users_hist.num("hist_ctr"))), 3)

    user_tower = [
        {"name": "ut_segment", "source": "user.segment", "default": "casual",
         "transforms": [{"op": "one_hot", "values": segments}]},
        {"name": "ut_age_band", "source": "user.age_band", "default": "",
         "transforms": [{"op": "one_hot", "values": ages}]},
        {"name": "ut_device", "source": "user.device", "default": "",
         "transforms": [{"op": "one_hot", "values": devices}]},
        {"name": "ut_log_tenure", "source": "user.tenure_days", "default": 0.0,
         "transforms": [{"op": "clip", "min": 0.0}, {"op": "log1p"},
                        num_stats("tenure_days", users_hist, log1p_pos)]},
        {"name": "ut_has_history", "source": "user.hist_clicks", "default": 0.0,
         "transforms": [{"op": "bucketize", "boundaries": [1.0]}]},
        {"name": "ut_log_clicks", "source": "user.hist_clicks", "default": 0.0,
         "transforms": [{"op": "clip", "min": 0.0}, {"op": "log1p"},
                        num_stats("hist_clicks", users_hist, log1p_pos)]},
        {"name": "ut_price_level", "source": "user.price_level", "default": 0.0,
         "transforms": [{"op": "clip", "min": -3.0, "max": 3.0}]},
        {"name": "ut_log_avg_price", "source": "user.avg_log_price", "default": round_sig(math.log(global_avg_price), 4),
         "transforms": [num_stats("avg_log_price", users_hist, lambda x: x)]},
    ]
    subcats = sorted(set(items.columns["subcategory"]))
    for k in range(TOP_SUBCATEGORIES):
        user_tower.append({"name": f"ut_top_subcategory_{k + 1}", "source": f"user.top_subcategory_{k + 1}",
                           "default": "", "transforms": [{"op": "one_hot", "values": subcats}]})
    for cat in categories:
        user_tower.append({"name": f"ut_aff_{cat}", "source": f"user.aff_{cat}", "default": prior_aff,
                           "transforms": [{"op": "clip", "min": 0.0, "max": 1.0}]})

    price = items.num("price")
    ranker = [
        {"name": "user_segment", "source": "user.segment", "default": "casual",
         "transforms": [{"op": "one_hot", "values": segments}]},
        {"name": "user_age_band", "source": "user.age_band", "default": "",
         "transforms": [{"op": "vocabulary", "values": ages}]},
        {"name": "device", "source": "context.device", "default": "",
         "transforms": [{"op": "one_hot", "values": devices}]},
        {"name": "user_log_tenure", "source": "user.tenure_days", "default": 0.0,
         "transforms": [{"op": "clip", "min": 0.0}, {"op": "log1p"},
                        num_stats("tenure_days", users_hist, log1p_pos)]},
        {"name": "user_log_clicks", "source": "user.hist_clicks", "default": 0.0,
         "transforms": [{"op": "clip", "min": 0.0}, {"op": "log1p"},
                        num_stats("hist_clicks", users_hist, log1p_pos)]},
        {"name": "user_ctr", "source": "user.hist_ctr", "default": base_ctr,
         "transforms": [{"op": "clip", "min": 0.0, "max": 1.0}]},
        {"name": "user_price_level", "source": "user.price_level", "default": 0.0,
         "transforms": [{"op": "clip", "min": -3.0, "max": 3.0}]},
        {"name": "item_log_price", "source": "item.price", "default": round_sig(float(np.median(price)), 4),
         "transforms": [{"op": "clip", "min": 0.0}, {"op": "log1p"}, standardize_of(np.log1p(price))]},
        {"name": "item_log_popularity", "source": "item.popularity", "default": 0.0,
         "transforms": [{"op": "clip", "min": 0.0}, {"op": "log1p"},
                        standardize_of(np.log1p(np.maximum(items.num("popularity"), 0)))]},
        {"name": "item_price_vs_subcategory", "source": "item.log_price_ratio", "default": 0.0,
         "transforms": [{"op": "clip", "min": -3.0, "max": 3.0}]},
        {"name": "item_stock_level", "source": "item.stock", "default": 0.0,
         "transforms": [{"op": "bucketize", "boundaries": [1.0, 5.0, 20.0, 100.0]}]},
        {"name": "item_ctr", "source": "item.ctr", "default": base_ctr,
         "transforms": [{"op": "clip", "min": 0.0, "max": 1.0}]},
        {"name": "item_category", "source": "item.category", "default": "",
         "transforms": [{"op": "vocabulary", "values": categories}]},
        {"name": "item_subcategory_hash", "source": "item.subcategory", "default": "",
         "transforms": [{"op": "hash", "buckets": 1024}]},
        {"name": "item_brand_hash", "source": "item.brand", "default": "",
         "transforms": [{"op": "hash", "buckets": 1024}]},
        {"name": "retrieval_score", "source": "retrieval.score", "default": 0.0,
         "transforms": [{"op": "clip", "min": -1.0, "max": 1.0}]},
        {"name": "query_overlap", "source": "query.overlap", "default": 0.0,
         "transforms": [{"op": "clip", "min": 0.0, "max": 1.0}]},
        {"name": "category_affinity", "source": "cross.category_affinity", "default": prior_aff,
         "transforms": [{"op": "clip", "min": 0.0, "max": 1.0}]},
        {"name": "price_ratio", "source": "cross.price_ratio", "default": 1.0,
         "transforms": [{"op": "clip", "min": 0.0, "max": 100.0}, {"op": "log1p"}]},
    ]
    return {
        "version": 1,
        "embedding_dim": EMBEDDING_DIM,
        "item_embeddings": "data/item_embeddings.f32",
        "user_tower": {"model": "user_tower", "input": "user_features", "output": "user_embedding",
                       "features": user_tower},
        "ranker": {"model": "ranker", "input": "features", "output": "probabilities", "output_column": 1,
                   "features": ranker},
    }


# ---------------------------------------------------------------------------------------------
# Two-tower retrieval


def fit_two_tower(x: np.ndarray, target: np.ndarray, lam: float, dim: int):
    """Reduced-rank ridge regression target ≈ [x, 1]·B, rank `dim`.

    Returns (w [U, dim], b [dim], item_embeddings [I, dim]) with scores = (x·w + b)·E^T."""
    n, u = x.shape
    xa = np.hstack([x, np.ones((n, 1))]).astype(np.float64)
    xw, tw = xa, target
    reg = lam * np.eye(u + 1)
    reg[u, u] = 0.0  # no penalty on the intercept
    b = np.linalg.solve(xw.T @ xw + reg, xw.T @ tw)  # [U+1, I]
    # Rank reduction: fitted = xa·B; its row space is spanned by the top right singular vectors
    # of R·B where xw = Q·R.
    _, r = np.linalg.qr(xw)
    _, s, vt = np.linalg.svd(r @ b, full_matrices=False)
    k = min(dim, vt.shape[0])
    v = np.zeros((b.shape[1], dim))
    v[:, :k] = vt[:k].T
    m = b @ v  # [U+1, dim]
    # Scale the item side to a largest norm of 1 (only the user side is normalised in the graph).
    scale = np.max(np.linalg.norm(v, axis=1))
    v = v / scale
    m = m * scale
    return m[:u].astype(np.float32), m[u].astype(np.float32), v.astype(np.float32)


def click_targets(x: np.ndarray, inter: "Interactions", users: Table, items: Table, window: np.ndarray,
                  normalize: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Rows of `x` for the users who clicked in `window`, and their click rows [users, items]
    (each summing to 1 when `normalize`)."""
    u = users.ids(inter.user_id[window])
    i = items.ids(inter.item_id[window])
    c = inter.clicked[window].astype(np.float64)
    target = np.zeros((users.n, items.n))
    np.add.at(target, (u, i), c)
    n = target.sum(1)
    has = n > 0
    t = target[has]
    if normalize:
        t = t / n[has, None]
    return x[has], t


def tower_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """numpy mirror of the ONNX graph (for training-time features; the gate checks the graph)."""
    y = x.astype(np.float32) @ w + b
    return y / np.sqrt((y * y).sum(1, keepdims=True) + np.float32(1e-12))


def tower_onnx(w: np.ndarray, b: np.ndarray):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    u, d = w.shape
    nodes = [
        helper.make_node("MatMul", ["user_features", "w"], ["xw"], name="project_op"),
        helper.make_node("Add", ["xw", "b"], ["y"], name="bias_op"),
        helper.make_node("ReduceSumSquare", ["y"], ["sq"], axes=[1], keepdims=1, name="square_sum_op"),
        helper.make_node("Add", ["sq", "eps"], ["sq_eps"], name="add_eps_op"),
        helper.make_node("Sqrt", ["sq_eps"], ["norm"], name="sqrt_op"),
        helper.make_node("Div", ["y", "norm"], ["user_embedding"], name="normalize_op"),
    ]
    graph = helper.make_graph(
        nodes,
        "user_tower",
        [helper.make_tensor_value_info("user_features", TensorProto.FLOAT, ["batch", u])],
        [helper.make_tensor_value_info("user_embedding", TensorProto.FLOAT, ["batch", d])],
        [numpy_helper.from_array(w.astype(np.float32), "w"), numpy_helper.from_array(b.astype(np.float32), "b"),
         numpy_helper.from_array(np.array([1e-12], dtype=np.float32), "eps")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET)],
                              producer_name="recserve-examples-ecommerce", ir_version=IR_VERSION)
    onnx.checker.check_model(model, full_check=True)
    return model


# ---------------------------------------------------------------------------------------------
# Metrics


def auc(y: np.ndarray, s: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, s))


def ndcg_at_k(groups: np.ndarray, y: np.ndarray, s: np.ndarray, k: int = 10) -> float:
    """Mean NDCG@k over the requests (groups) with at least one click; ties keep row order."""
    order = np.lexsort((-s, groups))
    g, yy = groups[order], y[order]
    starts = np.r_[0, np.nonzero(g[1:] != g[:-1])[0] + 1, len(g)]
    disc = 1.0 / np.log2(np.arange(2, 2 + max(np.diff(starts).max(), k)))
    total, count = 0.0, 0
    for a, e in zip(starts[:-1], starts[1:]):
        rel = yy[a:e]
        npos = int(rel.sum())
        if npos == 0:
            continue
        dcg = float((rel[:k] * disc[: min(k, e - a)]).sum())
        idcg = float(disc[: min(k, npos)].sum())
        total += dcg / idcg
        count += 1
    return total / max(count, 1)


def recall_at_k(scores: np.ndarray, truth: list[np.ndarray], k: int) -> float:
    """Mean over users of |top-k ∩ clicked| / |clicked|; `scores` [users, items]."""
    top = np.argpartition(-scores, k, axis=1)[:, :k]
    vals = [len(np.intersect1d(top[r], t)) / len(t) for r, t in enumerate(truth)]
    return float(np.mean(vals))


# ---------------------------------------------------------------------------------------------
# Serialisation helpers


def tensor_json(name: str, arr: np.ndarray) -> dict:
    arr = np.asarray(arr)
    if arr.dtype == np.float32:
        dt, data = "FP32", [float(v) for v in arr.reshape(-1)]
    elif arr.dtype == np.int64:
        dt, data = "INT64", [int(v) for v in arr.reshape(-1)]
    else:
        raise ValueError(arr.dtype)
    return {"name": name, "datatype": dt, "shape": list(arr.shape), "data": data}


def ort_session(path: Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def write_validation(path: Path, model_path: Path, input_name: str, batches: list[np.ndarray],
                     outputs: list[str]) -> None:
    sess = ort_session(model_path)
    cases = []
    for x in batches:
        res = sess.run(outputs, {input_name: x})
        cases.append({"inputs": [tensor_json(input_name, x)],
                      "outputs": [tensor_json(n, np.asarray(r)) for n, r in zip(outputs, res)]})
    path.write_text(json.dumps({"cases": cases}, separators=(",", ":")) + "\n")


def save_onnx(model, path: Path, graph_name: str) -> None:
    import onnx

    model.ir_version = IR_VERSION
    model.graph.name = graph_name
    # Converters collect opsets in a set: sort them so the file is the same on every run.
    opsets = sorted(((o.domain, o.version) for o in model.opset_import))
    del model.opset_import[:]
    model.opset_import.extend(onnx.helper.make_opsetid(d, v) for d, v in opsets)
    onnx.checker.check_model(model, full_check=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())


def numeric_stats(x: np.ndarray, missing: int, edges: np.ndarray | None = None) -> dict:
    """Quantile bins (e0 = -inf, en = +inf as null); bin j holds e_j <= x < e_(j+1)."""
    x = np.asarray(x, dtype=np.float64)
    if edges is None:
        inner = np.unique(np.quantile(x, np.arange(1, QUANTILE_BINS) / QUANTILE_BINS))
        inner = np.array([round_sig(v) for v in inner])
        inner = np.unique(inner)
    else:
        inner = edges
    counts = np.bincount(np.searchsorted(inner, x, side="right"), minlength=len(inner) + 1)
    return {"kind": "numeric", "bins": [None] + [float(v) for v in inner] + [None],
            "counts": [int(c) for c in counts], "mean": round_sig(np.mean(x)), "std": round_sig(np.std(x)),
            "missing": int(missing)}


def categorical_stats(raw: np.ndarray, missing: np.ndarray) -> dict:
    vals, counts = np.unique(np.array([v for v, m in zip(raw, missing) if not m], dtype=str), return_counts=True)
    return {"kind": "categorical", "counts": {str(v): int(c) for v, c in zip(vals, counts)},
            "missing": int(missing.sum())}


# ---------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, type=Path, help="directory written by `recserve shop export`")
    ap.add_argument("--out", required=True, type=Path, help="output directory (examples/ecommerce)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    out: Path = args.out
    data_dir, models_dir = out / "data", out / "models"
    data_dir.mkdir(parents=True, exist_ok=True)

    # -- load
    meta = json.loads((args.data / "meta.json").read_text())
    items = Table.read(args.data / "items.csv", "item_id")
    users = Table.read(args.data / "users.csv", "user_id")
    inter = Interactions(Table.read(args.data / "interactions.csv"))
    log(f"loaded {items.n} items, {users.n} users, {inter.n} impressions, {int(inter.clicked.sum())} clicks "
        f"(export seed {meta.get('seed')})")
    categories = sorted(set(items.columns["category"]))
    user_device = users.str("device")

    cut_a1, cut_a, cut_b, cut_c = time_cuts(inter.ts)
    win_a = inter.ts < cut_a
    win_b = (inter.ts >= cut_a) & (inter.ts < cut_b)
    win_c = (inter.ts >= cut_b) & (inter.ts < cut_c)
    win_ab = inter.ts < cut_b
    win_abc = inter.ts < cut_c
    win_e = inter.ts >= cut_c
    log(f"windows: A {win_a.sum()}, B {win_b.sum()}, C {win_c.sum()}, E (eval) {win_e.sum()} impressions")

    # -- history tables for each use (rounded exactly as the committed CSV)
    items_a, users_a = (as_table(t, k) for t, k in zip(history_tables(items, users, inter, win_a, categories),
                                                        ("item_id", "user_id")))
    items_ab, users_ab = (as_table(t, k) for t, k in zip(history_tables(items, users, inter, win_ab, categories),
                                                          ("item_id", "user_id")))
    item_cols, user_cols = history_tables(items, users, inter, win_abc, categories)
    write_csv(data_dir / "item_features.csv", item_cols)
    write_csv(data_dir / "user_features.csv", user_cols)
    items_abc = Table.read(data_dir / "item_features.csv", "item_id")
    users_abc = Table.read(data_dir / "user_features.csv", "user_id")
    log("history tables written (data/item_features.csv, data/user_features.csv)")

    # -- feature spec (from the ranker's training tables)
    spec = make_spec(items_ab, users_ab, categories)
    (out / "feature_spec.json").write_text(json.dumps(spec, indent=2) + "\n")
    spec = json.loads((out / "feature_spec.json").read_text())  # use exactly what was written
    ut_feats, rk_feats = spec["user_tower"]["features"], spec["ranker"]["features"]
    log(f"feature_spec.json: user tower U={sum(map(feature_width, ut_feats))}, "
        f"ranker F={sum(map(feature_width, rk_feats))}")

    def user_matrix(table: Table) -> np.ndarray:
        return build_matrix(ut_feats, Context(table, None, np.arange(table.n)))[0]

    # -- two-tower: (history features -> clicks of the next window) pairs, all before window C:
    # [0, 20%) -> [20%, 40%) and A -> B. The ridge penalty is chosen by Recall@50 of the clicks of
    # window C from the A+B features (window E stays untouched until the final evaluation).
    win_a1 = inter.ts < cut_a1
    win_a2 = (inter.ts >= cut_a1) & (inter.ts < cut_a)
    users_a1 = as_table(history_tables(items, users, inter, win_a1, categories)[1], "user_id")
    xs, ts_ = [], []
    for hist_users, target_win in ((users_a1, win_a2), (users_a, win_b)):
        x, t = click_targets(user_matrix(hist_users), inter, users, items, target_win)
        xs.append(x)
        ts_.append(t)
    x_fit, t_fit = np.vstack(xs), np.vstack(ts_)
    # Shrink each user's click row toward the shop-wide click distribution of the history: the
    # few clicks of one window are a noisy sample of a taste, and shoppers without history are
    # best served by popularity.
    g = np.bincount(items.ids(inter.item_id[win_ab]), weights=inter.clicked[win_ab].astype(np.float64),
                    minlength=items.n)
    t_fit = (1 - TARGET_PRIOR_WEIGHT) * t_fit + TARGET_PRIOR_WEIGHT * (g / g.sum())[None, :]
    x_val, t_val = click_targets(user_matrix(users_ab), inter, users, items, win_c, normalize=False)
    truth_val = [np.nonzero(r)[0] for r in t_val]
    best = None
    for lam in TOWER_L2_GRID:
        w, b, e = fit_two_tower(x_fit, t_fit, lam=lam, dim=EMBEDDING_DIM)
        r = recall_at_k(tower_forward(x_val, w, b) @ e.T, truth_val, 50)
        log(f"  tower ridge penalty {lam:g}: validation Recall@50 {r:.4f}")
        if best is None or r > best[0]:
            best = (r, lam, w, b, e)
    _, tower_lam, w_tower, b_tower, item_emb = best
    log(f"two-tower fitted on {len(x_fit)} (user, window) pairs with clicks; penalty {tower_lam:g}")

    tower_path = models_dir / "user_tower" / "1" / "model.onnx"
    save_onnx(tower_onnx(w_tower, b_tower), tower_path, "user_tower")
    item_emb.astype("<f4").tofile(data_dir / "item_embeddings.f32")
    tower_sess = ort_session(tower_path)

    def embed(table: Table) -> np.ndarray:
        x = user_matrix(table)
        e = tower_sess.run(["user_embedding"], {"user_features": x})[0]
        assert np.allclose(e, tower_forward(x, w_tower, b_tower), atol=1e-5)
        return e

    # -- ranker rows
    x_c, info_c = ranker_rows(rk_feats, inter, win_c, users, users_ab, items_ab, embed(users_ab), item_emb)
    y_c = inter.clicked[win_c].astype(np.int64)
    x_e, info_e = ranker_rows(rk_feats, inter, win_e, users, users_abc, items_abc, embed(users_abc), item_emb)
    y_e = inter.clicked[win_e].astype(np.int64)
    log(f"ranker rows: train {x_c.shape} ({y_c.mean():.3f} clicked), eval {x_e.shape} ({y_e.mean():.3f} clicked)")

    import lightgbm as lgb

    ranker = lgb.LGBMClassifier(n_estimators=200, num_leaves=31, learning_rate=0.05, min_child_samples=100,
                                subsample=0.8, subsample_freq=1, colsample_bytree=0.8, reg_lambda=1.0,
                                random_state=args.seed, n_jobs=1, deterministic=True, force_row_wise=True,
                                verbose=-1)
    ranker.fit(x_c, y_c, feature_name=[c.replace("=", "_") for c in column_names(rk_feats)])
    log("ranker trained")

    from onnxmltools import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType

    n_feat = x_c.shape[1]
    onx = convert_lightgbm(ranker, initial_types=[("features", FloatTensorType([None, n_feat]))],
                           target_opset=MLTOOLS_OPSET, zipmap=False)
    ranker_path = models_dir / "ranker" / "1" / "model.onnx"
    save_onnx(onx, ranker_path, "ranker")
    ranker_sess = ort_session(ranker_path)
    p_e = ranker_sess.run(["probabilities"], {"features": x_e})[0][:, 1]
    native = ranker.predict_proba(x_e[:2000])[:, 1]
    if not np.allclose(p_e[:2000], native, atol=1e-4):
        sys.exit("the converted ranker disagrees with LightGBM")
    log(f"ranker.onnx {ranker_path.stat().st_size} bytes, matches LightGBM")

    # -- validation samples (outputs from onnxruntime)
    all_users = user_matrix(users_abc)
    cold = np.nonzero(users_abc.num("hist_clicks") == 0)[0]
    warm = np.nonzero(users_abc.num("hist_clicks") > 0)[0]
    pick = lambda pool, k: np.sort(rng.choice(pool, size=min(k, len(pool)), replace=False))  # noqa: E731
    ut_rows = [pick(warm, 1), np.r_[pick(warm, 4), pick(cold, 1)] if len(cold) else pick(warm, 5), pick(warm, 3)]
    write_validation(models_dir / "user_tower" / "validation.json", tower_path, "user_features",
                     [all_users[r] for r in ut_rows], ["user_embedding"])
    first_req = inter.request_id[win_e]
    req_rows = np.nonzero(first_req == first_req[int(rng.integers(len(first_req)))])[0]
    rk_rows = [pick(np.arange(len(x_e)), 1), req_rows, pick(np.arange(len(x_e)), 200)]
    write_validation(models_dir / "ranker" / "validation.json", ranker_path, "features",
                     [x_e[r] for r in rk_rows], ["probabilities"])
    (models_dir / "user_tower" / "config.toml").write_text(
        "# Written by examples/ecommerce/train.py.\n"
        "max_batch_size = 64\nlatency_budget_ms = 5\n\n"
        "# One row takes ~70 us: run it on the caller's thread when nothing waits (BENCHMARKS.md).\n"
        "[dynamic_batching]\ninline_when_idle = true\n\n"
        "[validation]\nsamples = \"validation.json\"\ntolerance = 1e-4\n")
    (models_dir / "ranker" / "config.toml").write_text(
        "# Written by examples/ecommerce/train.py. The pipeline ranks up to 200 candidates in one request.\n"
        "max_batch_size = 512\nlatency_budget_ms = 20\n\n"
        "[validation]\nsamples = \"validation.json\"\ntolerance = 1e-4\n")
    log("validation samples and configs written")

    # -- worked examples of the spec for the pipeline's tests: raw request -> model input rows
    write_feature_samples(out / "feature_samples.json", inter, win_e, users_abc, items_abc, user_device, ut_feats,
                          rk_feats, tower_sess, item_emb, rng)
    log("feature_samples.json written")

    # -- reference statistics: ranker training rows (after transforms); score on the eval set
    feats_stats = {}
    for f in rk_feats:
        i = info_c[f["name"]]
        if is_string_feature(f):
            feats_stats[f["name"]] = categorical_stats(i["raw"], i["missing"])
        else:
            feats_stats[f["name"]] = numeric_stats(i["values"][:, 0], int(i["missing"].sum()))
    ref = {"version": 1, "features": feats_stats, "score": numeric_stats(p_e, 0)}
    (out / "models" / "ranker" / "training_stats.json").write_text(json.dumps(ref, indent=1) + "\n")
    log("models/ranker/training_stats.json written")

    # -- offline evaluation on window E
    metrics = evaluate(inter, items, users, users_abc, items_abc, win_abc, win_e, embed, item_emb, x_e, y_e, p_e,
                       info_e, rng)
    metrics["data"] = {"export": meta, "windows": {"A": int(win_a.sum()), "B": int(win_b.sum()),
                                                   "C": int(win_c.sum()), "E": int(win_e.sum())},
                       "cuts_ts": [cut_a, cut_b, cut_c], "seed": args.seed}
    metrics["ranker_feature_importance"] = dict(sorted(
        zip(column_names(rk_feats), (int(v) for v in ranker.booster_.feature_importance("gain"))),
        key=lambda kv: -kv[1]))
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    for k, v in metrics["retrieval"].items():
        log(f"retrieval {k}: {v}")
    for k, v in metrics["ranking"].items():
        log(f"ranking {k}: {v}")
    print(markdown_table(metrics), flush=True)
    log("done")


def ranker_rows(rk_feats: list[dict], inter: Interactions, window: np.ndarray, users: Table, users_t: Table,
                items_t: Table, uemb: np.ndarray, item_emb: np.ndarray) -> tuple[np.ndarray, dict[str, dict]]:
    """The ranker's input rows for the impressions in `window` (build_matrix): history tables
    `users_t`/`items_t`, `uemb` = the user tower's output for every row of `users_t`, the device
    from `users.csv` (`users`). Also used by make_weak_ranker.py."""
    ui = users_t.ids(inter.user_id[window])
    ii = items_t.ids(inter.item_id[window])
    score = np.einsum("nd,nd->n", gather_rows(uemb, ui), gather_rows(item_emb, ii)).astype(np.float64)
    dev = gather(users.str("device"), users.ids(inter.user_id[window]), None)
    ctx = Context(users_t, items_t, ui, ii, context={"device": dev}, retrieval_score=score,
                  queries=inter.query[window])
    return build_matrix(rk_feats, ctx)


def write_feature_samples(path: Path, inter, win_e, users_t: Table, items_t: Table, user_device, ut_feats,
                          rk_feats, tower_sess, item_emb, rng) -> None:
    """A few requests of the eval window (a search, a home feed, a user without history, a user
    the tables do not know) with the model inputs this script computes for them, so the Rust
    pipeline can check it builds the same rows from the same spec and tables."""
    req = inter.request_id[win_e]
    scen = inter.scenario[win_e]
    uid = inter.user_id[win_e]
    hist = gather(users_t.num("hist_clicks"), users_t.ids(uid), np.nan)
    picks = []
    for want in ("search", "home_feed"):
        rows = np.nonzero((scen == want) & (hist > 0))[0]
        picks.append(req[rows[int(rng.integers(len(rows)))]])
    rows = np.nonzero(hist == 0)[0]
    if len(rows):
        picks.append(req[rows[int(rng.integers(len(rows)))]])
    cases = []
    for r in picks:
        sel = np.nonzero(req == r)[0]
        cases.append({"user_id": str(uid[sel[0]]), "context": {"device": user_device[users_t.index[uid[sel[0]]]]},
                      "query": str(inter.query[win_e][sel[0]]),
                      "item_ids": [str(i) for i in inter.item_id[win_e][sel]]})
    # A shopper the user table does not know: every user.* source is missing -> defaults.
    base = cases[0]
    cases.append({"user_id": "U9999999", "context": {"device": "tablet"}, "query": base["query"],
                  "item_ids": base["item_ids"][:5]})
    out = []
    for c in cases:
        n = len(c["item_ids"])
        ui = users_t.ids([c["user_id"]])
        x_user = build_matrix(ut_feats, Context(users_t, None, ui))[0]
        emb = tower_sess.run(["user_embedding"], {"user_features": x_user})[0][0]
        ii = items_t.ids(c["item_ids"])
        score = (gather_rows(item_emb, ii) @ emb).astype(np.float32)
        ctx = Context(users_t, items_t, np.repeat(ui, n), ii,
                      context={"device": np.array([c["context"]["device"]] * n, dtype=object)},
                      retrieval_score=score.astype(np.float64), queries=np.array([c["query"]] * n, dtype=object))
        x_rank = build_matrix(rk_feats, ctx)[0]
        out.append({**c, "user_features": [[float(v) for v in x_user[0]]],
                    "user_embedding": [float(v) for v in emb],
                    "retrieval_scores": [float(v) for v in score],
                    "ranker_features": [[float(v) for v in row] for row in x_rank]})
    doc = {"note": "Written by train.py: raw requests and the model inputs the feature spec gives for them "
                   "(tables: data/*.csv). retrieval_scores are f32 dot products of user_embedding and the "
                   "item's row of data/item_embeddings.f32; compare with a small tolerance.",
           "cases": out}
    path.write_text(json.dumps(doc, separators=(",", ":")) + "\n")


def markdown_table(metrics: dict) -> str:
    """The offline-quality tables README.md quotes."""
    r, k = metrics["retrieval"], metrics["ranking"]
    lines = ["| retrieval (eval window) | Recall@50 | users without history |", "| --- | --- | --- |"]
    for name in ("two-tower", "popularity (training-window clicks)", "popularity (items.csv popularity)"):
        cold = r.get(f"recall@50 {name}, users without history", "")
        lines.append(f"| {name} | {r[f'recall@50 {name}']:.4f} | {cold if cold == '' else f'{cold:.4f}'} |")
    lines += ["", "| ranking (eval window) | AUC | NDCG@10 |", "| --- | --- | --- |"]
    for name in ("ranker (LightGBM)", "popularity (items.csv popularity)", "popularity (training-window CTR)",
                 "retrieval score only", "logged order (position)"):
        lines.append(f"| {name} | {k[f'AUC {name}']:.4f} | {k[f'NDCG@10 {name}']:.4f} |")
    return "\n".join(lines)


def gather_rows(m: np.ndarray, idx: np.ndarray) -> np.ndarray:
    ext = np.vstack([m, np.zeros((1, m.shape[1]), dtype=m.dtype)])
    return ext[idx]


def evaluate(inter, items, users, users_abc, items_abc, win_abc, win_e, embed, item_emb, x_e, y_e, p_e, info_e,
             rng) -> dict:
    # Retrieval: every user with a click in E; truth = the distinct items they clicked in E.
    eu = users.ids(inter.user_id[win_e])
    ei = items.ids(inter.item_id[win_e])
    clicked = inter.clicked[win_e] == 1
    truth: dict[int, set] = {}
    for u, i in zip(eu[clicked], ei[clicked]):
        truth.setdefault(int(u), set()).add(int(i))
    eval_users = np.array(sorted(truth))
    truth_l = [np.array(sorted(truth[u])) for u in eval_users]
    uemb = embed(users_abc)[eval_users]
    tt_scores = uemb @ item_emb.T
    train_clicks = items_abc.num("clicks")
    pop_scores = np.tile(train_clicks + 1e-6 * items_abc.num("popularity"), (len(eval_users), 1))
    popcol_scores = np.tile(items_abc.num("popularity"), (len(eval_users), 1))
    cold = users_abc.num("hist_clicks")[eval_users] == 0
    retrieval = {
        "eval_users": int(len(eval_users)),
        "eval_users_without_history": int(cold.sum()),
        "recall@50 two-tower": round(recall_at_k(tt_scores, truth_l, 50), 4),
        "recall@50 popularity (training-window clicks)": round(recall_at_k(pop_scores, truth_l, 50), 4),
        "recall@50 popularity (items.csv popularity)": round(recall_at_k(popcol_scores, truth_l, 50), 4),
    }
    if cold.any():
        retrieval["recall@50 two-tower, users without history"] = round(
            recall_at_k(tt_scores[cold], [t for t, c in zip(truth_l, cold) if c], 50), 4)
        retrieval["recall@50 popularity (training-window clicks), users without history"] = round(
            recall_at_k(pop_scores[cold], [t for t, c in zip(truth_l, cold) if c], 50), 4)

    # Ranking: the impressions of E, grouped by request.
    req = inter.request_id[win_e]
    _, groups = np.unique(req, return_inverse=True)
    pos = inter.position[win_e].astype(np.float64)
    pop = gather(items.num("popularity"), ei, 0.0)
    ctr = gather(items_abc.num("ctr"), items_abc.ids(inter.item_id[win_e]), 0.0)
    rs = info_e["retrieval_score"]["values"][:, 0]
    scorers = {"ranker (LightGBM)": p_e, "popularity (items.csv popularity)": pop,
               "popularity (training-window CTR)": ctr, "retrieval score only": rs,
               "logged order (position)": -pos}
    ranking = {"eval_impressions": int(len(y_e)), "eval_requests": int(groups.max() + 1),
               "eval_requests_with_click": int(len(np.unique(groups[y_e == 1])))}
    for name, s in scorers.items():
        ranking[f"AUC {name}"] = round(auc(y_e, s), 4)
        ranking[f"NDCG@10 {name}"] = round(ndcg_at_k(groups, y_e, np.asarray(s, dtype=np.float64)), 4)
    return {"retrieval": retrieval, "ranking": ranking}


if __name__ == "__main__":
    main()
