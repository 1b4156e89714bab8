"""`comet-online-softmax{chunks=0}`: tile the key-sequence dimension of a fused attention
(flash attention's KV loop) with online-softmax corrections.

Input: the mapped form of `comet-decompose{flash=true}` (deferred normalisation:
m = rowmax s; e = exp(s - m); u = e @ V; l = rowsum e; o = u / l) after
`comet-fuse{level=full}` (and normally `comet-distribute`). The row reduction's dimension d
(the key sequence N) is then still whole inside every row block, so the scores of a row
block and the K/V slices must fit on chip at once.

With `chunks = c > 1` a temporal tile at the global buffer (the KV loop, factor c over d,
moving the K and V chunks to the core buffers) is put around the operations that index d;
operations after them that do not (the final division) stay outside it. Inside the loop the
row max becomes a running max and every running sum that depends on it is rescaled, exactly
the online softmax of flash attention:

    per chunk j:  m_j = max(m_{j-1}, rowmax s_j)          ROWMAX (running)
                  r   = exp(m_{j-1} - m_j)                 CORR    (new op, exp on the row)
                  e_j = exp(s_j - m_j)                     SUB, EXP
                  l   = l * r ;  l += rowsum e_j           RESCALE_<l>, ROWSUM
                  u   = u * r ;  u += e_j @ V_j            RESCALE_<u>, GEMM2
    after:        o   = u / l                              DIV

CORR / RESCALE_* are new problem operations (names are their role: `comet_ir.interp.run_chunked`
gives them these semantics and checks the chunked program against the workload). `chunks=0`
picks the smallest c whose tiles fit every buffer (comet-verify-capacity's rule); c = 1 leaves
the program unchanged.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from comet_ir.errors import CometError
from comet_ir.passes._mapping import arch_of, replace_mapping, require_mapped, walk
from comet_ir.passes.verify_capacity import check_capacity
from comet_ir.spec.mapping_tree import (
    BindingNode,
    ComputeNode,
    MappedProgram,
    ProblemOp,
    TensorProjection,
    TileNode,
)

CORR = "CORR"
RESCALE = "RESCALE_"


def _indexed(program: MappedProgram) -> dict[str, set[str]]:
    return {o.name: {d for t in o.tensors for r in t.projection for d in r} for o in program.problem.ops}


def _find(program: MappedProgram):
    """(shared GB tile, its binding, the row max, the reduced dim) of the fused attention."""
    rowmax = [(n, ps) for n, ps in walk(program.root)
              if isinstance(n, ComputeNode) and n.op_type == "rowmax" and n.reduction_dims]
    if len(rowmax) != 1:
        raise CometError("comet-online-softmax: expects one row max (a decomposed softmax); "
                         f"found {len(rowmax)}")
    comp, parents = rowmax[0]
    d = comp.reduction_dims[0]
    for k in range(len(parents) - 1, 0, -1):
        b, t = parents[k], parents[k - 1]
        if isinstance(b, BindingNode) and isinstance(t, TileNode) and t.kind == "temporal" \
                and len(set(t.tags)) > 1:
            return t, b, comp, d
    raise CometError("comet-online-softmax: the row max is not inside a fused tile; run "
                     "comet-fuse{level=full} first")


def _item_of(binding: BindingNode, comp: ComputeNode):
    for k in binding.children:
        if any(n is comp for n, _ in walk(k)):
            return k
    raise KeyError(comp.name)


def _fresh_name(program: MappedProgram) -> str:
    used = set(program.problem.dims)
    for o in program.problem.ops:
        used |= {t.name for t in o.tensors}
    for c in "RSTUVWXYZ" + "ABCDEFGHIJKLOPQ":
        if c not in used:
            return c
    return f"T{len(used)}"


def _clone(item, src: ComputeNode, src_tensor: str, name: str, op_type: str,
           tensors: list[str], dims: dict[str, int], indexed: set[str]):
    """A copy of `item` (the template op's spatial/core subtree) computing op `name` on
    `tensors` (last = output) with the template pair of `src_tensor`'s factors on the
    dimensions the new op indexes, 1 elsewhere."""
    new = copy.deepcopy(item)
    n = len(tensors)
    for node, _ in walk(new):
        if isinstance(node, TileNode):
            i = node.tensors.index(src_tensor)
            node.factors = [{d: [lvl.get(d, [1] * len(node.tensors))[i] if d in indexed else 1] * n
                             for d in dims} for lvl in node.factors]
            node.targets = [node.targets[i]] * n
            node.child_levels = [node.child_levels[i]] * n
            node.precision = [node.precision[i]] * n
            node.rmw = [False] * n
            node.wb_output = [False] * (n - 1) + [True]
            node.tags = [name] * n
            node.tensors = list(tensors)
        elif isinstance(node, ComputeNode):
            st = {d: (src.tile_steps[src_tensor].get(d, 1) if d in indexed else dims[d]) for d in dims}
            node.op_type, node.name, node.tensors = op_type, name, list(tensors)
            node.tile_primitive = {d: v for d, v in src.tile_primitive.items() if d in indexed}
            node.tile_steps = {t: dict(st) for t in tensors}
            node.reduction_dims, node.reduction_factors, node.rmw = [], [], False
    return new


def _divide(program: MappedProgram, comp: ComputeNode, d: str, c: int, outer: TileNode) -> None:
    """Divide op `comp`'s own temporal loops over d (inside `outer`) by c, innermost first."""
    path = []
    for n, parents in walk(outer):
        if n is comp:
            path = [p for p in parents if isinstance(p, TileNode) and p.kind == "temporal"
                    and p is not outer]
    left = c
    for t in reversed(path):
        idx = [i for i, g in enumerate(t.tags) if g == comp.name]
        if not idx or set(t.tags) != {comp.name}:
            continue
        g = math.gcd(t.factors[0].get(d, [1])[idx[0]], left)
        for i in idx:
            t.factors[0][d][i] //= g
        left //= g
        if left == 1:
            return
    raise CometError(f"comet-online-softmax: {d} loop of {comp.name} is not divisible into "
                     f"{c} chunks")


def _loop_factor(outer: TileNode, comp: ComputeNode, d: str) -> int:
    f = comp.tile_steps[comp.tensors[0]].get(d, 1)
    for n, parents in walk(outer):
        if n is comp:
            for p in parents:
                if isinstance(p, TileNode) and p is not outer:
                    i = [k for k, g in enumerate(p.tags) if g == comp.name]
                    if i:
                        for lvl in p.factors:
                            f *= lvl.get(d, [1] * len(p.tensors))[i[0]]
    return f // comp.tile_steps[comp.tensors[0]].get(d, 1)


def chunk(program: MappedProgram, c: int) -> MappedProgram:
    """The program with the key-sequence loop split into `c` chunks (c = 1: unchanged)."""
    if c == 1:
        _find(program)
        return program
    program = copy.deepcopy(program)
    shared, binding, rowmax, d = _find(program)
    idx = _indexed(program)
    comps = [n for n, _ in walk(binding) if isinstance(n, ComputeNode)]
    items = list(binding.children)
    in_loop = [c_ for c_ in comps if d in idx[c_.name]]
    order = [items.index(_item_of(binding, c_)) for c_ in in_loop]
    last = max(order)
    post = [c_ for c_ in comps if c_ not in in_loop]
    if any(items.index(_item_of(binding, p)) < last for p in post):
        raise CometError(f"comet-online-softmax: an operation that does not index {d} runs "
                         f"between the key-sequence operations; use comet-decompose{{flash=true}} "
                         "(normalise after the second GEMM)")
    for s_ in in_loop:
        if s_.op_type == "rowsum" and any(s_.tensors[-1] in u.tensors[:-1] for u in in_loop):
            raise CometError(f"comet-online-softmax: the row sum {s_.tensors[-1]} is used inside "
                             f"the {d} loop (softmax normalised before the second GEMM); "
                             "decompose with comet-decompose{flash=true}")
    if not any(c_.op_type == "GEMM" and d in c_.reduction_dims for c_ in in_loop):
        raise CometError(f"comet-online-softmax: no GEMM contracts {d} after the softmax "
                         "(not an attention)")
    for c_ in in_loop:
        _divide(program, c_, d, c, shared)
    dims = program.problem.dims
    r = _fresh_name(program)
    i_max = rowmax.tensors[-1]
    popname = {o.name: o for o in program.problem.ops}
    proj = {t.name: t.projection for o in program.problem.ops for t in o.tensors}

    def problem_op(name, ins, out):
        ts = list(dict.fromkeys(ins + [out]))
        return ProblemOp(name=name, ins=ins, out=out, dims=list(dims),
                         tensors=[TensorProjection(t, proj[t], t == out) for t in ts])

    proj[r] = proj[i_max]
    row_idx = {x for rk in proj[i_max] for x in rk}
    new_items: list = []
    new_ops: dict[str, list[ProblemOp]] = {}  # before which problem op
    for it in items[: last + 1]:
        here = [c_ for c_ in in_loop if any(n is c_ for n, _ in walk(it))]
        for c_ in here:
            acc = c_.tensors[-1]
            if c_ is not rowmax and (c_.op_type == "rowsum" or
                                     (c_.op_type == "GEMM" and d in c_.reduction_dims)) \
                    and d not in {x for rk in proj[acc] for x in rk}:
                # a running sum over d of exp(s - running max): rescale it first
                name = RESCALE + acc
                acc_idx = {x for rk in proj[acc] for x in rk}
                tmpl_item, tmpl, src = it, c_, acc
                if c_.op_type == "GEMM":  # a SIMD op on the GEMM output: the division's tiles
                    tmpl = next((p for p in post if acc in p.tensors), None)
                    if tmpl is None:
                        raise CometError(f"comet-online-softmax: {acc} is not used after the loop")
                    tmpl_item = _item_of(binding, tmpl)
                new_items.append(_clone(tmpl_item, tmpl, src, name, "mult", [r, acc],
                                        dims, acc_idx))
                new_ops.setdefault(c_.name, []).append(problem_op(name, [acc, r], acc))
        new_items.append(it)
        if rowmax in here:
            new_items.append(_clone(it, rowmax, i_max, CORR, "exp", [i_max, r], dims, row_idx))
            new_ops.setdefault("__after__" + rowmax.name, []).append(
                problem_op(CORR, [i_max], r))
    ops = []
    for o in program.problem.ops:
        ops.extend(new_ops.get(o.name, []))
        ops.append(o)
        ops.extend(new_ops.get("__after__" + o.name, []))
    program.problem.ops = ops
    # the KV loop moves the chunks of the loop's inputs that come from outside (K, V)
    produced = {c_.tensors[-1] for c_ in comps}
    pairs = []
    for c_ in in_loop:
        core = next(p for n, ps in walk(shared) if n is c_ for p in reversed(ps)
                    if isinstance(p, TileNode) and p.kind == "temporal")
        for t in c_.tensors[:-1]:
            # every operand from outside (Q too: the factor rule counts every dimension of
            # a pair; a tensor that does not index d is simply reused across the chunks)
            if t not in produced and (t, c_.name) not in [(p[0], p[1]) for p in pairs]:
                k = core.tensors.index(t)
                pairs.append((t, c_.name, core.precision[k], core.targets[k]))
    del popname
    kv = TileNode("temporal", [shared.targets[0]] * len(pairs), [p[0] for p in pairs],
                  [p[2] for p in pairs], [False] * len(pairs), [False] * len(pairs),
                  [p[1] for p in pairs],
                  [{x: [c if x == d else 1] * len(pairs) for x in dims}], shared.order,
                  [p[3] for p in pairs], [BindingNode("sequential", new_items)])
    binding.children = [kv] + items[last + 1:]
    return program


def auto_chunks(program: MappedProgram, arch) -> int:
    shared, binding, rowmax, d = _find(program)
    idx = _indexed(program)
    comps = [n for n, _ in walk(binding) if isinstance(n, ComputeNode) and d in idx[n.name]]
    most = math.gcd(*[_loop_factor(shared, c_, d) for c_ in comps])
    err = None
    for c in [x for x in range(1, most + 1) if most % x == 0]:
        cand = chunk(program, c)
        try:
            check_capacity(cand, arch)
            return c
        except CometError as e:
            err = e
    raise CometError(f"comet-online-softmax: no chunking of {d} (up to {most} chunks) fits: "
                     f"{err.message if err else ''}")


@dataclass(frozen=True)
class OnlineSoftmaxPass(ModulePass):
    """Split the key-sequence loop of a fused attention with online-softmax rescaling."""

    name = "comet-online-softmax"
    chunks: int = 0

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        from comet_ir.passes._mapping import located_at

        with located_at(op):
            self._apply(ctx, op)

    def _apply(self, ctx: Context, op: ModuleOp) -> None:
        if self.chunks < 0:
            raise CometError(f"comet-online-softmax: chunks={self.chunks} must be >= 0 "
                             "(0: the smallest number that fits)")
        m, prog = require_mapped(op, "comet-online-softmax")
        try:
            c = self.chunks or auto_chunks(prog, arch_of(op, prog))
            if c > 1:
                replace_mapping(m, chunk(prog, c))
            else:
                _find(prog)
        except CometError as e:
            e.op = m
            raise
