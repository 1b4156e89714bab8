"""GPU architectures (`kind: gpu` YAML): datasheet peaks plus measured rates.

`GpuArch.from_dict(data, path)` validates with located errors; `to_dict()` round-trips.
`rate(name)` prefers a measured figure over the datasheet one, so the GPU cost model uses what
the machine actually sustains.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import yaml

from comet_ir.errors import CometError
from comet_ir.spec.yamlio import YNode, compose

_DATASHEET_REQUIRED = ("sm_count", "tensor_tflops", "hbm_gbps", "l2_mb", "smem_per_sm_kb",
                       "gpus_per_node", "nvlink_gbps_per_direction", "nvlink_latency_us")
_DATASHEET_KEYS = _DATASHEET_REQUIRED + ("clock_ghz", "cuda_core_tflops", "hbm_gb", "nic_gbps")


@dataclass
class GpuArch:
    name: str
    sm_count: int
    tensor_tflops: dict[str, float]
    hbm_gbps: float
    l2_mb: float
    smem_per_sm_kb: float
    gpus_per_node: int
    nvlink_gbps_per_direction: float
    nvlink_latency_us: float
    clock_ghz: float = 1.98
    cuda_core_tflops: dict[str, float] = field(default_factory=dict)
    hbm_gb: float = 0.0
    nic_gbps: float = 0.0
    measured: dict[str, float] = field(default_factory=dict)
    source: str = ""

    def gemm_tflops(self, dtype: str = "bf16") -> float:
        return self.measured.get(f"gemm_tflops_{dtype}", self.tensor_tflops.get(dtype, 0.0))

    @classmethod
    def from_yaml_text(cls, text: str, path: str) -> "GpuArch":
        return _from_node(compose(text, path))

    @classmethod
    def from_dict(cls, data: dict, path: str = "<gpu>") -> "GpuArch":
        # re-compose so errors carry YAML lines when the file is available
        try:
            text = open(path).read()
        except OSError:
            text = yaml.safe_dump(data, sort_keys=False)
        return cls.from_yaml_text(text, path)

    def to_dict(self) -> dict:
        ds = {k: getattr(self, k) for k in _DATASHEET_KEYS}
        return {"kind": "gpu", "name": self.name, "datasheet": ds, "measured": dict(self.measured)}


def _rates(y: YNode) -> dict[str, float]:
    return {k: v.float_(positive=True) for k, v in y.mapping().items()}


def _from_node(root: YNode) -> GpuArch:
    top = root.mapping(("kind", "name", "datasheet", "measured"), ("kind", "name", "datasheet"))
    if top["kind"].str_() != "gpu":
        raise top["kind"].error("a GPU architecture file needs kind: gpu")
    ds = top["datasheet"].mapping(_DATASHEET_KEYS, _DATASHEET_REQUIRED)
    tt = _rates(ds["tensor_tflops"])
    if "bf16" not in tt:
        raise ds["tensor_tflops"].error("needs at least a bf16 rate")
    return GpuArch(
        name=top["name"].ident("name"), sm_count=ds["sm_count"].int_(positive=True), tensor_tflops=tt,
        hbm_gbps=ds["hbm_gbps"].float_(positive=True), l2_mb=ds["l2_mb"].float_(positive=True),
        smem_per_sm_kb=ds["smem_per_sm_kb"].float_(positive=True),
        gpus_per_node=ds["gpus_per_node"].int_(positive=True),
        nvlink_gbps_per_direction=ds["nvlink_gbps_per_direction"].float_(positive=True),
        nvlink_latency_us=ds["nvlink_latency_us"].float_(positive=True),
        clock_ghz=ds["clock_ghz"].float_(positive=True) if "clock_ghz" in ds else 1.98,
        cuda_core_tflops=_rates(ds["cuda_core_tflops"]) if "cuda_core_tflops" in ds else {},
        hbm_gb=ds["hbm_gb"].float_(positive=True) if "hbm_gb" in ds else 0.0,
        nic_gbps=ds["nic_gbps"].float_(positive=True) if "nic_gbps" in ds else 0.0,
        measured=_rates(top["measured"]) if "measured" in top else {},
        source=root.file)
