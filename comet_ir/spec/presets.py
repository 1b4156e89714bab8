"""Architecture presets by name, or a spec file by path.

`edge` / `cloud` are the paper's two accelerators (the reference implementation's
iterative_mapper arch files, shipped unchanged in presets/). GPU presets (`h100`, `h200`) are
YAML files with `kind: gpu`, loaded by `comet_ir.spec.gpu` when that backend is installed.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from comet_ir.errors import CometError

PRESET_DIR = Path(__file__).parent / "presets"


def list_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def _load_file(path: Path, name: str | None = None):
    try:
        text = path.read_text()
    except OSError as e:
        raise CometError(e.strerror or str(e), file=str(path)) from None
    from comet_ir.spec.refarch import is_reference_arch, load_reference_arch_text

    if is_reference_arch(text):
        return load_reference_arch_text(text, str(path), name)
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise CometError(f"malformed YAML: {e}", file=str(path)) from None
    if isinstance(data, dict) and data.get("kind") == "gpu":
        try:
            from comet_ir.spec.gpu import GpuArch
        except ImportError:
            raise CometError("GPU architecture files need the CUDA backend (comet_ir.spec.gpu), "
                             "which is not in this build", file=str(path)) from None
        return GpuArch.from_dict(data, str(path))
    raise CometError("not an architecture file: expected the reference format (ComputeTiles, "
                     "MemoryTypes, Hierarchy) or `kind: gpu`", file=str(path), line=1, col=1)


@lru_cache(maxsize=32)
def load_arch(name_or_path: str):
    """A preset name (see list_presets()) or a path to an architecture YAML file."""
    preset = PRESET_DIR / f"{name_or_path}.yaml"
    if "/" not in name_or_path and preset.exists():
        return _load_file(preset, name_or_path)
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        return _load_file(p)
    raise CometError(f"unknown architecture '{name_or_path}': not a preset "
                     f"({', '.join(list_presets())}) and not a file")
