"""Architecture loading: presets, and one located error per validation rule."""
import os

import pytest

from comet_ir.errors import CometError
from comet_ir.spec.presets import list_presets, load_arch
from comet_ir.spec.refarch import load_reference_arch_text

EXAMPLE = open(os.path.join(os.path.dirname(__file__), "..", "data", "reference", "example_run", "arch.yaml")).read()


def test_presets_load_with_the_paper_meshes():
    assert {"edge", "cloud"} <= set(list_presets())
    edge, cloud = load_arch("edge"), load_arch("cloud")
    assert edge.level("GB").mesh == (2, 2) and cloud.level("GB").mesh == (4, 4)
    assert edge.memory("GB").capacity == 2048 * 1024  # width 2048 B x depth 1024
    assert cloud.memory("GB").capacity == 4096 * 2048
    assert edge.compute("GEMMEngine").kind == "mac" and edge.compute("SE").kind == "simd"


def _err(text: str) -> str:
    with pytest.raises(CometError) as e:
        load_reference_arch_text(text, "a.yaml")
    return e.value.located()


@pytest.mark.parametrize("old,new,expect", [
    ("      width: 128\n      depth: 4096\n      ports: 1", "      width: 128\n      depht: 4096\n      ports: 1",
     "MemoryTypes[0].attributes.depht: unknown key 'depht'"),
    ("      depth: 4096\n      ports: 1", "      depth: -4\n      ports: 1", "must be a positive integer, got -4"),
    ("      width: 128\n      depth: 4096\n      ports: 1", "      width: wide\n      depth: 4096\n      ports: 1",
     "expected an integer, got str 'wide'"),
    ("    class: SRAM", "    class: FLASH", "memory class must be SRAM or DRAM, got 'FLASH'"),
    ("      bw: 1024 ", "      bw: 0 ", "must be > 0, got 0"),
    ("        type: GBuffer", "        type: GlobalBuffer", "unknown memory type 'GlobalBuffer'"),
    ("                type: GEMM\n", "                type: TPU\n", "unknown compute type 'TPU'"),
    ("      - name: GBuffer[0..3]", "      - name: GBuffer[0..5]", "6 instances but meshX*meshY = 4"),
    ("      - name: GBuffer[0..3]", "      - name: GBuffer(0..3)", "is not NAME or NAME[a..b]"),
    ("      computeOpC: 4096 ", "", "missing required key 'computeOpC'"),
])
def test_each_validation_rule_is_located(old, new, expect):
    assert old in EXAMPLE, old
    msg = _err(EXAMPLE.replace(old, new, 1))
    assert msg.startswith("a.yaml:") and expect in msg, msg


def test_malformed_yaml_is_located():
    assert _err("ComputeTiles: [\n").startswith("a.yaml:2:")


@pytest.mark.parametrize("name", ["edge", "cloud"])
def test_accelerator_presets_round_trip_through_yaml(name):
    from comet_ir.spec.refarch import dump_reference_arch

    a = load_arch(name)
    b = load_reference_arch_text(dump_reference_arch(a), "again.yaml", a.name)
    b.source = a.source
    assert b == a


def test_simd_op_costs_and_clock_are_architecture_data():
    text = EXAMPLE.replace("      computeOpC: 64\n", "      computeOpC: 64\n      op_costs: {exp: 7}\n", 1)
    a = load_reference_arch_text("clock_ghz: 1.5\n" + text, "a.yaml")
    assert a.clock_ghz == 1.5
    simd = a.compute("simdengine")
    assert simd.op_costs["exp"] == 7 and simd.op_costs["add"] == 1  # default kept for the rest
    msg = _err(EXAMPLE.replace("      computeOpC: 64\n", "      computeOpC: 64\n      op_costs: {exp: 0}\n", 1))
    assert "op_costs.exp" in msg and "must be a positive integer" in msg
