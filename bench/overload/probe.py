#!/usr/bin/env python3
"""Latency probe for the overload benchmark: how fast refused requests (429) come back,
next to how long accepted ones (200) take, while `recserve bench` overloads the server.

`recserve bench` reports latencies of successful requests only (refusals are counted as
errors, by status), so this probe samples both kinds itself. It runs in parallel with the load,
from the same IP address (127.0.0.1), so it is the same client for `--max-in-flight-per-client`
and competes for the same share: each probe request is refused or accepted as a load request
sent at that moment would be.

Stdlib only (asyncio streams, raw HTTP/1.1 keep-alive): CONNECTIONS connections, each sending
its next request on a fixed schedule (total RATE per second), latency from send to the end of
the answer, split by status. Prints one JSON object.

    probe.py URL MODEL RATE SECONDS [CONNECTIONS]

MODEL `recommend` probes `POST /v1/recommend` (home_feed, a known demo shopper, k 20) instead
of V2 inference.
"""

import asyncio
import json
import sys
import time


def pct(xs, q):
    if not xs:
        return None
    xs = sorted(xs)
    i = min(len(xs) - 1, max(0, round(q * (len(xs) - 1))))
    return xs[i]


async def read_response(reader):
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("closed")
    status = int(status_line.split()[1])
    length = 0
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        k, _, v = line.decode("latin-1").partition(":")
        if k.strip().lower() == "content-length":
            length = int(v.strip())
    if length:
        await reader.readexactly(length)
    return status


async def worker(host, port, request, period, offset, end, out):
    reader, writer = await asyncio.open_connection(host, port)
    loop = asyncio.get_running_loop()
    next_at = loop.time() + offset
    while True:
        now = loop.time()
        if now >= end:
            break
        if next_at > now:
            await asyncio.sleep(next_at - now)
        next_at += period
        t0 = time.perf_counter()
        try:
            writer.write(request)
            await writer.drain()
            status = await read_response(reader)
        except (ConnectionError, asyncio.IncompleteReadError, OSError) as e:
            out.setdefault("transport", []).append(str(e))
            writer.close()
            reader, writer = await asyncio.open_connection(host, port)
            continue
        out.setdefault(status, []).append((time.perf_counter() - t0) * 1000.0)
    writer.close()


async def main():
    url, model, rate, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
    conns = int(sys.argv[5]) if len(sys.argv) > 5 else 4
    hostport = url.split("://", 1)[1].rstrip("/")
    host, port = hostport.rsplit(":", 1)
    if model == "recommend":
        path = "/v1/recommend"
        body = json.dumps({"scenario": "home_feed", "user_id": "U0000042", "k": 20}).encode()
    else:
        path = f"/v2/models/{model}/infer"
        body = json.dumps(
            {"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 16], "data": [0.5] * 16}]}
        ).encode()
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {hostport}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    out = {}
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    period = conns / rate
    await asyncio.gather(
        *(worker(host, int(port), request, period, i * period / conns, end, out) for i in range(conns))
    )
    summary = {}
    for status, xs in out.items():
        if status == "transport":
            summary["transport_errors"] = len(xs)
            continue
        summary[str(status)] = {
            "count": len(xs),
            "p50_ms": pct(xs, 0.50),
            "p90_ms": pct(xs, 0.90),
            "p99_ms": pct(xs, 0.99),
            "max_ms": max(xs),
        }
    print(json.dumps(summary))


asyncio.run(main())
