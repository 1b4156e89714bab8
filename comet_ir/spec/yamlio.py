"""Located YAML: composed nodes that know their file, YAML path and line.

Every accessor raises a `CometError` located at the node (`file:line:col: error: path: msg`),
so spec loaders (workloads, architectures, reference files) report user mistakes exactly.
"""
from __future__ import annotations

import re
from typing import Any

import yaml

from comet_ir.errors import CometError

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

class YNode:
    """A composed YAML node with its path and file: typed accessors raise located errors."""

    def __init__(self, node: yaml.Node, path: str, file: str):
        self.node, self.path, self.file = node, path, file

    # -- errors
    def error(self, msg: str) -> CometError:
        m = self.node.start_mark
        return CometError(msg, file=self.file, line=m.line + 1, col=m.column + 1,
                          where=self.path or "<top>")

    def _child(self, node: yaml.Node, suffix: str) -> "YNode":
        if suffix.startswith("["):
            return YNode(node, self.path + suffix, self.file)
        return YNode(node, f"{self.path}.{suffix}" if self.path else suffix, self.file)

    # -- shapes
    def is_map(self) -> bool:
        return isinstance(self.node, yaml.MappingNode)

    def is_seq(self) -> bool:
        return isinstance(self.node, yaml.SequenceNode)

    def mapping(self, allowed: tuple[str, ...] | None = None,
                required: tuple[str, ...] = ()) -> dict[str, "YNode"]:
        if not self.is_map():
            raise self.error(f"expected a mapping, got {self._kind()}")
        out: dict[str, YNode] = {}
        for k, v in self.node.value:
            if not isinstance(k, yaml.ScalarNode):
                raise YNode(k, self.path, self.file).error("mapping keys must be plain strings")
            key = k.value
            if allowed is not None and key not in allowed:
                raise YNode(k, self._child(k, key).path, self.file).error(
                    f"unknown key '{key}' (allowed: {', '.join(allowed)})")
            if key in out:
                raise YNode(k, self._child(k, key).path, self.file).error(f"duplicate key '{key}'")
            out[key] = self._child(v, key)
        for r in required:
            if r not in out:
                raise self.error(f"missing required key '{r}'")
        return out

    def seq(self) -> list["YNode"]:
        if not self.is_seq():
            raise self.error(f"expected a list, got {self._kind()}")
        return [self._child(n, f"[{i}]") for i, n in enumerate(self.node.value)]

    def _kind(self) -> str:
        if self.is_map():
            return "a mapping"
        if self.is_seq():
            return "a list"
        v = self.scalar()
        return f"{type(v).__name__} {v!r}" if v is not None else "null"

    def scalar(self) -> Any:
        if not isinstance(self.node, yaml.ScalarNode):
            raise self.error(f"expected a scalar, got {self._kind()}")
        return yaml.constructor.SafeConstructor().construct_object(self.node)

    # -- typed scalars
    def str_(self) -> str:
        v = self.scalar()
        if not isinstance(v, str):
            raise self.error(f"expected a string, got {type(v).__name__} {v!r}")
        return v

    def ident(self, what: str = "name") -> str:
        v = self.scalar()
        if isinstance(v, bool) or not isinstance(v, (str, int)):
            raise self.error(f"expected a {what}, got {type(v).__name__} {v!r}")
        v = str(v).strip()
        if not _IDENT.match(v):
            raise self.error(f"{what} '{v}' is not an identifier ([A-Za-z_][A-Za-z0-9_]*)")
        return v

    def int_(self, positive: bool = False) -> int:
        v = self.scalar()
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.error(f"expected an integer, got {type(v).__name__} {v!r}")
        if positive and v <= 0:
            raise self.error(f"must be a positive integer, got {v}")
        return v

    def float_(self, positive: bool = False) -> float:
        v = self.scalar()
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise self.error(f"expected a number, got {type(v).__name__} {v!r}")
        if positive and not v > 0:
            raise self.error(f"must be > 0, got {v}")
        return float(v)

    def bool_(self) -> bool:
        v = self.scalar()
        if not isinstance(v, bool):
            raise self.error(f"expected true or false, got {type(v).__name__} {v!r}")
        return v

    def names(self, what: str = "name") -> list[tuple[str, "YNode"]]:
        """A list of identifiers, as a YAML list or a comma-separated string ("A, B")."""
        if self.is_seq():
            return [(y.ident(what), y) for y in self.seq()]
        if self.is_map():
            raise self.error(f"expected a list of {what}s, got a mapping")
        v = self.scalar()
        if isinstance(v, str) and v.strip():
            parts = [p.strip() for p in v.split(",")]
            for p in parts:
                if not _IDENT.match(p):
                    raise self.error(f"{what} '{p}' is not an identifier ([A-Za-z_][A-Za-z0-9_]*)")
            return [(p, self) for p in parts]
        raise self.error(f"expected a list of {what}s, got {self._kind()}")


def compose(text: str, file: str) -> YNode:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        m = e.problem_mark or e.context_mark
        raise CometError(f"malformed YAML: {e.problem or e}", file=file,
                         line=m.line + 1 if m else None, col=m.column + 1 if m else None) from None
    except yaml.YAMLError as e:
        raise CometError(f"malformed YAML: {e}", file=file) from None
    if node is None:
        raise CometError("empty YAML file", file=file, line=1, col=1)
    return YNode(node, "", file)
