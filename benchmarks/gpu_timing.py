"""CUDA timing shared by the GPU benchmarks: the median of CUDA-event timings after warm-up, and
a CUDA graph of one call (warmed up on a side stream first, so lazily built state exists before
the capture)."""
from __future__ import annotations

import statistics

import torch


def bench(fn, warm: int = 3, reps: int = 15, sync_each=None) -> float:
    """Median ms of `reps` timed calls of fn; sync_each (if given) runs untimed before each."""
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        if sync_each:
            sync_each()
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        ts.append(a.elapsed_time(b))
    return statistics.median(ts)


def graphed(fn):
    """(CUDA graph of one fn() call, the call's output)."""
    fn()
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        fn()
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        out = fn()
    return g, out
