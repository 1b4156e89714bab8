"""One line per kernel of Nsight Compute's raw CSV (`ncu --csv --page raw --metrics ...`): the
kernel name and the DRAM / L2 / duration metrics with their units. Used by the device scripts."""
import csv
import sys

KEYS = ("dram__bytes_read.sum", "dram__bytes_write.sum", "lts__t_sector_hit_rate.pct", "gpu__time_duration.sum")


def main(path: str) -> None:
    rows = [r for r in csv.reader(open(path)) if len(r) > 5]      # ncu's own "==PROF==" lines are short
    if not rows:
        print("ncu: no rows")
        return
    head = rows[0]
    col = {k: head.index(k) for k in head if k in ("Kernel Name",) + KEYS}
    units = rows[1] if len(rows) > 1 and not rows[1][0].strip().isdigit() else None
    for r in rows[1 + (units is not None):]:
        print("ncu:", r[col["Kernel Name"]][:50],
              {k: r[i] + (" " + units[i] if units else "") for k, i in col.items() if k != "Kernel Name"})


if __name__ == "__main__":
    main(sys.argv[1])
