"""A small resource-constrained scheduling problem and its OR-Tools CP-SAT model.

The problem is independent of the IR (comet_ir.schedule.graph builds it from a mapped
program), so the oracle tests can state tiny instances directly.

- A *task* is a chain of *phases* (e.g. fill, compute, drain of one tile), each an interval
  on a set of resources; phase k+1 starts no earlier than phase k ends (gaps allowed: a fill
  may run early). The task's *span* (first start .. last end) holds `buffers` bytes in each
  named buffer for its whole length.
- A *resource* has an integer capacity (units that can work at once): compute units, SIMD
  units, NoC links, memory ports. Capacity 1 becomes a NoOverlap constraint, more a
  Cumulative one. Buffers are Cumulative over spans with their byte capacity.
- An *edge* (i, j, kind): "data" = task j's first phase starts after task i's last phase ends;
  "main" = j's main phase starts after i's main phase ends (sequential binding);
  "start" = j's main phase starts no earlier than i's (pipeline binding).
- Objective "latency": minimise the makespan. "energy": minimise buffer residency
  (sum of bytes x span, the retention energy of SRAM), then the makespan (two solves).

Determinism: the solver runs with a fixed seed, `interleave_search` when several workers are
used, and a *deterministic* time limit (`max_deterministic_time`), so the same options give
the same schedule (one deterministic second is about 1-7 wall seconds on a 2-core box, more
with more workers); a wall-clock cap of max(60 s, 50x the limit) guards against runaway runs.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from comet_ir.errors import CometError


@dataclass
class Phase:
    name: str
    duration: int
    resources: tuple[str, ...] = ()


@dataclass
class Task:
    name: str
    phases: list[Phase]
    main: int = 0  # index of the phase that is "the work" (compute / collective)
    buffers: dict[str, int] = field(default_factory=dict)
    unit: str = ""  # the resource reported as the task's unit

    @property
    def length(self) -> int:
        return sum(p.duration for p in self.phases)


@dataclass
class Problem:
    tasks: list[Task]
    edges: list[tuple[int, int, str]] = field(default_factory=list)
    capacity: dict[str, int] = field(default_factory=dict)  # resource -> units (default 1)
    buffer_capacity: dict[str, int] = field(default_factory=dict)
    deadline: int | None = None
    label: str = "schedule"


@dataclass
class Solution:
    starts: list[list[int]]  # per task, per phase
    makespan: int
    optimal: bool
    residency: int = 0

    def task_start(self, i: int) -> int:
        return self.starts[i][0]

    def task_end(self, problem: Problem, i: int) -> int:
        t = problem.tasks[i]
        return self.starts[i][-1] + t.phases[-1].duration


# ------------------------------------------------------------------------- bounds


def _resources(problem: Problem) -> dict[str, int]:
    load: dict[str, int] = {}
    for t in problem.tasks:
        for p in t.phases:
            for r in p.resources:
                load[r] = load.get(r, 0) + p.duration
    return load


def critical_path(problem: Problem) -> int:
    """Longest chain of phase durations through the phase order and the edges: a makespan
    lower bound (earliest starts, resources ignored)."""
    T = problem.tasks
    _topo(problem)  # rejects cycles
    s = [[0] * len(t.phases) for t in T]

    def end(i, k):
        return s[i][k] + T[i].phases[k].duration

    changed = True
    while changed:  # terminates: the task graph is acyclic and starts only grow
        changed = False
        for i, t in enumerate(T):
            for k in range(1, len(t.phases)):
                if s[i][k] < end(i, k - 1):
                    s[i][k], changed = end(i, k - 1), True
        for i, j, kind in problem.edges:
            k, need = {"data": (0, end(i, len(T[i].phases) - 1)),
                       "main": (T[j].main, end(i, T[i].main)),
                       "start": (T[j].main, s[i][T[i].main])}[kind]
            if s[j][k] < need:
                s[j][k], changed = need, True
    return max((end(i, len(t.phases) - 1) for i, t in enumerate(T) if t.phases), default=0)


def _topo(problem: Problem) -> None:
    """Reject cyclic dependences (edges always point from an earlier to a later task here,
    but problems built by hand might not)."""
    n = len(problem.tasks)
    indeg = [0] * n
    for _, j, _ in problem.edges:
        indeg[j] += 1
    ready = [i for i in range(n) if indeg[i] == 0]
    seen = 0
    while ready:
        i = ready.pop()
        seen += 1
        for a, b, _ in problem.edges:
            if a == i:
                indeg[b] -= 1
                if indeg[b] == 0:
                    ready.append(b)
    if seen != n:
        raise CometError(f"{problem.label}: the dependences form a cycle")


def lower_bounds(problem: Problem) -> list[tuple[int, str]]:
    """(bound, what sets it) for every constraint family, largest first."""
    out = [(critical_path(problem), "the dependence chain (critical path)")]
    for r, load in _resources(problem).items():
        cap = max(problem.capacity.get(r, 1), 1)
        out.append((-(-load // cap), f"resource {r} (busy {load} cycles on {cap} unit{'s' * (cap > 1)})"))
    return sorted(out, key=lambda x: -x[0])


def check_feasible(problem: Problem) -> None:
    """Raise a CometError naming the tightest constraint if no schedule can exist."""
    for t in problem.tasks:
        for b, need in t.buffers.items():
            cap = problem.buffer_capacity.get(b)
            if cap is not None and need > cap:
                raise CometError(f"{problem.label}: infeasible: task {t.name} needs {need} bytes in "
                                 f"buffer {b}, which holds {cap} bytes (tightest constraint: "
                                 f"capacity of {b})")
    if problem.deadline is not None:
        bound, what = lower_bounds(problem)[0]
        if bound > problem.deadline:
            raise CometError(f"{problem.label}: infeasible: deadline {problem.deadline} cycles is below "
                             f"the lower bound {bound} cycles set by {what} (tightest constraint)")


# ------------------------------------------------------------------------- CP-SAT


def _build(problem: Problem, horizon: int):
    from ortools.sat.python import cp_model

    m = cp_model.CpModel()
    starts, ends, ivs = [], [], []
    by_res: dict[str, list] = {}
    span_s, span_e, span_iv = [], [], []
    for ti, t in enumerate(problem.tasks):
        s_row, e_row, iv_row = [], [], []
        for pi, p in enumerate(t.phases):
            s = m.new_int_var(0, horizon, f"s_{ti}_{pi}")
            e = m.new_int_var(0, horizon, f"e_{ti}_{pi}")
            iv = m.new_interval_var(s, p.duration, e, f"iv_{ti}_{pi}")
            if pi:
                m.add(s >= e_row[-1])
            s_row.append(s)
            e_row.append(e)
            iv_row.append(iv)
            for r in p.resources:
                by_res.setdefault(r, []).append(iv)
        starts.append(s_row)
        ends.append(e_row)
        ivs.append(iv_row)
        size = m.new_int_var(t.length, horizon, f"span_{ti}")
        span_iv.append(m.new_interval_var(s_row[0], size, e_row[-1], f"spaniv_{ti}"))
        span_s.append(s_row[0])
        span_e.append(e_row[-1])
    for r, group in by_res.items():
        cap = problem.capacity.get(r, 1)
        if cap <= 1:
            m.add_no_overlap(group)
        else:
            m.add_cumulative(group, [1] * len(group), cap)
    for b in sorted({b for t in problem.tasks for b in t.buffers}):
        cap = problem.buffer_capacity.get(b)
        if cap is None:
            continue
        demands = [(span_iv[i], t.buffers[b]) for i, t in enumerate(problem.tasks) if t.buffers.get(b)]
        m.add_cumulative([d[0] for d in demands], [d[1] for d in demands], cap)
    for i, j, kind in problem.edges:
        ti, tj = problem.tasks[i], problem.tasks[j]
        if kind == "data":
            m.add(starts[j][0] >= ends[i][-1])
        elif kind == "main":
            m.add(starts[j][tj.main] >= ends[i][ti.main])
        elif kind == "start":
            m.add(starts[j][tj.main] >= starts[i][ti.main])
        else:
            raise ValueError(kind)
    mk = m.new_int_var(0, horizon, "makespan")
    for e in span_e:
        m.add(mk >= e)
    if problem.deadline is not None:
        m.add(mk <= problem.deadline)
    residency = sum(t_buf * (span_e[i] - span_s[i]) for i, t_buf in
                    ((i, sum(t.buffers.values())) for i, t in enumerate(problem.tasks)) if t_buf)
    return m, starts, mk, residency


def _solver(time_limit: float, workers: int, seed: int):
    from ortools.sat.python import cp_model

    s = cp_model.CpSolver()
    p = s.parameters
    p.num_workers = max(int(workers), 1)
    p.random_seed = int(seed)
    if p.num_workers > 1:
        p.interleave_search = True
    p.max_deterministic_time = float(time_limit)
    p.max_time_in_seconds = max(60.0, 50.0 * float(time_limit))  # runaway guard only (wall time)
    return s


def solve(problem: Problem, objective: str = "latency", time_limit: float = 10.0,
          workers: int = 1, seed: int = 0) -> Solution:
    """Optimal (or best found within the limit) schedule of `problem`."""
    from ortools.sat.python import cp_model

    if objective not in ("latency", "energy"):
        raise CometError(f"comet-schedule: objective must be latency or energy, got '{objective}'")
    if not problem.tasks:
        return Solution([], 0, True)
    check_feasible(problem)
    horizon = sum(t.length for t in problem.tasks) + 1
    if problem.deadline is not None:
        horizon = max(min(horizon, problem.deadline), 1)
    m, starts, mk, residency = _build(problem, horizon)
    has_res = not isinstance(residency, int)
    if objective == "energy" and has_res:
        m.minimize(residency)
        s = _solver(time_limit / 2, workers, seed)
        st = s.solve(m)
        if st not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            _raise_no_solution(problem, st, time_limit)
        first_optimal = st == cp_model.OPTIMAL
        m.add(residency <= int(s.objective_value))
        m.minimize(mk)
        s = _solver(time_limit / 2, workers, seed)
        st = s.solve(m)
        optimal = first_optimal and st == cp_model.OPTIMAL
    else:
        m.minimize(mk)
        s = _solver(time_limit, workers, seed)
        st = s.solve(m)
        optimal = st == cp_model.OPTIMAL
    if st not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        _raise_no_solution(problem, st, time_limit)
    res = int(s.value(residency)) if has_res else 0
    return Solution([[int(s.value(v)) for v in row] for row in starts], int(s.value(mk)), optimal, res)


def _raise_no_solution(problem: Problem, status, time_limit: float):
    from ortools.sat.python import cp_model

    if status == cp_model.INFEASIBLE:
        bound, what = lower_bounds(problem)[0]
        extra = f"; the largest lower bound is {bound} cycles from {what}"
        if problem.deadline is not None:
            extra += f" (deadline {problem.deadline})"
        buf = [b for t in problem.tasks for b in t.buffers if b in problem.buffer_capacity]
        if buf:
            extra += f"; buffer capacities {sorted(set(buf))} also constrain overlap"
        raise CometError(f"{problem.label}: infeasible{extra}")
    raise CometError(f"{problem.label}: no feasible schedule found within the time limit "
                     f"({time_limit:g} s); raise time_limit")


# ------------------------------------------------------------------------- checking


def check_solution(problem: Problem, sol: Solution) -> None:
    """Assert every constraint holds (used by tests and by the cost backend on given schedules)."""
    T = problem.tasks

    def end(i, k):
        return sol.starts[i][k] + T[i].phases[k].duration

    for i, t in enumerate(T):
        for k in range(1, len(t.phases)):
            if sol.starts[i][k] < end(i, k - 1):
                raise CometError(f"{problem.label}: {t.name} phase {t.phases[k].name} starts before "
                                 f"{t.phases[k - 1].name} ends")
    for i, j, kind in problem.edges:
        ok = {"data": sol.starts[j][0] >= end(i, len(T[i].phases) - 1),
              "main": sol.starts[j][T[j].main] >= end(i, T[i].main),
              "start": sol.starts[j][T[j].main] >= sol.starts[i][T[i].main]}[kind]
        if not ok:
            raise CometError(f"{problem.label}: {T[j].name} violates its {kind} dependence on {T[i].name}")
    events: dict[str, list[tuple[int, int, int]]] = {}
    for i, t in enumerate(T):
        for k, p in enumerate(t.phases):
            for r in p.resources:
                if p.duration:
                    events.setdefault(r, []).append((sol.starts[i][k], end(i, k), 1))
        for b, need in t.buffers.items():
            if b in problem.buffer_capacity and need:
                events.setdefault("buf:" + b, []).append((sol.starts[i][0], end(i, len(t.phases) - 1), need))
    for r, ev in events.items():
        cap = (problem.buffer_capacity[r[4:]] if r.startswith("buf:") and r[4:] in problem.buffer_capacity
               else problem.capacity.get(r, 1))
        points = sorted({s for s, _, _ in ev})
        for x in points:
            used = sum(d for s, e, d in ev if s <= x < e)
            if used > cap:
                raise CometError(f"{problem.label}: {r} over capacity at cycle {x} ({used} > {cap})")
