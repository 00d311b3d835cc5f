"""Load generator for an OpenAI-compatible server (stdlib only). Prints one JSON line per pass.

    python3 load.py gen     --url URL --model ID [--clients 8] [--requests 4] [--max-tokens 64]
    python3 load.py prefill --url URL --model ID [--requests 8] [--prompt-words 300]

gen: `clients` threads each send `requests` greedy streaming /v1/completions requests one after
another. Reports aggregate completion tokens/s over the wall time of the pass, TTFT (request sent
to first content chunk) p50/p95 and the per-request decode speed.

prefill: sequential requests with a long prompt and max_tokens=1. Reports prompt tokens/s as
prompt_tokens / TTFT, per request (median) and over the pass (sum of prompt tokens / sum of
TTFTs), with prompt_tokens taken from the server's usage.

Every prompt starts with a tag unique within one server process ("[g8-13] ..."), so that a
server with a prompt cache (llama-server reuses the KV cache of a slot whose previous prompt
shares a prefix) cannot skip the prefill of a repeated prompt; both servers get the same
sequence of prompts. Token counts come from the final usage chunk (stream_options.include_usage);
a request whose stream has no usage chunk is counted as an error, not estimated.
"""

import argparse
import http.client
import json
import statistics
import sys
import threading
import time
import urllib.parse

STORY = "Write a short story about a lighthouse keeper."

# Prefill text: varied English sentences (the numbers keep it from being one repeated n-gram).
PREFILL_SENTENCE = (
    "Report {i}: the keeper climbed the {i} steps of the tower, trimmed the wick, wound the "
    "clockwork that turned the lens, and wrote in the log that the sea was calm and the wind "
    "came from the north-west."
)


def prefill_prompt(tag, words):
    parts, i = [], 0
    while sum(len(p.split()) for p in parts) < words:
        i += 1
        parts.append(PREFILL_SENTENCE.format(i=i))
    return f"[{tag}] Summarise these log entries in one sentence.\n" + "\n".join(parts)


def one_request(url, model, prompt, max_tokens):
    """Sends one streaming completion; returns ttft/total seconds and the server's usage."""
    u = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
    body = json.dumps({
        "model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0,
        "stream": True, "stream_options": {"include_usage": True},
    })
    try:
        t0 = time.perf_counter()
        conn.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
        resp = conn.getresponse()
        if resp.status != 200:
            raise RuntimeError(f"HTTP {resp.status}: {resp.read()[:200]!r}")
        ttft, usage = None, None
        for raw in resp:
            line = raw.decode("utf-8", "replace").strip()
            if not line.startswith("data: "):
                continue
            data = line[6:]
            if data == "[DONE]":
                break
            ev = json.loads(data)
            if ev.get("usage"):
                usage = ev["usage"]
            for c in ev.get("choices") or []:
                if c.get("text") and ttft is None:
                    ttft = time.perf_counter() - t0
        total = time.perf_counter() - t0
    finally:
        conn.close()
    if usage is None:
        raise RuntimeError("the stream ended without a usage chunk")
    # A stream with no text at all (first token was end-of-generation): the first (and last)
    # thing the client saw is the end of the stream.
    return {
        "ttft": ttft if ttft is not None else total,
        "total": total,
        "prompt_tokens": int(usage["prompt_tokens"]),
        "completion_tokens": int(usage["completion_tokens"]),
    }


def ms(x):
    return round(1000 * x, 1)


def pct(sorted_xs, q):
    return sorted_xs[min(len(sorted_xs) - 1, int(q * (len(sorted_xs) - 1) + 0.5))]


def run_gen(a):
    one_request(a.url, a.model, f"[warm-up g{a.clients}] {STORY}", 4)
    results, errors = [], []
    lock = threading.Lock()

    def client(k):
        for r in range(a.requests):
            prompt = f"[g{a.clients}-{k * a.requests + r}] {STORY}"
            try:
                res = one_request(a.url, a.model, prompt, a.max_tokens)
                with lock:
                    results.append(res)
            except Exception as e:  # noqa: BLE001 - counted and printed below
                with lock:
                    errors.append(str(e))

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(a.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    tokens = sum(r["completion_tokens"] for r in results)
    ttfts = sorted(r["ttft"] for r in results)
    per_req = [
        (r["completion_tokens"] - 1) / (r["total"] - r["ttft"])
        for r in results if r["completion_tokens"] > 1 and r["total"] > r["ttft"]
    ]
    return {
        "mode": "gen", "clients": a.clients, "requests": len(results), "errors": len(errors),
        "error_sample": errors[:1], "completion_tokens": tokens, "wall_s": round(wall, 3),
        "gen_tok_s": round(tokens / wall, 2) if wall > 0 else None,
        "ttft_p50_ms": ms(statistics.median(ttfts)) if ttfts else None,
        "ttft_p95_ms": ms(pct(ttfts, 0.95)) if ttfts else None,
        "per_request_tok_s_median": round(statistics.median(per_req), 2) if per_req else None,
    }


def run_prefill(a):
    one_request(a.url, a.model, prefill_prompt("warm-up p", a.prompt_words), 1)
    results, errors = [], []
    for n in range(a.requests):
        try:
            results.append(
                one_request(a.url, a.model, prefill_prompt(f"p-{n}", a.prompt_words), 1))
        except Exception as e:  # noqa: BLE001 - counted and printed below
            errors.append(str(e))
    ttfts = sorted(r["ttft"] for r in results)
    prompt = [r["prompt_tokens"] for r in results]
    rates = [r["prompt_tokens"] / r["ttft"] for r in results if r["ttft"] > 0]
    return {
        "mode": "prefill", "clients": 1, "requests": len(results), "errors": len(errors),
        "error_sample": errors[:1],
        "prompt_tokens_min": min(prompt) if prompt else None,
        "prompt_tokens_max": max(prompt) if prompt else None,
        "ttft_p50_ms": ms(statistics.median(ttfts)) if ttfts else None,
        "ttft_p95_ms": ms(pct(ttfts, 0.95)) if ttfts else None,
        "prompt_tok_s_median": round(statistics.median(rates), 1) if rates else None,
        "prompt_tok_s_total": round(sum(prompt) / sum(ttfts), 1) if ttfts else None,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["gen", "prefill"])
    ap.add_argument("--url", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--clients", type=int, default=1)
    ap.add_argument("--requests", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--prompt-words", type=int, default=300)
    ap.add_argument("--label", default="")
    ap.add_argument("--round", type=int, default=0)
    a = ap.parse_args()
    if a.clients < 1 or a.requests < 1 or a.max_tokens < 1 or a.prompt_words < 1:
        ap.error("--clients, --requests, --max-tokens and --prompt-words must be positive")
    out = run_gen(a) if a.mode == "gen" else run_prefill(a)
    print(json.dumps({"label": a.label, "round": a.round, **out}), flush=True)
    return 1 if out["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
