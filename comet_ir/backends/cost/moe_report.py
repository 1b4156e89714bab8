"""`--target=cost-report|cost-json|trace` for MoE layers (`comet.moe` or `comet-lower-moe`
output): the GPU MoE model (`moe_model.predict`) per layer, with the comm-block share the
model chooses when EP > 1."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class MoEReport:
    arch: str
    layers: list[dict] = field(default_factory=list)

    @property
    def latency_ms(self) -> float:
        return sum(l["predicted"]["total_ms"] for l in self.layers)

    def to_json(self) -> dict:
        return {"schema": 1, "kind": "moe", "arch": self.arch, "latency_ms": self.latency_ms,
                "layers": self.layers}

    def render(self) -> str:
        lines = [f"MoE cost report on {self.arch} (per rank, ms)", ""]
        for i, l in enumerate(self.layers):
            c, p = l["config"], l["predicted"]
            lines.append(f"layer {i}: tokens {c['tokens']} hidden {c['hidden']} ffn {c['ffn']} "
                         f"experts {c['experts']} top-{c['topk']} EP {c['ep']} TP {c['tp']} "
                         f"impl {l['impl']} comm share {l['comm_ratio']:.2f}")
            for k in ("route_ms", "permute_ms", "gemm1_ms", "swiglu_ms", "gemm2_ms", "combine_ms",
                      "comm_ms", "tp_comm_ms", "total_ms"):
                lines.append(f"  {k[:-3]:10s} {p[k]:9.3f}")
            lines.append(f"  expert GEMMs {p['gemm_tflops']:.0f} TFLOP/s effective")
        lines.append(f"\ntotal {self.latency_ms:.3f} ms")
        return "\n".join(lines)

    def to_chrome_trace(self) -> dict:
        events, t = [], 0.0
        for i, l in enumerate(self.layers):
            for k in ("route_ms", "permute_ms", "gemm1_ms", "swiglu_ms", "gemm2_ms", "combine_ms"):
                d = l["predicted"][k] * 1e3
                events.append({"name": f"layer{i}.{k[:-3]}", "ph": "X", "ts": t, "dur": d, "pid": 1, "tid": i})
                t += d
        return {"traceEvents": events, "displayTimeUnit": "ms"}


def has_moe(module) -> bool:
    return any(op.name in ("comet.moe", "cometmoe.layer0") for op in module.walk())


def estimate_moe(module, arch: str = "h100") -> MoEReport:
    from comet_ir.backends.cost.moe_model import MoEConfig, choose_comm_ratio, predict
    from comet_ir.backends.cuda.moe.from_ir import moe_configs

    rep = MoEReport(arch)
    for c in moe_configs(module):
        cfg = MoEConfig(c.tokens, c.hidden, c.ffn, c.experts, c.topk, c.ep, c.tp)
        impl, ratio = "grouped", 0.0
        if c.ep > 1:
            impl = "fused"
            chosen = choose_comm_ratio(cfg, arch)
            ratio = chosen[0] if isinstance(chosen, tuple) else float(chosen)
        rep.layers.append({"config": c.__dict__ | {"tile": list(c.tile)}, "impl": impl,
                           "comm_ratio": ratio, "predicted": predict(cfg, arch, impl, ratio)})
    return rep
