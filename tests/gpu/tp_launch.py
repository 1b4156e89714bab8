"""Launch W ranks of tp_worker.py on this machine's GPU(s) and collect their JSON results."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORKER = Path(__file__).with_name("tp_worker.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(world: int, task: str, timeout_s: float = 240, log_dir: str | None = None) -> list[dict]:
    # free_port() lets the port go before rank 0's store binds it, so another process can take it
    # in between (seen once: EADDRINUSE): try again on a fresh port
    for _ in range(3):
        res = _launch_once(world, task, timeout_s, log_dir)
        if not any("EADDRINUSE" in r.get("log", "") for r in res):
            break
    return res


def _launch_once(world: int, task: str, timeout_s: float, log_dir: str | None) -> list[dict]:
    d = Path(log_dir or tempfile.mkdtemp(prefix="comet_tp_"))
    d.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = dict(os.environ, NCCL_NVLS_ENABLE="0", NVSHMEM_DISABLE_NVLS="1", TORCH_SYMM_MEM_DISABLE_MULTICAST="1",
               PYTHONUNBUFFERED="1")
    procs = []
    for r in range(world):
        out = d / f"{task}_w{world}_r{r}.json"
        if out.exists():
            out.unlink()
        log = open(d / f"{task}_w{world}_r{r}.log", "w")
        procs.append((subprocess.Popen([sys.executable, str(WORKER), "--rank", str(r), "--world", str(world),
                                        "--port", str(port), "--task", task, "--out", str(out)],
                                       stdout=log, stderr=subprocess.STDOUT, env=env), out, log))
    t_end = time.time() + timeout_s
    results = []
    for p, out, log in procs:
        try:
            p.wait(timeout=max(1.0, t_end - time.time()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        log.close()
        if out.exists():
            results.append(json.loads(out.read_text()))
        else:
            tail = Path(log.name).read_text()[-2000:]
            results.append({"rank": len(results), "error": f"no result (exit {p.returncode}, killed at timeout?)",
                            "log": tail})
    return results


if __name__ == "__main__":
    world, task = int(sys.argv[1]), sys.argv[2]
    res = launch(world, task, float(sys.argv[3]) if len(sys.argv) > 3 else 240,
                 sys.argv[4] if len(sys.argv) > 4 else None)
    print(json.dumps(res, indent=1))
