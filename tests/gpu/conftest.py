"""GPU tests run only where torch sees a CUDA device; elsewhere they are skipped with a reason."""
import fcntl
import os
import tempfile

import pytest


def _gpu_reason():
    try:
        import torch
    except Exception:
        return "torch is not installed (pip install comet-ir[gpu])"
    if not torch.cuda.is_available():
        return "no CUDA GPU visible"
    return None


def pytest_collection_modifyitems(config, items):
    reason = _gpu_reason()
    for item in items:
        if "tests/gpu" in str(item.fspath).replace("\\", "/") and "gpu" not in item.keywords:
            item.add_marker(pytest.mark.gpu)
        if reason and "gpu" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(autouse=True)
def _one_gpu_test_at_a_time(request):
    """Under pytest-xdist (the README runs the suite with -n auto) GPU test files land on several
    workers; ranks sharing the GPU with another file's kernels could hit their bounded waits, so
    GPU tests take a machine-wide lock."""
    if "gpu" not in request.node.keywords or not os.environ.get("PYTEST_XDIST_WORKER"):
        yield
        return
    with open(os.path.join(tempfile.gettempdir(), "comet_ir_gpu_tests.lock"), "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
