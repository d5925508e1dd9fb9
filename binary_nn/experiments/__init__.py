"""The experiments tier: many runs (repeated seeds, sweeps and searches) and the reports on them."""
