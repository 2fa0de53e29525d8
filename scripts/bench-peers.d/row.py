"""One table row from a harness's last output line (JSON) and the peak RSS (KiB)."""
import json
import sys

label, line, rss_kib = sys.argv[1], sys.argv[2], int(sys.argv[3])
result = json.loads(line.strip().splitlines()[-1])
enqueue = "-" if result["enqueue"] is None else f"{result['enqueue']:.0f}"
print(f"| {label} | {enqueue} | {result['burn_down']:.0f} | {rss_kib / 1024:.0f} MiB |")
