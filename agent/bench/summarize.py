"""Turns the JSON lines of run.sh (load.py output) into per-round Markdown tables and a verdict.

    python3 summarize.py RESULTS.jsonl [--agent cocoon-agent] [--reference llama-server]

Targets (issue #5): generation tokens/s at 1 and at 8 streams >= 0.95x the reference's, and
time to first token at most 5 ms above the reference's. TTFT is compared at the median, on the
single-stream generation pass and on the prefill pass (with 8 streams TTFT is dominated by
queueing behind other sequences and is shown, not judged). A target counts as met only if it
is met in every round; a round missing a measurement fails it.
"""

import argparse
import json
import sys

RATIO_TARGET = 0.95
TTFT_BUDGET_MS = 5.0


def load(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise SystemExit(f"{path}:{n}: not a JSON line: {e}") from e
    return rows


def pick(rows, label, rnd, mode, clients):
    for r in rows:
        if (r.get("label"), r.get("round"), r.get("mode"), r.get("clients")) == (
                label, rnd, mode, clients):
            return r
    return None


def fmt(x, unit=""):
    return "n/a" if x is None else f"{x:g}{unit}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("--agent", default="cocoon-agent")
    ap.add_argument("--reference", default="llama-server")
    a = ap.parse_args()
    rows = load(a.results)
    rounds = sorted({r["round"] for r in rows if "round" in r})
    gen_clients = sorted({r["clients"] for r in rows if r.get("mode") == "gen"})
    verdict = {}  # target name -> list of per-round booleans

    def judge(name, ok):
        verdict.setdefault(name, []).append(bool(ok))

    for rnd in rounds:
        print(f"\n### Round {rnd}\n")
        print(f"| measure | {a.agent} | {a.reference} | agent / reference | target |")
        print("|---|---:|---:|---:|---|")
        for c in gen_clients:
            ag, rf = pick(rows, a.agent, rnd, "gen", c), pick(rows, a.reference, rnd, "gen", c)
            x = ag and ag.get("gen_tok_s")
            y = rf and rf.get("gen_tok_s")
            ok = x is not None and y and x / y >= RATIO_TARGET and not ag["errors"] \
                and not rf["errors"]
            ratio = f"{x / y:.3f}" if x is not None and y else "n/a"
            print(f"| generation tok/s, {c} stream(s) | {fmt(x)} | {fmt(y)} | {ratio} | "
                  f">= {RATIO_TARGET}: {'met' if ok else 'NOT met'} |")
            judge(f"generation tok/s at {c} stream(s) >= {RATIO_TARGET}x", ok)
            x = ag and ag.get("ttft_p50_ms")
            y = rf and rf.get("ttft_p50_ms")
            d = f"{x - y:+.1f} ms" if x is not None and y is not None else "n/a"
            if c == 1:
                ok = x is not None and y is not None and x - y <= TTFT_BUDGET_MS
                target = f"<= +{TTFT_BUDGET_MS:g} ms: {'met' if ok else 'NOT met'}"
                judge(f"TTFT (1 stream, p50) <= +{TTFT_BUDGET_MS:g} ms", ok)
            else:
                target = "(queueing; not judged)"
            print(f"| TTFT p50, {c} stream(s) | {fmt(x, ' ms')} | {fmt(y, ' ms')} | {d} | "
                  f"{target} |")
        ag, rf = pick(rows, a.agent, rnd, "prefill", 1), pick(rows, a.reference, rnd, "prefill", 1)
        if ag or rf:
            toks = [f"{r['prompt_tokens_min']}-{r['prompt_tokens_max']}" if r else "n/a"
                    for r in (ag, rf)]
            print(f"| prompt tokens per request | {toks[0]} | {toks[1]} | | (equal if both tokenize alike) |")
            x = ag and ag.get("prompt_tok_s_total")
            y = rf and rf.get("prompt_tok_s_total")
            ratio = f"{x / y:.3f}" if x is not None and y else "n/a"
            print(f"| prompt tok/s (sum prompt / sum TTFT) | {fmt(x)} | {fmt(y)} | {ratio} | "
                  f"(no separate target) |")
            x = ag and ag.get("ttft_p50_ms")
            y = rf and rf.get("ttft_p50_ms")
            ok = x is not None and y is not None and x - y <= TTFT_BUDGET_MS
            d = f"{x - y:+.1f} ms" if x is not None and y is not None else "n/a"
            print(f"| TTFT p50, long prompt | {fmt(x, ' ms')} | {fmt(y, ' ms')} | {d} | "
                  f"<= +{TTFT_BUDGET_MS:g} ms: {'met' if ok else 'NOT met'} |")
            judge(f"TTFT (long prompt, p50) <= +{TTFT_BUDGET_MS:g} ms", ok)
        errs = [r for r in rows if r.get("round") == rnd and r.get("errors")]
        for r in errs:
            print(f"\nERRORS: {r['label']} {r['mode']} {r['clients']} client(s): "
                  f"{r['errors']} failed, e.g. {r.get('error_sample')}")
    print("\n### Verdict (a target is met only if it is met in every round)\n")
    all_ok = True
    for name, oks in verdict.items():
        met = len(oks) == len(rounds) and all(oks)
        all_ok &= met
        print(f"- {name}: {'met' if met else 'NOT met'} ({sum(oks)}/{len(rounds)} rounds)")
    return 0 if all_ok else 2


if __name__ == "__main__":
    sys.exit(main())
