"""Cost-model evaluation speed: batched path vs single path vs ZigZag, in one run.

    python benchmarks/cost_eval.py [--candidates N] [--single N] [--seed S]

Workload: the fused GEMM-Softmax (M=256, N=256, K=128, pipeline fused-gemm-distsm) on the
`edge` preset. Candidates: distinct valid factorizations of its tiling space (FactorSpace,
CP-SAT enumeration) with a random loop order per temporal tile (seeded). The batched path
(comet_ir.backends.cost.batched, fresh evaluator: no warm caches) prices them all; the single
path (estimate_program on each candidate's own program) prices a sample, and its numbers are
checked equal to the batch's. ZigZag (pip install "comet-ir[bench]") prices the same GEMM
layer (benchmarks/zigzag_edge/: one edge core in ZigZag's format) with its own LOMA temporal
mapping search; its per-mapping time is the mean time of its CostModelStage per evaluated
mapping. One process, one core. The last line is `evals_per_s=<N>` (batched path, pricing the
batch; the evaluator's one-time build per program is printed separately, and the throughput
with it counted on its own line).
"""
from __future__ import annotations

import argparse
import os
import platform
import random
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def _program():
    from comet_ir.api import run_pipeline
    from comet_ir.ir_tree import ir_to_tree, single_mapping
    from comet_ir.spec import workloads as w

    m = run_pipeline(w.gemm_softmax(256, 256, 128, arch="edge"), "fused-gemm-distsm")
    return ir_to_tree(single_mapping(m))


def _candidates(space, tiles, n, seed):
    from comet_ir.schedule.factors import order_choices
    from comet_ir.schedule.graph import preorder

    rng = random.Random(seed)
    sols = space.enumerate_solutions(cap=max(n, 1), time_limit=60)
    rows, orders = [], []
    for v in sols[:n]:
        nodes = preorder(space.apply(v).root)
        rows.append(v)
        orders.append(tuple(rng.choice(order_choices(nodes[i])) for i in tiles))
    return np.array(rows, dtype=np.int64), orders


def _single(space, accel, tiles, values, orders):
    from comet_ir.backends.cost.model import estimate_program
    from comet_ir.errors import CometError
    from comet_ir.schedule.graph import preorder

    prog = space.apply(tuple(int(x) for x in values))
    nodes = preorder(prog.root)
    for i, o in zip(tiles, orders):
        nodes[i].order = o
    try:
        r = estimate_program(prog, accel)
    except CometError:
        return None
    return r.latency_cycles, r.energy_pj


def _zigzag():
    """(seconds per evaluated mapping, mappings evaluated, best latency) or a reason string."""
    try:
        import logging

        from zigzag.api import get_hardware_performance_zigzag
        from zigzag.stages.evaluation import cost_model_evaluation as cme_mod
    except Exception as e:  # noqa: BLE001 - report why ZigZag cannot run here
        return f"ZigZag not available: {type(e).__name__}: {e}"
    logging.disable(logging.WARNING)
    times: list[float] = []
    orig = cme_mod.CostModelStage.run

    def timed(self):
        t = time.perf_counter()
        for x in orig(self):
            times.append(time.perf_counter() - t)
            yield x
            t = time.perf_counter()

    cme_mod.CostModelStage.run = timed
    d = os.path.join(HERE, "zigzag_edge")
    import tempfile

    with tempfile.TemporaryDirectory() as out:
        try:
            res = get_hardware_performance_zigzag(os.path.join(d, "workload.yaml"), os.path.join(d, "accelerator.yaml"),
                                                  os.path.join(d, "mapping.yaml"), opt="latency", dump_folder=out,
                                                  loma_show_progress_bar=False)
        except Exception as e:  # noqa: BLE001
            return f"ZigZag failed: {type(e).__name__}: {e}"
        finally:
            cme_mod.CostModelStage.run = orig
            logging.disable(logging.NOTSET)
    if not times:
        return "ZigZag evaluated no mapping"
    return sum(times) / len(times), len(times), res[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--candidates", type=int, default=2000)
    ap.add_argument("--single", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    from comet_ir.backends.cost.batched import BatchEvaluator
    from comet_ir.schedule.factors import FactorSpace
    from comet_ir.spec.presets import load_arch

    accel = load_arch("edge")
    prog = _program()
    space = FactorSpace(prog, accel)
    probe = BatchEvaluator(prog, accel, space=space)
    vals, orders = _candidates(space, probe.tiles, a.candidates, a.seed)
    keys = {(tuple(v), o) for v, o in zip(vals.tolist(), orders)}
    print(f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}, one process")
    print(f"workload: GEMM-Softmax 256x256x128 on edge, {len(space.slots)} slots, "
          f"{len(probe.tiles)} temporal tiles; {len(vals)} candidates ({len(keys)} distinct)")

    t = time.perf_counter()
    ev = BatchEvaluator(prog, accel, space=space)  # cold caches
    dt_build = time.perf_counter() - t
    t = time.perf_counter()
    res = ev.evaluate(vals, orders)
    dt = time.perf_counter() - t
    per_batch = dt / len(keys)
    print(f"batched: {len(keys)} distinct candidates in {dt:.3f} s = {per_batch * 1e3:.3f} ms each "
          f"({int(res.valid.sum())} valid); building the evaluator (once per program: split plan, "
          f"subtree kernels checked on the template) took {dt_build * 1e3:.1f} ms, not counted")
    # The build is once per program, amortised over every batch a search prices; a search that
    # prices just this one batch pays it too:
    print(f"with the build counted (one batch, fresh evaluator): {len(keys) / (dt + dt_build):.0f} evals/s")

    rng = random.Random(a.seed + 1)
    sample = rng.sample(range(len(vals)), min(a.single, len(vals)))
    t = time.perf_counter()
    got = [_single(space, accel, probe.tiles, vals[j], orders[j]) for j in sample]
    per_single = (time.perf_counter() - t) / len(sample)
    agree = all((g is None and not res.valid[j]) or (g == (res.latency[j], res.energy[j]))
                for g, j in zip(got, sample))
    print(f"single path (estimate_program): {per_single * 1e3:.2f} ms per mapping over {len(sample)}; "
          f"batched == single on them: {agree}")
    print(f"ratio single / batched per mapping: {per_single / per_batch:.1f}x")

    zz = _zigzag()
    if isinstance(zz, str):
        print(f"zigzag: {zz}")
    else:
        per_zz, n_zz, lat_zz = zz
        print(f"zigzag (zigzag-dse, LOMA on the same GEMM, one edge core): {per_zz * 1e3:.2f} ms per mapping "
              f"over {n_zz} mappings (its best latency {lat_zz:.0f} cycles)")
        print(f"ratio zigzag / batched per mapping: {per_zz / per_batch:.1f}x; "
              f"zigzag / single: {per_zz / per_single:.2f}x")
    print(f"evals_per_s={len(keys) / dt:.0f}")


if __name__ == "__main__":
    main()
