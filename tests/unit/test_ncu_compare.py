"""tools/ncu_compare.py reads Nsight Compute's raw CSV as the device scripts capture it: ncu's own
"==PROF==" / "==WARNING==" lines first (a warning may hold commas), then the header, the units and
one row per kernel; short set-up kernels are left out, and metrics are ranked by disagreement."""
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("ncu_compare", ROOT / "tools" / "ncu_compare.py")
ncu_compare = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ncu_compare)

CSV = '''==WARNING== Note: Running with unmodified GPU clocks. If not controlled otherwise, profiling results may be inconsistent.
==PROF== Connected to process 1002 (/usr/bin/python3.12)
==WARNING== Unable to access the following 2 metrics: ctc__rx_bytes.sum, ctc__tx_bytes.sum, a, b, c, d.
"ID","Kernel Name","gpu__time_duration.sum","dram__bytes_read.sum","smsp__inst_executed.sum","launch__grid_dim_x"
"","","nsecond","byte","inst",""
"0","nvjet_sm90_tst_256x128_64x4_1x2_h_bz_coopA_NNT","598780","517,110,000","58,735,000","2"
"1","moe_group_args_kernel(int)","4896","30720","1545","1"
"2","comet_tp::tp_gemm_kernel(Params)","618400","641,480,000","55,173,000","132"
==PROF== Disconnected from process 1002
'''


def test_header_after_warning_lines_and_numbers_with_commas(tmp_path):
    p = tmp_path / "ncu.csv"
    p.write_text(CSV)
    names, metrics, units = ncu_compare.load(str(p))
    assert len(names) == 3 and names[0].startswith("nvjet") and names[2].startswith("comet_tp")
    assert metrics["dram__bytes_read.sum"] == [517110000.0, 30720.0, 641480000.0]
    assert "ID" not in metrics and units["gpu__time_duration.sum"] == "nsecond"


def test_short_kernels_dropped_and_ranked_by_disagreement(tmp_path, capsys):
    p = tmp_path / "ncu.csv"
    p.write_text(CSV)
    assert ncu_compare.main([str(p), "--min-rel", "0.01"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "moe_group_args" not in out[0] and "[1] comet_tp" in out[0]
    ranked = [line.split()[0] for line in out[1:]]
    # grid 132/2 = 66x, DRAM 641/517 = 1.24x, inst 58.7/55.2 = 1.065x, time 618/599 = 1.033x
    assert ranked == ["launch__grid_dim_x", "dram__bytes_read.sum", "smsp__inst_executed.sum",
                      "gpu__time_duration.sum"]


@pytest.fixture
def summary(tmp_path):
    """(the ncu_summary module, the path of CSV written to a file)"""
    spec2 = importlib.util.spec_from_file_location("ncu_summary", ROOT / "tools" / "ncu_summary.py")
    mod = importlib.util.module_from_spec(spec2)
    spec2.loader.exec_module(mod)
    p = tmp_path / "ncu.csv"
    p.write_text(CSV)
    return mod, str(p)


def test_summary_reads_the_same_csv(summary, capsys):
    ncu_summary, p = summary
    ncu_summary.main(p)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and "'dram__bytes_read.sum': '6.4148e+08 byte'" in lines[2]


def test_summary_names_rows_by_the_profiled_labels(summary, tmp_path, capsys):
    ncu_summary, p = summary
    n_rows = len(ncu_summary.load(p)[0])
    err = tmp_path / "ncu.err"
    err.write_text("compulsory_read_bytes 1 write_bytes 2\n" + "".join(f"profiled call{i}\n" for i in range(n_rows)))
    ncu_summary.main(p, str(err))
    assert [ln.split()[1] for ln in capsys.readouterr().out.splitlines()] == [f"call{i}" for i in range(n_rows)]
    err.write_text("".join(f"profiled: g1:v{i}\n" for i in range(n_rows)))    # the MoE script's form
    ncu_summary.main(p, str(err))
    assert [ln.split()[1] for ln in capsys.readouterr().out.splitlines()] == [f"g1:v{i}" for i in range(n_rows)]
    # a label count that does not match the rows falls back to the kernel names
    err.write_text("profiled only_one\n")
    ncu_summary.main(p, str(err))
    assert "only_one" not in capsys.readouterr().out
