"""`comet-tile{level=… factors=… order=…}`: workload form -> mapped form (temporal tiles).

Every problem operation gets its own loop nest, one temporal `comet.tile` per memory level
(unfused; `comet-fuse` merges nests, `comet-distribute` adds spatial tiles):

    comet.tile temporal at DRAM -> GB          rows (batch dims, M / r0)
      comet.tile temporal at GB -> IB|WB|OB    M / r1 (and K for a GEMM whose K does not fit)
        comet.tile temporal at IB|WB|OB -> engine   the rest
          comet.compute <kind> for <op> on <engine> steps = tile primitive

Default factors are the largest tiles that fit (double buffered), assuming the column
dimension N will be spread over every core of every cluster (clusters x cores) by
`comet-distribute`: the core-level row block is the largest whose tensors fit IB/WB/OB; the
GB row block the largest whose tensors fit the global buffer. Only row dimensions are tiled
at DRAM and GB (so producer and consumer nests can be fused); K moves to the GB level only
when a GEMM's operands would not fit the core buffers otherwise, and to the DRAM level only
when not even the smallest row block's operands (full K) fit the global buffer (the GEMM's
output then stays in the global buffer while the K chunks stream through it).

`col_split=true` also allows splitting the column dimension N at GB when a whole row's tiles
do not fit the core buffers (unfused / partially fused attention at long sequences: each
operation's own GB loop over N, a row reduction accumulating over it; `comet-fuse{level=full}`
refuses to share such a loop, flash attention uses comet-online-softmax instead).
`kv_loop=true` sizes the row blocks as if N were split that way but leaves N whole: the flash
pipeline's comet-online-softmax then makes the split a KV loop with online-softmax rescaling.

Options: `level` (DRAM, GB or core) with `factors` (`M4,K2` or `"M:4","K:2"`: loop factors of that level,
for every op that has the dimension) and `order` (loop order inner -> outer of that level).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from comet_ir.errors import CometError
from comet_ir.passes._mapping import (
    ArchView,
    Workload,
    WOp,
    analyse,
    arch_view,
    divisors,
    largest_divisor_le,
    order_string,
    problem_of,
)
from comet_ir.spec.mapping_tree import (
    BindingNode,
    ColOpNode,
    ComputeNode,
    MappedProgram,
    TileNode,
)

LEVELS = ("DRAM", "GB", "core")


def parse_factors(items: tuple[str, ...]) -> dict[str, int]:
    out = {}
    import re

    for it in items:
        m = re.fullmatch(r"\s*([A-Za-z_][A-Za-z_]*?\d*?)\s*:?\s*(\d+)\s*", str(it))
        if not m or int(m.group(2)) <= 0:
            raise CometError(f"comet-tile: bad factor '{it}' (expected DIM then a positive "
                             "integer: M8, or quoted \"M:8\")")
        out[m.group(1)] = int(m.group(2))
    return out


@dataclass
class Plan:
    steps: dict[str, dict[str, int]]  # op -> dim -> step
    levels: dict[str, dict[str, dict[str, int]]]  # op -> level -> dim -> factor
    orders: dict[str, str]  # level -> order


def op_dims(w: Workload, o: WOp) -> list[str]:
    ds = []
    for t in o.ins + [o.out]:
        for d in w.tdims(t):
            if d not in ds:
                ds.append(d)
    return ds


def buffers(arch: ArchView, o: WOp) -> list[str]:
    ts = list(dict.fromkeys(o.ins + [o.out]))
    if o.engine == "mac":
        m = {o.ins[0]: arch.ib, o.out: arch.ob}
        if len(o.ins) > 1:
            m[o.ins[1]] = arch.wb
        return [m[t] for t in ts]
    return [arch.ob] * len(ts)


def _bytes(w: Workload, t: str, ext: dict[str, int]) -> int:
    n = 1
    for d in w.tdims(t):
        n *= ext.get(d, w.dims[d])
    return n * w.bits[t] // 8 if w.bits[t] >= 8 else n


def plan(w: Workload, arch: ArchView, level: str | None = None,
         factors: dict[str, int] | None = None, order: str | None = None,
         col_split: bool = False, kv_loop: bool = False) -> Plan:
    mr = w.rows[-1] if w.rows else None
    batch = w.rows[:-1]
    nd = "N" if "N" in w.dims else None
    P = arch.clusters[0] * arch.clusters[1] * arch.cores[0] * arch.cores[1]
    cl = arch.clusters[0] * arch.clusters[1]
    compute_ops = [o for o in w.ops if o.engine != "collective"]

    def spread(d: str, parts: int) -> int:
        # N is spread over the units unless a later GEMM sums over it (attention's key
        # sequence: comet-distribute spreads heads and rows there)
        ok = d == nd and d not in w.contraction and w.dims[d] % parts == 0
        return w.dims[d] // parts if ok else w.dims[d]

    # tile steps (the compute primitive)
    steps: dict[str, dict[str, int]] = {}
    for o in compute_ops:
        ds = op_dims(w, o)
        st = {}
        for d in w.dims:
            if d not in ds:
                st[d] = w.dims[d]
            elif o.engine == "mac":
                pm, pn, pk = arch.gemm_primitive
                if d == nd or (d not in w.rows and d not in w.contraction):
                    st[d] = largest_divisor_le(spread(d, P), pn)
                elif d in w.contraction:
                    st[d] = largest_divisor_le(w.dims[d], pk)
                else:
                    st[d] = 1  # rows: fixed after the row block is chosen
            else:
                # the SIMD lanes run along the op's innermost input dimension (N for the row
                # ops; the head dim E for a division of the attention output)
                lane = w.tdims(o.ins[0])[-1] if w.tdims(o.ins[0]) else nd
                st[d] = (largest_divisor_le(spread(d, P), arch.simd_lanes)
                         if d == lane and d not in w.rows else 1)
        steps[o.name] = st
    user = factors or {}
    if level is not None and level not in LEVELS:
        raise CometError(f"comet-tile: level '{level}' is not a level of architecture "
                         f"'{arch.name}' (levels: DRAM, GB, core)")
    if user and level is None:
        raise CometError("comet-tile: factors= needs level= (DRAM, GB or core)")
    for d in user:
        if d not in w.dims:
            raise CometError(f"comet-tile: factors: unknown dimension '{d}' "
                             f"(the workload has {', '.join(w.dims)})")

    def fits_core(rows_c: int, kf: int, nf: int = 1) -> str | None:
        for o in compute_ops:
            ext = {d: spread(d, P) for d in w.dims}
            if nf > 1:
                ext[nd] = w.dims[nd] // nf
            if mr:
                ext[mr] = rows_c
            for b in batch:
                ext[b] = 1
            if o.engine == "mac" and kdim in op_dims(w, o):
                ext[kdim] = w.dims[kdim] // kf
            use: dict[str, int] = {}
            for t, buf in zip(dict.fromkeys(o.ins + [o.out]), buffers(arch, o)):
                use[buf] = use.get(buf, 0) + _bytes(w, t, ext)
            for buf, need in use.items():
                if 2 * need > arch.capacity[buf]:
                    return f"{o.name} needs {2 * need} bytes of {buf} ({arch.capacity[buf]} available)"
        return None

    kdim = w.contraction[0] if w.contraction else None
    rows_total = w.dims[mr] if mr else 1
    chosen = None
    kcands = divisors(w.dims[kdim] // largest_divisor_le(w.dims[kdim], arch.gemm_primitive[2])) if kdim else [1]
    why = None
    # col_split: N may also be split at GB (every op's own loop; a row reduction then
    # accumulates over the GB iterations), tried only when nothing fits with whole rows
    nsteps = math.gcd(*[w.dims[nd] // steps[o.name][nd] for o in compute_ops
                        if nd in op_dims(w, o)]) if nd else 1
    ncands = divisors(nsteps) if (col_split or kv_loop) and nd else [1]
    for nf in ncands:
        for kf in kcands:
            for rc in sorted(divisors(rows_total), reverse=True):
                why_c = fits_core(rc, kf, nf)
                if why_c is None:
                    chosen = (rc, kf, nf)
                    break
                why = why_c  # the last (smallest) candidate: what even that needs
            if chosen:
                break
        if chosen:
            break
    if chosen is None:
        raise CometError(f"comet-tile: no tiling fits the core buffers of '{arch.name}': {why}")
    rows_c, kf, nf = chosen
    if not col_split:
        nf = 1  # kv_loop: the row block is sized for N chunks comet-online-softmax will make
    # GB row block: all tensors of the problem, N spread over clusters; K whole, or (when not
    # even the core row block fits) split at DRAM into kd chunks, each chunk filling the
    # global buffer once (the GEMM's K loop then runs partly at DRAM).
    ksteps = w.dims[kdim] // largest_divisor_le(w.dims[kdim], arch.gemm_primitive[2]) if kdim else 1

    def gb_need(rg: int, kd: int) -> int:
        ext = {d: spread(d, cl) for d in w.dims}
        if mr:
            ext[mr] = rg
        for b in batch:
            ext[b] = 1
        if kdim:
            ext[kdim] = w.dims[kdim] // kd
        return 2 * sum(_bytes(w, t, ext) for t in w.tensors)  # whole rows (N) in GB

    rows_g, kd = rows_c, 1
    found = False
    for kd_c in divisors(ksteps):
        if kd_c > 1 and ksteps % math.lcm(kf, kd_c):
            continue
        for rg in sorted(divisors(rows_total), reverse=True):
            if rg % rows_c == 0 and gb_need(rg, kd_c) <= arch.capacity[arch.gb]:
                rows_g, kd, found = rg, kd_c, True
                break
        if found:
            break
    if kd > 1:
        kf = math.lcm(kf, kd)
    # per-op level factors
    levels: dict[str, dict[str, dict[str, int]]] = {}
    for o in compute_ops:
        ds = op_dims(w, o)
        st = steps[o.name]
        if o.engine == "mac" and mr in ds:
            st[mr] = largest_divisor_le(rows_c, arch.gemm_primitive[0])
        lv = {"DRAM": {d: 1 for d in w.dims}, "GB": {d: 1 for d in w.dims},
              "core": {d: 1 for d in w.dims}}
        for d in ds:
            if d in batch:
                lv["DRAM"][d] = w.dims[d]
            elif d == mr:
                lv["DRAM"][d] = rows_total // rows_g
                lv["GB"][d] = rows_g // rows_c
                lv["core"][d] = rows_c // st[d]
            elif d == nd and nf > 1:
                lv["GB"][d] = nf
                lv["core"][d] = w.dims[d] // (nf * st[d])
            elif o.engine == "mac" and d in w.contraction and d == kdim:
                lv["DRAM"][d] = kd
                lv["GB"][d] = kf // kd
                lv["core"][d] = w.dims[d] // (kf * st[d])
            else:
                lv["core"][d] = w.dims[d] // st[d]
        if level is not None:
            for d, f_ in user.items():
                if d not in ds:
                    continue
                cur = lv[level][d]
                total = w.dims[d] // st[d]
                # the user's factor replaces this level's; the core level absorbs the rest
                others = math.prod(lv[l][d] for l in LEVELS if l not in (level, "core"))
                if level == "core":
                    rest = total // others if total % others == 0 else 0
                    if rest != f_:
                        raise CometError(f"comet-tile: factor {d}:{f_} at level core of {o.name} "
                                         f"does not match {d} = {w.dims[d]} with the outer "
                                         f"factors ({others}) and step ({st[d]})")
                    continue
                if total % (others * f_):
                    raise CometError(f"comet-tile: factor {d}:{f_} at level {level} does not divide "
                                     f"{d} = {w.dims[d]} for {o.name} (outer factors {others}, "
                                     f"step {st[d]})")
                lv[level][d] = f_
                lv["core"][d] = total // (others * f_)
                del cur
        levels[o.name] = lv
    default = order_string(w.contraction + [d for d in w.dims if d not in w.contraction
                                            and d not in w.rows] + list(reversed(w.rows)))
    orders = {l: default for l in LEVELS}
    if order is not None:
        from comet_ir.dialects.comet_enums import split_order

        for d in split_order(order):
            if d not in w.dims:
                raise CometError(f"comet-tile: order '{order}': unknown dimension '{d}'")
        orders[level or "DRAM"] = order
    return Plan(steps, levels, orders)


def emit(w: Workload, arch: ArchView, p: Plan) -> MappedProgram:
    nests = []
    for o in w.ops:
        if o.engine == "collective":
            c = o.collective
            nests.append(ColOpNode(type=c["type"], tensor_in=o.ins[0], tensor_out=o.out,
                                   dimension=c.get("dim", list(w.dims)[0]), src=[arch.dram],
                                   dest=[arch.dram], target=arch.dram, child=arch.dram,
                                   precision=w.bits[o.ins[0]], reduce_op=c["reduce"], tag=o.name))
            continue
        ts = list(dict.fromkeys(o.ins + [o.out]))
        n = len(ts)
        bufs = buffers(arch, o)
        eng = arch.mac if o.engine == "mac" else arch.simd
        prec = [w.bits[t] for t in ts]
        wb = [t == o.out for t in ts]
        lv = p.levels[o.name]

        def fac(level):
            return [{d: [lv[level][d]] * n for d in w.dims}]

        st = p.steps[o.name]
        ds = op_dims(w, o)
        red_dims, red_f = [], []
        if o.engine == "mac":
            # what this GEMM sums over (QK^T sums K only, although N is contracted later)
            red_dims = [d for d in ds if d not in w.tdims(o.out)]
            red_f = [st[d] for d in red_dims]
        elif o.reduce_dim:
            red_dims, red_f = [o.reduce_dim], [st[o.reduce_dim]]
        comp = ComputeNode(op_type=o.kind, name=o.name, tensors=ts,
                           tile_primitive={d: st[d] for d in ds},
                           tile_steps={t: dict(st) for t in ts},
                           reduction_dims=red_dims, reduction_factors=red_f,
                           rmw=o.engine == "mac", specd=True, unit=eng)
        core = TileNode("temporal", bufs, ts, prec, [False] * n, wb, [o.name] * n, fac("core"),
                        p.orders["core"], [eng] * n, [comp])
        gb = TileNode("temporal", [arch.gb] * n, ts, prec, [False] * n, wb, [o.name] * n,
                      fac("GB"), p.orders["GB"], bufs, [core])
        dram = TileNode("temporal", [arch.dram] * n, ts, prec, [False] * n, wb, [o.name] * n,
                        fac("DRAM"), p.orders["DRAM"], [arch.gb] * n, [gb])
        nests.append(dram)
    root = nests[0] if len(nests) == 1 else BindingNode("sequential", nests)
    return MappedProgram(name=w.name, arch=w.arch, problem=problem_of(w), root=root)


def tile_module(module: ModuleOp, level=None, factors=None, order=None,
                col_split: bool = False, kv_loop: bool = False) -> MappedProgram:
    for o in module.walk():
        if o.name in ("comet.attention", "comet.moe"):
            raise CometError(f"{o.name}: composite op; run comet-decompose before comet-tile")
    w = analyse(module)
    arch = arch_view(w.arch)
    return emit(w, arch, plan(w, arch, level, factors, order, col_split, kv_loop))


@dataclass(frozen=True)
class TilePass(ModulePass):
    """Workload form -> mapped form: one temporal tile per memory level per operation."""

    name = "comet-tile"
    level: str | None = None
    factors: tuple[str, ...] = ()
    order: str | None = None
    col_split: bool = False
    kv_loop: bool = False

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        from comet_ir.passes._mapping import located_at

        with located_at(op):
            self._apply(ctx, op)

    def _apply(self, ctx: Context, op: ModuleOp) -> None:
        from comet_ir.ir_tree import tree_to_ir

        if any(o.name == "comet.mapping" for o in op.walk()):
            raise CometError("comet-tile: the module is already in mapped form (comet.mapping)")
        lvl = self.level
        if lvl in ("IB", "WB", "OB"):
            lvl = "core"
        prog = tile_module(op, lvl, parse_factors(self.factors), self.order, self.col_split,
                           self.kv_loop)
        funcs = [o for o in op.walk() if isinstance(o, func.FuncOp)]
        mapping = tree_to_ir(prog)
        block = funcs[0].parent_block()
        block.insert_op_before(mapping, funcs[0])
        block.erase_op(funcs[0])
