"""The tiling space's capacity constraints: on a small space the CP-SAT solutions are exactly the
brute-force factorizations that comet-verify-capacity's check_capacity accepts."""
import copy
import dataclasses
import itertools
import math
import os

import pytest

from comet_ir.api import parse
from comet_ir.backends.cost_targets import resolve_arch
from comet_ir.errors import CometError
from comet_ir.ir_tree import ir_to_tree, single_mapping
from comet_ir.passes.verify_capacity import check_capacity
from comet_ir.schedule.factors import FactorSpace

TINY = os.path.join(os.path.dirname(__file__), "..", "data", "map", "tiny_exp.mlir")


def _shrunk(accel, caps):
    a = copy.deepcopy(accel)
    for lv, c in caps.items():
        t = a.levels[lv].type
        a.memory_types[t] = dataclasses.replace(a.memory_types[t], width=1, depth=c)
    return a


def _fits(prog, accel) -> bool:
    from types import SimpleNamespace

    cap = {lv.name: accel.memory_types[lv.type].capacity for lv in accel.levels.values()
           if not lv.is_compute and accel.memory_types[lv.type].kind == "SRAM"}
    try:
        check_capacity(prog, SimpleNamespace(capacity=cap), True)
    except CometError:
        return False
    return True


def _brute_force(space, accel):
    """Every way to split M=16 and N=8 over the three tiles and the SIMD step (the slots in
    pre-order: tile0 M N, tile1 M N, tile2 M N, step M N), with the SIMD rule (step M x N within
    max(lanes, given 2x2)), kept when check_capacity accepts the program."""
    dims = space.program.problem.dims
    lanes = max(accel.compute("SE").ops_per_cycle, 4)
    divs = {d: [x for x in range(1, n + 1) if n % x == 0] for d, n in dims.items()}
    per_dim = {d: [c for c in itertools.product(divs[d], repeat=4) if math.prod(c) == n]
               for d, n in dims.items()}
    out = set()
    for cm, cn in itertools.product(per_dim["M"], per_dim["N"]):
        if cm[-1] * cn[-1] > lanes:
            continue
        v = tuple(x for pair in zip(cm, cn) for x in pair)
        if _fits(space.apply(v), accel):
            out.add(v)
    return out


@pytest.mark.parametrize("caps", [
    {"GB": 256, "OB": 64},   # exact boundaries: 8 x elements per level
    {"GB": 250, "OB": 70},   # between boundaries
    {"GB": 2097152, "OB": 40},
])
def test_capacity_oracle_tiny_space(caps):
    module = parse(TINY)
    prog = ir_to_tree(single_mapping(module))
    accel = _shrunk(resolve_arch(module, None, prog.arch), caps)
    space = FactorSpace(prog, accel)
    assert [(s.dim, s.is_compute) for s in space.slots] == [("M", False), ("N", False)] * 3 + [
        ("M", True), ("N", True)]
    want = _brute_force(space, accel)
    sols = space.enumerate_solutions(cap=100000)
    assert space.last_complete
    got = set(sols[1:]) | ({sols[0]} if _fits(space.apply(sols[0]), accel) else set())
    assert got == want
    # the constraint binds: without it the space is strictly larger
    loose = FactorSpace(prog, accel, capacity=False)
    assert len(set(loose.enumerate_solutions(cap=100000))) > len(want) > 0


@pytest.mark.parametrize("caps", [
    {"OB": 4224, "GB": 65536, "IB": 16384, "WB": 4096},  # the given mapping's own usage
    {"OB": 4300, "GB": 70000, "IB": 17000, "WB": 5000},
])
def test_capacity_oracle_multi_op_tiles(caps):
    """The imported reference edge program (GEMM -> decomposed softmax: tiles holding several
    tensors, OB tensors of two ops each) with shrunk buffers, per-op factors: in the complete
    radius-4 neighbourhood of the given mapping, the constrained enumeration equals the
    unconstrained one filtered by check_capacity."""
    from comet_ir.spec.reference import import_reference

    ref = "/work/shared/reference/iterative_mapper"
    if not os.path.isdir(ref):
        pytest.skip("reference inputs not present")
    accel, prog = import_reference(ref, f"{ref}/arch.yaml", f"{ref}/edge_M256N256K128_const.yaml")
    accel = _shrunk(accel, caps)
    loose = FactorSpace(prog, accel, per_op=True, capacity=False)
    centre = tuple(s.value for s in loose.slots)
    every = loose.enumerate_solutions(cap=100000, around=centre, radius=4)
    assert loose.last_complete
    want = {v for v in every if _fits(loose.apply(v), accel)}
    tight = FactorSpace(prog, accel, per_op=True)
    sols = tight.enumerate_solutions(cap=100000, around=centre, radius=4)
    assert tight.last_complete
    assert set(sols[1:]) | ({centre} if centre in want else set()) == want
    assert 0 < len(want) < len(set(every))
