"""Concurrent streaming load against an OpenAI-compatible server (stdlib only).

    python3 load.py --url http://127.0.0.1:8080 --model ID [--clients 4] [--requests 4]
                    [--max-tokens 64] [--prompt TEXT]

Each client sends `requests` streaming /v1/completions requests one after another (greedy).
Reports aggregate generated tokens/s over the wall time, per-request TTFT (time to the first
content chunk) p50/p95, and per-request decode speed. Token counts come from the final usage
chunk (stream_options.include_usage) when the server sends one, else from the number of content
chunks (one per token for both servers measured here). Prints one JSON line.
"""

import argparse
import http.client
import json
import statistics
import threading
import time
import urllib.parse


def one_request(url, model, prompt, max_tokens):
    u = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
    body = json.dumps({
        "model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0,
        "stream": True, "stream_options": {"include_usage": True},
    })
    t0 = time.perf_counter()
    conn.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
    resp = conn.getresponse()
    if resp.status != 200:
        raise RuntimeError(f"HTTP {resp.status}: {resp.read()[:200]!r}")
    ttft, chunks, usage = None, 0, None
    for raw in resp:
        line = raw.decode().strip()
        if not line.startswith("data: "):
            continue
        data = line[6:]
        if data == "[DONE]":
            break
        ev = json.loads(data)
        if ev.get("usage"):
            usage = ev["usage"]
        for c in ev.get("choices", []):
            if c.get("text"):
                chunks += 1
                if ttft is None:
                    ttft = time.perf_counter() - t0
    total = time.perf_counter() - t0
    conn.close()
    tokens = usage["completion_tokens"] if usage else chunks
    return {"ttft": ttft or total, "total": total, "tokens": tokens}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--requests", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--prompt", default="Write a short story about a lighthouse keeper.")
    ap.add_argument("--label", default="")
    a = ap.parse_args()

    one_request(a.url, a.model, a.prompt, 4)  # warm-up
    results, errors = [], []
    lock = threading.Lock()

    def client():
        for _ in range(a.requests):
            try:
                r = one_request(a.url, a.model, a.prompt, a.max_tokens)
                with lock:
                    results.append(r)
            except Exception as e:  # noqa: BLE001 - reported below
                with lock:
                    errors.append(str(e))

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(a.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    tokens = sum(r["tokens"] for r in results)
    ttfts = sorted(r["ttft"] for r in results)
    per_req = [r["tokens"] / max(r["total"] - r["ttft"], 1e-9) for r in results if r["tokens"] > 1]
    print(json.dumps({
        "label": a.label, "clients": a.clients, "requests": len(results), "errors": len(errors),
        "completion_tokens": tokens, "wall_s": round(wall, 2),
        "tokens_per_s": round(tokens / wall, 1),
        "ttft_p50_ms": round(1000 * statistics.median(ttfts), 1) if ttfts else None,
        "ttft_p95_ms": round(1000 * ttfts[int(0.95 * (len(ttfts) - 1))], 1) if ttfts else None,
        "per_request_tok_s_median": round(statistics.median(per_req), 1) if per_req else None,
    }))


if __name__ == "__main__":
    main()
