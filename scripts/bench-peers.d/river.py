"""River's own benchmark (riverqueue-cli's `riverqueue bench -n N`): it
inserts N no-op jobs in batches of 5,000, then works them all with its
default 2,000 workers over a pool of 50; prints its overall jobs/s as the
other harnesses do (it reports no separate enqueue rate)."""
import json
import re
import subprocess
import sys

riverqueue, url, jobs = sys.argv[1], sys.argv[2], sys.argv[3]
out = subprocess.run(
    [riverqueue, "bench", "--database-url", url, "-n", jobs],
    check=True, capture_output=True, text=True,
)
text = out.stdout + out.stderr
rates = re.findall(r"overall job/sec \[\s*([\d.]+)\s*\]", text)
if not rates:
    sys.exit(f"no rate in riverqueue's output:\n{text}")
print(json.dumps({"enqueue": None, "burn_down": float(rates[-1])}))
