"""One line per kernel of Nsight Compute's raw CSV (`ncu --csv --page raw --metrics ...`): the
call's label (from the script's stderr, else the kernel name) and the DRAM / L2 / clock / duration
metrics with their units. Used by the device scripts; the CSV is read by ncu_compare.load (ncu's
own warning lines may precede the header).

  ncu ... --metrics $(python3 tools/ncu_summary.py --keys) SCRIPT > ncu.csv 2> ncu.err
  python3 tools/ncu_summary.py ncu.csv [ncu.err]"""
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ncu_compare import load  # noqa: E402

KEYS = ("dram__bytes_read.sum", "dram__bytes_write.sum", "lts__t_sector_hit_rate.pct", "gpu__time_duration.sum",
        # L2 reads after the request coalescer and its fan-out (sectors delivered per L2 read), clock
        "lrc__lts2lrc_sectors_op_read.sum", "lrc__average_xbar2gpc_sectors_op_read.ratio",
        "gpc__cycles_elapsed.avg.per_second", "sm__cycles_elapsed.avg")


def labels_of(err_path: str | None) -> list[str]:
    """The measurement scripts' own names for the profiled calls ("profiled NAME" / "profiled: NAME"
    lines on their stderr, in profiling order): every call of ours has the same kernel name."""
    if not err_path or not Path(err_path).exists():
        return []
    return [m.group(1).strip() for m in map(re.compile(r"profiled:?\s+(.+)").match, open(err_path)) if m]


def main(path: str, err_path: str | None = None) -> None:
    try:
        names, metrics, units = load(path)
    except SystemExit:
        print("ncu: no rows")
        return
    labels = labels_of(err_path)
    if len(labels) != len(names):
        labels = names
    for i, label in enumerate(labels):
        print("ncu:", label, {k: f"{metrics[k][i]:g} {units.get(k, '')}".strip() for k in KEYS if k in metrics})


if __name__ == "__main__":
    if sys.argv[1:] == ["--keys"]:      # the metric list for ncu --metrics (one list, here)
        print(",".join(KEYS))
    else:
        main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)
