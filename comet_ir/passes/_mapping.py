"""Shared machinery of the mapping passes (comet-tile, -fuse, -distribute,
-insert-collectives, -verify-capacity).

The passes work on `comet_ir.spec.mapping_tree` (via `comet_ir.ir_tree`), the structure the
cost model prices, so a pass's output is exactly what `estimate_program` consumes.

Mapping semantics (the reference COMET mapping file's, see docs/passes.md):
- a `comet.tile` lists (tensor, served-op) pairs; per pair and dimension one loop factor;
  a temporal tile at level L moves, per iteration, one child tile of every pair from L to its
  `child` level; a spatial tile spreads its factors over the instances of the child level
  (X inner, Y outer);
- for every pair of the outermost tile, the product of its factors over the whole tree times
  the compute op's tile steps equals the problem dimension (every dimension, also those that
  do not index the tensor: their steps carry the full size);
- the data of a pair resident in a tile's `child` level is the product, over the dimensions
  that index the tensor, of the pair's factors in every tile nested inside (spatial tiles that
  spread the same level's instances excluded) times the tile steps.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Iterable

from xdsl.dialects import func
from xdsl.dialects.builtin import (
    BFloat16Type,
    Float16Type,
    Float32Type,
    Float64Type,
    IntegerType,
    ModuleOp,
    StringAttr,
)
from xdsl.ir import Operation, SSAValue

from comet_ir.errors import CometError
from comet_ir.spec.mapping_tree import (
    BindingNode,
    ColOpNode,
    ComputeNode,
    MappedProgram,
    Node,
    Problem,
    ProblemOp,
    TensorProjection,
    TileNode,
)

# ------------------------------------------------------------------ architecture view


@dataclass(frozen=True)
class ArchView:
    """What the mapping passes need to know about an accelerator (the reference's 3-level
    DRAM -> global buffer (per cluster) -> input/weight/output buffers (per core) machine)."""

    name: str
    dram: str = "DRAM"
    gb: str = "GB"
    ib: str = "IB"
    wb: str = "WB"
    ob: str = "OB"
    mac: str = "GEMMEngine"
    simd: str = "SE"
    capacity: dict = field(default_factory=dict)  # level -> bytes (per instance)
    clusters: tuple[int, int] = (2, 2)  # GB mesh (X, Y)
    cores: tuple[int, int] = (2, 2)  # core mesh per cluster (X, Y)
    gemm_primitive: tuple[int, int, int] = (8, 8, 32)  # M, N, K of one MAC-array step
    simd_lanes: int = 8  # N elements per SIMD step

    def levels(self) -> list[str]:
        return [self.dram, self.gb, self.ib, self.wb, self.ob]

    def level_of(self, name: str) -> str:
        return name


# Built-in descriptions of the paper's two accelerators, from the reference inputs
# (shared/reference/iterative_mapper/arch.yaml, arch_cloud.yaml and their const files):
# capacity = width * depth bytes; tile primitives = the consts' M/N/K_Compute and N_SM.
_BUILTIN = {
    "edge": ArchView("edge", capacity={"GB": 2048 * 1024, "IB": 4096 * 8, "WB": 4096 * 8,
                                       "OB": 4096 * 32},
                     clusters=(2, 2), cores=(2, 2), gemm_primitive=(8, 8, 32), simd_lanes=8),
    "cloud": ArchView("cloud", capacity={"GB": 4096 * 2048, "IB": 4096 * 8, "WB": 4096 * 8,
                                         "OB": 4096 * 32},
                      clusters=(4, 4), cores=(4, 4), gemm_primitive=(16, 2, 128), simd_lanes=2),
}


def _from_arch_object(name: str, a) -> ArchView | None:
    """Adapt the Arch object of comet_ir.spec.arch (when present) to an ArchView."""
    try:
        mems = {m.name: m for m in getattr(a, "memories", getattr(a, "levels", []))}
        if not mems:
            return None
        base = _BUILTIN.get(name, _BUILTIN["edge"])
        cap = dict(base.capacity)
        for lvl in ("GB", "IB", "WB", "OB"):
            m = mems.get(lvl)
            if m is not None and getattr(m, "width", None) and getattr(m, "depth", None):
                cap[lvl] = int(m.width) * int(m.depth)
        return replace(base, name=name, capacity=cap)
    except Exception:  # noqa: BLE001 - a foreign arch object: fall back to the built-in view
        return None


def arch_view(name: str | None) -> ArchView:
    if not name:
        raise CometError("no architecture: the module needs a comet.arch attribute (e.g. \"edge\")")
    view = None
    try:
        from comet_ir.spec.presets import load_arch  # the arch engineer's module, when landed

        view = _from_arch_object(name, load_arch(name))
    except ImportError:
        view = None
    except CometError:
        if name not in _BUILTIN:
            raise
    if view is None:
        view = _BUILTIN.get(name)
    if view is None:
        raise CometError(f"architecture '{name}' has no DRAM/GB/IB/WB/OB accelerator hierarchy "
                         f"that the mapping passes know (known: {', '.join(_BUILTIN)})")
    return view


def module_arch(module: ModuleOp) -> str | None:
    a = module.attributes.get("comet.arch")
    return a.data if isinstance(a, StringAttr) else None


# ------------------------------------------------------------------ workload analysis


def bits_of(t) -> int:
    if isinstance(t, IntegerType):
        return t.width.data
    if isinstance(t, (Float16Type, BFloat16Type)):
        return 16
    if isinstance(t, Float32Type):
        return 32
    if isinstance(t, Float64Type):
        return 64
    return 16


# workload op -> (problem-op base name, compute kind of the reference cost model, engine)
_KINDS = {
    "comet.gemm": ("GEMM", "GEMM", "mac"),
    "comet.softmax": ("SOFTMAX", "Softmax", "simd"),
    "comet.layernorm": ("LAYERNORM", "layernorm", "simd"),
    "comet.exp": ("EXP", "exp", "simd"),
    "comet.silu": ("SILU", "exp", "simd"),
    "comet.gelu": ("GELU", "exp", "simd"),
    "comet.scale": ("SCALE", "mult", "simd"),
    "comet.add": ("ADD", "add", "simd"),
    "comet.sub": ("SUB", "add", "simd"),
    "comet.mul": ("MUL", "mult", "simd"),
    "comet.div": ("DIV", "div", "simd"),
    "comet.rsqrt": ("RSQRT", "sqrt", "simd"),
    "comet.causal_mask": ("MASK", "add", "simd"),
}
_COMPOSITE = ("comet.attention", "comet.moe")
_REDUCE_KINDS = {"max": ("ROWMAX", "rowmax"), "add": ("ROWSUM", "rowsum"),
                 "mean": ("MEAN", "rowsum"), "min": ("ROWMIN", "rowmax")}


@dataclass
class WOp:
    """One workload op as a problem operation."""

    name: str
    kind: str  # compute kind
    engine: str  # mac | simd | collective
    ins: list[str]
    out: str
    op: Operation
    reduce_dim: str | None = None  # the dimension a row reduction removes
    reduce_op: str = "none"
    collective: dict | None = None


@dataclass
class Workload:
    name: str
    arch: str
    dims: dict[str, int]  # ordered
    tensors: dict[str, list[str | None]]  # tensor -> dim per axis (None: size-1 axis)
    bits: dict[str, int]
    ops: list[WOp]
    ins: list[str]
    outs: list[str]
    rows: list[str]  # row (independent) dims: outer to inner
    contraction: list[str]

    def proj(self, t: str) -> list[list[str]]:
        return [[d] for d in self.tensors[t] if d is not None]

    def tdims(self, t: str) -> list[str]:
        return [d for d in self.tensors[t] if d is not None]


class _UF:
    def __init__(self):
        self.parent: dict[int, int] = {}
        self.size: dict[int, int] = {}

    def new(self, size: int) -> int:
        i = len(self.parent)
        self.parent[i] = i
        self.size[i] = size
        return i

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int, where: Operation) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            if self.size[ra] != self.size[rb]:
                raise CometError(f"{where.name}: axes of sizes {self.size[ra]} and {self.size[rb]} "
                                 "must be the same dimension", )
            self.parent[rb] = ra


def analyse(module: ModuleOp) -> Workload:
    """Name the tensors (A, B, C, ...), the dimensions (M, N, K, B, H, ...) and the problem
    operations of the single workload function in `module`."""
    funcs = [o for o in module.walk() if isinstance(o, func.FuncOp)]
    if len(funcs) != 1:
        raise CometError(f"expected one func.func in workload form, found {len(funcs)}"
                         + ("; is the module already mapped?" if not funcs else ""))
    if any(o.name in _COMPOSITE for o in funcs[0].walk()):
        # describe the problem the composite ops decompose into (comet-tile itself refuses
        # composites: it must not choose a decomposition silently)
        from xdsl.context import Context

        from comet_ir.passes.decompose import DecomposePass

        copy_ = module.clone()
        DecomposePass().apply(Context(), copy_)
        return analyse(copy_)
    f = funcs[0]
    uf = _UF()
    axes: dict[SSAValue, list[int | None]] = {}
    tnames: dict[SSAValue, str] = {}
    order: list[SSAValue] = []

    def tname(v: SSAValue) -> str:
        if v not in tnames:
            i = len(tnames)
            tnames[v] = chr(ord("A") + i) if i < 26 else f"T{i}"
            order.append(v)
        return tnames[v]

    def fresh(v: SSAValue) -> list[int | None]:
        return [uf.new(s) if s != 1 else None for s in v.type.get_shape()]

    for a in f.body.block.args:
        axes[a] = fresh(a)
        tname(a)
    gemm_mnk: list[tuple[int, int, int | None]] = []
    batch_axes: list[int] = []
    wops: list[WOp] = []
    counts: dict[str, int] = {}
    ret = None
    for op in f.body.block.ops:
        if isinstance(op, func.ReturnOp):
            ret = op
            continue
        n = op.name
        if n in ("comet.attention", "comet.moe"):
            raise CometError(f"{n}: composite op; run comet-decompose before comet-tile")
        if n not in _KINDS and n not in ("comet.reduce", "comet.collective"):
            raise CometError(f"{n}: comet-tile cannot map this op onto the accelerator yet")
        x = op.operands[0]
        res = op.results[0]
        red_dim = None
        red_op = "none"
        coll = None
        if n == "comet.gemm":
            nb = op.field("batch")
            la, ra = axes[op.operands[0]], axes[op.operands[1]]
            for i in range(nb):
                if la[i] is not None and ra[i] is not None:
                    uf.union(la[i], ra[i], op)
            tb = op.field("transpose_b")
            rk, rn = (ra[nb + 1], ra[nb]) if tb else (ra[nb], ra[nb + 1])
            if la[nb + 1] is not None and rk is not None:
                uf.union(la[nb + 1], rk, op)
            axes[res] = la[:nb] + [la[nb], rn]
            gemm_mnk.append((la[nb], rn, la[nb + 1]))
            batch_axes.extend(a for a in la[:nb] if a is not None)
            base, kind, eng = _KINDS[n]
        elif n == "comet.reduce":
            ax = op.field("axis") % len(x.type.get_shape())
            a = list(axes[x])
            red = a[ax]
            a[ax] = None
            axes[res] = a
            base, kind = _REDUCE_KINDS[op.field("kind")]
            eng = "simd"
            red_dim, red_op = red, ("max" if op.field("kind") in ("max",) else
                                    "min" if op.field("kind") == "min" else "add")
        elif n == "comet.collective":
            a = list(axes[x])
            ax = op.field("axis") % len(a)
            if op.field("kind") in ("allgather", "gather", "reducescatter", "scatter"):
                a[ax] = uf.new(res.type.get_shape()[ax])
            axes[res] = a
            base, kind, eng = op.field("kind").upper(), op.field("kind"), "collective"
            coll = {"type": op.field("kind"), "reduce": op.field("reduce"), "axis_var": a[ax]}
        elif n in ("comet.add", "comet.sub", "comet.mul", "comet.div"):
            la, ra = axes[op.operands[0]], axes[op.operands[1]]
            rank = len(res.type.get_shape())
            la = [None] * (rank - len(la)) + la
            ra = [None] * (rank - len(ra)) + ra
            out = []
            for p, q in zip(la, ra):
                if p is not None and q is not None:
                    uf.union(p, q, op)
                out.append(p if p is not None else q)
            axes[res] = out
            base, kind, eng = _KINDS[n]
        else:
            axes[res] = list(axes[x])
            base, kind, eng = _KINDS[n]
            if n == "comet.softmax":
                red_dim = axes[x][op.field("axis") % len(axes[x])]
        counts[base] = counts.get(base, 0) + 1
        name = base if counts[base] == 1 else f"{base}{counts[base]}"
        ins = list(dict.fromkeys(tname(v) for v in op.operands))
        wops.append(WOp(name, kind, eng, ins, tname(res), op, red_dim, red_op, coll))
    if ret is None:
        raise CometError("workload function has no func.return")
    # name the dimension classes
    names: dict[int, str] = {}
    used: set[str] = set()

    def give(var, pref):
        if var is None:
            return
        r = uf.find(var)
        if r in names:
            return
        for p in pref:
            if p not in used:
                names[r] = p
                used.add(p)
                return

    spare = [c for c in "EFGJLPQRSTUVWXYZ"]
    for i, b in enumerate(batch_axes):
        give(b, ["B", "H"] + spare if i == 0 else ["H", "B"] + spare)
    for m, n_, k in gemm_mnk:
        give(m, ["M"] + spare)
        give(n_, ["N"] + spare)
        give(k, ["K"] + spare)
    out_v = ret.operands[0]
    pending = []
    for v in order:
        for a in axes[v]:
            if a is not None and uf.find(a) not in names:
                pending.append(a)
    # no GEMM: the output's last axis is N, the one before M
    if not gemm_mnk:
        oa = [a for a in axes[out_v] if a is not None]
        if oa:
            give(oa[-1], ["N"] + spare)
        if len(oa) >= 2:
            give(oa[-2], ["M"] + spare)
    for a in pending:
        give(a, spare + [f"D{i}" for i in range(100)])
    dims: dict[str, int] = {}
    for v in order:
        for a in axes[v]:
            if a is not None:
                dims.setdefault(names[uf.find(a)], uf.size[uf.find(a)])
    # tensor names: letters that are not dimension names (A, B, C, D, ...)
    letters = [c for c in "ABCDEFGIJLOPQRSTUVWXYZ" if c not in dims]
    for i, v in enumerate(order):
        tnames[v] = letters[i] if i < len(letters) else f"T{i}"
    for wop in wops:
        wop.ins = [tnames[v] for v in dict.fromkeys(wop.op.operands)]
        wop.out = tnames[wop.op.results[0]]
    tensors = {tnames[v]: [names[uf.find(a)] if a is not None else None for a in axes[v]]
               for v in order}
    for w in wops:
        if w.reduce_dim is not None:
            w.reduce_dim = names[uf.find(w.reduce_dim)]
        if w.collective is not None and w.collective["axis_var"] is not None:
            w.collective["dim"] = names[uf.find(w.collective["axis_var"])]
    out_dims = [d for d in tensors[tnames[out_v]] if d is not None]
    rows = out_dims[:-1]
    contraction = [d for d in dims if d not in out_dims]
    bits = {tnames[v]: bits_of(v.type.element_type) for v in order}
    return Workload(name=f.sym_name.data, arch=module_arch(module) or "", dims=dims,
                    tensors=tensors, bits=bits, ops=wops,
                    ins=[tnames[a] for a in f.body.block.args],
                    outs=[tnames[v] for v in ret.operands], rows=rows, contraction=contraction)


def problem_of(w: Workload) -> Problem:
    alld = list(w.dims)
    ops = []
    for o in w.ops:
        ts = list(dict.fromkeys(o.ins + [o.out]))
        ops.append(ProblemOp(name=o.name, ins=o.ins, out=o.out, dims=alld,
                             tensors=[TensorProjection(t, w.proj(t), t == o.out) for t in ts]))
    return Problem(dims=dict(w.dims), ops=ops, ins=list(w.ins), outs=list(w.outs))


# ------------------------------------------------------------------ tree helpers


def walk(node: Node, parents: tuple = ()) -> Iterable[tuple[Node, tuple]]:
    yield node, parents
    kids = node.body if isinstance(node, TileNode) else node.children if isinstance(node, BindingNode) else []
    for k in kids:
        yield from walk(k, parents + (node,))


def children(node: Node) -> list[Node]:
    if isinstance(node, TileNode):
        return node.body
    if isinstance(node, BindingNode):
        return node.children
    return []


def set_children(node: Node, kids: list[Node]) -> None:
    if isinstance(node, TileNode):
        node.body = kids
    elif isinstance(node, BindingNode):
        node.children = kids


def computes(node: Node) -> list[ComputeNode]:
    return [n for n, _ in walk(node) if isinstance(n, ComputeNode)]


def divisors(n: int) -> list[int]:
    """Ascending divisors of n, in O(sqrt n): a dimension of 10^9 made the O(n) scan hang."""
    import math

    small = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]
    return small + [n // d for d in reversed(small) if d * d != n]


def largest_divisor_le(n: int, cap: int) -> int:
    return max(d for d in divisors(n) if d <= max(1, cap))


def order_string(dims: list[str]) -> str:
    return ("," if any(len(d) > 1 for d in dims) else "").join(dims)


def pair_factor(tile: TileNode, i: int, d: str, level: int = 0) -> int:
    return tile.factors[level].get(d, [1] * len(tile.tensors))[i]


def scale_pair(tile: TileNode, i: int, d: str, mult: int, level: int = 0) -> None:
    lvl = tile.factors[level]
    if d not in lvl:
        lvl[d] = [1] * len(tile.tensors)
    lvl[d][i] = lvl[d][i] * mult


def program_from_module(module: ModuleOp):
    from comet_ir.ir_tree import find_mappings, ir_to_tree

    maps = find_mappings(module)
    if len(maps) != 1:
        return None, None
    return maps[0], ir_to_tree(maps[0])


def replace_mapping(mapping_op, program: MappedProgram) -> None:
    from comet_ir.ir_tree import tree_to_ir

    new = tree_to_ir(program)
    for k, v in mapping_op.attributes.items():
        new.attributes[k] = v
    parent = mapping_op.parent_block()
    parent.insert_op_before(new, mapping_op)
    parent.erase_op(mapping_op)


class located_at:
    """Give a CometError raised inside the block a location when it has none: the op the
    error is about is unknown there, so the pass's own subject (the workload function or the
    mapping, else the module) is named."""

    def __init__(self, module: ModuleOp):
        self.module = module

    def __enter__(self):
        return self

    def __exit__(self, kind, err, tb):
        if isinstance(err, CometError) and getattr(err, "op", None) is None and err.line is None:
            subject = next((o for o in self.module.walk()
                            if o.name == "comet.mapping" or isinstance(o, func.FuncOp)), None)
            err.op = subject or self.module
        return False


def require_mapped(module: ModuleOp, pass_name: str):
    m, prog = program_from_module(module)
    if m is None:
        funcs = [o for o in module.walk() if isinstance(o, func.FuncOp)]
        hint = "; run comet-tile first" if funcs else ""
        raise CometError(f"{pass_name}: expects the mapped form (one comet.mapping), "
                         f"found {'a workload func.func' if funcs else 'none'}{hint}")
    return m, prog


def op_kinds(program: MappedProgram) -> dict[str, ComputeNode]:
    return {c.name: c for c in computes(program.root)}


def is_mac(c: ComputeNode) -> bool:
    return c.op_type == "GEMM"


def arch_of(module: ModuleOp, program: MappedProgram | None = None) -> ArchView:
    return arch_view(module_arch(module) or (program.arch if program else None))
