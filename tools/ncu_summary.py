"""One line per kernel of Nsight Compute's raw CSV (`ncu --csv --page raw --metrics ...`): the
kernel name and the DRAM / L2 / duration metrics with their units. Used by the device scripts;
the CSV is read by ncu_compare.load (ncu's own warning lines may precede the header)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ncu_compare import load  # noqa: E402

KEYS = ("dram__bytes_read.sum", "dram__bytes_write.sum", "lts__t_sector_hit_rate.pct", "gpu__time_duration.sum",
        # L2 reads after the request coalescer and its fan-out (sectors delivered per L2 read), clock
        "lrc__lts2lrc_sectors_op_read.sum", "lrc__average_xbar2gpc_sectors_op_read.ratio",
        "gpc__cycles_elapsed.avg.per_second", "sm__cycles_elapsed.avg")


def main(path: str) -> None:
    try:
        names, metrics, units = load(path)
    except SystemExit:
        print("ncu: no rows")
        return
    for i, name in enumerate(names):
        print("ncu:", name, {k: f"{metrics[k][i]:g} {units.get(k, '')}".strip() for k in KEYS if k in metrics})


if __name__ == "__main__":
    main(sys.argv[1])
