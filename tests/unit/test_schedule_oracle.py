"""comet-schedule's CP-SAT model against brute force on tiny graphs.

Two independent oracles: (1) every integer start time of every task within the horizon
(single-phase tasks, so buffers are exact), checked constraint by constraint; (2) the serial
schedule-generation scheme over every precedence-feasible order of the phases (the active
schedules contain a makespan optimum when all constraints are minimum time lags and
resources are renewable; used without buffers so spans equal durations).
"""
import itertools
import random

import pytest

from comet_ir.errors import CometError
from comet_ir.schedule.cpsat import Phase, Problem, Solution, Task, check_solution, solve


def _grid_oracle(p: Problem) -> int:
    horizon = sum(t.length for t in p.tasks)
    best = None
    for starts in itertools.product(range(horizon + 1), repeat=len(p.tasks)):
        sol = Solution([[s] for s in starts], 0, False)
        mk = max(s + t.length for s, t in zip(starts, p.tasks))
        if best is not None and mk >= best:
            continue
        try:
            check_solution(p, sol)
        except CometError:
            continue
        best = mk
    return best


def _sgs_oracle(p: Problem) -> int:
    phases = [(i, k) for i, t in enumerate(p.tasks) for k in range(len(t.phases))]
    best = None
    for perm in itertools.permutations(phases):
        pos = {ph: n for n, ph in enumerate(perm)}
        if any(pos[(i, k)] < pos[(i, k - 1)] for i, k in phases if k):
            continue
        busy: dict[str, list[tuple[int, int]]] = {}
        start: dict = {}
        ok = True
        for i, k in perm:
            t = p.tasks[i]
            lb = start[(i, k - 1)] + t.phases[k - 1].duration if k else 0
            for a, b, kind in p.edges:
                if b != i:
                    continue
                ta = p.tasks[a]
                if kind == "data" and k == 0:
                    src = (a, len(ta.phases) - 1)
                    if src not in start:
                        ok = False
                        break
                    lb = max(lb, start[src] + ta.phases[-1].duration)
                elif kind in ("main", "start") and k == t.main:
                    src = (a, ta.main)
                    if src not in start:
                        ok = False
                        break
                    lb = max(lb, start[src] + (ta.phases[ta.main].duration if kind == "main" else 0))
            if not ok:
                break
            d = t.phases[k].duration
            s = lb
            while any(s < e and b0 < s + d for r in t.phases[k].resources for b0, e in busy.get(r, []))\
                    and d > 0:
                s += 1
            start[(i, k)] = s
            for r in t.phases[k].resources:
                busy.setdefault(r, []).append((s, s + d))
        if not ok:
            continue
        mk = max(start[(i, k)] + p.tasks[i].phases[k].duration for i, k in phases)
        best = mk if best is None else min(best, mk)
    return best


def _tiny_single_phase(rng: random.Random) -> Problem:
    n = rng.randint(2, 4)
    tasks = [Task(f"t{i}", [Phase("w", rng.randint(1, 3), tuple(rng.sample(["u", "v", "noc"], rng.randint(0, 2))))],
                  buffers={"OB": rng.randint(1, 4)}) for i in range(n)]
    edges = [(i, j, rng.choice(["data", "main", "start"])) for j in range(n) for i in range(j) if rng.random() < 0.3]
    return Problem(tasks, edges, {"noc": 2}, {"OB": rng.randint(4, 7)})


def _tiny_phased(rng: random.Random) -> Problem:
    n = rng.randint(2, 3)
    tasks = []
    for i in range(n):
        k = rng.randint(1, 3) if n == 2 else rng.randint(1, 2)
        tasks.append(Task(f"t{i}", [Phase(f"p{j}", rng.randint(0, 3), tuple(rng.sample(["port", "u", "v"], rng.randint(1, 2))))
                                    for j in range(k)], main=rng.randrange(k)))
    edges = [(i, j, rng.choice(["data", "main", "start"])) for j in range(n) for i in range(j) if rng.random() < 0.4]
    return Problem(tasks, edges)


@pytest.mark.parametrize("seed", range(12))
def test_schedule_oracle_time_grid(seed):
    p = _tiny_single_phase(random.Random(seed))
    sol = solve(p)
    check_solution(p, sol)
    assert sol.optimal
    assert sol.makespan == _grid_oracle(p)


@pytest.mark.parametrize("seed", range(12))
def test_schedule_oracle_serial_sgs(seed):
    p = _tiny_phased(random.Random(100 + seed))
    sol = solve(p)
    check_solution(p, sol)
    assert sol.makespan == _sgs_oracle(p)


def test_two_units_overlap_but_one_unit_serialises():
    # independent tasks on different units overlap: makespan = the longest (5); on one unit: 3+5
    two = Problem([Task("a", [Phase("w", 3, ("u",))]), Task("b", [Phase("w", 5, ("v",))])])
    one = Problem([Task("a", [Phase("w", 3, ("u",))]), Task("b", [Phase("w", 5, ("u",))])])
    assert solve(two).makespan == 5
    assert solve(one).makespan == 8


def test_buffer_capacity_forbids_overlap():
    tasks = [Task("a", [Phase("w", 3, ("u",))], buffers={"OB": 6}), Task("b", [Phase("w", 4, ("v",))], buffers={"OB": 6})]
    assert solve(Problem(tasks, buffer_capacity={"OB": 12})).makespan == 4
    assert solve(Problem(tasks, buffer_capacity={"OB": 11})).makespan == 7


def test_deterministic_for_fixed_options():
    rng = random.Random(7)
    tasks = [Task(f"t{i}", [Phase("f", rng.randint(1, 9), ("port",)), Phase("b", rng.randint(1, 30), (f"u{i % 3}",)),
                            Phase("d", rng.randint(1, 9), ("port",))], main=1, buffers={"OB": rng.randint(1, 5)})
             for i in range(30)]
    edges = [(i, j, "data") for j in range(30) for i in range(j) if rng.random() < 0.05]
    p = Problem(tasks, edges, {}, {"OB": 9})
    for workers in (1, 2):
        a = solve(p, time_limit=0.2, workers=workers, seed=3)
        b = solve(p, time_limit=0.2, workers=workers, seed=3)
        assert a.starts == b.starts and a.makespan == b.makespan


def test_infeasible_deadline_names_tightest_constraint():
    p = Problem([Task("a", [Phase("w", 3, ("u",))]), Task("b", [Phase("w", 5, ("u",))])], deadline=6)
    with pytest.raises(CometError, match=r"deadline 6 cycles is below the lower bound 8 cycles set by resource u"):
        solve(p)


def test_infeasible_buffer_names_it():
    p = Problem([Task("a", [Phase("w", 3, ("u",))], buffers={"OB": 100})], buffer_capacity={"OB": 64})
    with pytest.raises(CometError, match=r"needs 100 bytes in buffer OB, which holds 64 bytes"):
        solve(p)
