"""Summarise the JSON results of tools/gpu_session.sh (one line per case)."""
import json
import sys
from pathlib import Path

d = Path(sys.argv[1])
for f in sorted(d.rglob("*.json")):
    r = json.loads(f.read_text())
    head = f"{f.parent.name}/{f.stem}:"
    if "error" in r:
        print(head, "ERROR", r["error"], r.get("trace", r.get("log", ""))[-800:])
        continue
    for c in r.get("cases", []):
        keys = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in c.items()}
        print(head, json.dumps(keys))
for f in sorted(d.rglob("pytest.log")):
    print(f"{f.parent.name}/pytest:", f.read_text().strip().splitlines()[-1:])
