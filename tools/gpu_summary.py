"""Summarise the JSON results of tools/gpu_session.sh (one line per case)."""
import json
import sys
from pathlib import Path


def rounded(v):
    if isinstance(v, float):
        return round(v, 4)
    if isinstance(v, dict):
        return {k: rounded(x) for k, x in v.items()}
    if isinstance(v, list):
        return [rounded(x) for x in v]
    return v


d = Path(sys.argv[1])
for f in sorted(d.rglob("*.json")):
    r = json.loads(f.read_text())
    head = f"{f.parent.name}/{f.stem}:"
    if "error" in r:
        print(head, "ERROR", r["error"], r.get("trace", r.get("log", ""))[-800:])
        continue
    for c in r.get("cases", []):
        if "trace" in c:        # per-CTA timestamps: in the JSON logs only
            c = dict(c, trace=sorted(c["trace"]))
        print(head, json.dumps(rounded(c)))
for f in sorted(d.rglob("pytest.log")):
    print(f"{f.parent.name}/pytest:", f.read_text().strip().splitlines()[-1:])
