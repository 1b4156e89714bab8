"""Summarise the per-CTA traces of the TP GEMM kernel (TPContext.set_trace; the `trace` entries
of tp_worker's bench rows): where each CTA's time went, in microseconds.

    python tools/gpu_trace.py LOGDIR_OR_JSON

Slots per CTA (templates/tp_gemm.cu.in, kTraceSlots): [0] start, [1] end of whole tiles, then per
work item, the first FRAGS of them (kb, -1 for a whole tile; k-steps, mma done, fix-up wait done,
tile done = epilogue stores issued), [-1] end. Whole tiles: mainloop = mma done - previous item's
done (the first one includes the pipeline's fill), epilogue = done - mma done.
"""
import json
import statistics as st
import sys
from pathlib import Path

FRAGS = 6


def summarise(name: str, rows: list[list[int]]) -> str:
    rows = [r for r in rows if r[0] or r[-1]]
    us = lambda v: v / 1e3  # noqa: E731
    end = [r[-1] for r in rows]
    dp = [r[1] - r[0] for r in rows]
    out = [f"  {name}: {len(rows)} CTAs, end max {us(max(end)):.1f} median {us(st.median(end)):.1f} us; "
           f"whole tiles until median {us(st.median(r[1] for r in rows)):.1f} us (phase {us(st.median(dp)):.1f})"]
    mma, wait, fix, last = [], [], [], []
    per_step = []
    whole = {"first mainloop": [], "mainloop": [], "per k-step": [], "epilogue": []}
    for r in rows:
        t = r[0]
        for f in range(FRAGS):
            kb, kc, t_mma, t_fix, t_done = r[2 + 5 * f: 7 + 5 * f]
            if not t_mma:
                break
            if kb < 0:                      # a whole tile
                whole["first mainloop" if f == 0 else "mainloop"].append(us(t_mma - t))
                if f:
                    whole["per k-step"].append(us(t_mma - t) / max(kc, 1))
                whole["epilogue"].append(us(t_done - t_mma))
                t = t_done
                continue
            t = max(t, r[1])
            mma.append(us(t_mma - t))
            per_step.append(us(t_mma - t) / max(kc, 1))
            wait.append(us(t_fix - t_mma))
            fix.append(us(t_done - t_fix))
            t = t_done
        last.append(us(r[-1] - t))
    q = lambda v: f"median {st.median(v):.2f} max {max(v):.2f}"  # noqa: E731
    if whole["epilogue"]:
        out.append("    whole tiles (first %d per CTA): " % FRAGS
                   + "; ".join(f"{k} {q(v)} us" for k, v in whole.items() if v))
    if mma:
        out.append(f"    stream-K fragments {len(mma)}: mma {q(mma)} us ({q(per_step)} us per k-step); "
                   f"publish/wait {q(wait)}; add+store {q(fix)}; after last fragment {q(last)}")
    slow = sorted(range(len(rows)), key=lambda i: -end[i])[:3]
    for i in slow:
        out.append(f"    slowest CTA {i}: " + " ".join(str(v if v < 10**6 else round(us(v), 1)) for v in rows[i]))
    return "\n".join(out)


def main(path: str) -> None:
    p = Path(path)
    files = [p] if p.is_file() else sorted(p.rglob("*.json"))
    for f in files:
        for c in json.loads(f.read_text()).get("cases", []):
            if "trace" in c:
                print(f"{f.name} {c['mnk']}:")
                for name, rows in c["trace"].items():
                    print(summarise(name, rows))


if __name__ == "__main__":
    main(sys.argv[1])
