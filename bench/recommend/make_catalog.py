#!/usr/bin/env python3
"""Writes a large bench catalog for `/v1/recommend` by tiling the demo shop's 5,000 items.

    .venv-train/bin/python bench/recommend/make_catalog.py --out bench/results/catalog-100k --tiles 20

Tile t (0-based) of demo item i becomes item `I{t*5000+i:06d}` (`I` + 6 digits up to 1M items,
7 digits beyond): the same title, category, brand and statistics; price scaled by a factor in
[0.9, 1.1]; stock re-drawn for 1 in 10 items; embedding plus Gaussian noise of 5 % of the
demo embeddings' per-coordinate standard deviation (tile 0 keeps the demo's exact rows). So the
catalog has the demo's structure at 20× the size, and the demo's models and users apply to it.

Output (OUT/): data/item_features.csv, data/item_embeddings.f32, data/user_features.csv (a
copy), feature_spec.json (the demo's, pointing at the new embeddings) and pipelines.toml (the
demo's; home_feed retrieves 200, ranks 200, returns 20; search as in the demo). Only numpy is
needed; the output is a pure function of the arguments.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "examples" / "ecommerce"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="output directory (created)")
    ap.add_argument("--tiles", type=int, default=20, help="copies of the 5,000 demo items (20 → 100k)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--noise", type=float, default=0.05, help="embedding noise, in per-coordinate std units")
    args = ap.parse_args()
    if args.tiles < 1:
        ap.error("--tiles must be at least 1")

    rng = np.random.default_rng(args.seed)
    spec = json.loads((DEMO / "feature_spec.json").read_text())
    dim = int(spec["embedding_dim"])
    emb = np.fromfile(DEMO / spec["item_embeddings"], dtype="<f4").reshape(-1, dim)
    with open(DEMO / "data" / "item_features.csv", newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = list(reader)
    if len(rows) != emb.shape[0]:
        raise SystemExit(f"{len(rows)} items but {emb.shape[0]} embeddings")
    col = {name: i for i, name in enumerate(header)}
    n = len(rows)
    total = n * args.tiles
    width = 6 if total <= 1_000_000 else 7

    out = args.out
    (out / "data").mkdir(parents=True, exist_ok=True)
    sd = emb.std(axis=0, keepdims=True)
    with open(out / "data" / "item_embeddings.f32", "wb") as ef, open(
        out / "data" / "item_features.csv", "w", newline=""
    ) as cf:
        writer = csv.writer(cf, lineterminator="\n")
        writer.writerow(header)
        for t in range(args.tiles):
            tile = emb if t == 0 else emb + rng.normal(0.0, args.noise, emb.shape).astype(np.float32) * sd
            tile.astype("<f4").tofile(ef)
            price_factor = rng.uniform(0.9, 1.1, n) if t else np.ones(n)
            restock = rng.random(n) < 0.1
            new_stock = rng.integers(0, 20, n)
            for i, row in enumerate(rows):
                r = list(row)
                r[col["item_id"]] = f"I{t * n + i:0{width}d}"
                if t:
                    r[col["price"]] = f"{float(row[col['price']]) * price_factor[i]:.2f}"
                    if restock[i]:
                        r[col["stock"]] = str(int(new_stock[i]))
                writer.writerow(r)

    shutil.copyfile(DEMO / "data" / "user_features.csv", out / "data" / "user_features.csv")
    spec["item_embeddings"] = "data/item_embeddings.f32"
    (out / "feature_spec.json").write_text(json.dumps(spec, indent=2) + "\n")
    # The demo's pipelines.toml already has home_feed retrieve = 200, rank = 200, default_k = 20,
    # and its paths are relative to its folder, which matches the layout written here.
    pipelines = (DEMO / "pipelines.toml").read_text()
    for needle in ('name = "home_feed"\nretrieve = 200\nrank = 200\ndefault_k = 20', 'name = "search"'):
        if needle not in pipelines:
            raise SystemExit(f"examples/ecommerce/pipelines.toml changed: {needle!r} not found")
    (out / "pipelines.toml").write_text(
        f"# Bench catalog: {total} items ({args.tiles} tiles of the demo's {n}), written by "
        "bench/recommend/make_catalog.py.\n" + pipelines
    )
    print(f"wrote {total} items to {out}")


if __name__ == "__main__":
    main()
