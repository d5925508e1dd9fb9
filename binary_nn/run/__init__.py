"""The run tier: one training run's config, loop, probes, metrics, checkpoints and tracking."""
