"""GPU tests run only where torch sees a CUDA device; elsewhere they are skipped with a reason."""
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
