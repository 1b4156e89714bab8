"""GPU presets: load, round-trip through YAML, located validation errors."""
import pytest
import yaml

from comet_ir.errors import CometError
from comet_ir.spec.gpu import GpuArch
from comet_ir.spec.presets import load_arch


@pytest.mark.parametrize("name", ["h100", "h200"])
def test_gpu_preset_round_trips(tmp_path, name):
    a = load_arch(name)
    assert a.sm_count == 132 and a.tensor_tflops["bf16"] == 989.4
    p = tmp_path / f"{name}.yaml"
    p.write_text(yaml.safe_dump(a.to_dict(), sort_keys=False))
    b = GpuArch.from_yaml_text(p.read_text(), str(p))
    b.source = a.source
    assert b == a


def test_measured_rate_preferred_over_datasheet():
    h100 = load_arch("h100")
    assert h100.gemm_tflops("bf16") == 697  # measured cuBLAS figure, not the 989.4 peak


@pytest.mark.parametrize("edit,expect", [
    (("  sm_count: 132\n", ""), "missing required key 'sm_count'"),
    (("  sm_count: 132\n", "  sm_count: 0\n"), "must be a positive integer, got 0"),
    (("  l2_mb: 50\n", "  l2_mb: 50\n  l3_mb: 1\n"), "datasheet.l3_mb: unknown key 'l3_mb'"),
    (("kind: gpu", "kind: tpu"), "needs kind: gpu"),
])
def test_gpu_validation_is_located(tmp_path, edit, expect):
    from comet_ir.spec.presets import PRESET_DIR

    text = (PRESET_DIR / "h100.yaml").read_text().replace(*edit)
    with pytest.raises(CometError) as e:
        GpuArch.from_yaml_text(text, "g.yaml")
    msg = e.value.located()
    assert msg.startswith("g.yaml:") and expect in msg, msg
