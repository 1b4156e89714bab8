"""Reference-COMET interop: its four input files <-> (Accel, MappedProgram).

`import_reference(dir, arch_file=None, const_file=None)` reads `arch.yaml`, `problem.yaml`,
`mapping.yaml` and `const.yaml`, substitutes the constants, and builds the mapping tree
(DataMovement_Tile -> TileNode, inter_tile_binding -> BindingNode grouping the siblings that
follow it, CollectiveOperation -> ColOpNode, Operation -> ComputeNode). `export_reference`
writes the four files back. Unknown collective types are rejected (the reference silently
treats them as broadcast).
"""
from __future__ import annotations

import re
from pathlib import Path

import yaml

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
from comet_ir.spec.refarch import Accel, load_reference_arch
from comet_ir.spec.yamlio import YNode, compose

_COLLECTIVES = {"gather": "gather", "allgather": "allgather", "broadcast": "broadcast",
                "scatter": "scatter", "reduction": "reduce", "reduce": "reduce",
                "allreduce": "allreduce", "reducescatter": "reducescatter", "alltoall": "alltoall"}
_REDUCE_OPS = {"add": "add", "max": "max", "min": "min", "mult": "mul", "mul": "mul"}
_ASSIGN = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(\[[^\]]*\]|[^\s\]]+)")


class _Const:
    def __init__(self, values: dict, file: str):
        self.values, self.file = values, file

    def resolve(self, raw, y: YNode):
        if isinstance(raw, str) and raw.strip() in self.values:
            return self.values[raw.strip()]
        return raw

    def int_(self, raw, y: YNode) -> int:
        v = self.resolve(raw, y)
        if isinstance(v, bool) or not isinstance(v, int):
            try:
                v = int(str(v).strip())
            except ValueError:
                raise y.error(f"'{raw}' is neither an integer nor a constant of {self.file}") from None
        if v <= 0:
            raise y.error(f"'{raw}' = {v} must be positive")
        return v


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as e:
        raise CometError(e.strerror or str(e), file=str(path)) from None


def _load_const(path: Path) -> _Const:
    y = compose(_read(path), str(path))
    top = y.mapping(("const",), ("const",))
    vals = {}
    for k, v in top["const"].mapping().items():
        vals[k] = v.scalar()
    return _Const(vals, str(path))


def _names(y: YNode) -> list[str]:
    v = y.scalar() if not y.is_seq() else None
    if y.is_seq():
        return [str(x.scalar()).strip() for x in y.seq()]
    return [p.strip() for p in str(v).split(",") if p.strip()]


def _load_problem(path: Path, c: _Const) -> Problem:
    y = compose(_read(path), str(path))
    top = y.mapping(("problem",), ("problem",))["problem"].mapping(
        ("io", "dimensions", "instance", "operations"), ("dimensions", "instance", "operations"))
    dims_order = [str(d.scalar()) for d in top["dimensions"].seq()]
    inst = top["instance"].mapping()
    dims = {}
    for d in dims_order:
        if d not in inst:
            raise top["instance"].error(f"no size for dimension '{d}'")
        dims[d] = c.int_(inst[d].scalar(), inst[d])
    io = top["io"].mapping(("ins", "outs")) if "io" in top else {}
    ops = []
    for oy in top["operations"].seq():
        o = oy.mapping(("name", "ins", "out", "dimensions", "tensors"), ("name", "ins", "out", "tensors"))
        tensors = []
        for ty in o["tensors"].seq():
            t = ty.mapping(("name", "projection", "read-write"), ("name", "projection"))
            proj = []
            for r in t["projection"].seq():
                terms = []
                for term in r.seq():
                    terms += [str(x.scalar()) for x in (term.seq() if term.is_seq() else [term])]
                for d in terms:
                    if d not in dims:
                        raise r.error(f"unknown dimension '{d}' (dimensions: {', '.join(dims)})")
                proj.append(terms)
            tensors.append(TensorProjection(str(t["name"].scalar()), proj,
                                            bool(t["read-write"].scalar()) if "read-write" in t else False))
        odims = [str(d.scalar()) for d in o["dimensions"].seq()] if "dimensions" in o else list(dims)
        ops.append(ProblemOp(str(o["name"].scalar()), _names(o["ins"]), str(o["out"].scalar()).strip(),
                             odims, tensors))
    return Problem(dims, ops, _names(io["ins"]) if "ins" in io else [],
                   _names(io["outs"]) if "outs" in io else [])


def _factor_line(text: str, y: YNode, c: _Const, n: int) -> dict[str, list[int]]:
    out = {}
    for d, v in _ASSIGN.findall(text):
        items = [x.strip() for x in v.strip("[]").split(",") if x.strip()]
        if len(items) != n:
            raise y.error(f"dimension {d} has {len(items)} factors for {n} tensors")
        out[d] = [c.int_(x, y) for x in items]
    return out


def _dimmap(text: str, y: YNode, c: _Const) -> dict[str, int]:
    return {d: c.int_(v, y) for d, v in _ASSIGN.findall(str(text))}


def _node(y: YNode, c: _Const, levels: set[str]) -> Node | tuple[str, str]:
    m = y.mapping()
    if "node_type" not in m:
        raise y.error("missing required key 'node_type'")
    kind = str(m["node_type"].scalar())
    if kind == "inter_tile_binding":
        b = str(m["binding"].scalar()) if "binding" in m else "sequential"
        for k in ("sequential", "pipeline", "parallel", "sharing"):
            if k.startswith(b[:4]):
                return ("binding", k)
        raise m.get("binding", y).error(f"unknown binding '{b}'")
    if kind == "DataMovement_Tile":
        tensors = _names(m["tensors"])
        n = len(tensors)

        def lst(key, conv):
            if key not in m:
                raise y.error(f"missing required key '{key}'")
            vals = [conv(v, m[key]) for v in (m[key].seq() if m[key].is_seq() else [])]
            if len(vals) != n:
                raise m[key].error(f"has {len(vals)} entries for {n} tensors")
            return vals
        targets = lst("target", lambda v, _y: str(v.scalar()))
        for t in targets + lst("child", lambda v, _y: str(v.scalar())):
            if t not in levels:
                raise m["target"].error(f"level '{t}' is not in the architecture ({', '.join(sorted(levels))})")
        factors = [_factor_line(str(f.scalar()), f, c, n) for f in m["factors"].seq()]
        tk = str(m["type"].scalar())
        if tk not in ("temporal", "spatial"):
            raise m["type"].error(f"tile type must be temporal or spatial, got '{tk}'")
        body: list = []
        for sub in (m["subtree"].seq() if "subtree" in m else []):
            body.append(_node(sub, c, levels))
        return TileNode(tk, targets, tensors, lst("precision", lambda v, yy: c.int_(v.scalar(), yy)),
                        lst("rmw", lambda v, _y: bool(v.scalar())),
                        lst("wb_output", lambda v, _y: bool(v.scalar())),
                        lst("tag", lambda v, _y: str(v.scalar())), factors,
                        str(m["permutation"].scalar()) if "permutation" in m else "",
                        lst("child", lambda v, _y: str(v.scalar())), _group(body))
    if kind == "CollectiveOperation":
        t = str(m["type"].scalar())
        if t not in _COLLECTIVES:
            raise m["type"].error(f"unknown collective type '{t}' (known: {', '.join(_COLLECTIVES)}); "
                                  "the reference would silently treat it as broadcast")
        red = str(m["reduction_op"].scalar()) if "reduction_op" in m else "none"
        if red != "none" and red not in _REDUCE_OPS:
            raise m["reduction_op"].error(f"unknown reduction_op '{red}'")
        return ColOpNode(_COLLECTIVES[t], str(m["in_tensor"].scalar()), str(m["out_tensor"].scalar()),
                         str(m["dimension"].scalar()), _names(m["src"]), _names(m["dest"]),
                         str(m["target"].scalar()), str(m["child"].scalar()) if "child" in m else str(m["target"].scalar()),
                         c.int_(m["precision"].scalar(), m["precision"]),
                         _REDUCE_OPS.get(red, "none"), str(m["tag"].scalar()) if "tag" in m else "",
                         bool(m["wb_output"].scalar()) if "wb_output" in m else False)
    if kind == "Operation":
        steps = {t: _dimmap(v.scalar(), v, c) for t, v in m["TileSteps"].mapping().items()}
        # The reference leaves a Scale constant that the const file lacks unresolved and
        # carries on; we take 1 (the tensor's precision already says its width).
        scale = {t: (c.int_(v.scalar(), v) if str(c.resolve(v.scalar(), v)).isdigit() else 1)
                 for t, v in m["Scale"].mapping().items()} if "Scale" in m else {}
        attrs = m["compute_attributes"].mapping() if "compute_attributes" in m else {}
        rdims = [str(c.resolve(x.scalar(), x)) for x in attrs["reduction_dimensions"].seq()] if "reduction_dimensions" in attrs else []
        rfac = [c.int_(x.scalar(), x) for x in attrs["reduction_factors"].seq()] if "reduction_factors" in attrs else []
        return ComputeNode(str(m["type"].scalar()), str(m["name"].scalar()), _names(m["tensors"]),
                           _dimmap(m["TilePrimitive"].scalar(), m["TilePrimitive"], c), steps, scale,
                           rdims, rfac, bool(attrs["rmw"].scalar()) if "rmw" in attrs else False,
                           bool(attrs["specd"].scalar()) if "specd" in attrs else False)
    raise m["node_type"].error(f"unknown node_type '{kind}'")


def _group(items: list) -> list[Node]:
    """Binding markers name how the siblings after them are bound; runs of one kind become
    one BindingNode (a single marker kind for the whole list -> one binding of all siblings)."""
    if not any(isinstance(x, tuple) for x in items):
        return items
    runs: list[tuple[str, list[Node]]] = []
    kind = None
    for x in items:
        if isinstance(x, tuple):
            if x[1] != kind:
                kind = x[1]
                runs.append((kind, []))
            continue
        if not runs:
            runs.append(("sequential", []))
        runs[-1][1].append(x)
    runs = [r for r in runs if r[1]]
    if len(runs) == 1:
        return [BindingNode(runs[0][0], runs[0][1])]
    return [BindingNode("sequential", [BindingNode(k, ch) for k, ch in runs])]


def _attach_units(node: Node, unit: str | None = None) -> None:
    if isinstance(node, TileNode):
        for ch in node.body:
            _attach_units(ch, node.child_levels[0] if node.child_levels else unit)
    elif isinstance(node, BindingNode):
        for ch in node.children:
            _attach_units(ch, unit)
    elif isinstance(node, ComputeNode) and not node.unit:
        node.unit = unit or ""


def import_reference(directory: str | Path, arch_file: str | Path | None = None,
                     const_file: str | Path | None = None) -> tuple[Accel, MappedProgram]:
    d = Path(directory)
    if not d.is_dir():
        raise CometError("not a directory (expected DIR/{arch,problem,mapping,const}.yaml)", file=str(d))
    arch_p = Path(arch_file) if arch_file else d / "arch.yaml"
    const_p = Path(const_file) if const_file else d / "const.yaml"
    arch = load_reference_arch(arch_p)
    c = _load_const(const_p)
    problem = _load_problem(d / "problem.yaml", c)
    my = compose(_read(d / "mapping.yaml"), str(d / "mapping.yaml"))
    root = _node(my.mapping(("mapping",), ("mapping",))["mapping"], c, set(arch.levels))
    _attach_units(root)
    program = MappedProgram(d.name or "reference", str(arch_p), problem, root)
    _validate(program, d / "mapping.yaml")
    return arch, program


def _validate(program: MappedProgram, mapping_file: Path) -> None:
    """The mapped-form verifiers (factor products, list lengths, collectives), reported
    against the mapping file the user wrote."""
    from xdsl.utils.exceptions import VerifyException

    from comet_ir.api import verify_module
    from comet_ir.ir_tree import program_module

    try:
        verify_module(program_module(program))
    except CometError as e:
        raise CometError(e.message, file=str(mapping_file)) from None
    except VerifyException as e:
        raise CometError(str(e).splitlines()[0], file=str(mapping_file)) from None


# ------------------------------------------------------------------------------ export


def _export_node(n: Node) -> list[dict]:
    if isinstance(n, BindingNode):
        out = []
        for ch in n.children:
            out.append({"node_type": "inter_tile_binding", "binding": n.kind})
            out += _export_node(ch)
        return out
    if isinstance(n, TileNode):
        fac = [" ".join(f"{d}=[{','.join(map(str, fs))}]" for d, fs in lvl.items()) for lvl in n.factors]
        sub = [x for ch in n.body for x in _export_node(ch)]
        d = {"node_type": "DataMovement_Tile", "target": n.targets, "type": n.kind, "tensors": n.tensors,
             "precision": n.precision, "rmw": n.rmw, "wb_output": n.wb_output, "tag": n.tags,
             "factors": fac, "permutation": n.order, "child": n.child_levels}
        if sub:
            d["subtree"] = sub
        return [d]
    if isinstance(n, ColOpNode):
        inv = {v: k for k, v in _COLLECTIVES.items() if k != "reduce"}
        d = {"node_type": "CollectiveOperation", "tag": n.tag, "target": n.target, "type": inv.get(n.type, n.type),
             "dimension": n.dimension, "src": n.src, "dest": n.dest, "wb_output": n.wb_output,
             "in_tensor": n.tensor_in, "out_tensor": n.tensor_out, "precision": n.precision, "child": n.child}
        if n.reduce_op != "none":
            d["reduction_op"] = {"mul": "mult"}.get(n.reduce_op, n.reduce_op)
        return [d]
    assert isinstance(n, ComputeNode)
    dm = lambda m: " ".join(f"{k}={v}" for k, v in m.items())  # noqa: E731
    d = {"node_type": "Operation", "type": n.op_type, "tensors": n.tensors, "name": n.name,
         "TilePrimitive": dm(n.tile_primitive), "TileSteps": {t: dm(s) for t, s in n.tile_steps.items()}}
    if n.scale:
        d["Scale"] = dict(n.scale)
    d["compute_attributes"] = {"reduction_dimensions": n.reduction_dims,
                               "reduction_factors": n.reduction_factors, "rmw": n.rmw, "specd": n.specd}
    return [d]


def export_reference(program: MappedProgram, arch_source: str | Path, outdir: str | Path) -> None:
    """Write arch.yaml (copied from the source arch file), problem.yaml, mapping.yaml and an
    empty-constants const.yaml (all values are substituted) into `outdir`."""
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "arch.yaml").write_text(_read(Path(arch_source)))
    p = program.problem
    prob = {"problem": {"io": {"ins": ", ".join(p.ins), "outs": ", ".join(p.outs)},
                        "dimensions": list(p.dims), "instance": dict(p.dims),
                        "operations": [{"name": o.name, "ins": ", ".join(o.ins), "out": o.out,
                                        "dimensions": o.dims,
                                        "tensors": [dict({"name": t.name, "projection": [[r] for r in t.projection]},
                                                         **({"read-write": True} if t.read_write else {}))
                                                    for t in o.tensors]} for o in p.ops]}}
    (out / "problem.yaml").write_text(yaml.safe_dump(prob, sort_keys=False))
    nodes = _export_node(program.root)
    if len(nodes) != 1:
        raise CometError("the reference format needs a single DataMovement_Tile at the root")
    (out / "mapping.yaml").write_text(yaml.safe_dump({"mapping": nodes[0]}, sort_keys=False))
    (out / "const.yaml").write_text(yaml.safe_dump({"const": {"_exported_by": "comet_ir"}}))
