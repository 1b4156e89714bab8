"""Steady-state walk of a mapped program: the reference COMET latency/energy mechanism.

Stated in our words (paper Sec. IV; behaviour of the reference implementation, which we read
to learn the model and re-implement here):

* Loop nest. Walking the tree bottom-up, every (tensor, op-tag) pair accumulates a *stride*
  (its tile extent per dimension, starting from the op's TileSteps) and a *tilestep* count.
  A temporal tile's iterations for a tensor are the product of its factors; a spatial tile
  inherits its parent's iteration count when both sit on the same memory.
* Data movement per iteration. A temporal tile walks its loops inner -> outer; an iteration
  moves a new tile of a tensor only if the projected tile differs from the previous
  iteration's (otherwise `unique = 0`, i.e. reuse). A spatial tile sends, per parent
  iteration, `unique` distinct projected tiles to `count` children.
* Transfer time of one iteration = max(target time, child time) + link time, where the target
  time is the unique tiles' bytes over the target's (port- and network-limited) bandwidth,
  times a scatter factor when the link cannot broadcast/reduce, plus a read for
  read-modify-write drains; link time = hops x t_router + payload bits / channel width x
  t_queue (units.link_latency).
* Double buffering is always assumed: per iteration, a transfer overlaps the compute window of
  the child; the first read of a read tensor is a ramp-up and the last write-back of a
  read-write tensor a ramp-down (*compulsory* stalls); every other iteration stalls by
  max(0, transfer - window) (*optional* stalls). Tensors from one memory port share the
  window (each one's transfer is taken out of the others' windows); different memories
  proceed in parallel (max). A dependent (intermediate) tensor under a sequential binding
  cannot be hidden: its whole transfer is a stall.
* A node costs compute window + ramp-up + ramp-down + stalls. Sequential siblings add up;
  collectives under a temporal tile run once per iteration. Pipeline / parallel siblings are
  stages sharing one window per iteration of their tile: the binding's step (slowest stage or
  busiest shared resource) instead of the sum, plus fill / drain for a pipeline, never more
  than the sequential price (`Walker._visit_staged`, `binding_cost`).
* Energy: accesses x tile bytes / width x per-access energy per level, x2 for RMW, scaled
  by the enclosing iterations and spatial instances; compute energy per op class; NoC energy
  of every link transfer and collective (noc_energy.py).

Where the reference depends on an uninitialised value (a spatial tile's tensor that its parent
does not hold reuses the previous tensor's parent slot) we emulate it, so that the recorded
outputs are reproduced; docs/cost-model.md lists these quirks.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from comet_ir.backends.cost import units
from comet_ir.errors import CometError
from comet_ir.spec.mapping_tree import BindingNode, ColOpNode, ComputeNode, MappedProgram, TileNode
from comet_ir.spec.refarch import Accel, Link

U32 = 0xFFFFFFFF


def _i32(v: int) -> int:
    v &= U32
    return v - (1 << 32) if v & 0x80000000 else v


# ------------------------------------------------------------------------------ per-node data


@dataclass
class Mov:
    size: int  # elements of one (projected) tile
    unique: int  # distinct tiles moved this iteration (0 = reused)
    count: int  # spatial destinations


@dataclass
class Loop:
    node: TileNode
    tids: list[int]
    rw: list[bool]
    dependent: list[bool]
    iters: list[int]
    sp_iters: list[int]
    rts: list[int]  # tilesteps of the tensor below this node
    desc: list[list[dict[str, tuple[int, int]]]]  # per tensor, per level: dim -> (end, stride)
    order: list[str]

    @property
    def spatial(self) -> bool:
        return self.node.kind == "spatial"


@dataclass
class TC:
    """Cost of one tensor's transfers on one port (0 read, 1 write) -- or a merged port."""

    n: int = 0
    compute_time: int = 0
    mem_net: list[int] = field(default_factory=list)
    stall: list[int] = field(default_factory=list)
    cstall: list[int] = field(default_factory=list)
    ctv: list[int] = field(default_factory=list)
    reuse: int = 0
    hide: bool = True
    cum: int = 0
    cum_stall: int = 0
    ramp_up: int = 0
    ramp_down: int = 0
    access: int = 1
    tile: int = 1
    noc: float = 0.0

    @staticmethod
    def sized(n: int) -> "TC":
        return TC(n, 0, [0] * n, [0] * n, [0] * n, [0] * n)


@dataclass
class Access:
    level: str
    count: int
    tile: int = 0
    prec: int = 0
    rw: bool = False
    target: bool = True
    compute: bool = False
    tid: int = 0
    tag: str = ""
    rmw: bool = False
    proj: int = 1
    noc: float = 0.0
    op: str = ""
    comp_pj: float = 0.0


# ------------------------------------------------------------------------------ the walker


class Walker:
    def __init__(self, program: MappedProgram, arch: Accel):
        self.p, self.a = program, arch
        prob = program.problem
        self.dims = list(prob.dims)
        self.tid: dict[str, int] = {}
        for op in prob.ops:
            for t in op.tensors:
                self.tid.setdefault(t.name, len(self.tid))
        self.tname = {v: k for k, v in self.tid.items()}
        self.intermediate = {t for t in self.tid if t not in prob.ins and t not in prob.outs}
        self.byid: dict[int, object] = {}
        self.order: dict[int, int] = {}  # node id -> preorder index (the reference's allocation order)
        self.parent: dict[int, object] = {}
        self.kids: dict[int, list] = {}
        self.bindings: dict[int, list[str]] = {}
        self._index(program.root, None)
        root = program.root
        self.top = {id(root)} if isinstance(root, TileNode) else set(id(c) for c in self.kids.get(id(root), []))
        self.loop: dict[int, Loop] = {}
        self.dm: dict[int, list[list[Mov]]] = {}
        self.reuse: dict[int, dict] = {}
        self.actual: dict[int, dict] = {}
        self.rampup: dict[int, dict] = {}
        self.rampdown: dict[int, dict] = {}
        self.cost: dict[int, int] = {}
        self.arch_cost: dict[int, dict] = {}  # node -> childkey -> {(target, child): [pair]}
        self.level_cost: dict[int, dict] = {}  # node -> childkey -> {level: [TC, TC]}
        self.windows: dict[int, dict] = {}
        self.access: dict[int, list[Access]] = {}
        self.col: dict[int, dict] = {}
        self.energy: dict[int, dict[str, float]] = {}
        self.noc: dict[int, dict[str, float]] = {}
        self.energy_t: dict[int, dict[str, float]] = {}  # per node, per tensor (incl. NoC)
        self.parent_iters: dict[int, int] = {}
        self.comp_time: dict[str, int] = {}
        # node with a pipeline/parallel binding -> how it was priced (binding_overlap reads it)
        self.staged: dict[int, dict] = {}

    # -- tree shape as the reference sees it: bindings are siblings, groups are flattened
    def _index(self, n, parent) -> None:
        self.order[id(n)] = len(self.order)
        self.parent[id(n)] = parent
        self.byid[id(n)] = n
        if isinstance(n, TileNode) or (parent is None and isinstance(n, BindingNode)):
            # a root binding (several top-level tiles run one after another) is a container
            body = n.body if isinstance(n, TileNode) else [n]
            kids, binds = [], []
            for c in body:
                if isinstance(c, BindingNode):
                    if c.children and all(isinstance(g, BindingNode) for g in c.children):
                        for g in c.children:
                            binds.append(g.kind)
                            kids += g.children
                    else:
                        binds.append(c.kind)
                        kids += c.children
                else:
                    kids.append(c)
            self.kids[id(n)], self.bindings[id(n)] = kids, binds
            for c in kids:
                self._index(c, n)

    def binding_of(self, n) -> str:
        par = self.parent[id(n)]
        if par is None or len(self.kids[id(par)]) == 1 and not self.bindings[id(par)]:
            return "none"
        b = self.bindings[id(par)]
        return b[0] if len(set(b)) == 1 else "sequential"

    # -- architecture helpers
    def lvl(self, name: str):
        return self.a.level(name)

    def mem(self, name: str):
        return self.a.memory(name)

    def bw(self, name: str, key: str) -> float:
        m = self.mem(name)
        return m.bw if m.bw else getattr(m, key)

    def link(self, target: str, child: str) -> Link:
        if target == child:
            lv = self.lvl(target)
            if lv.self_link is None:
                raise CometError(f"level '{target}' has no link network between its instances "
                                 "(link_transfers: true) for a collective")
            return lv.self_link
        cl = self.lvl(child)
        if target not in cl.links:
            raise CometError(f"'{child}' is not a child of '{target}' in architecture '{self.a.name}'")
        return cl.links[target]

    def seq(self, name: str) -> int:
        return self.lvl(name).seq

    def pair_key(self, pair):
        return (self.seq(pair[0]), self.seq(pair[1]))

    def is_rw(self, tensor: str, tag: str) -> bool:
        for op in self.p.problem.ops:
            if op.name == tag:
                for t in op.tensors:
                    if t.name == tensor:
                        return t.read_write
        return True  # a tensor tagged with a collective is read-write

    def proj(self, tensor: str, tag: str) -> list[list[str]]:
        ops = self.p.problem.ops
        cand = [o for o in ops if o.name == tag] or [o for o in ops if tensor in o.ins or o.out == tensor]
        for o in cand:
            for t in o.tensors:
                if t.name == tensor:
                    return t.projection
        return [[d] for d in self.dims]

    # ------------------------------------------------------------------ loop nest (post-order)
    def build_loops(self) -> None:
        self.stride: dict[tuple, dict[str, int]] = {}
        self.steps: dict[tuple, int] = {}
        self.outputs: dict[tuple[str, str], list[dict[str, int]]] = {}
        self._loops(self.p.root)

    def _loops(self, n) -> None:
        if isinstance(n, ComputeNode):
            for t in n.tensors:
                ts = dict(n.tile_steps.get(t, n.tile_primitive))
                self.stride[(t, n.name)] = ts
                if n.op_type.lower() == "gemm":
                    step = 1
                    for d, v in n.tile_primitive.items():
                        step *= max(ts.get(d, v) // max(v, 1), 0)
                    self.steps[(t, n.name)] = step
                else:
                    self.steps[(t, n.name)] = 1
            return
        if isinstance(n, ColOpNode):
            self._colop_sizes(n)  # sizes as produced so far in the bottom-up walk
            return
        if isinstance(n, BindingNode):
            for c in self.kids[id(n)]:
                self._loops(c)
            return
        for c in self.kids[id(n)]:
            self._loops(c)
        tile: TileNode = n
        L = Loop(tile, [], [], [], [], [], [], [], [d for d in tile.order])
        for i, (t, tag) in enumerate(zip(tile.tensors, tile.tags)):
            key = (t, tag)
            L.tids.append(self.tid.get(t, len(self.tid)))
            L.rw.append(self.is_rw(t, tag))
            L.dependent.append(t in self.intermediate)
            prev = self.steps.get(key, 1)
            st = self.stride.setdefault(key, {})
            it, sp, levels = 1, 1, []
            for lvl in tile.factors:
                d_ = {}
                for d, fs in lvl.items():
                    s = st.get(d, 1)
                    d_[d] = (s * fs[i], s)
                    st[d] = s * fs[i]
                    if tile.kind == "temporal":
                        self.steps[key] = self.steps.get(key, 1) * fs[i]
                        it *= fs[i]
                    else:
                        sp *= fs[i]
                levels.append(d_)
            L.desc.append(levels)
            L.rts.append(prev)
            L.iters.append(it)
            L.sp_iters.append(sp)
        self.loop[id(n)] = L
        out_of = {o.out for o in self.p.problem.ops}
        for i, t in enumerate(tile.tensors):
            if t in out_of:
                self.outputs[(tile.targets[i], t)] = [{d: e for d, (e, _) in lv.items()} for lv in L.desc[i]]

    # ------------------------------------------------------------------ data movement (pre-order)
    def _proj_size(self, proj: list[list[str]], ext: dict[str, int]) -> int:
        return math.prod(sum(ext.get(d, 0) for d in rank) for rank in proj)

    def build_movement(self, n=None) -> None:
        n = n or self.p.root
        if isinstance(n, BindingNode):
            for c in self.kids.get(id(n), []):
                self.build_movement(c)
        elif isinstance(n, TileNode):
            L = self.loop[id(n)]
            if n.kind == "temporal":
                self.dm[id(n)] = [self._temporal_moves(L, i) for i in range(len(n.tensors))]
            else:
                self.dm[id(n)] = self._spatial_moves(L, self.loop[id(self.parent[id(n)])], self.parent[id(n)])
            for c in self.kids[id(n)]:
                self.build_movement(c)

    def _temporal_moves(self, L: Loop, i: int) -> list[Mov]:
        tile = L.node
        t, tag = tile.tensors[i], tile.tags[i]
        proj_dims = {d for r in self.proj(t, tag) for d in r}
        desc = L.desc[i][-1]
        order = [d for d in L.order if d in desc] + [d for d in desc if d not in L.order]
        radix = [desc[d][0] // max(desc[d][1], 1) if desc[d][1] else 1 for d in order]
        size = self._proj_size(self.proj(t, tag), {d: s for d, (_, s) in desc.items()})
        out = [Mov(size, 1, 1)]
        digits = [0] * len(order)
        for _ in range(1, L.iters[i]):
            changed = False
            for k in range(len(order)):
                if radix[k] > 1:
                    changed |= order[k] in proj_dims
                digits[k] += 1
                if digits[k] < radix[k]:
                    break
                digits[k] = 0
            out.append(Mov(size, 1 if changed else 0, 1))
        return out

    def _spatial_moves(self, L: Loop, P: Loop, parent) -> list[list[Mov]]:
        tile = L.node
        res = []
        child_idx = 0
        for i, (t, tag) in enumerate(zip(tile.tensors, tile.tags)):
            # the parent slot of (tensor, tag); when the parent lacks it the reference keeps the
            # previous tensor's slot (an uninitialised variable) -- emulated
            for j, (pt, ptag) in enumerate(zip(P.node.tensors, P.node.tags)):
                if pt == t and ptag == tag:
                    child_idx = j
                    break
            if tile.targets[i] == P.node.targets[child_idx]:
                for j, (pt, ptag) in enumerate(zip(P.node.tensors, P.node.tags)):
                    if pt == t and ptag == tag:
                        L.iters[i] = P.iters[j]
            proj = self.proj(t, tag)
            proj_dims = {d for r in proj for d in r}
            inner = L.desc[i][0]
            size = self._proj_size(proj, {d: s for d, (_, s) in inner.items()})
            uniq = 1
            for lvl in tile.factors:
                for d, fs in lvl.items():
                    if d in proj_dims:
                        uniq *= fs[i]
            pm = self.dm[id(parent)][child_idx]
            moves = []
            for k in range(P.iters[child_idx]):
                if k and pm[k].unique == 0:
                    moves.append(Mov(size, 0, L.sp_iters[i]))
                else:
                    moves.append(Mov(size, uniq, L.sp_iters[i]))
            res.append(moves)
        return res

    def _colop_sizes(self, n: ColOpNode) -> None:
        ext = self.outputs.get((n.target, n.tensor_in))
        if ext is None:
            raise CometError(f"collective on '{n.tensor_in}' at '{n.target}': no tile before it "
                             f"produces that tensor at that level")
        src = math.prod(self.lvl(s).count for s in n.src)
        dst = math.prod(self.lvl(d).count for d in n.dest)
        e_in = dict(ext[-1])
        e_out = dict(e_in)
        if n.type in ("gather", "allgather"):
            e_out[n.dimension] = e_out.get(n.dimension, 1) * src
        elif n.type == "scatter":
            e_out[n.dimension] = int(e_out.get(n.dimension, 1) / dst)
        proj = self.proj(n.tensor_in, "")
        self.col[id(n)] = {"in": self._proj_size(proj, e_in), "out": self._proj_size(proj, e_out),
                           "src": src, "dst": dst}
        if n.wb_output:
            self.outputs[(n.target, n.tensor_out)] = [e_out]

    # ------------------------------------------------------------------ compute
    def unit_time(self, n: ComputeNode, unit: str) -> int:
        ct = self.a.compute(unit)
        prim_dims = [d for d in self.dims if d in n.tile_primitive] + \
                    [d for d in n.tile_primitive if d not in self.dims]
        prim = [n.tile_primitive[d] for d in prim_dims]
        red = dict(zip(n.reduction_dims, n.reduction_factors))
        return units.unit_latency(ct, prim, prim_dims, units.op_class(n.op_type), n.reduction_dims, red,
                                  n.rmw, n.specd)

    # ------------------------------------------------------------------ transfers
    def _move_time(self, mv: Mov, L: Loop, i: int, target: str, child: str) -> tuple[int, int, float]:
        tile = L.node
        rw = L.rw[i]
        tm = self.mem(target)
        num, size, sf = mv.unique, mv.size, mv.count
        ports = max(tm.ports, 1)
        used = max(min(num, ports), 1)
        if rw:
            tbw = self.bw(target, "child_write_bw")
            if num == 0:
                num = 1
        else:
            tbw = self.bw(target, "child_read_bw")
        tbw = int(tbw)
        if used < ports:
            tbw = (tbw // ports) * used
        scale = tile.precision[i] / 8.0
        net = self.link(target, child)
        cl = self.lvl(child)
        if cl.is_compute:
            cbw = int(net.bw)
        else:
            cbw = int(self.bw(child, "parent_read_bw" if rw else "parent_write_bw"))
        nbw = int(net.bw)
        if tbw > used * nbw:
            tbw = used * nbw
        if cbw > nbw:
            cbw = nbw
        support = net.reduction if rw else net.broadcast
        scatter = 1
        if not support and num:
            scatter = (sf + num - 1) // num
        t_target = math.ceil(scatter * num * size * scale / tbw) if tbw else math.inf
        t_child = 0 if num == 0 else (math.ceil(size * scale / cbw) if cbw else math.inf)
        if rw and tile.rmw[i]:
            rbw = int(self.bw(target, "child_read_bw"))
            if used < ports:
                rbw = (rbw // ports) * used
            t_target += math.ceil(scatter * num * size * scale / rbw) if rbw else math.inf
        memory = int(max(t_target, t_child))
        kind = "gather" if rw else ("broadcast" if mv.unique == 1 else "scatter")
        nt = units.link_latency(net, kind, size, mv.unique, sf, scale)
        ne = units.link_energy(net, kind, size, mv.unique, sf, scale)
        return memory, nt, ne

    def evaluate(self, L: Loop, i: int, target: str, child: str, moves: list[Mov], no_stall: list[int],
                 hide: bool, reuse: int, different: bool) -> TC:
        rw = L.rw[i]
        n = len(moves)
        pseudo = n if different else n // reuse
        r = TC(pseudo, 0, [0] * pseudo, [0] * pseudo)
        dma = self.mem(target).dma_contiguous
        start = 1 if rw else -1
        r.tile, r.access = moves[0].size, pseudo
        for k, mv in enumerate(moves):
            mem_t, net_t, net_e = self._move_time(mv, L, i, target, child)
            eff = mem_t + net_t if not dma or k in (0, n - 1) else mem_t
            stall = 0 if eff == 0 else eff - (no_stall[k] if k < len(no_stall) else 0)
            if not hide:
                stall = eff
            r.noc += net_e
            if rw and k == n - reuse:
                r.ramp_down = eff
                continue
            if k == 0 and not rw:
                r.ramp_up = eff
                continue
            if different:
                j = k + start
            elif k % reuse == 0:
                j = k // reuse + start
            else:
                continue
            if 0 <= j < pseudo:
                r.stall[j], r.mem_net[j] = stall, eff
            r.cum += eff
            r.cum_stall += stall
        return r

    def target_child_cost(self, L: Loop, i: int, target: str, child: str, moves: list[Mov], op_time: int | None,
                          child_cost: int, hide: bool, window: list[int]) -> list[TC]:
        rw = 1 if L.rw[i] else 0
        no_stall_time = L.rts[i] * op_time if op_time is not None else child_cost
        different = len(set(L.iters)) > 1
        actual = sum(1 for m in moves if m.unique)
        reuse = (L.iters[i] // actual if actual else 0) or 1
        if reuse == 1:
            nsv = list(window)
        else:
            nsv = [0] * len(window)
            for k in range(0, len(window), reuse):
                nsv[k] = _i32(sum(window[k:k + reuse]))
        pair = [TC(), TC()]
        c = pair[rw]
        c.ctv = [no_stall_time * reuse] * actual
        c.reuse, c.hide = reuse, hide
        c.compute_time = _i32(sum(nsv)) & U32
        ev = self.evaluate(L, i, target, child, moves, nsv, hide, reuse, different)
        c.cum, c.stall, c.mem_net = ev.cum, ev.stall, ev.mem_net
        c.ramp_up, c.ramp_down, c.tile, c.access, c.noc = ev.ramp_up, ev.ramp_down, ev.tile, ev.access, ev.noc
        c.n = len(c.stall)
        c.cstall = [0] * len(c.stall)
        return pair

    # ------------------------------------------------------------------ merging per memory
    def node1_node2(self, arch_cost: dict, L: Loop, port_use: dict) -> dict[str, list[TC]]:
        maxit = max(L.iters) if L.iters else 1
        pairs = sorted(arch_cost, key=self.pair_key)
        win: dict[str, list[list[int]]] = {}
        for pr in pairs:
            for idx in (0, 1):
                for per in arch_cost[pr]:
                    if len(per) > idx and per[idx].stall:
                        vec = list(per[idx].ctv)
                        child_lv = self.lvl(pr[1])
                        if not child_lv.is_compute and port_use and self.mem(pr[1]).shared_ports:
                            cost = port_use.get(pr[1], {}).get(idx, 0)
                            vec = [e - cost if e > cost else 0 for e in vec]
                        win.setdefault(pr[0], []).append(vec)
        out: dict[str, list[TC]] = {}
        tcount: dict[str, int] = {}
        for pr in pairs:
            tgt = pr[0]
            if tgt not in out:
                out[tgt] = [TC.sized(maxit), TC.sized(maxit)]
                tcount[tgt] = 0
            for idx in (0, 1):
                for per in arch_cost[pr]:
                    tc = tcount[tgt]
                    if not (len(per) > idx and per[idx].stall):
                        continue
                    p_, o = per[idx], out[tgt][idx]
                    o.ramp_up += p_.ramp_up
                    o.ramp_down += p_.ramp_down
                    o.compute_time = max(o.compute_time, p_.compute_time)
                    if o.reuse == 0:
                        o.reuse = 1
                    if p_.reuse > 0:
                        o.reuse = min(o.reuse, p_.reuse)
                    o.cum += p_.cum
                    f = p_.reuse or 1
                    mw = win[tgt][tc]
                    its = min(maxit, len(mw))
                    for k in range(idx, its):
                        for j in range(f):
                            m = k * f + j
                            if m < len(o.ctv) and k < len(p_.ctv) and p_.ctv[k] != 0:
                                o.ctv[m] = max(o.ctv[m], p_.ctv[k] // f)
                            if not p_.hide and m < len(o.cstall) and k < len(p_.ctv):
                                o.cstall[m] += p_.stall[k] if k < len(p_.stall) else 0
                            s = (p_.mem_net[k] if k < len(p_.mem_net) else 0) // f - mw[k] // f
                            if s > 0 and m < len(o.stall):
                                o.stall[m] += s
                        if not p_.hide:
                            continue
                        # this tensor's transfer uses the shared window of the other tensors
                        # leaving the same memory on the same port
                        kcount: dict[str, int] = {}
                        for pr1 in pairs:
                            kcount.setdefault(pr1[0], 0)
                            for idx1 in (0, 1):
                                for per1 in arch_cost[pr1]:
                                    if idx1 < len(per1) and per1[idx1].stall:
                                        kt = kcount[pr1[0]]
                                        if pr1[0] == tgt and idx1 == idx and kt != tc:
                                            kf = per1[idx1].reuse or 1
                                            for j in range(f):
                                                nn = (j + k * f) // kf
                                                w1 = win[pr1[0]][kt]
                                                if nn < len(w1) and k < len(p_.mem_net):
                                                    tmp = w1[nn] - p_.mem_net[k] // f
                                                    w1[nn] = tmp if tmp > 0 else 0
                                        kcount[pr1[0]] += 1
                    tcount[tgt] += 1
        return out

    def node_cost_of(self, nlc: dict[str, list[TC]], L: Loop) -> TC:
        maxit = max(L.iters) if L.iters else 1
        r = TC.sized(maxit)
        # Memories run in parallel (max). Within the first memory the write port's stalls
        # replace the read port's from the second iteration on (the reference assigns rather
        # than maxes there); reproduced because its recorded totals depend on it.
        for li, level in enumerate(sorted(nlc, key=self.seq)):
            for idx in (0, 1):
                c = nlc[level][idx]
                if c.stall and c.compute_time != 0:
                    r.ramp_up = max(r.ramp_up, c.ramp_up)
                    r.ramp_down = max(r.ramp_down, c.ramp_down)
                    r.compute_time = max(r.compute_time, c.compute_time)
                    f = c.reuse or 1
                    for k in range(idx, maxit):
                        if k % f == 0:
                            s = k // f
                            v = (c.stall[s] if s < len(c.stall) else 0) + (c.cstall[s] if s < len(c.cstall) else 0)
                            r.stall[k] = v if li == 0 else max(r.stall[k], v)
        return r

    @staticmethod
    def total(tc: TC) -> int:
        return (tc.compute_time + tc.ramp_up + tc.ramp_down + _i32(sum(tc.stall))) & U32

    # ------------------------------------------------------------------ the steady-state walk
    def _child_key(self, key):
        return (1, tuple(self.order[x] for x in key)) if isinstance(key, tuple) else (0, self.order[key])

    def nodes(self, key) -> list:
        return [self.byid[x] for x in key] if isinstance(key, tuple) else [self.byid[key]]

    def _mem_window_vec(self, node, key, vec: list[int]) -> None:
        kids = self.nodes(key)
        if not isinstance(key, tuple) and isinstance(kids[0], TileNode) and not self._is_leaf(kids[0]):
            for c in self.kids[key]:
                self._subtract_rampups(node, c, vec, recurse=True)
            return
        for c in kids:
            self._subtract_rampups(node, c, vec)

    def _subtract_rampups(self, node, child, vec: list[int], recurse: bool = False) -> None:
        for k, rf in sorted(self.reuse.get(id(node), {}).items()):
            if rf != 1 and k in self.reuse.get(id(child), {}) and self.actual[id(child)][k] == 1:
                ru = self.rampup.get(id(child), {}).get(k, 0)
                for i in range(len(vec)):
                    if i % rf:
                        vec[i] = (vec[i] - ru) & U32
                if recurse and isinstance(child, TileNode):
                    for c in self.kids[id(child)]:
                        self._subtract_rampups(node, c, vec)

    def _is_leaf(self, n) -> bool:
        return isinstance(n, TileNode) and len(self.kids[id(n)]) == 1 and isinstance(self.kids[id(n)][0], ComputeNode)

    def _record_rampups(self, node, L: Loop, ramp_map: dict) -> None:
        if not ramp_map:
            return
        sums = {lv: sum(v.values()) for lv, v in ramp_map.items()}
        best = max(sums.values())
        d = self.rampup.setdefault(id(node), {})
        for lv, s in sums.items():
            if s == best:
                d.update(ramp_map[lv])

    def visit(self, n) -> None:
        if isinstance(n, ColOpNode):
            self._visit_colop(n)
            return
        if isinstance(n, BindingNode) and id(n) in self.kids:  # root container
            for c in self.kids[id(n)]:
                self.visit(c)
            binds = self.bindings[id(n)]
            costs = {id(c): self.cost[id(c)] for c in self.kids[id(n)]}
            self.cost[id(n)] = (sum(costs.values()) & U32) if all(b == "sequential" for b in binds) \
                else self._bound(n, binds, costs)
            return
        if not isinstance(n, TileNode):
            return
        L = self.loop[id(n)]
        leaf = self._is_leaf(n)
        if L.spatial or leaf:
            for i, (t, tag) in enumerate(zip(n.tensors, n.tags)):
                act = sum(1 for m in self.dm[id(n)][i] if m.unique)
                key = (L.tids[i], tag)
                self.reuse.setdefault(id(n), {})[key] = (L.iters[i] // act if act else 0) or 1
                self.actual.setdefault(id(n), {})[key] = act
        for c in self.kids[id(n)]:
            self.visit(c)
        binds = self.bindings[id(n)]
        if leaf:
            self._visit_leaf(n, L)
            return
        kids = self.kids[id(n)]
        win = self.windows.setdefault(id(n), {})
        if not binds:
            child = kids[-1]
            if L.spatial:
                win[id(child)] = self.cost[id(child)]
            else:
                self.cost[id(n)] = self.cost[id(child)]
                return
        elif all(b == "sequential" for b in binds):
            win[tuple(id(c) for c in kids)] = _i32(sum(self.cost[id(c)] for c in kids))
        elif L.spatial:
            self._visit_staged(n, L, binds)
            return
        else:
            for c in kids:
                win[id(c)] = self.cost[id(c)]
        ac = self.arch_cost.setdefault(id(n), {})
        lc = self.level_cost.setdefault(id(n), {})
        if L.spatial:
            self._visit_spatial(n, L, win, ac)
            totals = {}
            for key in sorted(win, key=self._child_key):
                port_use = {}
                if any(self.mem(c).shared_ports for c in n.child_levels if not self.lvl(c).is_compute):
                    port_use = self._port_use(key)
                lc[key] = self.node1_node2(ac.get(key, {}), L, port_use)
                totals[key] = self.total(self.node_cost_of(lc[key], L))
            if not binds:
                self.cost[id(n)] = totals[id(kids[-1])]
            else:
                self.cost[id(n)] = next(iter(totals.values()))
        else:
            maxit = max(L.iters) if L.iters else 1
            for key in win:
                for c in self.nodes(key):
                    if isinstance(c, ColOpNode):
                        tc = TC.sized(maxit)
                        tc.ctv = [self.cost[id(c)]] * maxit
                        tc.compute_time = maxit * self.cost[id(c)]
                        tc.cum = tc.compute_time
                        pair = [tc, TC(**{**tc.__dict__, "ctv": list(tc.ctv)})]
                        lc[id(c)] = {c.target: pair}
            if all(b == "sequential" for b in binds):
                t = 0
                for c in kids:
                    t += lc[id(c)][c.target][0].compute_time if isinstance(c, ColOpNode) else self.cost[id(c)]
                self.cost[id(n)] = t & U32
            else:
                # a collective runs once per iteration of n; its tile siblings' costs already
                # hold n's iterations (their spatial tiles inherit them)
                self.cost[id(n)] = self._bound(n, binds, {
                    id(c): lc[id(c)][c.target][0].compute_time if isinstance(c, ColOpNode) else self.cost[id(c)]
                    for c in kids})

    def _visit_leaf(self, n: TileNode, L: Loop) -> None:
        op: ComputeNode = self.kids[id(n)][0]
        unit = n.child_levels[0]
        if not self.lvl(unit).is_compute:
            raise CometError(f"compute '{op.name}' is mapped onto '{unit}', which is a memory, not a compute unit")
        t_op = self.unit_time(op, unit)
        maxit = max(L.iters) if L.iters else 1
        ac: dict = {}
        ramp: dict = {}
        acc = self.access.setdefault(id(n), [])
        max_acc, ctime = 0, 1
        for i, (t, tag) in enumerate(zip(n.tensors, n.tags)):
            target, child = n.targets[i], n.child_levels[i]
            pair = self.target_child_cost(L, i, target, child, self.dm[id(n)][i], t_op, 0, True, [t_op] * maxit)
            c = pair[1 if L.rw[i] else 0]
            acc.append(Access(target, c.access, c.tile, n.precision[i], L.rw[i], True, False, L.tids[i], tag,
                              n.rmw[i], self.dm[id(n)][i][0].unique or 1))
            max_acc = max(max_acc, c.access)
            if not L.rw[i]:
                ramp.setdefault(target, {})[(L.tids[i], tag)] = c.ramp_up
            else:
                self.rampdown.setdefault(id(n), {})[(L.tids[i], tag)] = c.ramp_down
            ac.setdefault((target, child), []).append(pair)
        ct = self.a.compute(unit)
        prim = [op.tile_primitive[d] for d in self.dims if d in op.tile_primitive]
        acc.append(Access(unit, max_acc, compute=True, target=False, tag=n.tags[0], tid=L.tids[0],
                          rmw=n.rmw[0], op=units.op_class(op.op_type),
                          comp_pj=units.unit_energy_per_invocation(ct, prim, units.op_class(op.op_type))))
        self.arch_cost[id(n)] = {id(op): ac}
        nlc = self.node1_node2(ac, L, {})
        self.level_cost[id(n)] = {id(op): nlc}
        self.cost[id(n)] = self.total(self.node_cost_of(nlc, L))
        self._record_rampups(n, L, ramp)
        # ideal compute of the op over the whole problem, spread over all its unit instances
        psize = math.prod(self.p.problem.dims[d] for d in self.p.problem.op(op.name).dims) \
            if op.name in {o.name for o in self.p.problem.ops} else 0
        nodes = self._total_instances(unit)
        self.comp_time[op.name] = (psize // max(math.prod(prim), 1)) * t_op // nodes

    def _total_instances(self, level: str) -> int:
        lv = self.lvl(level)
        total = lv.count
        while lv.parents:
            par = max((self.lvl(p) for p in lv.parents), key=lambda x: x.count)
            total *= par.count
            lv = par
        return total

    def _visit_spatial(self, n: TileNode, L: Loop, win: dict, ac: dict, vecs: dict | None = None,
                       staged: bool = False) -> None:
        """n's transfers per child key against its window `win[key]` (per iteration: `vecs[key]`
        when given, else the window less the ramp-ups n's reuse saves). staged: the key's
        children are pipeline/parallel stages, so a dependent tensor's move overlaps the other
        stages and is hidden like any other."""
        parent_binding = self.binding_of(n)
        maxit = max(L.iters) if L.iters else 1
        acc = self.access.setdefault(id(n), [])
        for key in sorted(win, key=self._child_key):
            window = win[key]
            if vecs is not None and key in vecs:
                vec = list(vecs[key])
            else:
                vec = [window & U32] * maxit
                self._mem_window_vec(n, key, vec)
            kids = self.nodes(key)
            ramp: dict = {}
            matched_any = False
            touch = None
            for ch in kids:
                is_dm = isinstance(ch, TileNode)
                hide = True if is_dm else False
                for i, (t, tag) in enumerate(zip(n.tensors, n.tags)):
                    target, child = n.targets[i], n.child_levels[i]
                    if is_dm and child in ch.targets or (not is_dm and child == ch.target):
                        touch = (target, child)
                    if is_dm and ((isinstance(key, tuple) and not staged) or parent_binding == "sequential"):
                        hide = not L.dependent[i]
                    hit = (is_dm and tag in ch.tags) or (not is_dm and tag == ch.tag)
                    if not hit:
                        continue
                    matched_any = True
                    pair = self.target_child_cost(L, i, target, child, self.dm[id(n)][i], None, window, hide, vec)
                    c = pair[1 if L.rw[i] else 0]
                    proj = self.dm[id(n)][i][0].unique or 1
                    acc.append(Access(target, c.access, c.tile, n.precision[i], L.rw[i], True, False, L.tids[i],
                                      tag, n.rmw[i], proj))
                    acc.append(Access(child, c.access, c.tile, n.precision[i], L.rw[i], False, False, L.tids[i],
                                      tag, n.rmw[i], proj, noc=c.noc))
                    if not L.rw[i]:
                        ramp.setdefault(target, {})[(L.tids[i], tag)] = c.ramp_up
                    ac.setdefault(key, {}).setdefault((target, child), []).append(pair)
            self._record_rampups(n, L, ramp)
            if not isinstance(key, tuple) and not matched_any and touch is not None:
                tc = TC.sized(maxit)
                tc.ctv = [self.cost[key]] * maxit
                tc.compute_time = maxit * self.cost[key]
                tc.reuse = 1
                ac.setdefault(key, {}).setdefault(touch, []).append([tc, TC(**{**tc.__dict__, "ctv": list(tc.ctv)})])

    def _port_use(self, key) -> dict:
        out: dict[str, dict[int, int]] = {}

        def add(nlc: dict):
            for lv, pair in nlc.items():
                for idx in (0, 1):
                    d = out.setdefault(lv, {})
                    d[1 - idx] = d.get(1 - idx, 0) + pair[idx].cum + (pair[idx].ramp_up if idx == 0 else pair[idx].ramp_down)

        for ch in self.nodes(key):
            if isinstance(ch, ColOpNode):
                add(self.level_cost.get(id(ch), {}).get(id(ch), {}))
            elif isinstance(key, tuple) or self._is_leaf(ch):
                for nlc in self.level_cost.get(id(ch), {}).values():
                    add(nlc)
            else:
                for c in self.kids[id(ch)]:
                    if isinstance(c, ColOpNode):
                        add(self.level_cost.get(id(c), {}).get(id(c), {}))
                    else:
                        for nlc in self.level_cost.get(id(c), {}).values():
                            add(nlc)
        return out

    def _visit_colop(self, n: ColOpNode) -> None:
        info = self.col[id(n)]
        mem_t, net_t, r_e, w_e, n_e = collective_cost(self, n, info)
        c = mem_t + net_t
        tc = TC(1, 0, [], [], [], [], 1, True, c, c)
        self.level_cost[id(n)] = {id(n): {n.target: [tc, TC(**tc.__dict__)]}}
        self.cost[id(n)] = c & U32
        self.energy[id(n)] = {n.target: r_e + w_e}
        self.noc[id(n)] = {f"{n.target}<->{n.target}": n_e}
        self.energy_t[id(n)] = {n.tensor_in: r_e + w_e + n_e}
        self.col[id(n)].update(memory=mem_t, network=net_t)

    def _price_key(self, n: TileNode, L: Loop, key: tuple, window: int, vec: list[int] | None,
                   staged: bool) -> tuple[int, dict, dict, int]:
        """(cost, arch costs, level costs, compute window) of n with its children `key` sharing
        one window (`window`; per iteration `vec`, or the sequential rule's when None)."""
        ac: dict = {}
        self._visit_spatial(n, L, {key: window}, ac, None if vec is None else {key: vec}, staged)
        port_use = {}
        if any(self.mem(c).shared_ports for c in n.child_levels if not self.lvl(c).is_compute):
            port_use = self._port_use(key)
        nlc = self.node1_node2(ac.get(key, {}), L, port_use)
        tc = self.node_cost_of(nlc, L)
        return self.total(tc), ac, nlc, tc.compute_time

    def _visit_staged(self, n: TileNode, L: Loop, binds: list[str]) -> None:
        """A spatial tile whose children are bound by pipeline / parallel / sharing.

        The children are stages run once per iteration of n; they share one window per
        iteration as sequential children do, but that window is the binding's step: the
        largest of the stages' per-iteration times and of every resource's summed busy time
        over the stages (`binding_cost` of one iteration), not their sum. n's transfers overlap
        that window as under a sequential binding (stalls, ramps, shared ports alike); a
        pipeline adds one run of every stage but the slowest (fill / drain). Running the stages
        in sequence is one legal schedule of either binding, so n costs the smaller of this and
        the sequential price (the one the reference would give)."""
        kids = self.kids[id(n)]
        key = tuple(id(c) for c in kids)
        kind = "pipeline" if "pipeline" in binds else "parallel"
        maxit = max(L.iters) if L.iters else 1
        costs = [int(self.cost[id(c)]) for c in kids]
        before = list(self.access.get(id(n), []))
        seq = self._price_key(n, L, key, _i32(sum(costs)), None, False)
        # per iteration a stage takes its cost less the ramp-ups n's reuse saves it (as the
        # sequential window subtracts them); one stage's busy time never exceeds its time
        per = []
        for c in kids:
            v = [self.cost[id(c)] & U32] * maxit
            self._subtract_rampups(n, c, v)
            per.append([max(_i32(x), 0) for x in v])
        busy = [self._busy(c) for c in kids]

        def step(ts: list[int]) -> int:
            return binding_cost("parallel", ts, [1] * len(ts),
                                [{r: min(t, tc) for r, t in b.items()} for b, tc in zip(busy, ts)])

        window = step(costs)
        vec = [step([p[k] for p in per]) for k in range(maxit)]
        fill = 0
        if kind == "pipeline":
            # the stages finish no earlier than the slowest stage's runs plus one run of each
            # other stage; the windows already hold the shared resources' busy time above that
            slowest = sum(max(p[k] for p in per) for k in range(maxit))
            fill = max(0, slowest + sum(costs) - max(costs) - sum(vec))
        # accesses and ramp-ups do not depend on the window: the second pricing records the
        # same ones again, so keep one set
        self.access[id(n)] = list(before)
        staged = self._price_key(n, L, key, window, vec, True)
        cost = (staged[0] + fill) & U32
        use = cost < seq[0]
        chosen = staged if use else seq
        self.windows[id(n)] = {key: window if use else _i32(sum(costs))}
        self.arch_cost[id(n)] = chosen[1]
        self.level_cost[id(n)] = {key: chosen[2]}
        self.cost[id(n)] = cost if use else seq[0]
        self.staged[id(n)] = {"kind": kind, "sequential": seq[0], "cost": self.cost[id(n)],
                              "staged": use, "step": window, "fill": fill if use else 0,
                              "sequential_window": seq[3]}

    def _bound(self, n, binds: list[str], costs: dict) -> int:
        """Pipeline / parallel / sharing bindings of the children of a temporal tile or of the
        root (the reference hangs on these). `costs`: each child's whole-run cost as n prices it.

        Per child and resource the walker's busy time (`_busy`) is the time the child occupies
        it; resources shared by siblings serialise, so the binding is at least max over
        resources of the summed busy times. pipeline additionally pays the slowest child plus
        one iteration of every other stage (fill/drain); parallel / sharing pay only the
        slowest child. `binding_cost` is the arithmetic."""
        kids = self.kids[id(n)]
        maxit = max(self.loop[id(n)].iters or [1]) if isinstance(n, TileNode) else 1
        vals, iters, busy = [], [], []
        for c in kids:
            if id(c) not in costs:
                continue
            v = int(costs[id(c)])
            vals.append(v)
            if isinstance(c, ColOpNode):  # once per iteration of n
                b = self._scaled(self._busy(c), maxit)
                iters.append(maxit)
            else:
                b = self._busy(c)
                iters.append(max(self.loop[id(c)].iters or [1]) if isinstance(c, TileNode) else 1)
            busy.append({r: min(t, v) for r, t in b.items()})  # a child cannot hold a resource longer than it runs
        kind = "pipeline" if "pipeline" in binds else "parallel"
        cost = binding_cost(kind, vals, iters, busy)
        self.staged[id(n)] = {"kind": kind, "sequential": sum(vals), "cost": cost}
        return cost & U32

    def _busy(self, c) -> dict[str, int]:
        """Cycles child c keeps each resource busy over one run of c.

        Memories: every transfer c's subtree makes from a memory (read and write ports summed,
        ramps included: the `cum` + ramp of the level costs, as the report's transfer rows read
        them). Compute units: a leaf's compute window (iterations x unit time). A collective:
        its whole cost on its target level (its ports and link). A spatial tile repeats its
        children's busy times once per iteration, as it repeats their windows."""
        if isinstance(c, ColOpNode):
            return {c.target: int(self.cost[id(c)])}
        if not isinstance(c, TileNode):
            return {}
        out: dict[str, int] = {}
        L = self.loop[id(c)]
        maxit = max(L.iters) if L.iters else 1
        if self._is_leaf(c):
            op = self.kids[id(c)][0]
            unit = c.child_levels[0]
            out[unit] = maxit * self.unit_time(op, unit)
            for nlc in self.level_cost.get(id(c), {}).values():
                self._add_transfers(out, nlc)
            return out
        if L.spatial:
            for nlc in self.level_cost.get(id(c), {}).values():
                self._add_transfers(out, nlc)
        for k in self.kids[id(c)]:
            # a spatial tile repeats every child's window per iteration; a temporal one only its
            # collectives (its tiles' iterations already sit in the spatial tiles below)
            per = maxit if L.spatial or isinstance(k, ColOpNode) else 1
            for r, t in self._scaled(self._busy(k), per).items():
                out[r] = out.get(r, 0) + t
        return out

    @staticmethod
    def _scaled(b: dict[str, int], f: int) -> dict[str, int]:
        return {r: t * f for r, t in b.items()}

    @staticmethod
    def _add_transfers(out: dict[str, int], nlc: dict) -> None:
        for lv, pair in nlc.items():
            rd, wr = pair[0], pair[1]
            out[lv] = out.get(lv, 0) + rd.cum + rd.ramp_up + wr.cum + wr.ramp_down


def binding_cost(kind: str, costs: list[int], iters: list[int], busy: list[dict[str, int]]) -> int:
    """Latency of children bound by `kind` ("pipeline"; anything else: parallel / sharing).

    costs[c]: child c's latency; iters[c]: its iterations (one pipeline stage step is
    ceil(costs[c] / iters[c])); busy[c]: resource -> cycles c occupies it (each <= costs[c]).
    conflict = max over resources of the summed busy times (sharers serialise).
    pipeline = max(slowest + one step of every other child (fill/drain), conflict);
    parallel = max(slowest, conflict). Hence slowest <= parallel <= pipeline <= sum."""
    if not costs:
        return 0
    res: dict[str, int] = {}
    for b in busy:
        for r, t in b.items():
            res[r] = res.get(r, 0) + t
    conflict = max(res.values(), default=0)
    slow = max(range(len(costs)), key=lambda i: costs[i])
    if kind == "pipeline":
        fill = sum(-(-costs[i] // max(iters[i], 1)) for i in range(len(costs)) if i != slow)
        return max(costs[slow] + fill, conflict)
    return max(costs[slow], conflict)


# ------------------------------------------------------------------------------ collectives


def collective_cost(w: Walker, n: ColOpNode, info: dict) -> tuple[int, int, float, float, float]:
    """(memory cycles, network cycles, read pJ, write pJ, NoC pJ) of one collective.

    Algorithms (per paper Sec. IV-D and the reference): gather = direct (all sources write
    their tile into the root in parallel, limited by the root's ports); scatter = direct from
    the root; broadcast = tree (one read when the network can broadcast, else one read per
    destination); reduce = tree to the root (in-network when supported); allreduce = reduce
    + broadcast; allgather = gather + broadcast; reducescatter = reduce + scatter; alltoall =
    direct pairwise exchange. Network time = router hops x t_router + payload x t_queue per
    phase (units.link_latency); memory time uses the level's link bandwidths."""
    a = w.a
    target = n.target
    if n.child != target:
        raise CometError(f"collective {n.type} on '{n.tensor_in}': source and destination levels "
                         f"('{target}' -> '{n.child}') must be the same memory")
    net = w.link(target, target)
    m = w.mem(target)
    size_r, size_w = info["in"], info["out"]
    src, dst = info["src"], info["dst"]
    scale = n.precision / 8.0
    sf = src
    lr = m.link_read_bw or m.bw
    lw = m.link_write_bw or m.bw
    pb = net.bw
    block = m.width or 1
    rc, wc = m.energy.get("child_read", 0.0), m.energy.get("child_write", 0.0)
    red_cost = 1.0  # one extra write-back pass for the combine at the reduction point
    kind = n.type
    ports = 1
    if kind in ("gather", "scatter", "alltoall"):
        ports = min(max(m.ports, 1), max((src if kind == "gather" else dst) - 1, 1))
    if kind == "gather":
        rbw, wbw = min(lr, pb), min(min(lw, ports * pb), m.child_write_bw or m.bw)
        mem = max(math.ceil(size_r * scale / rbw), math.ceil((src - 1) * size_w * scale / (wbw * src)))
        r_e = size_r * scale / block * rc
        w_e = (src - 1) * size_r * scale / block * wc
    elif kind == "broadcast":
        rbw, wbw = min(lr, pb), min(lw, pb)
        tw = math.ceil(size_r * scale / wbw)
        w_e = (dst - 1) * size_r * scale / block * wc
        if net.broadcast:
            tr, r_e = math.ceil(size_r * scale / rbw), size_r * scale / block * rc
        else:
            tr, r_e = math.ceil(size_r * scale / rbw * dst), dst * size_r * scale / block * rc
        mem = max(tr, tw)
    elif kind == "reduce":
        rbw, wbw = min(lr, pb), min(lw, pb)
        rb, wb = size_r * scale / rbw, size_r * scale / wbw
        r_e = size_r * scale * src / block * rc
        w_e = size_r * scale / block * wc
        if net.reduction:
            mem = math.ceil(rb + wb + wb * red_cost)
        else:
            mem = math.ceil(max(rb * (src - 1), wb * (src - 1)) + wb * red_cost)
            r_e *= src - 1
            w_e *= src - 1
    elif kind in ("allgather",):
        rbw, wbw = min(lr, pb), min(lw, pb)
        rb, wb = size_r * src * scale / rbw, size_r * src * scale / wbw
        r_e = size_r * src * scale / block * rc
        w_e = size_r * src * scale / block * wc * sf
        if net.broadcast:
            mem = math.ceil(wb * sf)
        else:
            mem = math.ceil(max(wb * sf, math.ceil(rb * sf)))
            r_e *= sf
    elif kind in ("allreduce", "reducescatter"):
        rbw, wbw = min(lr, pb), min(lw, pb)
        rb, wb = size_r * src * scale / rbw, size_w * src * scale / wbw
        r_e = size_r * src * scale / block * rc
        w_e = size_w * src * scale / block * wc
        if net.broadcast and net.reduction:
            mem = math.ceil(wb + rb + wb * red_cost)
        elif net.broadcast:
            mem = math.ceil((wb + rb) * sf + wb * red_cost)
            r_e *= sf
            w_e *= sf
        else:
            mem = math.ceil((2 * rb + wb) * sf + wb * red_cost)
            r_e *= sf * 2
            w_e *= sf
        if kind == "reducescatter":  # only 1/p of the reduced tensor is written back per device
            mem = math.ceil(mem / max(src, 1) * (src - 1 if src > 1 else 1))
    elif kind == "scatter":
        sf = dst
        if dst <= 1:
            raise CometError("scatter needs more than one destination instance")
        rbw, wbw = min(lr, ports * pb), min(lw, pb)
        mem = math.ceil((sf - 1) * size_r * scale / (rbw * sf)) + math.ceil(size_w * scale / (sf * wbw))
        r_e = (sf - 1) * size_r * scale / (sf * block) * rc
        w_e = size_w * scale / block * wc
    elif kind == "alltoall":
        rbw, wbw = min(lr, ports * pb), min(lw, ports * pb)
        part = size_r * scale * (src - 1) / max(src, 1)
        mem = max(math.ceil(part / rbw), math.ceil(part / wbw))
        r_e, w_e = part / block * rc * src, part / block * wc * src
    else:
        raise CometError(f"unknown collective type '{kind}'")
    red_op = n.reduce_op if kind in ("allreduce", "reduce", "reducescatter") else "none"
    net_kind = {"reducescatter": "allreduce", "alltoall": "gather"}.get(kind, kind)
    net_t = units.link_latency(net, net_kind, size_r, 1, src, scale, red_op)
    net_e = units.link_energy(net, net_kind, size_r, 1, src, scale, red_op)
    return int(mem), int(net_t), r_e, w_e, net_e


def walk(program: MappedProgram, arch: Accel) -> Walker:
    w = Walker(program, arch)
    w.build_loops()
    w.build_movement()
    w.visit(program.root)
    return w


# ------------------------------------------------------------------------------ energy walk


def _find_count(m: dict, tids) -> tuple[bool, int]:
    found, best = False, 1
    for per in m.values():
        for tid, c in per.items():
            if tid in tids:
                best, found = max(best, c), True
    return found, best


def _copy(m: dict) -> dict:
    return {k: dict(v) for k, v in m.items()}


def estimate_energy(w: Walker) -> None:
    """Per-node access energy and NoC energy, and how often each node runs (`parent_iters`).

    Top-down: a node's accesses are multiplied by the largest iteration count its tensors (or
    the tensors of the siblings before it) have accumulated above it, and by the number of
    spatial instances of its tensors above it (the reference's bookkeeping, kept so the
    recorded totals are reproduced)."""
    _energy(w, w.p.root, {}, {})


def _left_tids(w: Walker, n) -> list[int]:
    par = w.parent[id(n)]
    out: list[int] = []
    for c in w.kids[id(par)]:
        if c is n:
            break
        if isinstance(c, TileNode):
            for t in w.loop[id(c)].tids:
                if t not in out:
                    out.append(t)
    return out


def scale_collective_by_producer(w: Walker, c: ColOpNode, ops_left: list, in_tid: int, producer) -> None:
    """A collective under a temporal tile runs once per move of its input by the tile before it
    (`producer`): its energy is scaled by the number of those moves (recorded as its
    parent_iters). ops_left: the tags that use the input in the siblings before the collective."""
    seen: dict = {}
    for acc in (w.access.get(id(producer), []) if producer is not None else []):
        if acc.target and not acc.compute:
            seen.setdefault(acc.tag, {})[acc.tid] = acc.count
    its = seen.get(ops_left[-1], {}).get(in_tid, 0) if ops_left else 0
    w.parent_iters[id(c)] = its
    for per_node in (w.energy, w.noc, w.energy_t):
        per_node[id(c)] = {k: v * its for k, v in per_node[id(c)].items()}


def _energy(w: Walker, n, nsp: dict, icm: dict) -> None:
    if isinstance(n, BindingNode) and id(n) in w.kids:  # root container: independent programs
        for c in w.kids[id(n)]:
            _energy(w, c, {}, {})
        return
    if not isinstance(n, TileNode):
        return
    L = w.loop[id(n)]
    cur: dict = {}
    leaf = w._is_leaf(n)
    if L.spatial or leaf:
        root_child = id(w.parent[id(n)]) in w.top
        arch_e: dict[str, float] = {}
        noc_e: dict[str, float] = {}
        by_t: dict[str, float] = {}
        left = _left_tids(w, n) + list(L.tids)
        for acc in w.access.get(id(n), []):
            tag, tid = acc.tag, acc.tid
            if acc.target and not acc.compute:
                cur.setdefault(tag, {})[tid] = acc.count
            if not acc.compute and not root_child:
                _, mx = _find_count(icm, left)
                acc.count *= mx
                icm.setdefault(tag, {})[tid] = mx
                w.parent_iters[id(n)] = max(w.parent_iters.get(id(n), 0), mx)
                if not acc.target:
                    key = f"{acc.level}<->{acc.level}"
                    noc_e[key] = noc_e.get(key, 0.0) + acc.noc * mx
                    tn = w.tname.get(tid, "?")
                    by_t[tn] = by_t.get(tn, 0.0) + acc.noc * mx
            sp = 1
            if tag in nsp:
                if tid in nsp[tag]:
                    sp = nsp[tag][tid]
                else:
                    for t in L.tids:
                        if t in nsp[tag]:
                            sp = max(sp, nsp[tag][t])
                    nsp[tag][tid] = sp
            elif not root_child:
                _, sp = _find_count(nsp, left)
            if acc.compute:
                if tag in icm:
                    mx = max([1] + [icm[tag][t] for t in L.tids if t in icm[tag]])
                else:
                    found, mx = _find_count(icm, L.tids)
                    if not found:
                        _, mx = _find_count(icm, _left_tids(w, n))
                acc.count *= mx
                ct = w.a.compute(acc.level)
                if ct.name == "SystolicArray" or ct.kind == "simd":
                    e = sp * acc.count * acc.comp_pj
                else:
                    e = sp * acc.count * ct.energy * w.lvl(acc.level).count
            else:
                m = w.mem(acc.level)
                if acc.rw:
                    cost = m.energy.get("parent_write" if acc.target else "child_read", 0.0)
                else:
                    cost = m.energy.get("parent_read" if acc.target else "child_write", 0.0)
                block = m.width or 1
                e = sp * acc.count * acc.tile * acc.proj * acc.prec * cost / (block * 8.0)
                if acc.rmw:
                    e *= 2
            arch_e[acc.level] = arch_e.get(acc.level, 0.0) + e
            tn = f"op:{w.kids[id(n)][0].name}" if acc.compute else w.tname.get(tid, "?")
            by_t[tn] = by_t.get(tn, 0.0) + e
        w.energy[id(n)] = arch_e
        w.energy_t[id(n)] = by_t
        w.noc[id(n)] = noc_e
        cnt = 0
        for acc in w.access.get(id(n), []):
            if not acc.target:
                continue
            f = L.sp_iters[cnt] if cnt < len(L.sp_iters) else 1
            per = nsp.setdefault(acc.tag, {})
            per[acc.tid] = per[acc.tid] * f if acc.tid in per else f
            cnt += 1
    if leaf:
        return
    for tag, per in cur.items():
        d = icm.setdefault(tag, {})
        for tid, c in per.items():
            d[tid] = d[tid] * c if tid in d else c
    kids = w.kids[id(n)]
    for i, c in enumerate(kids):
        if isinstance(c, ColOpNode):
            in_tid = w.tid.get(c.tensor_in, -1)
            ops_left = []
            for s in kids[:i]:
                if isinstance(s, TileNode):
                    ops_left += [tg for t, tg in zip(s.tensors, s.tags) if t == c.tensor_in]
            if not L.spatial:
                left_node = next((s for s in reversed(kids[:i]) if isinstance(s, TileNode)), None)
                scale_collective_by_producer(w, c, ops_left, in_tid, left_node)
            else:
                its = 1
                for tag, per in icm.items():
                    if in_tid in per and tag in ops_left:
                        its = per[in_tid]
                w.parent_iters[id(c)] = its
                w.energy[id(n)] = {k: v * its for k, v in w.energy.get(id(n), {}).items()}
                w.noc[id(n)] = {k: v * its for k, v in w.noc.get(id(n), {}).items()}
                w.energy_t[id(n)] = {k: v * its for k, v in w.energy_t.get(id(n), {}).items()}
        elif isinstance(c, TileNode):
            _energy(w, c, _copy(nsp), _copy(icm))
