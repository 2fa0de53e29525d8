"""One table row from the harnesses' last output lines (JSON).

    row.py LABEL BURN_LINE RSS_KIB
        burn-down: {"enqueue", "burn_down"} and the worker's peak RSS.
    row.py e2e LABEL RATE_LINE HALF LATENCY_LINE WORKER_LINE RSS_KIB
        end to end: {"rate"} from load.mjs; the paced rate; {"p50", "p99"}
        from load.mjs where the rows keep the times, else the worker's last
        line, {"latencies"} (graphile-worker's, measured in its tasks).
"""
import json
import sys


def last_json(text):
    try:
        return json.loads(text.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return {}


def percentile(values, p):
    values = sorted(values)
    return values[round((len(values) - 1) * p)] if values else float("nan")


if sys.argv[1] == "e2e":
    label, rate, half, latency, worker, rss_kib = sys.argv[2:8]
    rate, latency, worker = last_json(rate)["rate"], last_json(latency), last_json(worker)
    if "p50" not in latency:
        found = worker.get("latencies", [])
        latency = {"p50": percentile(found, 0.5), "p99": percentile(found, 0.99)}
    # None (no paced job ran) shows as nan rather than failing the row.
    p50, p99 = (float("nan") if latency[p] is None else latency[p] for p in ("p50", "p99"))
    print(f"| {label} | {rate:.0f} | at {float(half):.0f}/s: {p50:.0f} / {p99:.0f} ms | {int(rss_kib) / 1024:.0f} MiB |")
else:
    label, line, rss_kib = sys.argv[1], sys.argv[2], int(sys.argv[3])
    result = last_json(line)
    enqueue = "-" if result["enqueue"] is None else f"{result['enqueue']:.0f}"
    print(f"| {label} | {enqueue} | {result['burn_down']:.0f} | {rss_kib / 1024:.0f} MiB |")
