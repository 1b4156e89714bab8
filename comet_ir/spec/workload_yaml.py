"""YAML workloads → workload-form `comet` IR (the same IR the Python builders produce).

Two input shapes are accepted (``docs/workloads.md`` is the full reference):

1. The comet workload format — the reference-COMET ``problem.yaml`` shape, generalised::

       name: gemm_softmax          # function name (default: the file's stem)
       arch: edge                  # optional, default edge
       dtype: f16                  # default element type of inputs and GEMM results
       dtypes: {A: i8, B: i8}      # per-tensor overrides
       dims: {M: 256, N: 1024, K: 4096}
       ins: [A, B]                 # function arguments, in order
       outs: [D]                   # function results, in order
       operations:
         - name: GEMM              # optional label
           kind: gemm
           ins: [A, B]
           out: C
           tensors: {A: [M, K], B: [K, N], C: [M, N]}   # projections onto named dims
         - kind: softmax
           ins: [C]
           out: D
           axis: N

2. The reference-COMET ``problem.yaml`` (top-level key ``problem``) with its ``const.yaml``
   (``const:`` mapping that gives symbolic sizes), when every operation name is one of the
   reference's: GEMM, softmax, ROWMAX, ROWSUM, SUB, ADD, MUL, DIV, EXP* (EXP, EXP1, ...).

Every user error is a `CometError` carrying the file, the YAML path of the offending node
(``operations[1].tensors.C``) and its line/column (from `yaml.compose` node marks).

    from comet_ir.spec.workload_yaml import load_workload, load_workload_text
    module = load_workload("examples/gemm_softmax.yaml")
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml
from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.ir import SSAValue

from comet_ir.dialects import comet_workload as W
from comet_ir.errors import CometError
from comet_ir.spec.yamlio import YNode, compose
from comet_ir.spec.workloads import DTYPES, FuncBuilder, dtype as _dtype

__all__ = ["load_workload", "load_workload_text", "is_reference_problem", "OP_KINDS"]

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# located YAML nodes live in comet_ir.spec.yamlio (shared by every spec loader)
_Y = YNode
_compose = compose


# --------------------------------------------------------------------------- the model


@dataclass
class _Tensor:
    """A tensor value: its IR value, and the dim name of each axis (None = a kept size-1 axis)."""

    value: SSAValue
    layout: list[str | None]

    @property
    def dims(self) -> list[str]:
        return [d for d in self.layout if d is not None]


@dataclass
class _Op:
    y: _Y                     # the operation's node
    fields: dict[str, _Y]     # its keys
    kind: str
    ins: list[tuple[str, _Y]]
    out: tuple[str, _Y]
    projections: dict[str, tuple[list[str], _Y]]
    label: str


class _Ctx:
    def __init__(self, y: _Y, dims: dict[str, int], dtypes: dict[str, Any], default_dtype: Any):
        self.y = y
        self.dims = dims
        self.dtypes = dtypes
        self.default_dtype = default_dtype
        self.tensors: dict[str, _Tensor] = {}
        self.fb: FuncBuilder | None = None


# Operation kinds: name -> (handler, number of inputs or (min, max)).
_UNARY = {"exp": W.ExpOp, "silu": W.SiluOp, "gelu": W.GeluOp}
_BINARY = {"add": W.AddOp, "sub": W.SubOp, "mul": W.MulOp, "div": W.DivOp}
_REDUCE_ALIASES = {"reduce_max": "max", "reduce_add": "add", "reduce_sum": "add",
                   "reduce_mean": "mean", "reduce_min": "min", "rowmax": "max", "rowsum": "add",
                   "rowmean": "mean"}
_REDUCE_KINDS = ("add", "max", "min", "mean")

# Per-kind optional keys of an operation (besides name/kind/ins/out/dims/tensors).
_KIND_KEYS: dict[str, tuple[str, ...]] = {
    "gemm": (), "softmax": ("axis",), "layernorm": ("axis", "eps"),
    **{k: () for k in _UNARY}, "scale": ("factor",), **{k: () for k in _BINARY},
    "reduce": ("op", "axis"), **{k: ("axis",) for k in _REDUCE_ALIASES},
    "attention": ("causal", "scale"), "moe": ("topk",),
}
OP_KINDS = tuple(_KIND_KEYS)
_ARITY = {"gemm": 2, "softmax": 1, "layernorm": (1, 3), **{k: 1 for k in _UNARY}, "scale": 1,
          **{k: 2 for k in _BINARY}, "reduce": 1, **{k: 1 for k in _REDUCE_ALIASES},
          "attention": 3, "moe": 5}
_COMMON_KEYS = ("name", "kind", "ins", "out", "dims", "tensors")


def _proj(c: _Ctx, y: _Y) -> list[str]:
    """A projection: a list of dim names ([M, K]); the reference's [[M], [K]] is accepted too."""
    if not y.is_seq():
        raise y.error(f"a projection is a list of dim names (e.g. [M, K]), got {y._kind()}")
    out = []
    for e in y.seq():
        while e.is_seq():  # reference form: - [[M]] (a sum of [coefficient?, dim] terms)
            inner = e.seq()
            if len(inner) != 1:
                raise e.error("affine projections (several terms or coefficients per axis) are "
                              "not supported; give one dim name per axis")
            e = inner[0]
        d = e.ident("dim name")
        if d not in c.dims:
            raise e.error(f"undefined dim '{d}' (defined: {', '.join(c.dims)})")
        if d in out:
            raise e.error(f"dim '{d}' appears twice in one projection")
        out.append(d)
    if not out:
        raise y.error("a projection needs at least one dim")
    return out


def _tensor(c: _Ctx, op: _Op, name: str, y: _Y) -> _Tensor:
    """An input tensor of `op`: defined earlier, or a function input given a projection here."""
    t = c.tensors.get(name)
    if t is None:
        raise y.error(f"undefined tensor '{name}': not a function input and produced by no "
                      f"earlier operation")
    if name in op.projections:
        p, py = op.projections[name]
        if p != t.dims:
            raise py.error(f"projection [{', '.join(p)}] of '{name}' differs from its "
                           f"projection elsewhere [{', '.join(t.dims)}]")
    return t


def _axis_of(t: _Tensor, dim: str, y: _Y, name: str) -> int:
    if dim not in t.layout:
        raise y.error(f"axis '{dim}' is not a dim of '{name}' [{', '.join(t.dims)}]")
    return t.layout.index(dim)


def _axis_field(c: _Ctx, op: _Op, t: _Tensor, tname: str) -> int:
    """The op's `axis` (a dim name, default: the last dim of the input) as an axis index."""
    if "axis" in op.fields:
        ay = op.fields["axis"]
        d = ay.ident("dim name")
        if d not in c.dims:
            raise ay.error(f"undefined dim '{d}' (defined: {', '.join(c.dims)})")
        return _axis_of(t, d, ay, tname)
    return max(i for i, d in enumerate(t.layout) if d is not None)


def _check_out(op: _Op, got: list[str]) -> None:
    name, _ = op.out
    if name in op.projections:
        p, py = op.projections[name]
        if p != got:
            raise py.error(f"projection [{', '.join(p)}] of output '{name}' is inconsistent with "
                           f"{op.kind}: expected [{', '.join(got)}]")


def _broadcast(op: _Op, a: tuple[str, _Tensor], b: tuple[str, _Tensor]) -> list[str | None]:
    """numpy broadcasting on named layouts (right-aligned; None = size-1 axis)."""
    la, lb = a[1].layout, b[1].layout
    out: list[str | None] = []
    for i in range(1, max(len(la), len(lb)) + 1):
        x = la[-i] if i <= len(la) else None
        z = lb[-i] if i <= len(lb) else None
        if x is not None and z is not None and x != z:
            y = op.fields["ins"]
            raise y.error(f"{op.kind}: '{a[0]}' [{', '.join(a[1].dims)}] and '{b[0]}' "
                          f"[{', '.join(b[1].dims)}] do not broadcast (axes are right-aligned: "
                          f"'{x}' meets '{z}')")
        out.append(x if x is not None else z)
    return list(reversed(out))


def _build_op(c: _Ctx, op: _Op) -> _Tensor:
    fb = c.fb
    ins = [(n, _tensor(c, op, n, y)) for n, y in op.ins]
    k = op.kind
    if k == "gemm":
        (an, a), (bn, b) = ins
        ra, rb = a.dims, b.dims
        if len(a.layout) != len(ra) or len(b.layout) != len(rb):
            raise op.fields["ins"].error("gemm operands may not carry reduced (size-1) axes")
        if len(ra) < 2 or len(ra) != len(rb):
            raise op.fields["ins"].error(
                f"gemm: '{an}' [{', '.join(ra)}] and '{bn}' [{', '.join(rb)}] need equal ranks >= 2")
        nb = len(ra) - 2
        if ra[:nb] != rb[:nb]:
            raise op.fields["ins"].error(f"gemm: batch dims differ: {ra[:nb]} vs {rb[:nb]}")
        m, kd = ra[nb], ra[nb + 1]
        if rb[nb] == kd:
            transpose, n = False, rb[nb + 1]
        elif rb[nb + 1] == kd:
            transpose, n = True, rb[nb]
        else:
            where = op.projections.get(bn, (None, op.fields["ins"]))[1]
            raise where.error(f"gemm contraction dims differ: '{an}' [{', '.join(ra)}] contracts "
                              f"over '{kd}' but '{bn}' [{', '.join(rb)}] has no '{kd}' axis in a "
                              f"contraction position")
        if n in (m, kd) or m == kd:
            raise op.fields["ins"].error(f"gemm: dims M='{m}', N='{n}', K='{kd}' must be distinct")
        out_dims = ra[:nb] + [m, n]
        _check_out(op, out_dims)
        elem = c.dtypes.get(op.out[0], c.default_dtype)
        v = fb.gemm(a.value, b.value, out_elem=elem, transpose_b=transpose, batch=nb)
        return _Tensor(v, list(out_dims))
    if k in ("softmax", "layernorm"):
        xn, x = ins[0]
        if len(x.layout) != len(x.dims):
            raise op.fields["ins"].error(f"{k}: input '{xn}' has reduced (size-1) axes")
        ax = _axis_field(c, op, x, xn)
        _check_out(op, x.dims)
        if k == "softmax":
            return _Tensor(fb.softmax(x.value, axis=ax), list(x.layout))
        eps = op.fields["eps"].float_(positive=True) if "eps" in op.fields else 1e-5
        g = be = None
        if len(ins) == 3:
            for n_, t_ in ins[1:]:
                if t_.layout != [x.layout[ax]]:
                    raise op.fields["ins"].error(
                        f"layernorm: gamma/beta '{n_}' [{', '.join(t_.dims)}] must be projected "
                        f"onto the normalised dim [{x.layout[ax]}]")
            g, be = ins[1][1].value, ins[2][1].value
        elif len(ins) != 1:
            raise op.fields["ins"].error("layernorm takes the input, or the input, gamma and beta")
        return _Tensor(fb.layernorm(x.value, g, be, axis=ax, eps=eps), list(x.layout))
    if k in _UNARY or k == "scale":
        xn, x = ins[0]
        _check_out(op, x.dims)
        if k == "scale":
            if "factor" not in op.fields:
                raise op.y.error("scale: missing required key 'factor'")
            return _Tensor(fb._add(W.ScaleOp, [x.value], x.value.type,
                                   factor=op.fields["factor"].float_()), list(x.layout))
        return _Tensor(fb.unary(_UNARY[k], x.value), list(x.layout))
    if k in _BINARY:
        layout = _broadcast(op, ins[0], ins[1])
        _check_out(op, [d for d in layout if d is not None])
        a, b = ins[0][1], ins[1][1]
        if a.value.type.element_type != b.value.type.element_type:
            raise op.fields["ins"].error(
                f"{k}: element types differ: '{ins[0][0]}' is {a.value.type.element_type}, "
                f"'{ins[1][0]}' is {b.value.type.element_type} (no implicit casts)")
        return _Tensor(fb.binary(_BINARY[k], a.value, b.value), layout)
    if k == "reduce" or k in _REDUCE_ALIASES:
        xn, x = ins[0]
        if k == "reduce":
            if "op" not in op.fields:
                raise op.y.error(f"reduce: missing required key 'op' ({', '.join(_REDUCE_KINDS)})")
            oy = op.fields["op"]
            rk = oy.ident("reduce op")
            if rk == "sum":
                rk = "add"
            if rk not in _REDUCE_KINDS:
                raise oy.error(f"unknown reduce op '{rk}' (known: {', '.join(_REDUCE_KINDS)})")
        else:
            rk = _REDUCE_ALIASES[k]
        if "axis" in op.fields:
            ax = _axis_field(c, op, x, xn)
        elif op.out[0] in op.projections:  # the dim the output projection drops
            p, py = op.projections[op.out[0]]
            missing = [i for i, d in enumerate(x.layout) if d is not None and d not in p]
            if len(missing) != 1:
                raise py.error(f"{k}: output projection [{', '.join(p)}] must drop exactly one dim "
                               f"of '{xn}' [{', '.join(x.dims)}]")
            ax = missing[0]
        else:
            ax = _axis_field(c, op, x, xn)
        layout = list(x.layout)
        layout[ax] = None
        _check_out(op, [d for d in layout if d is not None])
        return _Tensor(fb.reduce(x.value, rk, axis=ax), layout)
    if k == "attention":
        (qn, q), (kn, kt), (vn, v) = ins
        for n_, t_ in ins:
            if len(t_.layout) != 4 or len(t_.dims) != 4:
                raise op.fields["ins"].error(f"attention: '{n_}' must be projected onto 4 dims "
                                             f"[batch, heads, seq, head_dim], got [{', '.join(t_.dims)}]")
        b_, h_, s_, d_ = q.dims
        if kt.dims[:2] != [b_, h_] or v.dims[:2] != [b_, h_]:
            raise op.fields["ins"].error("attention: q, k, v must share their batch and head dims")
        if kt.dims[3] != d_:
            where = op.projections.get(kn, (None, op.fields["ins"]))[1]
            raise where.error(f"attention contraction dims differ: q's head dim is '{d_}', "
                              f"k's is '{kt.dims[3]}'")
        if v.dims[2] != kt.dims[2]:
            where = op.projections.get(vn, (None, op.fields["ins"]))[1]
            raise where.error(f"attention: v's sequence dim '{v.dims[2]}' differs from k's "
                              f"'{kt.dims[2]}'")
        out_dims = [b_, h_, s_, v.dims[3]]
        _check_out(op, out_dims)
        causal = op.fields["causal"].bool_() if "causal" in op.fields else False
        if causal and c.dims[s_] != c.dims[kt.dims[2]]:
            raise op.fields["causal"].error("causal attention needs equal query and key lengths")
        val = fb.attention(q.value, kt.value, v.value, causal=causal)
        if "scale" in op.fields:
            from xdsl.dialects.builtin import FloatAttr, f64

            val.owner.properties["scale"] = FloatAttr(op.fields["scale"].float_(positive=True), f64)
        return _Tensor(val, out_dims)
    if k == "moe":
        names = [n for n, _ in ins]
        (_, x), (_, r), (_, w1), (_, w3), (_, w2) = ins
        if len(x.dims) != 2 or len(r.dims) != 2:
            raise op.fields["ins"].error("moe: x must be [tokens, hidden] and router [hidden, experts]")
        t_, h_ = x.dims
        e_ = r.dims[1]
        want = {1: [h_, e_]}
        f_ = w1.dims[2] if len(w1.dims) == 3 else None
        want.update({2: [e_, h_, f_], 3: [e_, h_, f_], 4: [e_, f_, h_]})
        for i, t_w in enumerate([x, r, w1, w3, w2]):
            if i in want and t_w.dims != want[i]:
                raise op.projections.get(names[i], (None, op.fields["ins"]))[1].error(
                    f"moe: '{names[i]}' is [{', '.join(t_w.dims)}], expected "
                    f"[{', '.join(str(d) for d in want[i])}] (x [T,H], router [H,E], w1/w3 [E,H,F], "
                    f"w2 [E,F,H])")
        if "topk" not in op.fields:
            raise op.y.error("moe: missing required key 'topk'")
        tk = op.fields["topk"].int_(positive=True)
        if tk > c.dims[e_]:
            raise op.fields["topk"].error(f"topk = {tk} must be <= experts ({e_} = {c.dims[e_]})")
        _check_out(op, [t_, h_])
        return _Tensor(fb.moe(x.value, r.value, w1.value, w3.value, w2.value, topk=tk,
                              experts=c.dims[e_]), [t_, h_])
    raise op.y.error(f"internal: unhandled kind {k}")  # pragma: no cover


def _parse_op(c: _Ctx, y: _Y, kind_of: Callable[[_Y, dict[str, _Y]], str],
              reference: bool) -> _Op:
    if reference:
        f = y.mapping(("name", "ins", "out", "dimensions", "tensors"),
                      required=("name", "ins", "out"))
    else:
        f = y.mapping(None, required=("kind", "ins", "out"))
    kind = kind_of(y, f)
    if not reference:
        allowed = _COMMON_KEYS + _KIND_KEYS[kind]
        for key in f:
            if key not in allowed:
                ky = next(k for k, _ in y.node.value if k.value == key)
                raise _Y(ky, f[key].path, y.file).error(
                    f"unknown key '{key}' for a {kind} operation (allowed: {', '.join(allowed)})")
    ins = f["ins"].names("tensor name")
    arity = _ARITY[kind]
    lo, hi = arity if isinstance(arity, tuple) else (arity, arity)
    if not lo <= len(ins) <= hi:
        want = f"{lo}" if lo == hi else f"{lo} to {hi}"
        raise f["ins"].error(f"{kind} takes {want} inputs, got {len(ins)}")
    out = f["out"].names("tensor name")
    if len(out) != 1:
        raise f["out"].error(f"an operation has exactly one output, got {len(out)}")
    dkey = "dimensions" if reference else "dims"
    if dkey in f:
        for d, dy in f[dkey].names("dim name"):
            if d not in c.dims:
                raise dy.error(f"undefined dim '{d}' (defined: {', '.join(c.dims)})")
    projections: dict[str, tuple[list[str], _Y]] = {}
    if "tensors" in f:
        ty = f["tensors"]
        if reference or ty.is_seq():
            for e in ty.seq():
                ef = e.mapping(("name", "projection", "read-write"), required=("name", "projection"))
                nm = ef["name"].ident("tensor name")
                py = ef["projection"]
                if "read-write" in ef:
                    ef["read-write"].bool_()
                if nm in projections:
                    raise ef["name"].error(f"tensor '{nm}' is projected twice")
                projections[nm] = (_proj(c, py), py)
        else:
            for nm, py in ty.mapping().items():
                if not _IDENT.match(nm):
                    raise py.error(f"tensor name '{nm}' is not an identifier")
                projections[nm] = (_proj(c, py), py)
        touched = {n for n, _ in ins} | {out[0][0]}
        for nm, (_, py) in projections.items():
            if nm not in touched:
                raise py.error(f"tensor '{nm}' is neither an input nor the output of this operation")
    label = f["name"].ident("operation name") if "name" in f else kind
    return _Op(y, f, kind, ins, out[0], projections, label)


def _build(y: _Y, top: dict[str, _Y], dims: dict[str, int], ops_y: list[_Y],
           kind_of: Callable[[_Y, dict[str, _Y]], str], reference: bool, name: str, arch: str,
           dtypes: dict[str, Any], default_dtype: Any, ins_y: _Y, outs_y: _Y) -> ModuleOp:
    c = _Ctx(y, dims, dtypes, default_dtype)
    ops = [_parse_op(c, oy, kind_of, reference) for oy in ops_y]
    if not ops:
        raise (top.get("operations") or y).error("a workload needs at least one operation")
    fin = ins_y.names("tensor name")
    fout = outs_y.names("tensor name")
    seen: set[str] = set()
    for n, ny in fin:
        if n in seen:
            raise ny.error(f"input '{n}' is listed twice")
        seen.add(n)
    produced: dict[str, _Op] = {}
    for op in ops:
        n, ny = op.out
        if n in seen:
            raise ny.error(f"tensor '{n}' is already defined (a function input or an earlier "
                           f"operation's output); tensors are single-assignment")
        seen.add(n)
        produced[n] = op
    # function inputs: their projection comes from the first operation that reads them
    arg_types, arg_layouts = [], []
    for n, ny in fin:
        proj = next((op.projections[n] for op in ops if n in op.projections), None)
        if proj is None:
            raise ny.error(f"input '{n}' has no projection: give it under some operation's "
                           f"`tensors` (e.g. {n}: [M, K])")
        dims_n = proj[0]
        arg_types.append(TensorType(dtypes.get(n, default_dtype), [dims[d] for d in dims_n]))
        arg_layouts.append(list(dims_n))
    c.fb = FuncBuilder(name, arg_types)
    for (n, _), v, lay in zip(fin, c.fb.args, arg_layouts):
        v.name_hint = n
        c.tensors[n] = _Tensor(v, lay)
    for op in ops:
        t = _build_op(c, op)
        n, ny = op.out
        if n in dtypes and op.kind != "gemm" and dtypes[n] != t.value.type.element_type:
            raise ny.error(f"dtype of '{n}' is set to {dtypes[n]} but {op.kind} produces "
                           f"{t.value.type.element_type} (only gemm results take a declared type)")
        t.value.name_hint = n
        c.tensors[n] = t
    results = []
    for n, ny in fout:
        if n not in c.tensors:
            raise ny.error(f"undefined output tensor '{n}' (no operation produces it)")
        results.append(c.tensors[n].value)
    for n, ny in dtypes.items():
        if n not in c.tensors and n != "default":
            raise top["dtypes"].error(f"dtypes names an unknown tensor '{n}'")
    try:
        return c.fb.finish(results, arch)
    except CometError as e:  # a verifier complaint the checks above did not anticipate
        raise y.error(e.message) from None


# --------------------------------------------------------------------------- comet format


_TOP_KEYS = ("name", "arch", "dtype", "dtypes", "dims", "ins", "outs", "operations")


def _dims(y: _Y, const: dict[str, int] | None = None) -> dict[str, int]:
    out = {}
    for d, dy in y.mapping().items():
        if not _IDENT.match(d):
            raise dy.error(f"dim name '{d}' is not an identifier")
        v = dy.scalar()
        if isinstance(v, str) and const is not None:
            if v not in const:
                raise dy.error(f"symbolic size '{v}' is not defined by the const file")
            v = const[v]
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise dy.error(f"size '{dy.scalar()}' = {v!r} (from the const file) must be a "
                               f"positive integer")
        else:
            v = dy.int_(positive=True)
        out[d] = v
    if not out:
        raise y.error("at least one dim is needed")
    return out


def _dtype_of(y: _Y) -> Any:
    v = y.ident("element type")
    if v not in DTYPES:
        raise y.error(f"unknown element type '{v}' (known: {', '.join(DTYPES)})")
    return _dtype(v)


def _load_comet(y: _Y, stem: str) -> ModuleOp:
    top = y.mapping(_TOP_KEYS, required=("dims", "ins", "outs", "operations"))
    dims = _dims(top["dims"])
    name = top["name"].ident("function name") if "name" in top else stem
    arch = top["arch"].str_() if "arch" in top else "edge"
    if "arch" in top and "/" not in arch and not arch.endswith((".yaml", ".yml")):
        from comet_ir.spec.presets import list_presets    # a file is resolved later, beside the input

        if arch not in list_presets():
            raise top["arch"].error(f"unknown architecture preset '{arch}' (presets: {', '.join(list_presets())}; "
                                    "or give a .yaml file)")
    default = _dtype_of(top["dtype"]) if "dtype" in top else _dtype("f16")
    dtypes = {}
    if "dtypes" in top:
        for n, ny in top["dtypes"].mapping().items():
            dtypes[n] = _dtype_of(ny)

    def kind_of(oy: _Y, f: dict[str, _Y]) -> str:
        k = f["kind"].ident("kind").lower()
        if k not in _KIND_KEYS:
            raise f["kind"].error(f"unknown operation kind '{k}' (known: {', '.join(OP_KINDS)})")
        return k

    return _build(y, top, dims, top["operations"].seq(), kind_of, False, name, arch, dtypes,
                  default, top["ins"], top["outs"])


# --------------------------------------------------------------------------- reference format

# reference op name -> our kind
_REF_OPS = {"GEMM": "gemm", "SOFTMAX": "softmax", "ROWMAX": "rowmax", "ROWSUM": "rowsum",
            "SUB": "sub", "ADD": "add", "MUL": "mul", "DIV": "div", "EXP": "exp"}
_PRECISION = {1: "i8", 2: "f16", 4: "f32"}


def is_reference_problem(text: str) -> bool:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return False
    return isinstance(node, yaml.MappingNode) and any(
        isinstance(k, yaml.ScalarNode) and k.value == "problem" for k, _ in node.value)


def _ref_kind(oy: _Y, f: dict[str, _Y]) -> str:
    nm = f["name"].ident("operation name")
    key = nm.upper()
    if re.fullmatch(r"EXP\d*", key):
        key = "EXP"
    if key not in _REF_OPS:
        raise f["name"].error(f"reference operation '{nm}' has no comet equivalent (known: "
                              f"GEMM, softmax, ROWMAX, ROWSUM, SUB, ADD, MUL, DIV, EXP*)")
    return _REF_OPS[key]


def _load_const(path: str | None) -> tuple[dict[str, Any], str | None]:
    if path is None:
        return {}, None
    text = Path(path).read_text()
    y = _compose(text, path)
    top = y.mapping(("const",), required=("const",))
    out = {}
    for k, ky in top["const"].mapping().items():
        out[k] = ky.scalar()
    return out, path


def _load_reference(y: _Y, stem: str, const_path: str | None) -> ModuleOp:
    const, _ = _load_const(const_path)
    top0 = y.mapping(("problem",), required=("problem",))
    py = top0["problem"]
    top = py.mapping(("io", "dimensions", "instance", "operations"),
                     required=("io", "instance", "operations"))
    io = top["io"].mapping(("ins", "outs"), required=("ins", "outs"))
    dims = _dims(top["instance"], const)
    if "dimensions" in top:
        for d, dy in top["dimensions"].names("dim name"):
            if d not in dims:
                raise dy.error(f"dim '{d}' has no size under `instance`")
    # element types from the const file's <T>_precision (bytes), else the paper's convention:
    # i8 operands, f16 results.
    dtypes: dict[str, Any] = {}
    for k, v in const.items():
        m = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)_precision", k)
        if m:
            if v not in _PRECISION:
                raise CometError(f"{k} = {v!r}: precision must be 1, 2 or 4 bytes",
                                 file=const_path, where=f"const.{k}")
            dtypes[m.group(1)] = _dtype(_PRECISION[v])
    fin = [n for n, _ in io["ins"].names("tensor name")]
    for n in fin:
        dtypes.setdefault(n, _dtype("i8"))
    top_all = {**top, "dtypes": py}
    return _build(py, top_all, dims, top["operations"].seq(), _ref_kind, True, stem, "edge",
                  dtypes, _dtype("f16"), io["ins"], io["outs"])


# --------------------------------------------------------------------------- entry points


def _stem(file: str) -> str:
    s = re.sub(r"[^A-Za-z0-9_]", "_", Path(file).stem) or "workload"
    return s if _IDENT.match(s) else "w_" + s


def load_workload_text(text: str, file: str = "<workload>", const_path: str | None = None) -> ModuleOp:
    """Build workload-form IR from YAML text (either accepted format)."""
    y = _compose(text, file)
    if y.is_map() and any(isinstance(k, yaml.ScalarNode) and k.value == "problem"
                          for k, _ in y.node.value):
        return _load_reference(y, _stem(file), const_path)
    return _load_comet(y, _stem(file))


def _find_const(path: str) -> str | None:
    d = os.path.dirname(os.path.abspath(path))
    cand = os.path.join(d, "const.yaml")
    return cand if os.path.exists(cand) else None


def load_workload(path: str | os.PathLike, const_path: str | os.PathLike | None = None) -> ModuleOp:
    """Load a workload YAML file. For a reference `problem.yaml`, `const_path` (default: a
    `const.yaml` beside it, if any) gives the symbolic sizes and the `<T>_precision` types."""
    path = os.fspath(path)
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise CometError(f"cannot read workload: {e.strerror}", file=path) from None
    if const_path is None and is_reference_problem(text):
        const_path = _find_const(path)
    return load_workload_text(text, path, os.fspath(const_path) if const_path else None)
