"""Accelerator architectures in the reference-COMET `arch.yaml` format.

Sections: `ComputeTiles` (MAC / SIMD unit types), `MemoryTypes` (SRAM / DRAM types) and
`Hierarchy` (instances: `name: GB[0..3]`, `type`, `attributes` with the mesh and NoC
parameters, and `connects` / `fills` / `drains` children). Units, as the reference uses them:
memory `width` in bytes (capacity = width x depth), every `*_bw` in bytes/cycle,
`hop_latency` and `queuing_delay` in cycles, NoC `channel_width` in bits/cycle (default 32),
energies in pJ per width-wide access. Every mistake is a located `CometError`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from comet_ir.errors import CometError
from comet_ir.spec.yamlio import YNode, compose

_INSTANCE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?:\[(\d+)\.\.(\d+)\])?$")

_MEM_KEYS = ("width", "depth", "ports", "doublebuffered", "reduction", "bw", "parent_read_bw",
             "parent_write_bw", "child_read_bw", "child_write_bw", "link_read_bw", "link_write_bw",
             "parent_child_ports_shared", "parent_read_energy", "parent_write_energy",
             "child_read_energy", "child_write_energy", "dma_contiguous")
_COMPUTE_KEYS = ("datawidth", "capacity", "computewidth", "computeWidth", "computeOpC",
                 "computeLatency", "startupLatency", "compute_energy", "array_rows", "array_cols",
                 "num_sa_rows", "num_sa_cols", "op_costs")
# SIMD cycles per vector by op class when the arch gives no `op_costs` (reference behaviour:
# exp 3; add/max/mult/div/sqrt 1; row reductions a log2(lanes) tree, marked -1 here).
DEFAULT_SIMD_COSTS = {"exp": 3, "add": 1, "sub": 1, "max": 1, "mult": 1, "mul": 1, "div": 1,
                      "sqrt": 1, "rsqrt": 1, "scale": 1, "silu": 4, "gelu": 5, "rowmax": -1,
                      "rowsum": -1, "rowmean": -1, "reduce": -1}
_LINK_KEYS = ("meshX", "meshY", "link_transfers", "broadcast_support", "connection_type",
              "hop_latency", "bw", "queuing_delay", "channel_width", "reduction_support")


@dataclass
class MemoryType:
    name: str
    kind: str  # SRAM | DRAM
    width: int = 0  # bytes per access
    depth: int = 0
    ports: int = 1
    reduction: bool = False
    bw: float = 0.0  # DRAM bandwidth (bytes/cycle)
    parent_read_bw: float = 0.0
    parent_write_bw: float = 0.0
    child_read_bw: float = 0.0
    child_write_bw: float = 0.0
    link_read_bw: float = 0.0
    link_write_bw: float = 0.0
    energy: dict[str, float] = field(default_factory=dict)  # parent_read, child_write, ... pJ/access
    shared_ports: bool = False  # parent_child_ports_shared
    dma_contiguous: bool = False

    @property
    def capacity(self) -> int:
        return self.width * self.depth


@dataclass
class ComputeType:
    name: str
    kind: str  # mac | simd
    ops_per_cycle: int
    latency: int
    startup: int = 0
    datawidth: int = 8
    energy: float = 1.0  # pJ per op
    op_costs: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_SIMD_COSTS))
    compute_width: int = 8  # `computeWidth` (SIMD lanes); the reference ignores lower-case `computewidth`
    array: tuple[int, int, int, int] = (32, 32, 1, 1)  # systolic rows, cols, num_sa_rows, num_sa_cols


@dataclass
class Link:
    """Network of one parent->child edge (the child's attributes under that parent), or a
    level's own link network (`link_transfers: true`), as the reference builds them."""

    mesh: tuple[int, int] = (1, 1)
    has_mesh: bool = False
    hop_latency: float = 1.0
    bw: float = 0.0
    queuing_delay: float = 0.0
    channel_width: float = 32.0
    broadcast: bool = False
    reduction: bool = False


@dataclass
class Level:
    """One hierarchy instance group, e.g. `GB[0..3]` (4 instances on a 2x2 mesh)."""

    name: str
    type: str
    is_compute: bool
    count: int
    mesh: tuple[int, int]
    hop_latency: float = 0.0
    port_bw: float = 0.0  # network port bandwidth to this level (bytes/cycle)
    queuing_delay: float = 0.0
    channel_width: float = 32.0  # bits/cycle
    broadcast: bool = False
    parents: list[str] = field(default_factory=list)
    links: dict[str, Link] = field(default_factory=dict)  # parent name -> edge network
    self_link: Link | None = None  # link network between instances (collectives)
    seq: int = 0  # creation order in the reference parser (connects, drains, fills)


@dataclass
class Accel:
    name: str
    memory_types: dict[str, MemoryType]
    compute_types: dict[str, ComputeType]
    levels: dict[str, Level]
    source: str = ""
    clock_ghz: float = 1.0

    def memory(self, level: str) -> MemoryType:
        lv = self.level(level)
        if lv.is_compute:
            raise CometError(f"level '{level}' is a compute unit, not a memory")
        return self.memory_types[lv.type]

    def level(self, name: str) -> Level:
        if name not in self.levels:
            raise CometError(f"architecture '{self.name}' has no level '{name}' "
                             f"(levels: {', '.join(self.levels)})")
        return self.levels[name]

    def compute(self, unit: str) -> ComputeType:
        lv = self.level(unit)
        if not lv.is_compute:
            raise CometError(f"'{unit}' is a memory level, not a compute unit")
        return self.compute_types[lv.type]

    @property
    def memories(self) -> list:
        """Per-level memory view (name, width, depth) for passes that size tiles."""
        out = []
        for lv in self.levels.values():
            if not lv.is_compute:
                m = self.memory_types[lv.type]
                out.append(_MemView(lv.name, m.width, m.depth))
        return out


@dataclass(frozen=True)
class _MemView:
    name: str
    width: int
    depth: int


def _num(y: YNode, positive: bool = False) -> float:
    v = y.float_()
    if positive and v <= 0:
        raise y.error(f"must be > 0, got {v:g}")
    if v < 0:
        raise y.error(f"must be >= 0, got {v:g}")
    return v


def _memory_type(y: YNode) -> MemoryType:
    top = y.mapping(("name", "class", "attributes"), ("name", "class"))
    kind = top["class"].str_()
    if kind not in ("SRAM", "DRAM"):
        raise top["class"].error(f"memory class must be SRAM or DRAM, got '{kind}'")
    attrs = top["attributes"].mapping(_MEM_KEYS) if "attributes" in top else {}
    m = MemoryType(top["name"].ident("memory type"), kind)
    for k, v in attrs.items():
        if k == "parent_child_ports_shared":
            m.shared_ports = v.bool_()
        elif k == "dma_contiguous":
            m.dma_contiguous = v.bool_()
        elif k == "doublebuffered":
            v.bool_()
        elif k == "reduction":
            m.reduction = v.bool_()
        elif k.endswith("_energy"):
            m.energy[k.removesuffix("_energy")] = _num(v)
        elif k in ("width", "depth", "ports"):
            setattr(m, k, v.int_(positive=True))
        else:
            setattr(m, k, _num(v, positive=True))
    if kind == "SRAM" and not (m.width and m.depth):
        raise (top.get("attributes") or y).error(f"SRAM '{m.name}' needs width and depth")
    if kind == "DRAM" and not m.bw:
        raise (top.get("attributes") or y).error(f"DRAM '{m.name}' needs bw")
    return m


def _compute_type(y: YNode) -> ComputeType:
    top = y.mapping(("name", "class", "attributes"), ("name", "class", "attributes"))
    kind = top["class"].str_()
    if kind not in ("mac", "simd"):
        raise top["class"].error(f"compute class must be mac or simd, got '{kind}'")
    a = top["attributes"].mapping(_COMPUTE_KEYS, ("computeOpC", "computeLatency"))
    costs = dict(DEFAULT_SIMD_COSTS)
    if "op_costs" in a:
        for op, v in a["op_costs"].mapping().items():
            costs[op] = v.int_(positive=True)
    arr = tuple(a[k].int_(positive=True) if k in a else d
                for k, d in (("array_rows", 32), ("array_cols", 32), ("num_sa_rows", 1), ("num_sa_cols", 1)))
    return ComputeType(
        top["name"].ident("compute type"), kind, a["computeOpC"].int_(positive=True),
        a["computeLatency"].int_(), a["startupLatency"].int_() if "startupLatency" in a else 0,
        a["datawidth"].int_(positive=True) if "datawidth" in a else 8,
        _num(a["compute_energy"]) if "compute_energy" in a else 1.0, costs,
        a["computeWidth"].int_(positive=True) if "computeWidth" in a else 8, arr)


def _walk(y: YNode, parent: str | None, mems, comps, levels: dict[str, Level]) -> None:
    top = y.mapping(("name", "type", "is_compute", "attributes", "connects", "fills", "drains"),
                    ("name", "type"))
    raw = top["name"].str_()
    m = _INSTANCE.match(raw.strip())
    if not m:
        raise top["name"].error(f"instance name '{raw}' is not NAME or NAME[a..b]")
    name = m.group(1)
    count = int(m.group(3)) - int(m.group(2)) + 1 if m.group(2) else 1
    if count <= 0:
        raise top["name"].error(f"empty instance range in '{raw}'")
    tname = top["type"].ident("type")
    is_compute = top["is_compute"].bool_() if "is_compute" in top else False
    if is_compute and tname not in comps:
        raise top["type"].error(f"unknown compute type '{tname}' (ComputeTiles: {', '.join(comps)})")
    if not is_compute and tname not in mems:
        raise top["type"].error(f"unknown memory type '{tname}' (MemoryTypes: {', '.join(mems)})")
    a = top["attributes"].mapping(_LINK_KEYS) if "attributes" in top else {}
    mx = a["meshX"].int_(positive=True) if "meshX" in a else 1
    my = a["meshY"].int_(positive=True) if "meshY" in a else 1
    if not is_compute and m.group(2) and mx * my != count:
        raise top["name"].error(f"{count} instances but meshX*meshY = {mx * my}")
    lv = levels.get(name)
    if lv is None:
        lv = levels[name] = Level(
            name, tname, is_compute, count, (mx, my),
            hop_latency=_num(a["hop_latency"]) if "hop_latency" in a else 0.0,
            port_bw=_num(a["bw"], positive=True) if "bw" in a else 0.0,
            queuing_delay=_num(a["queuing_delay"]) if "queuing_delay" in a else 0.0,
            channel_width=_num(a["channel_width"], positive=True) if "channel_width" in a else 32.0,
            broadcast=a["broadcast_support"].bool_() if "broadcast_support" in a else False)
    elif lv.type != tname:
        raise top["type"].error(f"level '{name}' appears with types '{lv.type}' and '{tname}'")
    if parent and parent not in lv.parents:
        lv.parents.append(parent)
    link = Link((mx, my), "meshX" in a, _num(a["hop_latency"]) if "hop_latency" in a else 1.0,
                _num(a["bw"]) if "bw" in a else 0.0,
                _num(a["queuing_delay"]) if "queuing_delay" in a else 0.0,
                _num(a["channel_width"], positive=True) if "channel_width" in a else 32.0,
                a["broadcast_support"].bool_() if "broadcast_support" in a else False,
                a["reduction_support"].bool_() if "reduction_support" in a else False)
    if parent:
        lv.links.setdefault(parent, link)
    if "link_transfers" in a and a["link_transfers"].bool_() and lv.self_link is None:
        lv.self_link = link
    for key in ("connects", "drains", "fills"):  # the reference parser's order
        if key in top:
            for child in top[key].seq():
                _walk(child, name, mems, comps, levels)


def _by_name(seq: YNode, parse, what: str) -> dict:
    out: dict = {}
    for y in seq.seq():
        item = parse(y)
        if item.name in out:
            raise y.error(f"duplicate {what} '{item.name}'")
        out[item.name] = item
    return out


def load_reference_arch_text(text: str, file: str, name: str | None = None) -> Accel:
    root = compose(text, file)
    top = root.mapping(("ComputeTiles", "MemoryTypes", "Hierarchy", "clock_ghz"),
                       ("ComputeTiles", "MemoryTypes", "Hierarchy"))
    comps = _by_name(top["ComputeTiles"], _compute_type, "compute type")
    mems = _by_name(top["MemoryTypes"], _memory_type, "memory type")
    levels: dict[str, Level] = {}
    roots = top["Hierarchy"].seq()
    if not roots:
        raise top["Hierarchy"].error("the hierarchy is empty")
    for y in roots:
        _walk(y, None, mems, comps, levels)
    _number_levels(roots, levels)
    clock = top["clock_ghz"].float_(positive=True) if "clock_ghz" in top else 1.0
    return Accel(name or Path(file).stem, mems, comps, levels, source=file, clock_ghz=clock)


def _number_levels(roots: list[YNode], levels: dict[str, Level]) -> None:
    """Level.seq = the order in which the reference parser creates levels (depth first:
    connects, then drains, then fills); its per-level maps iterate in that order."""
    seen: list[str] = []

    def visit(y: YNode) -> None:
        m = y.mapping()
        name = _INSTANCE.match(m["name"].str_().strip()).group(1)
        if name not in seen:
            seen.append(name)
        for key in ("connects", "drains", "fills"):
            if key in m:
                for c in m[key].seq():
                    visit(c)

    for r in roots:
        visit(r)
    for i, n in enumerate(seen):
        levels[n].seq = i


def dump_reference_arch(a: Accel) -> str:
    """The reference `arch.yaml` text of `a` (loads back to an equal Accel)."""
    import yaml

    mems = []
    for m in a.memory_types.values():
        attrs = {k: getattr(m, k) for k in ("width", "depth", "ports", "reduction", "bw", "parent_read_bw",
                                            "parent_write_bw", "child_read_bw", "child_write_bw",
                                            "link_read_bw", "link_write_bw")
                 if getattr(m, k) and not (k == "ports" and m.kind == "DRAM" and m.ports == 1)}
        attrs.update({f"{k}_energy": v for k, v in m.energy.items()})
        if m.shared_ports:
            attrs["parent_child_ports_shared"] = True
        if m.dma_contiguous:
            attrs["dma_contiguous"] = True
        mems.append({"name": m.name, "class": m.kind, "attributes": attrs})
    comps = [{"name": c.name, "class": c.kind,
              "attributes": {"datawidth": c.datawidth, "computeOpC": c.ops_per_cycle,
                             "computeLatency": c.latency, "startupLatency": c.startup,
                             "compute_energy": c.energy, "computeWidth": c.compute_width,
                             **dict(zip(("array_rows", "array_cols", "num_sa_rows", "num_sa_cols"), c.array)),
                             **({"op_costs": {k: v for k, v in c.op_costs.items() if v > 0}}
                                if c.op_costs != DEFAULT_SIMD_COSTS else {})}}
             for c in a.compute_types.values()]

    def inst(lv: Level, parent: str | None = None) -> dict:
        d = {"name": lv.name if lv.count == 1 else f"{lv.name}[0..{lv.count - 1}]", "type": lv.type}
        if lv.is_compute:
            d["is_compute"] = True
        ln = lv.links.get(parent) if parent else None
        if ln is None:
            d["attributes"] = {"meshX": lv.mesh[0], "meshY": lv.mesh[1], "hop_latency": lv.hop_latency,
                               "queuing_delay": lv.queuing_delay, "channel_width": lv.channel_width,
                               "broadcast_support": lv.broadcast}
            if lv.port_bw:
                d["attributes"]["bw"] = lv.port_bw
        else:
            d["attributes"] = {"meshX": ln.mesh[0], "meshY": ln.mesh[1], "hop_latency": ln.hop_latency,
                               "queuing_delay": ln.queuing_delay, "channel_width": ln.channel_width,
                               "broadcast_support": ln.broadcast}
            if ln.reduction:
                d["attributes"]["reduction_support"] = True
            if ln.bw:
                d["attributes"]["bw"] = ln.bw
        if lv.self_link is not None and parent == (lv.parents[0] if lv.parents else None):
            d["attributes"]["link_transfers"] = True
        kids = sorted((c for c in a.levels.values() if lv.name in c.parents), key=lambda c: c.seq)
        if kids:
            d["connects"] = [inst(c, lv.name) for c in kids]
        return d

    roots = [lv for lv in a.levels.values() if not lv.parents]
    doc = {"ComputeTiles": comps, "MemoryTypes": mems, "Hierarchy": [inst(r) for r in roots]}
    if a.clock_ghz != 1.0:
        doc["clock_ghz"] = a.clock_ghz
    return yaml.safe_dump(doc, sort_keys=False)


def is_reference_arch(text: str) -> bool:
    return "Hierarchy:" in text and "MemoryTypes:" in text


def load_reference_arch(path: str | Path, name: str | None = None) -> Accel:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise CometError(e.strerror or str(e), file=str(p)) from None
    return load_reference_arch_text(text, str(p), name)
