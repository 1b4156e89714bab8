"""Inter-op order for comet-map: the children of a `sequential` binding that share no data
(no RAW/WAR/WAW edge of `graph.data_edges`) may run in any topological order of those edges.
A pure chain has exactly one order, so it yields no variant.

`orders(children, cap)` lists topological orders (the given order first, then in lexicographic
order of child positions, at most `cap`); `order_variants(program, cap)` combines the orders of
every sequential binding of a program (pre-order), at most `cap` programs, the given one first.
"""
from __future__ import annotations

import copy
import itertools

from comet_ir.schedule.graph import data_edges, preorder
from comet_ir.spec.mapping_tree import BindingNode, MappedProgram


def orders(children, cap: int = 24) -> list[tuple[int, ...]]:
    n = len(children)
    before = {j: {i for i, jj in data_edges(children) if jj == j} for j in range(n)}
    out = [tuple(range(n))]
    for perm in itertools.permutations(range(n)):
        if len(out) >= cap:
            break
        pos = {c: k for k, c in enumerate(perm)}
        if perm != out[0] and all(pos[i] < pos[j] for j in range(n) for i in before[j]):
            out.append(perm)
    return out


def order_variants(program: MappedProgram, cap: int = 24) -> list[tuple[str, MappedProgram]]:
    """(label, program) for each combination of the sequential bindings' orders; the first is
    the program itself (label 'given order')."""
    bindings = [i for i, n in enumerate(preorder(program.root))
                if isinstance(n, BindingNode) and n.kind == "sequential" and len(n.children) > 1]
    nodes = preorder(program.root)
    per = [orders(nodes[i].children, cap) for i in bindings]
    out = []
    for combo in itertools.product(*per):
        if len(out) >= cap:
            break
        if not out:
            out.append(("given order", program))
            continue
        p = copy.deepcopy(program)
        pn = preorder(p.root)
        # the binding objects before any reordering: pre-order positions move once one changes
        for b, perm in zip([pn[bi] for bi in bindings], combo):
            b.children = [b.children[k] for k in perm]
        label = "order " + "; ".join(",".join(map(str, perm)) for perm in combo)
        out.append((label, p))
    return out
