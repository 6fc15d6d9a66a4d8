#!/usr/bin/env python3
"""Trains the canary demo's deliberately weak ranker and writes examples/ecommerce/canary/ranker_weak/.

    cargo run --release -p recserve -- shop export --out /tmp/shop-export      # default flags
    .venv-train/bin/python examples/ecommerce/make_weak_ranker.py --data /tmp/shop-export   # --seed 0

A "bad release" of the shipped ranker (models/ranker/1/model.onnx): a LightGBM classifier on the
same training rows (the impressions of window C, features from the A+B history tables), but
  - without personalisation: every column whose source is not `item.*` (user profile and history,
    context.device, retrieval.score, query.overlap, cross.*) is replaced by the constant 0 before
    training, so no tree splits on it and the model scores an item the same for every shopper
    and query;
  - with few trees (WEAK_PARAMS).
The input stays the full feature row, so the ONNX signature is the shipped ranker's: the same
conversion as train.py (onnxmltools, no ZipMap, same opsets, graph name "ranker"), checked
against the shipped graph's inputs and outputs.

It reuses train.py's functions and reads what train.py committed (feature_spec.json, the user
tower, data/*) instead of re-training them; it checks that the export reproduces those files and
the shipped ranker's offline metrics, so both rankers are scored on the same evaluation rows.
Writes model.onnx, validation.json (the shipped ranker's validation inputs, this model's
outputs from onnxruntime) and README.md. Deterministic: two runs give byte-identical files.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
sys.dont_write_bytecode = True  # no __pycache__ next to train.py
sys.path.insert(0, str(Path(__file__).resolve().parent))

import argparse  # noqa: E402
import json  # noqa: E402

import numpy as np  # noqa: E402

import train as T  # noqa: E402

HERE = Path(__file__).resolve().parent
# The shipped ranker: 200 trees, 31 leaves, learning rate 0.05 (train.py). The weak one:
WEAK_PARAMS = dict(n_estimators=20, num_leaves=15, learning_rate=0.1, min_child_samples=100, subsample=0.8,
                   subsample_freq=1, colsample_bytree=0.8, reg_lambda=1.0)
KEPT_SOURCE_PREFIX = "item."  # the only features the weak ranker may use
NEUTRAL_VALUE = 0.0
SHIPPED_NAME = "ranker (LightGBM)"  # its key in metrics.json


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, type=Path, help="directory written by `recserve shop export`")
    ap.add_argument("--ecommerce", type=Path, default=HERE,
                    help="the committed train.py outputs (default: this script's folder)")
    ap.add_argument("--out", type=Path, default=None, help="default: <ecommerce>/canary/ranker_weak")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    ec: Path = args.ecommerce
    out: Path = args.out or ec / "canary" / "ranker_weak"
    shipped_metrics = json.loads((ec / "metrics.json").read_text())

    # -- the export, its time windows and history tables, exactly as train.py computes them
    meta = json.loads((args.data / "meta.json").read_text())
    if meta != shipped_metrics["data"]["export"]:
        sys.exit(f"{args.data} is not the export the models were trained on: {meta}")
    items = T.Table.read(args.data / "items.csv", "item_id")
    users = T.Table.read(args.data / "users.csv", "user_id")
    inter = T.Interactions(T.Table.read(args.data / "interactions.csv"))
    categories = sorted(set(items.columns["category"]))
    _, _, cut_b, cut_c = T.time_cuts(inter.ts)
    win_ab = inter.ts < cut_b
    win_c = (inter.ts >= cut_b) & (inter.ts < cut_c)
    win_abc = inter.ts < cut_c
    win_e = inter.ts >= cut_c
    items_ab, users_ab = (T.as_table(t, k) for t, k in zip(
        T.history_tables(items, users, inter, win_ab, categories), ("item_id", "user_id")))
    items_abc = T.Table.read(ec / "data" / "item_features.csv", "item_id")
    users_abc = T.Table.read(ec / "data" / "user_features.csv", "user_id")
    spec = json.loads((ec / "feature_spec.json").read_text())
    item_cols, user_cols = T.history_tables(items, users, inter, win_abc, categories)
    if (T.as_table(item_cols, "item_id").columns != items_abc.columns
            or T.as_table(user_cols, "user_id").columns != users_abc.columns
            or json.loads(json.dumps(T.make_spec(items_ab, users_ab, categories))) != spec):
        sys.exit("the export does not reproduce the committed tables or feature_spec.json: re-run train.py first")
    T.log("export and committed tables agree")

    # -- ranker rows: training (window C) and evaluation (window E), through the committed user tower
    ut_feats, rk_feats = spec["user_tower"]["features"], spec["ranker"]["features"]
    rk = spec["ranker"]
    tower = T.ort_session(ec / "models" / spec["user_tower"]["model"] / "1" / "model.onnx")
    item_emb = np.fromfile(ec / spec["item_embeddings"], dtype="<f4").reshape(-1, spec["embedding_dim"])

    def embed(table: T.Table) -> np.ndarray:
        x = T.build_matrix(ut_feats, T.Context(table, None, np.arange(table.n)))[0]
        return tower.run([spec["user_tower"]["output"]], {spec["user_tower"]["input"]: x})[0]

    x_c, _ = T.ranker_rows(rk_feats, inter, win_c, users, users_ab, items_ab, embed(users_ab), item_emb)
    y_c = inter.clicked[win_c].astype(np.int64)
    x_e, _ = T.ranker_rows(rk_feats, inter, win_e, users, users_abc, items_abc, embed(users_abc), item_emb)
    y_e = inter.clicked[win_e].astype(np.int64)
    T.log(f"ranker rows: train {x_c.shape}, eval {x_e.shape}")

    # -- the weak ranker: non-item columns constant, few trees
    names = T.column_names(rk_feats)
    keep = np.concatenate([np.full(T.feature_width(f), f["source"].startswith(KEPT_SOURCE_PREFIX))
                           for f in rk_feats])
    x_train = x_c.copy()
    x_train[:, ~keep] = NEUTRAL_VALUE
    import lightgbm as lgb
    from onnxmltools import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType

    weak = lgb.LGBMClassifier(**WEAK_PARAMS, random_state=args.seed, n_jobs=1, deterministic=True,
                              force_row_wise=True, verbose=-1)
    weak.fit(x_train, y_c, feature_name=[c.replace("=", "_") for c in names])
    gain = weak.booster_.feature_importance("gain")
    if np.any(gain[~keep] != 0):
        sys.exit("the weak ranker splits on a neutralised column")
    onx = convert_lightgbm(weak, initial_types=[(rk["input"], FloatTensorType([None, x_c.shape[1]]))],
                           target_opset=T.MLTOOLS_OPSET, zipmap=False)
    model_path = out / "model.onnx"
    T.save_onnx(onx, model_path, rk["model"])
    T.log(f"{model_path} {model_path.stat().st_size} bytes")

    # -- same signature as the shipped ranker
    import onnx

    shipped_path = ec / "models" / rk["model"] / "1" / "model.onnx"
    a, b = onnx.load(str(shipped_path)), onnx.load(str(model_path))
    sig = lambda m: [[v.SerializeToString() for v in vs] for vs in (m.graph.input, m.graph.output)]  # noqa: E731
    if sig(a) != sig(b) or a.ir_version != b.ir_version or list(a.opset_import) != list(b.opset_import):
        sys.exit("the weak ranker's ONNX signature differs from the shipped ranker's")

    # -- scores from onnxruntime, checked against LightGBM; offline metrics of both rankers
    col = int(rk["output_column"])
    p_weak = T.ort_session(model_path).run([rk["output"]], {rk["input"]: x_e})[0][:, col]
    p_shipped = T.ort_session(shipped_path).run([rk["output"]], {rk["input"]: x_e})[0][:, col]
    if not np.allclose(p_weak[:2000], weak.predict_proba(x_e[:2000])[:, 1], atol=1e-4):
        sys.exit("the converted weak ranker disagrees with LightGBM")
    _, groups = np.unique(inter.request_id[win_e], return_inverse=True)
    search = inter.scenario[win_e] == "search"
    rand = np.random.default_rng(args.seed).random(len(y_e))
    rows = []
    for label, s in (("shipped ranker", p_shipped), ("weak ranker", p_weak), ("random order", rand)):
        s = np.asarray(s, dtype=np.float64)
        rows.append((label, round(T.auc(y_e, s), 4), round(T.ndcg_at_k(groups, y_e, s), 4),
                     round(T.ndcg_at_k(groups[search], y_e[search], s[search]), 4),
                     round(T.ndcg_at_k(groups[~search], y_e[~search], s[~search]), 4), round(float(s.mean()), 4)))
        T.log(f"{label}: AUC {rows[-1][1]:.4f}, NDCG@10 {rows[-1][2]:.4f} "
              f"(search {rows[-1][3]:.4f}, home feed {rows[-1][4]:.4f}), mean score {rows[-1][5]:.4f}")
    ranking = shipped_metrics["ranking"]
    if (rows[0][1], rows[0][2]) != (ranking[f"AUC {SHIPPED_NAME}"], ranking[f"NDCG@10 {SHIPPED_NAME}"]):
        sys.exit("the shipped ranker's metrics differ from metrics.json: not the same evaluation rows")

    # -- validation samples: the shipped ranker's validation inputs, this model's outputs
    shipped_val = json.loads((ec / "models" / rk["model"] / "validation.json").read_text())
    batches = [np.asarray(c["inputs"][0]["data"], dtype=np.float32).reshape(c["inputs"][0]["shape"])
               for c in shipped_val["cases"]]
    T.write_validation(out / "validation.json", model_path, rk["input"], batches, [rk["output"]])

    opsets = ", ".join(f"{o.domain or 'ai.onnx'} {o.version}" for o in b.opset_import)
    (out / "README.md").write_text(readme(rows, ranking, rk_feats, model_path.stat().st_size,
                                          f"IR {b.ir_version}, opsets {opsets}", float(y_e.mean()), args.seed))
    T.log(f"wrote {out}/model.onnx, validation.json, README.md")


def readme(rows, ranking, rk_feats, size: int, onnx_version: str, click_rate: float, seed: int) -> str:
    p = WEAK_PARAMS
    labels = {"shipped ranker": "shipped ranker (`models/ranker/1`)", "weak ranker": "**weak ranker (this folder)**",
              "random order": "random order (reference)"}
    table = "\n".join(f"| {labels[r[0]]} | {r[1]:.4f} | {r[2]:.4f} | {r[3]:.4f} | {r[4]:.4f} | "
                      f"{r[5]:.4f} |" for r in rows[:2])
    table += f"\n| {labels[rows[2][0]]} | {rows[2][1]:.4f} | {rows[2][2]:.4f} | {rows[2][3]:.4f} | {rows[2][4]:.4f} | |"

    def listing(kept: bool) -> str:
        return ", ".join(f"`{f['name']}`" + (f" ({T.feature_width(f)} columns)" if T.feature_width(f) > 1 else "")
                         for f in rk_feats if f["source"].startswith(KEPT_SOURCE_PREFIX) == kept)

    n_cols = sum(map(T.feature_width, rk_feats))
    pop, ctr = "NDCG@10 popularity (items.csv popularity)", "NDCG@10 popularity (training-window CTR)"
    seed_flag = "" if seed == 0 else f" --seed {seed}"
    return f"""# `ranker_weak`: a deliberately bad ranker release, for the canary demo

Written by `examples/ecommerce/make_weak_ranker.py`; do not edit by hand.

A drop-in replacement for the shipped ranker (`models/ranker/1/model.onnx`) that a canary should
catch and roll back. It is a real LightGBM ranker trained on the same rows (the impressions of
window C, features from the A+B history tables; README.md in `examples/ecommerce/`), but as a bad
release would be:

- **no personalisation**: the columns of every feature whose source is not `item.*` were set to
  the constant {NEUTRAL_VALUE} for training, so no tree splits on them:
  {listing(False)}.
  It uses only the item features: {listing(True)};
- **few trees**: {p["n_estimators"]} trees of ≤ {p["num_leaves"]} leaves, learning rate {p["learning_rate"]}
  (the shipped ranker: 200 trees of ≤ 31 leaves, learning rate 0.05).

Its ONNX signature is the shipped ranker's, so the pipeline calls it unchanged: input `features`
f32 [N, {n_cols}] (the full row of `feature_spec.json`; the ignored columns are still read)
→ `probabilities` f32 [N, 2] (column 1 = P(click)) and `label` int64; TreeEnsembleClassifier,
{onnx_version} (same conversion as `train.py`). {size} bytes.

`validation.json`: the shipped ranker's validation inputs with this model's outputs from
onnxruntime (tolerance 1e-4, like `models/ranker/config.toml`). `models/ranker/validation.json`
holds the shipped model's outputs, which this model does not reproduce: a ranker version built
from this folder needs this file as its validation samples.

## Re-creating it

```
cargo run --release -p recserve -- shop export --out /tmp/shop-export      # the default flags
.venv-train/bin/python examples/ecommerce/make_weak_ranker.py --data /tmp/shop-export{seed_flag}
```

It reuses `train.py`'s functions and the committed `feature_spec.json`, user tower and tables
(it checks the export reproduces them), writes only this folder, and is deterministic: two runs
give byte-identical files.

## Offline quality (evaluation window: the last 20% of impressions, same rows for both)

{ranking["eval_impressions"]} impressions in {ranking["eval_requests"]} requests; AUC over all impressions, NDCG@10 per
request (relevance = clicked) averaged over the {ranking["eval_requests_with_click"]} requests with a click, as in
`metrics.json` (the shipped ranker's numbers are recomputed and checked against it).

| ranking | AUC | NDCG@10 | NDCG@10 search | NDCG@10 home feed | mean P(click) |
| --- | --- | --- | --- | --- | --- |
{table}

The weak ranker loses {rows[0][2] - rows[1][2]:.4f} NDCG@10 and {rows[0][1] - rows[1][1]:.4f} AUC against the
shipped one: it ranks by item popularity, CTR and price alone, ignoring the shopper and the
search query. It is still a plausible model — well above a random order and level with the
popularity baselines of `metrics.json` (NDCG@10 of items.csv popularity
{ranking[pop]:.4f}, of training-window CTR {ranking[ctr]:.4f}) — and its mean score matches the
evaluation window's click rate ({click_rate:.4f}) as the shipped ranker's does, so the score level
alone does not give it away: its ranking (online: the click-through of what it puts on top) does.
"""


if __name__ == "__main__":
    main()
