"""Side by side of every numeric metric Nsight Compute reported for two or more kernels
(`ncu --set full --csv --page raw`), sorted by how far the kernels disagree. Used to look for the
work one GEMM does and another does not (instructions, shared-memory wavefronts, L2 sectors,
DRAM bytes): on a power-capped H100 that work is energy, and energy is time.

  python tools/ncu_compare.py ncu.csv [--top 80] [--min-rel 0.03]

Columns: one per profiled kernel (in profiling order, names shortened), then max/min - 1."""
from __future__ import annotations

import argparse
import csv
import sys


def load(path: str) -> tuple[list[str], dict[str, list[float]], dict[str, str]]:
    rows = list(csv.reader(open(path)))
    # ncu's own "==PROF==" / "==WARNING==" lines come first (a warning may hold commas)
    start = next((i for i, r in enumerate(rows) if "Kernel Name" in r), None)
    if start is None or len(rows) < start + 3:
        raise SystemExit(f"{path}: no kernel rows (ncu failed? see its stderr)")
    head, units = rows[start], rows[start + 1]
    data = [r for r in rows[start + 2:] if len(r) == len(head)]
    name_col = head.index("Kernel Name")
    names = [r[name_col][:28] for r in data]
    metrics: dict[str, list[float]] = {}
    for i, key in enumerate(head):
        if key == "ID":
            continue
        vals = []
        for r in data:
            try:
                vals.append(float(r[i].replace(",", "")))
            except (ValueError, IndexError):
                break
        if len(vals) == len(data):
            metrics[key] = vals
    return names, metrics, dict(zip(head, units))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv")
    ap.add_argument("--top", type=int, default=80)
    ap.add_argument("--min-rel", type=float, default=0.03)
    ap.add_argument("--min-share", type=float, default=0.05,
                    help="leave out kernels shorter than this share of the longest (set-up kernels)")
    a = ap.parse_args(argv)
    names, metrics, units = load(a.csv)
    dur = metrics.get("gpu__time_duration.sum")
    if dur:
        keep = [i for i, d in enumerate(dur) if d >= a.min_share * max(dur)]
        names = [names[i] for i in keep]
        metrics = {k: [v[i] for i in keep] for k, v in metrics.items()}
    print("kernels:", " | ".join(f"[{i}] {n}" for i, n in enumerate(names)))
    ranked = []
    for key, vals in metrics.items():
        lo, hi = min(vals), max(vals)
        if hi <= 0 or lo < 0:
            continue
        rel = (hi / lo - 1) if lo > 0 else float("inf")
        if rel >= a.min_rel:
            ranked.append((rel, key, vals))
    ranked.sort(key=lambda t: -t[0])
    for rel, key, vals in ranked[: a.top]:
        cells = " ".join(f"{v:>14.6g}" for v in vals)
        print(f"{key[:72]:<72} {units.get(key, '')[:10]:<10} {cells}  {rel:7.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
