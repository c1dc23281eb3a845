"""The metrics that score a generator against real images."""
