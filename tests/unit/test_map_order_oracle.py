"""Inter-op order in comet-map: the topological orders of a sequential binding's independent
children, checked against brute force over every permutation."""
import itertools
import os

from comet_ir.api import parse, parse_module, run_pipeline
from comet_ir.backends.cost.model import estimate_program
from comet_ir.backends.cost_targets import estimate, resolve_arch
from comet_ir.ir_tree import ir_to_tree, single_mapping
from comet_ir.schedule.order import order_variants

TWO = os.path.join(os.path.dirname(__file__), "..", "data", "map", "two_independent.mlir")


def _ops(prog):
    return [[n.name for n in _walk(c) if hasattr(n, "tile_steps")] for c in prog.root.children]


def _walk(n):
    yield n
    for k in getattr(n, "body", None) or getattr(n, "children", None) or []:
        yield from _walk(k)


def _brute_force(prog, accel, depends):
    """Every permutation of the root binding's children that keeps each dependent pair's order
    (`depends(i, j)`: child j uses what child i produced), priced."""
    import copy

    kids = prog.root.children
    out = {}
    for perm in itertools.permutations(range(len(kids))):
        if any(depends(i, j) and perm.index(i) > perm.index(j) for i in range(len(kids)) for j in range(len(kids))):
            continue
        p = copy.deepcopy(prog)
        p.root.children = [p.root.children[k] for k in perm]
        out[perm] = estimate_program(p, accel).latency_cycles
    return out


def test_order_oracle_two_independent_children():
    module = parse(TWO)
    prog = ir_to_tree(single_mapping(module))
    accel = resolve_arch(module, None, prog.arch)
    # EXP (A -> D) and EXPB (B -> E) share no tensor: both orders are valid
    brute = _brute_force(prog, accel, lambda i, j: False)
    assert len(brute) == 2
    variants = order_variants(prog)
    assert sorted(tuple(_ops(p)[k][0] for k in range(2)) for _, p in variants) == \
        sorted(tuple(["EXP", "EXPB"][k] for k in perm) for perm in brute)
    mapped = run_pipeline(parse(TWO), "comet-map{budget=5}")
    # comet-map also moves tiling factors, so it can only be at least as good as the best order
    # of the given tiling
    assert estimate(mapped).latency_cycles <= min(brute.values())


def test_order_oracle_chain_has_one_order():
    # EXPB reads D, which EXP writes: a chain, exactly one order
    text = open(TWO).read()
    text = (text.replace("ins [A, B] outs [D, E]", "ins [A] outs [E]")
                .replace("comet.opspec EXPB ins [B]", "comet.opspec EXPB ins [D]")
                .replace("proj {B = [[M], [N]], E", "proj {D = [[M], [N]], E")
                .replace("tensors [B, E]", "tensors [D, E]")
                .replace("steps {B = {M = 2, N = 2}", "steps {D = {M = 2, N = 2}"))
    module = parse_module(text)[0]
    prog = ir_to_tree(single_mapping(module))
    accel = resolve_arch(module, None, prog.arch)
    brute = _brute_force(prog, accel, lambda i, j: (i, j) == (0, 1))
    assert list(brute) == [(0, 1)]
    assert [label for label, _ in order_variants(prog)] == ["given order"]
