"""The experiments tier: many runs (repeated seeds, grid sweeps) and the reports on them."""
