"""Python builders of workload-form `comet` IR.

Every builder returns a verified-shape `builtin.module` carrying a `comet.arch` attribute and
one `func.func` whose body is workload ops (`comet.gemm`, `comet.softmax`, ...)::

    from comet_ir.spec.workloads import gemm_softmax, llama_attention
    m = gemm_softmax(256, 1024, 4096)             # the paper's GEMM-Softmax on `edge`
    a = llama_attention("llama3-8b", seq=2048)    # one layer's self-attention
    print(comet_ir.api.print_module(m))

Conventions (the same as the hand-written `examples/*.mlir`): GEMM operands of the paper's
accelerator study are `i8` with an `f16` result; attention and MoE use `f16`/`bf16`.
Tensor-parallel builders (`tp_ag_gemm`, `tp_gemm_rs`) describe ONE rank: shapes are per rank and
the communication is an explicit `comet.collective`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from xdsl.dialects import func
from xdsl.dialects.builtin import (
    BFloat16Type,
    Float16Type,
    Float32Type,
    IntegerType,
    ModuleOp,
    StringAttr,
    TensorType,
    bf16,
    f16,
    f32,
    i8,
)
from xdsl.ir import Attribute, Block, Region, SSAValue

from comet_ir.dialects import comet_workload as W
from comet_ir.dialects.syntax import make_props
from comet_ir.errors import CometError

DTYPES: dict[str, Attribute] = {"i8": i8, "f16": f16, "bf16": bf16, "f32": f32}


def dtype(name: str | Attribute) -> Attribute:
    if not isinstance(name, str):
        return name
    try:
        return DTYPES[name]
    except KeyError:
        raise CometError(f"unknown element type '{name}' (known: {', '.join(DTYPES)})") from None


def dtype_name(t: Attribute) -> str:
    for k, v in DTYPES.items():
        if v == t:
            return k
    raise CometError(f"unsupported element type {t}")


def _positive(**dims: int) -> None:
    for k, v in dims.items():
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            raise CometError(f"{k} = {v!r} must be a positive integer")


class FuncBuilder:
    """Appends workload ops to one function body; every method returns the result value."""

    def __init__(self, name: str, arg_types: Sequence[TensorType]):
        self.name = name
        self.block = Block(arg_types=list(arg_types))
        self.args = list(self.block.args)

    def _add(self, cls, operands, result_type, **fields) -> SSAValue:
        op = cls.build(operands=operands, result_types=[result_type],
                       properties=make_props(cls, **fields))
        self.block.add_op(op)
        return op.results[0]

    @staticmethod
    def shape(v: SSAValue) -> tuple[int, ...]:
        return tuple(v.type.get_shape())

    def gemm(self, a, b, out_elem=None, transpose_b=False, batch=0) -> SSAValue:
        sa, sb = self.shape(a), self.shape(b)
        n = sb[batch] if transpose_b else sb[batch + 1]
        shape = list(sa[:batch]) + [sa[batch], n]
        t = TensorType(out_elem or a.type.element_type, shape)
        return self._add(W.GemmOp, [a, b], t, batch=batch, transpose_b=transpose_b)

    def unary(self, cls, x, **fields) -> SSAValue:
        return self._add(cls, [x], x.type, **fields)

    def softmax(self, x, axis=-1):
        return self.unary(W.SoftmaxOp, x, axis=axis)

    def layernorm(self, x, gamma=None, beta=None, axis=-1, eps=1e-5):
        ops = [x] + ([[gamma, beta]] if gamma is not None else [[]])
        op = W.LayerNormOp.build(operands=ops, result_types=[x.type],
                                 properties=make_props(W.LayerNormOp, axis=axis, eps=eps))
        self.block.add_op(op)
        return op.results[0]

    def binary(self, cls, a, b):
        shape = W.broadcast_shape(self.shape(a), self.shape(b))
        if shape is None:
            raise CometError(f"{cls.name}: shapes {self.shape(a)} and {self.shape(b)} do not broadcast")
        return self._add(cls, [a, b], TensorType(a.type.element_type, list(shape)))

    def reduce(self, x, kind: str, axis=-1):
        s = list(self.shape(x))
        s[axis] = 1
        return self._add(W.ReduceOp_, [x], TensorType(x.type.element_type, s), kind=kind, axis=axis)

    def collective(self, x, kind: str, world: int, axis=0, reduce="none"):
        s = list(self.shape(x))
        if kind in ("allgather", "gather"):
            s[axis] *= world
        elif kind in ("reducescatter", "scatter"):
            if s[axis] % world:
                raise CometError(f"comet.collective {kind}: axis size {s[axis]} is not divisible by world={world}")
            s[axis] //= world
        return self._add(W.CollectiveOp, [x], TensorType(x.type.element_type, s),
                         kind=kind, world=world, axis=axis, reduce=reduce)

    def attention(self, q, k, v, causal=False):
        sq, sv = self.shape(q), self.shape(v)
        t = TensorType(q.type.element_type, [sq[0], sq[1], sq[2], sv[3]])
        return self._add(W.AttentionOp, [q, k, v], t, causal=causal)

    def moe(self, x, router, w1, w3, w2, topk, experts):
        return self._add(W.MoEOp, [x, router, w1, w3, w2], x.type, topk=topk, experts=experts)

    def finish(self, results: Sequence[SSAValue], arch: str) -> ModuleOp:
        self.block.add_op(func.ReturnOp(*results))
        ft = ([a.type for a in self.args], [r.type for r in results])
        f = func.FuncOp(self.name, ft, Region(self.block))
        m = ModuleOp([f])
        m.attributes["comet.arch"] = StringAttr(arch)
        from comet_ir.api import verify_module

        verify_module(m)
        return m


def _t(elem, *shape) -> TensorType:
    return TensorType(dtype(elem), list(shape))


# ------------------------------------------------------------------ the paper's workloads


def gemm_softmax(M: int, N: int, K: int, *, arch: str = "edge", in_dtype="i8",
                 out_dtype="f16") -> ModuleOp:
    """C[M,N] = A[M,K] @ B[K,N]; D = softmax(C) over N (the paper's GEMM-Softmax)."""
    _positive(M=M, N=N, K=K)
    b = FuncBuilder("gemm_softmax", [_t(in_dtype, M, K), _t(in_dtype, K, N)])
    c = b.gemm(b.args[0], b.args[1], out_elem=dtype(out_dtype))
    return b.finish([b.softmax(c, axis=1)], arch)


def gemm_layernorm(M: int, N: int, K: int, *, arch: str = "edge", in_dtype="i8",
                   out_dtype="f16", eps: float = 1e-5, affine: bool = False) -> ModuleOp:
    """C[M,N] = A @ B; D = layernorm(C) over N (the paper's GEMM-LayerNorm)."""
    _positive(M=M, N=N, K=K)
    args = [_t(in_dtype, M, K), _t(in_dtype, K, N)]
    if affine:
        args += [_t(out_dtype, N), _t(out_dtype, N)]
    b = FuncBuilder("gemm_layernorm", args)
    c = b.gemm(b.args[0], b.args[1], out_elem=dtype(out_dtype))
    g, be = (b.args[2], b.args[3]) if affine else (None, None)
    return b.finish([b.layernorm(c, g, be, axis=1, eps=eps)], arch)


def attention(B: int, H: int, S: int, D: int, causal: bool = False, *, arch: str = "edge",
              elem="f16") -> ModuleOp:
    """O = softmax(Q K^T / sqrt(D) [+ causal mask]) V on [B, H, S, D] tensors."""
    _positive(B=B, H=H, S=S, D=D)
    t = _t(elem, B, H, S, D)
    b = FuncBuilder("attention", [t, t, t])
    return b.finish([b.attention(*b.args, causal=causal)], arch)


def moe(tokens: int, hidden: int, ffn: int, experts: int, topk: int, *, arch: str = "h100",
        elem="bf16") -> ModuleOp:
    """SwiGLU mixture-of-experts layer: x[T,H] -> router top-k -> experts -> combine -> [T,H]."""
    _positive(tokens=tokens, hidden=hidden, ffn=ffn, experts=experts, topk=topk)
    if topk > experts:
        raise CometError(f"topk = {topk} must be <= experts = {experts}")
    b = FuncBuilder("moe", [_t(elem, tokens, hidden), _t(elem, hidden, experts),
                            _t(elem, experts, hidden, ffn), _t(elem, experts, hidden, ffn),
                            _t(elem, experts, ffn, hidden)])
    return b.finish([b.moe(*b.args, topk=topk, experts=experts)], arch)


def tp_ag_gemm(M: int, K: int, N: int, tp: int, *, arch: str = "h100", elem="bf16") -> ModuleOp:
    """One rank of a tensor-parallel AllGather+GEMM (column-parallel linear):
    x[M/tp, K] --allgather(axis 0)--> [M, K] @ W[K, N/tp] -> [M, N/tp]."""
    _positive(M=M, K=K, N=N, tp=tp)
    for nm, v in (("M", M), ("N", N)):
        if v % tp:
            raise CometError(f"{nm} = {v} is not divisible by tp = {tp}")
    b = FuncBuilder("tp_ag_gemm", [_t(elem, M // tp, K), _t(elem, K, N // tp)])
    x = b.collective(b.args[0], "allgather", tp, axis=0)
    return b.finish([b.gemm(x, b.args[1])], arch)


def tp_gemm_rs(M: int, K: int, N: int, tp: int, *, arch: str = "h100", elem="bf16") -> ModuleOp:
    """One rank of a tensor-parallel GEMM+ReduceScatter (row-parallel linear):
    x[M, K/tp] @ W[K/tp, N] -> partial [M, N] --reducescatter(add, axis 0)--> [M/tp, N]."""
    _positive(M=M, K=K, N=N, tp=tp)
    for nm, v in (("M", M), ("K", K)):
        if v % tp:
            raise CometError(f"{nm} = {v} is not divisible by tp = {tp}")
    b = FuncBuilder("tp_gemm_rs", [_t(elem, M, K // tp), _t(elem, K // tp, N)])
    y = b.gemm(b.args[0], b.args[1])
    return b.finish([b.collective(y, "reducescatter", tp, axis=0, reduce="add")], arch)


# ------------------------------------------------------------------ real-model shapes


@dataclass(frozen=True)
class ModelShape:
    """Published configuration of a transformer (hidden size, heads, FFN, experts)."""

    hidden: int
    heads: int
    head_dim: int
    ffn: int
    experts: int = 0
    topk: int = 0


# Values from the models' published config.json files.
MODELS: dict[str, ModelShape] = {
    "llama2-7b": ModelShape(hidden=4096, heads=32, head_dim=128, ffn=11008),
    "llama2-13b": ModelShape(hidden=5120, heads=40, head_dim=128, ffn=13824),
    "llama3-8b": ModelShape(hidden=4096, heads=32, head_dim=128, ffn=14336),
    "llama3-70b": ModelShape(hidden=8192, heads=64, head_dim=128, ffn=28672),
    "bert-base": ModelShape(hidden=768, heads=12, head_dim=64, ffn=3072),
    "bert-large": ModelShape(hidden=1024, heads=16, head_dim=64, ffn=4096),
    "gpt2": ModelShape(hidden=768, heads=12, head_dim=64, ffn=3072),
    "mixtral-8x7b": ModelShape(hidden=4096, heads=32, head_dim=128, ffn=14336, experts=8, topk=2),
    "mixtral-8x22b": ModelShape(hidden=6144, heads=48, head_dim=128, ffn=16384, experts=8, topk=2),
    "qwen2-57b-a14b": ModelShape(hidden=3584, heads=28, head_dim=128, ffn=2560, experts=64, topk=8),
}


def model(name: str) -> ModelShape:
    try:
        return MODELS[name]
    except KeyError:
        raise CometError(f"unknown model '{name}' (known: {', '.join(MODELS)})") from None


def llama_attention(model_name: str = "llama3-8b", seq: int = 2048, batch: int = 1,
                    causal: bool = True, **kw) -> ModuleOp:
    """One layer's self-attention of a published model (query heads; GQA K/V are expanded)."""
    s = model(model_name)
    return attention(batch, s.heads, seq, s.head_dim, causal=causal, **kw)


def bert_attention(model_name: str = "bert-base", seq: int = 512, batch: int = 1, **kw) -> ModuleOp:
    s = model(model_name)
    return attention(batch, s.heads, seq, s.head_dim, causal=False, **kw)


def mixtral_8x7b_moe(tokens: int = 2048, **kw) -> ModuleOp:
    s = MODELS["mixtral-8x7b"]
    return moe(tokens, s.hidden, s.ffn, s.experts, s.topk, **kw)


def model_moe(model_name: str, tokens: int = 2048, **kw) -> ModuleOp:
    s = model(model_name)
    if not s.experts:
        raise CometError(f"model '{model_name}' has no experts")
    return moe(tokens, s.hidden, s.ffn, s.experts, s.topk, **kw)


def llama_mlp_tp(model_name: str = "llama3-8b", tokens: int = 4096, tp: int = 8, **kw):
    """The two TP GEMMs of a model's MLP: (AllGather+up-projection, down-projection+ReduceScatter)."""
    s = model(model_name)
    return (tp_ag_gemm(tokens, s.hidden, s.ffn, tp, **kw),
            tp_gemm_rs(tokens, s.ffn, s.hidden, tp, **kw))


def model_gemm_softmax(model_name: str, seq: int, **kw) -> ModuleOp:
    """The QK^T-softmax slice of one head as a GEMM-Softmax: [seq, head_dim] @ [head_dim, seq]."""
    s = model(model_name)
    return gemm_softmax(seq, seq, s.head_dim, **kw)


def model_gemm_layernorm(model_name: str, tokens: int, **kw) -> ModuleOp:
    """The output projection + LayerNorm of a layer: [tokens, hidden] @ [hidden, hidden]."""
    s = model(model_name)
    return gemm_layernorm(tokens, s.hidden, s.hidden, **kw)


BUILDERS = {
    "gemm_softmax": gemm_softmax,
    "gemm_layernorm": gemm_layernorm,
    "attention": attention,
    "moe": moe,
    "tp_ag_gemm": tp_ag_gemm,
    "tp_gemm_rs": tp_gemm_rs,
}
