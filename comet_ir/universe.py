"""`xdsl.universe` entry point: makes comet dialects, passes and targets visible to plain
`xdsl-opt` and to any xDSL-based compiler that reads the multiverse."""
from __future__ import annotations

import importlib.util

from xdsl.universe import Universe

from comet_ir import registry


def _present(ref: str) -> bool:
    return importlib.util.find_spec(ref.partition(":")[0]) is not None


UNIVERSE = Universe(
    all_dialects={n: registry.loader(r) for n, r in registry.DIALECTS.items() if _present(r)},
    all_passes={n: registry.loader(r) for n, r in registry.PASSES.items() if _present(r)},
    all_targets={n: registry.loader(r) for n, r in registry.TARGETS.items() if _present(r)},
)
