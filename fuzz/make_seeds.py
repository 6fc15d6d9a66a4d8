#!/usr/bin/env python3
"""Writes the seed inputs of every fuzz target into corpus.raw/<target>/ from real examples in
the repository: the golden inference cases (fixtures/golden), the bundled rule file
(deploy/rules), the Grafana dashboard's queries (deploy/grafana), the example models'
config.toml files, the requests of the pipeline and server tests. Run from fuzz/; then
`cargo fuzz cmin <target> corpus.raw/<target>` folds them into corpus/<target> (README.md)."""

import glob
import hashlib
import json
import os
import re
import struct

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus.raw")
MAX_SEED = 8192  # bytes; longer seeds slow every execution and add little


def write(target, data, limit=MAX_SEED):
    if isinstance(data, str):
        data = data.encode()
    if len(data) > limit:
        return
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)


def read(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        return f.read()


# ---------------------------------------------------------------- tensors
LE = {"BOOL": "?", "UINT8": "B", "UINT16": "H", "UINT32": "I", "UINT64": "Q", "INT8": "b", "INT16": "h",
      "INT32": "i", "INT64": "q", "FP16": "e", "FP32": "f", "FP64": "d"}


def flat(x):
    if isinstance(x, list):
        for y in x:
            yield from flat(y)
    else:
        yield x


def raw(datatype, data):
    values = list(flat(data))
    if datatype == "BYTES":
        out = b""
        for v in values:
            b = v.encode() if isinstance(v, str) else bytes(v)
            out += struct.pack("<I", len(b)) + b
        return out
    fmt = LE[datatype]
    if fmt in "efd":
        values = [float("nan") if v is None else float(v) for v in values]
    return struct.pack("<" + fmt * len(values), *values)


cases = []
for path in sorted(glob.glob(os.path.join(ROOT, "fixtures/golden/*.json"))):
    doc = json.load(open(path))
    for case in doc["cases"][:2]:
        cases.append((doc["model"], case))
for path in sorted(glob.glob(os.path.join(ROOT, "examples/ecommerce/models/*/validation.json"))):
    doc = json.load(open(path))
    samples = doc if isinstance(doc, list) else doc.get("samples", doc.get("cases", []))
    for case in samples[:1]:
        if isinstance(case, dict) and "inputs" in case:
            cases.append(("ecommerce", case))


def v2_json_body(model, case, i):
    body = {"id": f"{model}-{i}", "inputs": case["inputs"]}
    outs = case.get("outputs") or []
    if outs:
        body["outputs"] = [{"name": o["name"], "parameters": {"binary_data": i % 2 == 0}} for o in outs]
    return json.dumps(body, separators=(",", ":"))


def v2_binary_body(case, mixed):
    inputs, blobs = [], b""
    for j, t in enumerate(case["inputs"]):
        if mixed and j % 2 == 1:
            inputs.append(t)
            continue
        blob = raw(t["datatype"], t["data"])
        inputs.append({"name": t["name"], "shape": t["shape"], "datatype": t["datatype"],
                       "parameters": {"binary_data_size": len(blob)}})
        blobs += blob
    header = json.dumps({"inputs": inputs, "parameters": {"binary_data_output": True}},
                        separators=(",", ":")).encode()
    return struct.pack("<H", len(header)) + header + blobs


for i, (model, case) in enumerate(cases):
    write("v2_json", v2_json_body(model, case, i))
    write("v2_binary", v2_binary_body(case, False))
    write("v2_binary", v2_binary_body(case, True))

# The REST codec's own test bodies.
for body in [
    '{"id":"7","inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","data":[[1,2]]}],'
    '"outputs":[{"name":"y","parameters":{"binary_data":true}}]}',
    '{"inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","data":[[1,2],[3.5,4]]}]}',
    '{"inputs":[{"name":"x","shape":[2],"datatype":"BYTES","data":["ab",""]}]}',
    '{"inputs":[{"name":"x","shape":[1],"datatype":"INT32","data":[3.0]}],"parameters":{"binary_data_output":true}}',
    '{"inputs":[{"name":"x","shape":[4294967296,4294967296],"datatype":"FP32","data":[]}]}',
    '{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}],'
    '"outputs":[{"name":"y","parameters":{"classification":2}}]}',
]:
    write("v2_json", body)
header = (b'{"inputs":[{"name":"a","shape":[2],"datatype":"INT64","parameters":{"binary_data_size":16}},'
          b'{"name":"b","shape":[1],"datatype":"BYTES","parameters":{"binary_data_size":7}}],'
          b'"parameters":{"binary_data_output":true}}')
write("v2_binary", struct.pack("<H", len(header)) + header + struct.pack("<qq", 5, -1) + struct.pack("<I", 3) + b"abc")

# ---------------------------------------------------------------- protobuf (gRPC)


def varint(n):
    n &= (1 << 64) - 1
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def field(num, wire, payload):
    key = varint((num << 3) | wire)
    if wire == 2:
        return key + varint(len(payload)) + payload
    return key + payload


def string(num, s):
    return field(num, 2, s.encode() if isinstance(s, str) else s)


def packed(num, fmt_or_varint, values):
    if fmt_or_varint == "varint":
        payload = b"".join(varint(int(v)) for v in values)
    else:
        payload = struct.pack("<" + fmt_or_varint * len(values), *values)
    return field(num, 2, payload)


TYPED = {"BOOL": (1, "varint"), "INT8": (2, "varint"), "INT16": (2, "varint"), "INT32": (2, "varint"),
         "INT64": (3, "varint"), "UINT8": (4, "varint"), "UINT16": (4, "varint"), "UINT32": (4, "varint"),
         "UINT64": (5, "varint"), "FP32": (6, "f"), "FP64": (7, "d")}


def infer_param(key, kind, value):
    if kind == "bool":
        v = field(1, 0, varint(int(value)))
    elif kind == "int64":
        v = field(2, 0, varint(value))
    else:
        v = string(3, value)
    return string(1, key) + string(2, v)


def grpc_request(model, case, use_raw, i):
    msg = string(1, model) + string(3, f"req-{i}")
    if i % 3 == 0:
        msg += string(2, "1")
    if i % 4 == 1:
        msg += string(4, infer_param("priority", "int64", 1))
    raws = []
    for t in case["inputs"]:
        tensor = string(1, t["name"]) + string(2, t["datatype"]) + packed(3, "varint", t["shape"])
        if use_raw:
            raws.append(raw(t["datatype"], t["data"]))
        elif t["datatype"] == "BYTES":
            contents = b"".join(string(8, v.encode()) for v in flat(t["data"]))
            tensor += string(5, contents)
        elif t["datatype"] in TYPED:
            num, kind = TYPED[t["datatype"]]
            values = list(flat(t["data"]))
            if kind in "fd":
                values = [float("nan") if v is None else float(v) for v in values]
            tensor += string(5, packed(num, kind, values))
        msg += string(5, tensor)
    for o in case.get("outputs") or []:
        msg += string(6, string(1, o["name"]))
    for r in raws:
        msg += string(7, r)
    return msg


for i, (model, case) in enumerate(cases):
    write("grpc_infer", grpc_request(model, case, True, i))
    write("grpc_infer", grpc_request(model, case, False, i))
write("grpc_infer", string(1, "m") + string(5, string(1, "x") + string(2, "FP32") + packed(3, "varint", [1, 2])
                        + string(4, infer_param("shared_memory_region", "string", "r"))))
write("grpc_infer", string(1, "m") + string(6, string(1, "y") + string(2, infer_param("classification", "int64", 3))))

# ---------------------------------------------------------------- PromQL, rule files
rules_text = read("deploy/rules/recserve.rules.yml")
write("rule_file", rules_text, limit=16384)
for path in glob.glob(os.path.join(ROOT, "crates/alerting/tests/*.rs")) + glob.glob(
        os.path.join(ROOT, "crates/alerting/src/*.rs")):
    text = open(path, encoding="utf-8").read()
    for m in re.finditer(r'r#"(\n?groups:.*?)"#', text, re.S):
        write("rule_file", m.group(1))
    for m in re.finditer(r'"(groups:(?:[^"\\]|\\.)*)"', text):
        write("rule_file", m.group(1).encode().decode("unicode_escape"))
exprs = set()
for m in re.finditer(r"^\s*expr:\s*(\|?)(.*)$", rules_text, re.M):
    if m.group(1) != "|":
        exprs.add(m.group(2).strip().strip("'\""))
# Each group of the bundled file on its own, as a smaller seed.
groups = re.split(r"\n(?=  - name:)", rules_text)
for g in groups[1:]:
    write("rule_file", "groups:\n" + g + "\n")
for path in ["deploy/grafana/recserve-dashboard.json"]:
    def walk(x):
        if isinstance(x, dict):
            for k, v in x.items():
                if k == "expr" and isinstance(v, str):
                    exprs.add(v)
                else:
                    walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
    walk(json.loads(read(path)))
exprs |= {
    "up", "1 + 2 * 3 ^ 2 % 5", "-up", "up == bool 1", "up offset 5m", 'up{job=~"rec.*", instance!="b"}',
    'recserve_inference_requests_total{model="ranker" or outcome="error"}',
    "rate(recserve_inference_requests_total[5m])", "increase(recserve_inference_requests_total[10m])",
    "irate(recserve_inference_requests_total[1m])", "resets(recserve_inference_requests_total[30m])",
    "changes(recserve_queue_depth[30m])", "delta(recserve_queue_depth[5m])", "idelta(recserve_queue_depth[5m])",
    "quantile_over_time(0.9, recserve_queue_depth[10m])", "stddev_over_time(recserve_queue_depth[10m])",
    "last_over_time(recserve_queue_depth[10m])", "count_over_time(up[1h])",
    "histogram_quantile(0.99, sum by (le, model) (rate(recserve_request_duration_seconds_bucket[5m])))",
    "sum without (outcome) (rate(recserve_inference_requests_total[5m]))",
    'sum by (model) (rate(recserve_inference_requests_total{outcome="error"}[5m])) / '
    "sum by (model) (rate(recserve_inference_requests_total[5m])) > 0.01",
    "clamp(recserve_queue_depth, 0, 3)", "scalar(sum(up))", "vector(time())", "abs(ln(up + 1))",
    "up and on (job) up", "up or vector(0)", "up unless ignoring (instance) up", "topk(3, up)",
    "recserve_queue_depth[5m]", "round(log2(exp(up)), 0.5)", "max by (model) (recserve_queue_depth) >= 2",
}
for e in sorted(exprs):
    write("promql", e)

# ---------------------------------------------------------------- model configs
for path in sorted(glob.glob(os.path.join(ROOT, "examples/ecommerce/models/*/config.toml"))
                   + glob.glob(os.path.join(ROOT, "examples/ecommerce/canary/*/config.toml"))):
    write("model_config", open(path).read())
for text in [
    "",
    "max_batch_size = 8\ninstance_count = 2\nlatency_budget_ms = 20\nwarmup_rows = 4\n"
    "[dynamic_batching]\nmax_queue_delay_microseconds = 500\nmax_queue_size = 10\n"
    "[version_policy]\nspecific = [1, 3]\n[[input]]\nname = \"user_features\"\ndims = [-1]\n"
    "[validation]\nsamples = \"v.json\"\ntolerance = 0.001\n",
    "[version_policy]\nlatest = 2\n[[input]]\nname = \"item_ids\"\ndatatype = \"INT64\"\ndims = [16]\n"
    "[[output]]\nname = \"score\"\ndims = [1]\n",
    "[version_policy]\nall = true\nmax_batch_size = 0\n",
    "[[input]]\nname = \"query\"\ndatatype = \"BYTES\"\n",
]:
    write("model_config", text)

# ---------------------------------------------------------------- recommend requests
bodies = set()
for path in glob.glob(os.path.join(ROOT, "crates/*/tests/*.rs")) + glob.glob(os.path.join(ROOT, "crates/*/src/*.rs")):
    text = open(path, encoding="utf-8").read()
    for m in re.finditer(r'r#"(\{"scenario".*?)"#', text):
        bodies.add(m.group(1))
bodies |= {
    '{"scenario": "search", "user_id": "U0000042", "query": "running shoes", "k": 5}',
    '{"scenario": "home_feed", "user_id": "U0000042", "filters": {"max_price": 50}}',
    '{"scenario":"home_feed","user_id":"U0000001","context":{"device":"mobile","category":"home"},'
    '"filters":{"min_price":10,"max_price":400,"categories":["home","headphones"],"brands":["Acme","Tiber"],'
    '"exclude_items":["I000001","nope"]},"k":50}',
    '{"scenario":"search","user_id":"U0000000","query":"Tiber premium headphones red","k":1}',
    '{"scenario":"home_feed","user_id":"new-user","context":{"category":"fashion","device":null}}',
}
for b in sorted(bodies):
    write("recommend_request", b)

for t in sorted(os.listdir(OUT)):
    print(t, len(os.listdir(os.path.join(OUT, t))))
