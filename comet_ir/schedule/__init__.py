"""Scheduling and search with OR-Tools CP-SAT: binding schedules (cpsat, graph), tile-factor
proposals for comet-map (factors) and the GPU comm/compute split chooser (gpu_chooser)."""
