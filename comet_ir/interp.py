"""A numpy interpreter of the workload form: the oracle for "a pass preserved the semantics".

    from comet_ir.interp import run, run_spmd, random_inputs
    outs = run(module, [a, b])                 # single rank; returns a list of arrays
    outs = run_spmd(module, [[a0, b0], [a1, b1]])  # one input list per rank, collectives real

Arithmetic is done in float64 (integers are promoted) so that results of two forms of the same
program can be compared with tight tolerances; the declared element types are not emulated.
Every op's definition below is the reference semantics of the dialect:

- gemm: `A @ B` (`B^T` with transpose_b), leading `batch` dims batched.
- softmax / layernorm / reduce: over `axis`, reductions keep the axis with size 1.
- attention: softmax(Q K^T * scale [masked causally]) V with scale = 1/sqrt(D) unless given.
- moe: router logits x @ R; top-k experts per token (ties: lower index first); weights =
  softmax over the k selected logits (Mixtral); SwiGLU experts w2(silu(x w1) * (x w3)); the
  outputs summed with the weights.
- gelu: tanh approximation; silu: x * sigmoid(x).
- collectives (run_spmd only; `run` treats world=1 as identity and refuses world>1).
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import IntegerType, ModuleOp
from xdsl.ir import Operation, SSAValue

from comet_ir.errors import CometError

Array = np.ndarray


def _softmax(x: Array, axis: int) -> Array:
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    e = np.exp(x - m)
    return e / np.sum(e, axis=axis, keepdims=True)


def _layernorm(x: Array, axis: int, eps: float, gamma=None, beta=None) -> Array:
    mu = np.mean(x, axis=axis, keepdims=True)
    var = np.mean((x - mu) ** 2, axis=axis, keepdims=True)
    y = (x - mu) / np.sqrt(var + eps)
    if gamma is not None:
        shape = [1] * x.ndim
        shape[axis] = -1
        y = y * gamma.reshape(shape) + beta.reshape(shape)
    return y


def _silu(x: Array) -> Array:
    return x / (1.0 + np.exp(-x))


def _gelu(x: Array) -> Array:
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x ** 3)))


def _gemm(a: Array, b: Array, transpose_b: bool) -> Array:
    if transpose_b:
        b = np.swapaxes(b, -1, -2)
    return np.matmul(a, b)


def causal_mask(x: Array) -> Array:
    r, c = x.shape[-2], x.shape[-1]
    keep = np.tril(np.ones((r, c), dtype=bool))
    return np.where(keep, x, -np.inf)


def topk(x: Array, k: int) -> tuple[Array, Array]:
    """Largest k along the last axis, descending; ties broken by the lower index."""
    idx = np.argsort(-x, axis=-1, kind="stable")[..., :k]
    return np.take_along_axis(x, idx, axis=-1), idx.astype(np.int64)


def moe_slots(indices: Array, experts: int, capacity: int) -> list[tuple[int, int, int, int]]:
    """(token, choice, expert, slot) for every routed pair that fits in its expert's capacity."""
    fill = [0] * experts
    out = []
    for t in range(indices.shape[0]):
        for j in range(indices.shape[1]):
            e = int(indices[t, j])
            if fill[e] < capacity:
                out.append((t, j, e, fill[e]))
            fill[e] += 1
    return out


def moe_dispatch(x: Array, indices: Array, experts: int, capacity: int) -> Array:
    out = np.zeros((experts, capacity, x.shape[1]), dtype=np.float64)
    for t, _, e, c in moe_slots(indices, experts, capacity):
        out[e, c] = x[t]
    return out


def moe_combine(ye: Array, indices: Array, weights: Array) -> Array:
    experts, capacity, h = ye.shape
    y = np.zeros((indices.shape[0], h), dtype=np.float64)
    for t, j, e, c in moe_slots(indices, experts, capacity):
        y[t] += weights[t, j] * ye[e, c]
    return y


def moe(x, router, w1, w3, w2, topk_: int) -> Array:
    logits = x @ router
    vals, idx = topk(logits, topk_)
    w = _softmax(vals, -1)
    y = np.zeros_like(x, dtype=np.float64)
    for t in range(x.shape[0]):
        for j in range(topk_):
            e = idx[t, j]
            h = _silu(x[t] @ w1[e]) * (x[t] @ w3[e])
            y[t] += w[t, j] * (h @ w2[e])
    return y


def attention(q, k, v, causal: bool, scale: float | None) -> Array:
    s = np.matmul(q, np.swapaxes(k, -1, -2)) * (scale if scale is not None else 1.0 / np.sqrt(q.shape[-1]))
    if causal:
        s = causal_mask(s)
    return np.matmul(_softmax(s, -1), v)


_REDUCE = {"add": np.sum, "max": np.max, "min": np.min, "mean": np.mean}
_BINARY = {"comet.add": np.add, "comet.sub": np.subtract, "comet.mul": np.multiply,
           "comet.div": np.divide}
_UNARY = {"comet.exp": np.exp, "comet.silu": _silu, "comet.gelu": _gelu,
          "comet.causal_mask": causal_mask}


def eval_op(op: Operation, args: list[Array]) -> list[Array]:
    """Evaluate one workload op on one rank (collectives excluded)."""
    n = op.name
    f = op.field if hasattr(op, "field") else None
    if n == "comet.gemm":
        return [_gemm(args[0], args[1], f("transpose_b"))]
    if n == "comet.softmax":
        return [_softmax(args[0], f("axis"))]
    if n == "comet.layernorm":
        g, b = (args[1], args[2]) if len(args) == 3 else (None, None)
        return [_layernorm(args[0], f("axis") % args[0].ndim, f("eps"), g, b)]
    if n in _UNARY:
        return [_UNARY[n](args[0])]
    if n == "comet.scale":
        return [args[0] * f("factor")]
    if n == "comet.rsqrt":
        return [1.0 / np.sqrt(args[0] + f("eps"))]
    if n in _BINARY:
        with np.errstate(divide="ignore", invalid="ignore"):
            return [_BINARY[n](args[0], args[1])]
    if n == "comet.reduce":
        return [_REDUCE[f("kind")](args[0], axis=f("axis"), keepdims=True)]
    if n == "comet.attention":
        scale = op.properties.get("scale")
        return [attention(*args, f("causal"), scale.value.data if scale is not None else None)]
    if n == "comet.moe":
        return [moe(*args, f("topk"))]
    if n == "comet.topk":
        v, i = topk(args[0], f("k"))
        return [v, i]
    if n == "comet.moe_dispatch":
        return [moe_dispatch(args[0], args[1], f("experts"), f("capacity"))]
    if n == "comet.moe_combine":
        return [moe_combine(*args)]
    raise CometError(f"{n}: the interpreter does not know this op")


def _collective(op: Operation, per_rank: list[Array]) -> list[Array]:
    kind, axis, world = op.field("kind"), op.field("axis"), op.field("world")
    red = op.field("reduce")
    if len(per_rank) != world:
        raise CometError(f"{op.name} {kind}: world={world} but the program runs on {len(per_rank)} ranks")
    axis = axis % per_rank[0].ndim
    combine = {"add": np.add, "max": np.maximum, "min": np.minimum, "mul": np.multiply}
    if kind in ("allgather", "gather"):
        full = np.concatenate(per_rank, axis=axis)
        return [full] * world  # `gather` materialised on every rank (shapes are per rank)
    if kind in ("allreduce", "reduce"):
        acc = per_rank[0]
        for x in per_rank[1:]:
            acc = combine[red](acc, x)
        return [acc] * world
    if kind == "reducescatter":
        acc = per_rank[0]
        for x in per_rank[1:]:
            acc = combine[red](acc, x)
        return list(np.split(acc, world, axis=axis))
    if kind == "scatter":
        return list(np.split(per_rank[0], world, axis=axis))
    if kind == "broadcast":
        return [per_rank[0]] * world
    if kind == "alltoall":
        chunks = [np.split(x, world, axis=axis) for x in per_rank]
        return [np.concatenate([chunks[src][dst] for src in range(world)], axis=axis)
                for dst in range(world)]
    raise CometError(f"{op.name}: unknown collective '{kind}'")


def find_func(module: Operation, name: str | None = None) -> func.FuncOp:
    fs = [o for o in module.walk() if isinstance(o, func.FuncOp)]
    if name is not None:
        fs = [o for o in fs if o.sym_name.data == name]
    if not fs:
        raise CometError("no func.func" + (f" named @{name}" if name else "") +
                         " in the module (the interpreter runs the workload form)")
    return fs[0]


def _run_block(block, env: dict[SSAValue, list[Array]], ranks: int) -> list[list[Array]]:
    for op in block.ops:
        if isinstance(op, func.ReturnOp) or op.name == "comet.yield":
            return [env[v] for v in op.operands]
        if op.name == "comet.compound":
            inner = dict(env)
            for a, v in zip(op.body.block.args, op.operands):
                inner[a] = env[v]
            outs = _run_block(op.body.block, inner, ranks)
        elif op.name == "comet.collective":
            outs = [_collective(op, env[op.operands[0]])]
        else:
            per_rank = [eval_op(op, [env[v][r] for v in op.operands]) for r in range(ranks)]
            outs = [[per_rank[r][i] for r in range(ranks)] for i in range(len(op.results))]
        for res, val in zip(op.results, outs):
            shape = tuple(res.type.get_shape())
            for x in val:
                if tuple(np.shape(x)) != shape:
                    raise CometError(f"{op.name}: interpreter produced shape {np.shape(x)}, "
                                     f"the IR declares {shape}")
            env[res] = val
    raise CometError("block has no terminator")


def run_spmd(module: Operation, inputs: Sequence[Sequence[Array]], name: str | None = None) -> list[list[Array]]:
    """Run the function on len(inputs) ranks; returns per-rank output lists."""
    f = find_func(module, name)
    ranks = len(inputs)
    args = list(f.body.block.args)
    for r, ins in enumerate(inputs):
        if len(ins) != len(args):
            raise CometError(f"@{f.sym_name.data} takes {len(args)} inputs, rank {r} got {len(ins)}")
        for i, (a, x) in enumerate(zip(args, ins)):
            if tuple(np.shape(x)) != tuple(a.type.get_shape()):
                raise CometError(f"@{f.sym_name.data}: input {i} has shape {np.shape(x)}, "
                                 f"expected {tuple(a.type.get_shape())}")
    env = {a: [np.asarray(inputs[r][i], dtype=np.float64) for r in range(ranks)]
           for i, a in enumerate(args)}
    outs = _run_block(f.body.block, env, ranks)
    return [[o[r] for o in outs] for r in range(ranks)]


def run(module: Operation, inputs: Sequence[Array], name: str | None = None) -> list[Array]:
    """Run the function on one rank (collectives must have world = 1)."""
    return run_spmd(module, [inputs], name)[0]


def random_inputs(module: Operation, seed: int = 0, name: str | None = None,
                  ranks: int | None = None):
    """Random inputs for the function's arguments: small integers for integer tensors, normal
    floats otherwise. With `ranks`, one list per rank."""
    f = find_func(module, name)
    rng = np.random.default_rng(seed)

    def one():
        out = []
        for a in f.body.block.args:
            shape = tuple(a.type.get_shape())
            if isinstance(a.type.element_type, IntegerType):
                out.append(rng.integers(-4, 5, size=shape).astype(np.float64))
            else:
                out.append(rng.standard_normal(shape))
        return out

    return one() if ranks is None else [one() for _ in range(ranks)]


# ---------------------------------------------------------------- chunked (mapped) programs

def run_chunked(module: Operation, program, inputs: Sequence[Array]) -> list[Array]:
    """Run workload `module` in the loop structure of its mapped form `program`, where a
    temporal tile splits a reduced dimension into chunks (comet-online-softmax's KV loop).

    The operations under that tile run once per chunk on the chunk's slices, in program order;
    the others once on whole tensors. A loop op whose output does not index the chunked
    dimension accumulates across chunks (a row max keeps the running max, a row sum or a GEMM
    adds). The mapped form's own operations have their online-softmax meaning:
    `CORR` (ins [m] out r): r = exp(m before this chunk - m now); `RESCALE_<t>` (ins [t, r]):
    t = t * r. Without them the chunked program is not the workload (that is what a test of
    comet-online-softmax checks against `run`)."""
    from comet_ir.passes._mapping import analyse, walk
    from comet_ir.spec.mapping_tree import ComputeNode, TileNode

    w = analyse(module)
    wops = {o.name: o for o in w.ops}
    comps = [(n, ps) for n, ps in walk(program.root) if isinstance(n, ComputeNode)]
    # the chunk loop: a tile shared by several ops that iterates a dimension some op under
    # it reduces (a rows loop reduces nothing; a GEMM's private K loop serves one op)
    loop, d, chunks = None, None, 1
    for n, ps in walk(program.root):
        if isinstance(n, TileNode) and n.kind == "temporal" and len(set(n.tags)) > 1:
            reduced = {x for c, _ in walk(n) if isinstance(c, ComputeNode) for x in c.reduction_dims}
            big = [(k, max(v)) for k, v in n.factors[0].items() if max(v) > 1 and k in reduced]
            if len(big) == 1:
                loop, (d, chunks) = n, big[0]
                break
    in_loop = {n.name for n, ps in comps if loop is not None and any(p is loop for p in ps)}
    vals: dict[str, Array] = {t: np.asarray(x, dtype=np.float64) for t, x in zip(w.ins, inputs)}
    problem = {o.name: o for o in program.problem.ops}

    def axis(t: str):
        return w.tensors[t].index(d) if d in w.tensors.get(t, []) else None

    def shape_of(t: str):
        return tuple(w.dims[x] if x is not None else 1 for x in w.tensors[t])

    def piece(t: str, j: int) -> Array:
        a = axis(t)
        if a is None:
            return vals[t]
        n = w.dims[d] // chunks
        return np.take(vals[t], range(j * n, (j + 1) * n), axis=a)

    def run_op(name: str, j: int | None, before: dict[str, Array]) -> None:
        if name == "CORR":
            m = problem[name].ins[0]
            r = problem[name].out
            with np.errstate(invalid="ignore"):
                vals[r] = np.exp(before[m] - vals[m])
            return
        if name.startswith("RESCALE_"):
            t, r = problem[name].ins
            if r not in vals:
                raise CometError(f"{name}: the correction {r} is not computed before it")
            if t in vals:  # before the first chunk the running sum is zero
                vals[t] = vals[t] * vals[r]
            return
        o = wops[name]
        if j is None:
            vals[o.out] = eval_op(o.op, [vals[t] for t in o.ins])[0]
            return
        if o.op.name == "comet.causal_mask":  # mask by global column index
            x = piece(o.ins[0], j)
            n = w.dims[d] // chunks
            rows, cols = x.shape[-2], x.shape[-1]
            keep = np.arange(rows)[:, None] >= (np.arange(cols)[None, :] + j * n)
            res = np.where(keep, x, -np.inf)
        else:
            res = eval_op(o.op, [piece(t, j) for t in o.ins])[0]
        a = axis(o.out)
        if a is not None:
            if o.out not in vals:
                vals[o.out] = np.zeros(shape_of(o.out))
            n = w.dims[d] // chunks
            idx = [slice(None)] * res.ndim
            idx[a] = slice(j * n, (j + 1) * n)
            vals[o.out][tuple(idx)] = res
        elif o.reduce_op == "max" and o.op.name == "comet.reduce":
            vals[o.out] = np.maximum(vals[o.out], res) if j else res
        elif (o.op.name == "comet.reduce" and o.op.field("kind") == "add") or o.kind == "GEMM":
            vals[o.out] = vals[o.out] + res if j else res
        else:
            raise CometError(f"{name}: reduces the chunked dimension {d} in a way the chunked "
                             "interpreter cannot accumulate")

    order = [n.name for n, _ in comps]
    k = 0
    while k < len(order):
        name = order[k]
        if name not in in_loop:
            run_op(name, None, {})
            k += 1
            continue
        body = []
        while k < len(order) and order[k] in in_loop:
            body.append(order[k])
            k += 1
        for j in range(chunks):
            before = dict(vals)
            if j == 0:  # the running max starts below every score
                for nm in body:
                    if nm == "CORR":
                        m = problem[nm].ins[0]
                        before[m] = np.full(shape_of(m), -np.inf)
            for nm in body:
                run_op(nm, j, before)
    return [vals[t] for t in w.outs]
